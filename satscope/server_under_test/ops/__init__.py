"""The kernels the reference server's model calls, each dispatched to one backend chosen at start.

``backend()`` is ``"triton"`` (our OpenAI Triton kernels, ``_*_kernel`` in each op's file) or
``"torch"`` (the plain-PyTorch reference twins ``*_ref``, which are the truth and the CPU path).
See docs/kernels.md for shapes and conventions.
"""

from __future__ import annotations

import torch

from . import decode_attention, kv_store, rope, silu_mul
from . import prefill_attention as _prefill
from . import rms_norm as _rms_norm
from ._backend import backend

__all__ = [
    "apply_rope",
    "backend",
    "paged_decode_attention",
    "prefill_attention",
    "rms_norm",
    "silu_and_mul",
    "store_kvcache",
]


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """x [T, H], weight [H] → x / rms(x) * weight.

    With residual [T, H]: s = x + residual; returns (rms_norm(s), s), s being the new residual.
    """
    if backend() == "triton":
        return _rms_norm.rms_norm_triton(x, weight, eps, residual)
    return _rms_norm.rms_norm_ref(x, weight, eps, residual)


def apply_rope(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotate q [T, Hq, D] and k [T, Hkv, D] in place (rotate-half) at positions int64 [T]."""
    if backend() == "triton":
        rope.apply_rope_triton(q, k, positions, cos, sin)
    else:
        rope.apply_rope_ref(q, k, positions, cos, sin)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """x [T, 2I] = [gate, up] → silu(gate) * up, [T, I]."""
    if backend() == "triton":
        return silu_mul.silu_and_mul_triton(x)
    return silu_mul.silu_and_mul_ref(x)


def store_kvcache(
    k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Write k, v [T, Hkv, D] into caches [NB, BS, Hkv, D] at slot_mapping int64 [T]; -1 = skip."""
    if backend() == "triton":
        kv_store.store_kvcache_triton(k, v, k_cache, v_cache, slot_mapping)
    else:
        kv_store.store_kvcache_ref(k, v, k_cache, v_cache, slot_mapping)


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One query token per sequence: q [B, Hq, D] against the paged cache → [B, Hq, D]."""
    if backend() == "triton":
        return decode_attention.paged_decode_attention_triton(q, k_cache, v_cache, block_tables, context_lens, scale)
    return decode_attention.paged_decode_attention_ref(q, k_cache, v_cache, block_tables, context_lens, scale)


def prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    max_seqlen_q: int | None = None,
) -> torch.Tensor:
    """Causal attention of packed q [T, Hq, D] over the paged cache (new K/V stored first) → [T, Hq, D].

    ``max_seqlen_q``, when the caller knows it, spares the Triton path a device-to-host sync per call.
    """
    if backend() == "triton":
        return _prefill.prefill_attention_triton(
            q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, scale, max_seqlen_q
        )
    return _prefill.prefill_attention_ref(q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, scale)
