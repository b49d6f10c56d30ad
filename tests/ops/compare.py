"""Tolerances per dtype and a comparison that says where two tensors disagree."""

from __future__ import annotations

import torch

# (atol, rtol). fp32 differences are reduction-order noise; low precision is rounding of the output.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}
# Attention sums many products before its softmax: allow a little more in fp32.
ATTENTION_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (2e-5, 2e-5),
    torch.bfloat16: (3e-2, 3e-2),
    torch.float16: (3e-3, 3e-3),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: tuple[float, float], what: str = "") -> None:
    """Fail with the index, both values and the error of the worst element when out of tolerance."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    atol, rtol = tolerance
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    non_finite = torch.nonzero(~torch.isfinite(a))
    assert non_finite.numel() == 0, f"{what}: non-finite values at {non_finite[:5].tolist()}"
    excess = (a - e).abs() - (atol + rtol * e.abs())
    if excess.numel() == 0 or excess.max() <= 0:
        return
    flat = int(excess.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
    bad = int((excess > 0).sum())
    raise AssertionError(
        f"{what}: {bad}/{a.numel()} elements out of tolerance (atol={atol}, rtol={rtol}); worst at index "
        f"{index}: got {a[index].item():.6g}, expected {e[index].item():.6g}, "
        f"abs error {abs(a[index] - e[index]).item():.3g}"
    )
