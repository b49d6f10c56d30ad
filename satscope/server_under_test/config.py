"""Model shapes (named presets) and the server's configuration, validated at construction.

Random-weight presets use the byte-level tokenizer: ids 0-255 are bytes, then BOS and EOS. The
`llama-*` presets keep their real vocabulary size so a forward pass costs what the real model costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["PRESETS", "ConfigError", "ModelConfig", "ServerConfig", "load_hf_model_config"]

DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and the fix."""


@dataclass(slots=True, frozen=True)
class ModelConfig:
    """The shape of a Llama-architecture decoder."""

    name: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_position: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    bos_token_id: int = 256
    eos_token_id: int = 257
    # Llama 3 "llama3" RoPE scaling: (factor, low_freq_factor, high_freq_factor, original_max_position).
    rope_scaling: tuple[float, float, float, int] | None = None
    rope_linear_factor: float = 1.0  # "linear" RoPE scaling: positions divided by this factor
    eos_token_ids: tuple[int, ...] = ()  # every id that ends generation (eos_token_id is the first)

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "max_position",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"model {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        for eos in (self.eos_token_id, *self.eos_token_ids):
            if not 0 <= eos < self.vocab_size:
                raise ConfigError(f"eos_token_id {eos} is outside the vocabulary")
        if self.rope_linear_factor <= 0:
            raise ConfigError(f"rope scaling factor must be > 0, got {self.rope_linear_factor}")

    @property
    def stop_token_ids(self) -> frozenset[int]:
        return frozenset((self.eos_token_id, *self.eos_token_ids))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_parameters(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        per_layer = h * (h + 2 * kv) + h * h + 3 * h * self.intermediate_size + 2 * h
        embeddings = self.vocab_size * h * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + embeddings + h

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """K and V of one token over all layers."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes


PRESETS: dict[str, ModelConfig] = {
    # A few M parameters: dozens of concurrent streams on a 2-core CPU.
    "tiny": ModelConfig(
        name="tiny",
        vocab_size=258,
        hidden_size=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=2,
        intermediate_size=768,
        max_position=2048,
    ),
    "llama-3.2-1b": ModelConfig(
        name="llama-3.2-1b",
        vocab_size=128256,
        hidden_size=2048,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=8192,
        max_position=8192,
        rope_theta=500000.0,
        tie_embeddings=True,
        rope_scaling=(32.0, 1.0, 4.0, 8192),
    ),
    "llama-3.1-8b": ModelConfig(
        name="llama-3.1-8b",
        vocab_size=128256,
        hidden_size=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        intermediate_size=14336,
        max_position=8192,
        rope_theta=500000.0,
        rope_scaling=(8.0, 1.0, 4.0, 8192),
    ),
}


def load_hf_model_config(path: Path) -> ModelConfig:
    """Read a Hugging Face Llama `config.json` into a ModelConfig (see `hf_config.py`)."""
    from satscope.server_under_test.hf_config import load_hf_model_config as load

    return load(path)


_GPU, _LIMITS, _MODEL = "GPU sizing", "Limits", "Model"


def _opt(default: Any, help: str, panel: str | None = None, **cli: Any) -> Any:
    """A field with its command-line option: `satscope serve` builds every flag from these."""
    return field(default=default, metadata={"help": help, "panel": panel, **cli})


@dataclass(slots=True)
class ServerConfig:
    """Everything `satscope serve` is told. `kv_blocks=None` sizes the pool automatically.

    Each field carries its option's help (``metadata``); ``satscope/_serve.py`` turns the fields
    into the command's flags, so a setting is declared once, here."""

    preset: str = _opt(
        "tiny", "Random-weight model shape: tiny (CPU, a few M parameters), llama-3.2-1b, llama-3.1-8b.", _MODEL
    )
    model_path: str | None = _opt(
        None,
        "Local Hugging Face Llama checkpoint directory (config.json, "
        "*.safetensors, tokenizer.json); overrides --preset.",
        _MODEL,
        flag="--model",
    )
    served_model_name: str | None = _opt(
        None, "Model name the API answers to (default: the preset or the checkpoint folder's name).", _MODEL
    )
    seed: int = _opt(0, "Seed of the random weights and of unseeded sampling.", _MODEL)
    dtype: str = _opt("auto", "auto (float32 on CPU, bfloat16 on GPU), float32, float16, bfloat16.", _MODEL)
    device: str = _opt("auto", "auto, cpu or cuda.", _MODEL)
    kv_blocks: int | None = _opt(
        None,
        "KV-cache pool size in blocks (default: 16384 tokens' worth on CPU, sized "
        "from --gpu-memory-utilization on GPU). Small values make the pool run out under "
        "load.",
        _LIMITS,
    )
    block_size: int = _opt(16, "Tokens per KV block.", _LIMITS)
    gpu_memory_utilization: float = _opt(
        0.9, "Fraction of GPU memory the server may use (weights + KV cache), 0-1.", _GPU
    )
    max_num_seqs: int = _opt(64, "Most sequences in the running batch.", _LIMITS)
    max_batched_tokens: int = _opt(2048, "Token budget of one engine step (prefill chunks + decodes).", _LIMITS)
    max_waiting: int = _opt(256, "Waiting-queue bound; beyond it requests get 429.", _LIMITS)
    max_model_len: int | None = _opt(
        None, "Context length: prompt + completion tokens (default: the model's).", _LIMITS
    )
    max_tokens_limit: int | None = _opt(
        None, "Largest max_tokens a request may ask for (default: the context length).", _LIMITS
    )
    api_key: str | None = field(
        default=None,
        repr=False,
        metadata={
            "help": "Require 'Authorization: Bearer KEY' on /v1/* (401 otherwise).",
            "envvar": "SATSCOPE_API_KEY",
        },
    )
    step_delay_ms: float = _opt(
        0.0, "Sleep this long in every engine step: an injected slowdown for testing performance gates.", _LIMITS
    )
    enable_prefix_caching: bool = _opt(
        True,
        "Share the KV blocks of prompt prefixes seen before (automatic prefix caching, as in vLLM).",
        _LIMITS,
        flag="--prefix-caching/--no-prefix-caching",
    )
    max_body_bytes: int = _opt(1 << 20, "Largest request body accepted; larger ones get 413.", _LIMITS)
    torch_threads: int | None = _opt(
        None, "CPU threads for torch (default: 1 for models under 100M parameters, else torch's).", _MODEL
    )
    host: str = _opt(
        "127.0.0.1", "Address to bind. Loopback by default; binding elsewhere exposes the server to the network."
    )
    port: int = _opt(8000, "TCP port to listen on.")
    log_level: str = _opt("info", "critical, error, warning, info or debug. Prompts and outputs are never logged.")

    def __post_init__(self) -> None:
        if self.model_path is None and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if self.model_path is not None and not Path(self.model_path).is_dir():
            raise ConfigError(f"--model {self.model_path!r} is not a directory with a Hugging Face checkpoint")
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"unknown log level {self.log_level!r}: choose one of {', '.join(LOG_LEVELS)}")
        positive = ("block_size", "max_num_seqs", "max_batched_tokens", "max_waiting", "max_body_bytes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("kv_blocks", "max_model_len", "max_tokens_limit", "torch_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.step_delay_ms < 0:
            raise ConfigError(f"step_delay_ms must be >= 0, got {self.step_delay_ms}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range")
        self.model_config()  # reads at most a config.json: shape errors surface here, before torch loads
        if self.model_path is not None and not (Path(self.model_path) / "tokenizer.json").is_file():
            raise ConfigError(f"{Path(self.model_path) / 'tokenizer.json'} not found: --model needs a tokenizer.json")

    def model_config(self) -> ModelConfig:
        """The model shape, with max_position clamped to --max-model-len when given."""
        model = load_hf_model_config(Path(self.model_path)) if self.model_path else PRESETS[self.preset]
        if self.max_model_len is not None:
            if self.max_model_len > model.max_position:
                raise ConfigError(
                    f"max_model_len {self.max_model_len} exceeds the model's {model.max_position} positions"
                )
            model = replace(model, max_position=self.max_model_len)
        return model

    @property
    def model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        return Path(self.model_path).name if self.model_path else self.preset
