"""SiLU-and-multiply (the SwiGLU activation): x = [gate, up] on the last dim → silu(gate) * up.

``silu_and_mul_ref`` is the truth and the CPU path; ``silu_and_mul_triton`` launches
``_silu_and_mul_kernel`` over (token, column block) tiles, computing in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

__all__ = ["silu_and_mul_ref", "silu_and_mul_triton"]


def silu_and_mul_ref(x: torch.Tensor) -> torch.Tensor:
    """x [T, 2I] → [T, I]."""
    gate, up = x.float().chunk(2, dim=-1)
    return (F.silu(gate) * up).to(x.dtype)


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr, stride_x, stride_out, inter, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < inter
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x + inter + cols, mask=mask, other=0.0).to(tl.float32)
    out = gate * tl.sigmoid(gate) * up
    tl.store(out_ptr + row * stride_out + cols, out.to(out_ptr.dtype.element_ty), mask=mask)


def silu_and_mul_triton(x: torch.Tensor) -> torch.Tensor:
    """Same contract as :func:`silu_and_mul_ref`."""
    assert x.dim() == 2, f"x must be [T, 2I], got {tuple(x.shape)}"
    num_tokens, width = x.shape
    assert width % 2 == 0, f"x's last dim must be even (gate and up halves), got {width}"
    assert x.stride(-1) == 1, "x needs a contiguous last dim"
    inter = width // 2
    out = torch.empty((num_tokens, inter), dtype=x.dtype, device=x.device)
    block = min(1024, triton.next_power_of_2(inter))
    if num_tokens > 0:
        _silu_and_mul_kernel[(num_tokens, triton.cdiv(inter, block))](
            x, out, x.stride(0), out.stride(0), inter, BLOCK=block, num_warps=4
        )
    return out
