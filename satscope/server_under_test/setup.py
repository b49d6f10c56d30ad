"""Everything the engine needs before its first step: device, dtype, weights, tokenizer, KV pool.

On a GPU the KV pool is sized like vLLM's `gpu_memory_utilization`: the fraction of the device's
memory the server may use, minus what the weights already took and an activation reserve. On a CPU
it holds `CPU_DEFAULT_KV_TOKENS` tokens unless `--kv-blocks` says otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from satscope.server_under_test.config import ConfigError, ModelConfig, ServerConfig
from satscope.server_under_test.metrics import ModelFacts
from satscope.server_under_test.model_runner import ModelRunner
from satscope.server_under_test.sampler import Sampler
from satscope.server_under_test.tokenizer import ByteTokenizer, Tokenizer, load_tokenizer

__all__ = ["CPU_DEFAULT_KV_TOKENS", "EngineParts", "build_engine_parts"]

log = logging.getLogger("satscope.server")

# 32 concurrent requests of 512 tokens: room for dozens of streams, small enough to exhaust with flags.
CPU_DEFAULT_KV_TOKENS = 16384
_ACTIVATION_RESERVE_BYTES = 1 << 30
_SMALL_MODEL_PARAMETERS = 100_000_000


@dataclass(slots=True)
class EngineParts:
    model_config: ModelConfig
    tokenizer: Tokenizer
    runner: ModelRunner
    sampler: Sampler
    facts: ModelFacts


def _resolve_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA GPU is available (use --device cpu)")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _resolve_dtype(name: str, device: str) -> str:
    if name == "auto":
        return "bfloat16" if device == "cuda" else "float32"
    return name


def _num_kv_blocks(config: ServerConfig, kv_bytes_per_token: int, device: str) -> int:
    import torch

    if config.kv_blocks is not None:
        return config.kv_blocks
    if device == "cpu":
        return CPU_DEFAULT_KV_TOKENS // config.block_size
    free, total = torch.cuda.mem_get_info()
    budget = total * config.gpu_memory_utilization - (total - free) - _ACTIVATION_RESERVE_BYTES
    blocks = int(budget // (kv_bytes_per_token * config.block_size))
    if blocks < 1:
        raise ConfigError(
            f"no GPU memory left for the KV cache at gpu_memory_utilization={config.gpu_memory_utilization}",
        )
    return blocks


def build_engine_parts(config: ServerConfig) -> EngineParts:
    import torch

    from satscope.server_under_test import ops
    from satscope.server_under_test.weights import build_model

    model_config = config.model_config()
    tokenizer = load_tokenizer(model_config, config.model_path)  # its errors before the weights load
    device = _resolve_device(config.device)
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    elif device == "cpu" and model_config.num_parameters < _SMALL_MODEL_PARAMETERS:
        # A small model's matmuls are too short to split: extra threads only spin, and on a shared
        # machine they make each step ten times slower.
        torch.set_num_threads(1)
    dtype_name = _resolve_dtype(config.dtype, device)
    dtype = getattr(torch, dtype_name)
    model = build_model(model_config, dtype, torch.device(device), config.seed, config.model_path)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    kv_bytes_per_token = model_config.kv_bytes_per_token(dtype_bytes)
    num_blocks = _num_kv_blocks(config, kv_bytes_per_token, device)
    runner = ModelRunner(model, model_config, num_blocks, config.block_size, dtype, torch.device(device))
    params = sum(p.numel() for p in model.parameters())
    facts = ModelFacts(
        model=config.model_name,
        dtype=dtype_name,
        device=device,
        kernels=ops.backend(),
        parameters=params,
        weight_bytes=params * dtype_bytes,
        layers=model_config.num_layers,
        kv_bytes_per_token=kv_bytes_per_token,
        kv_capacity_blocks=num_blocks,
        block_size=config.block_size,
    )
    log.info(
        "model %s: %d parameters, %s on %s, kernels %s, KV pool %d blocks x %d tokens",
        facts.model,
        params,
        dtype_name,
        device,
        facts.kernels,
        num_blocks,
        config.block_size,
    )
    banned = tokenizer.banned_token_ids() if isinstance(tokenizer, ByteTokenizer) else None
    sampler = Sampler(config.seed, sorted(model_config.stop_token_ids), banned)
    return EngineParts(model_config, tokenizer, runner, sampler, facts)
