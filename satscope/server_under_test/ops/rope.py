"""Rotary position embedding, rotate-half (HF Llama) convention, applied to q and k in place.

With x = [x1, x2] split on the head dim: out1 = x1*cos - x2*sin, out2 = x2*cos + x1*sin, where
cos/sin [max_pos, D // 2] are looked up at each token's position. ``apply_rope_ref`` is the truth
and the CPU path; ``apply_rope_triton`` launches ``_rope_kernel``, one program per token that
rotates all of its query and key heads (cos/sin are read once per token).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["apply_rope_ref", "apply_rope_triton"]


def apply_rope_ref(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> None:
    """q [T, Hq, D], k [T, Hkv, D], positions int64 [T], cos/sin [max_pos, D // 2]; in place."""
    cos_t = cos[positions].float().unsqueeze(1)
    sin_t = sin[positions].float().unsqueeze(1)
    for x in (q, k):
        x1, x2 = x.float().chunk(2, dim=-1)
        x.copy_(torch.cat((x1 * cos_t - x2 * sin_t, x2 * cos_t + x1 * sin_t), dim=-1))


@triton.jit
def _rotate_heads(
    x_ptr,
    stride_t,
    stride_h,
    token,
    num_heads,
    half,
    cos,
    sin,
    BLOCK_H: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    heads = tl.arange(0, BLOCK_H)
    cols = tl.arange(0, BLOCK_HALF)
    mask = (heads[:, None] < num_heads) & (cols[None, :] < half)
    ptr1 = x_ptr + token * stride_t + heads[:, None] * stride_h + cols[None, :]
    x1 = tl.load(ptr1, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(ptr1 + half, mask=mask, other=0.0).to(tl.float32)
    tl.store(ptr1, (x1 * cos - x2 * sin).to(x_ptr.dtype.element_ty), mask=mask)
    tl.store(ptr1 + half, (x2 * cos + x1 * sin).to(x_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rope_kernel(
    q_ptr,
    k_ptr,
    pos_ptr,
    cos_ptr,
    sin_ptr,
    stride_qt,
    stride_qh,
    stride_kt,
    stride_kh,
    stride_cos,
    stride_sin,
    num_q_heads,
    num_kv_heads,
    half,
    BLOCK_HQ: tl.constexpr,
    BLOCK_HKV: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + token).to(tl.int64)
    cols = tl.arange(0, BLOCK_HALF)
    cmask = cols < half
    cos = tl.load(cos_ptr + pos * stride_cos + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(sin_ptr + pos * stride_sin + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(q_ptr, stride_qt, stride_qh, token, num_q_heads, half, cos, sin, BLOCK_HQ, BLOCK_HALF)
    _rotate_heads(k_ptr, stride_kt, stride_kh, token, num_kv_heads, half, cos, sin, BLOCK_HKV, BLOCK_HALF)


def apply_rope_triton(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> None:
    """Same contract as :func:`apply_rope_ref`."""
    assert q.dim() == 3 and k.dim() == 3, f"q, k must be [T, H, D], got {tuple(q.shape)}, {tuple(k.shape)}"
    num_tokens, num_q_heads, head_dim = q.shape
    assert k.shape[0] == num_tokens and k.shape[2] == head_dim, f"k {tuple(k.shape)} does not match q"
    assert head_dim % 2 == 0, f"head dim must be even, got {head_dim}"
    half = head_dim // 2
    assert positions.shape == (num_tokens,) and positions.dtype == torch.int64, "positions: int64 [T]"
    assert cos.shape == sin.shape and cos.dim() == 2 and cos.shape[1] == half, (
        f"cos/sin must be [max_pos, {half}], got {tuple(cos.shape)}, {tuple(sin.shape)}"
    )
    assert q.stride(-1) == 1 and k.stride(-1) == 1, "q and k need a contiguous head dim"
    assert cos.stride(-1) == 1 and sin.stride(-1) == 1, "cos and sin need contiguous rows"
    assert q.dtype == k.dtype, "q and k must share a dtype"
    if num_tokens == 0:
        return
    _rope_kernel[(num_tokens,)](
        q,
        k,
        positions,
        cos,
        sin,
        q.stride(0),
        q.stride(1),
        k.stride(0),
        k.stride(1),
        cos.stride(0),
        sin.stride(0),
        num_q_heads,
        k.shape[1],
        half,
        BLOCK_HQ=triton.next_power_of_2(num_q_heads),
        BLOCK_HKV=triton.next_power_of_2(k.shape[1]),
        BLOCK_HALF=triton.next_power_of_2(half),
        num_warps=4,
    )
