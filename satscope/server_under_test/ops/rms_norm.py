"""RMSNorm, optionally fused with the residual add that precedes it in a Llama block.

``rms_norm_ref`` is the truth and the CPU path; ``rms_norm_triton`` launches ``_rms_norm_kernel``,
one program per token row, fp32 statistics whatever the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["rms_norm_ref", "rms_norm_triton"]


def rms_norm_ref(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """x [T, H], weight [H]. With residual [T, H]: s = x + residual, returns (rms_norm(s), s)."""
    s = x if residual is None else x + residual
    s32 = s.float()
    normed = s32 * torch.rsqrt(s32.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = (normed * weight.float()).to(x.dtype)
    return out if residual is None else (out, s)


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    res_ptr,
    w_ptr,
    out_ptr,
    res_out_ptr,
    stride_x,
    stride_res,
    stride_out,
    stride_res_out,
    H,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_H)
    mask = cols < H
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        # The sum is rounded to the input dtype before the norm, exactly as the reference does,
        # because it is also the residual stream the next layer reads.
        x = x + tl.load(res_ptr + row * stride_res + cols, mask=mask, other=0.0)
        tl.store(res_out_ptr + row * stride_res_out + cols, x, mask=mask)
    x32 = x.to(tl.float32)
    inv_rms = 1.0 / tl.sqrt(tl.sum(x32 * x32, axis=0) / H + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (x32 * inv_rms * w).to(out_ptr.dtype.element_ty), mask=mask)


def rms_norm_triton(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`rms_norm_ref`."""
    assert x.dim() == 2, f"x must be [T, H], got {tuple(x.shape)}"
    num_tokens, hidden = x.shape
    assert weight.shape == (hidden,), f"weight must be [{hidden}], got {tuple(weight.shape)}"
    assert x.stride(-1) == 1 and weight.stride(-1) == 1, "x and weight need a contiguous last dim"
    assert x.device == weight.device, "x and weight must be on the same device"
    out = torch.empty_like(x)
    res_out = out
    if residual is not None:
        assert residual.shape == x.shape, f"residual {tuple(residual.shape)} != x {tuple(x.shape)}"
        assert residual.dtype == x.dtype and residual.stride(-1) == 1, "residual: x's dtype, contiguous rows"
        res_out = torch.empty_like(x)
    if num_tokens > 0:
        _rms_norm_kernel[(num_tokens,)](
            x,
            x if residual is None else residual,
            weight,
            out,
            res_out,
            x.stride(0),
            x.stride(0) if residual is None else residual.stride(0),
            out.stride(0),
            res_out.stride(0),
            hidden,
            eps,
            HAS_RESIDUAL=residual is not None,
            BLOCK_H=triton.next_power_of_2(hidden),
            num_warps=_num_warps(hidden),
        )
    return out if residual is None else (out, res_out)


def _num_warps(hidden: int) -> int:
    # One row per program: wider rows get more warps so each thread holds a few vectors, not hundreds.
    return max(1, min(16, triton.next_power_of_2(hidden) // 256))
