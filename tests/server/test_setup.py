"""KV-pool sizing and device/dtype resolution (GPU memory is faked: no GPU exists on this machine)."""

from __future__ import annotations

import pytest
import torch

from satscope.server_under_test import setup
from satscope.server_under_test.config import ConfigError, ServerConfig

GIB = 1 << 30


def test_cpu_pool_defaults_to_a_fixed_token_count_and_honours_the_flag() -> None:
    assert setup._num_kv_blocks(ServerConfig(), 2048, "cpu") == setup.CPU_DEFAULT_KV_TOKENS // 16
    assert setup._num_kv_blocks(ServerConfig(block_size=32), 2048, "cpu") == setup.CPU_DEFAULT_KV_TOKENS // 32
    assert setup._num_kv_blocks(ServerConfig(kv_blocks=7), 2048, "cpu") == 7


def test_gpu_pool_is_sized_from_memory_utilization(monkeypatch: pytest.MonkeyPatch) -> None:
    # 80 GiB device, 20 GiB already taken (weights): at 0.9, 72 - 20 - 1 (activation reserve) = 51 GiB of KV.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (60 * GIB, 80 * GIB))
    kv_bytes_per_token = 131072  # llama-3.1-8b in bf16
    blocks = setup._num_kv_blocks(ServerConfig(gpu_memory_utilization=0.9), kv_bytes_per_token, "cuda")
    assert blocks == int(51 * GIB // (kv_bytes_per_token * 16))
    with pytest.raises(ConfigError, match="no GPU memory left"):
        setup._num_kv_blocks(ServerConfig(gpu_memory_utilization=0.2), kv_bytes_per_token, "cuda")


def test_device_and_dtype_resolution() -> None:
    assert setup._resolve_dtype("auto", "cpu") == "float32"
    assert setup._resolve_dtype("auto", "cuda") == "bfloat16"
    assert setup._resolve_dtype("float16", "cpu") == "float16"
    if not torch.cuda.is_available():
        assert setup._resolve_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            setup._resolve_device("cuda")
