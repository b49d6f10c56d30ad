"""Fill a LlamaModel's parameters: deterministic random weights from a seed, or a local HF checkpoint.

Random weights are scaled so activations keep unit size through the layers (std 1/sqrt(fan_in)),
which keeps the logits spread out and the random model's output varied.
"""

from __future__ import annotations

from pathlib import Path

import torch

from satscope.server_under_test.config import ConfigError, ModelConfig
from satscope.server_under_test.model import LlamaModel

__all__ = ["build_model", "load_hf_weights", "random_weights"]


def random_weights(model: LlamaModel, seed: int) -> None:
    gen = torch.Generator(device=model.embed_tokens.device).manual_seed(seed)
    for name, param in model.named_parameters():
        if param.ndim == 1:
            param.data.fill_(1.0)
            continue
        std = 1.0 if name == "embed_tokens" else param.shape[1] ** -0.5
        if param.dtype in (torch.float16, torch.bfloat16):
            sample = torch.empty(param.shape, device=param.device).normal_(0.0, std, generator=gen)
            param.data.copy_(sample)
        else:
            param.data.normal_(0.0, std, generator=gen)


def _hf_name_map(cfg: ModelConfig) -> dict[str, list[str]]:
    """Our parameter name → the HF tensor names concatenated (on dim 0) to make it."""
    names: dict[str, list[str]] = {"embed_tokens": ["model.embed_tokens.weight"], "norm": ["model.norm.weight"]}
    if not cfg.tie_embeddings:
        names["lm_head"] = ["lm_head.weight"]
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", f"layers.{i}"
        names[f"{ours}.self_attn.qkv_proj"] = [f"{hf}.self_attn.{p}_proj.weight" for p in "qkv"]
        names[f"{ours}.self_attn.o_proj"] = [f"{hf}.self_attn.o_proj.weight"]
        names[f"{ours}.gate_up_proj"] = [f"{hf}.mlp.gate_proj.weight", f"{hf}.mlp.up_proj.weight"]
        names[f"{ours}.down_proj"] = [f"{hf}.mlp.down_proj.weight"]
        names[f"{ours}.input_layernorm"] = [f"{hf}.input_layernorm.weight"]
        names[f"{ours}.post_attention_layernorm"] = [f"{hf}.post_attention_layernorm.weight"]
    return names


def load_hf_weights(model: LlamaModel, path: Path) -> None:
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"no *.safetensors files in {path}: --model needs safetensors weights")
    handles, where = [], {}
    for f in files:
        try:
            handle = safe_open(str(f), framework="pt", device="cpu")
            where |= dict.fromkeys(handle.keys(), handle)
        except Exception as exc:  # safetensors raises its own SafetensorError, plus OSError
            raise ConfigError(f"{f} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None
        handles.append(handle)
    params = dict(model.named_parameters())
    for ours, theirs in _hf_name_map(model.cfg).items():
        missing = [n for n in theirs if n not in where]
        if missing:
            raise ConfigError(f"checkpoint {path} lacks {missing[0]}: is it a Llama checkpoint?")
        try:
            tensor = torch.cat([where[n].get_tensor(n) for n in theirs], dim=0)
        except Exception as exc:  # a truncated file lists its tensors but cannot read them
            raise ConfigError(f"{path}: cannot read {theirs[0]} ({type(exc).__name__}: {exc})") from None
        if tensor.shape != params[ours].shape:
            raise ConfigError(
                f"{theirs[0]} has shape {tuple(tensor.shape)}, config.json implies {tuple(params[ours].shape)}"
            )
        params[ours].data.copy_(tensor)


def build_model(cfg: ModelConfig, dtype: torch.dtype, device: torch.device, seed: int, path: str | None) -> LlamaModel:
    with torch.device(device):
        model = LlamaModel(cfg, dtype)
    if path is None:
        random_weights(model, seed)
    else:
        load_hf_weights(model, Path(path))
    model.setup_rope()
    return model.eval()
