"""Which implementation the ops run: our Triton kernels or their plain-PyTorch reference twins.

The choice is made once per process, on first use: ``SATSCOPE_KERNELS=triton|torch`` overrides;
otherwise a CUDA GPU means ``triton`` and a CPU-only machine means ``torch``. ``TRITON_INTERPRET=1``
lets the Triton path run on CPU tensors (slowly; it is how the kernels are tested without a GPU).
"""

from __future__ import annotations

import functools
import os

from satscope.errors import SatscopeError

__all__ = ["BACKENDS", "backend", "select_backend"]

BACKENDS = ("torch", "triton")
ENV_VAR = "SATSCOPE_KERNELS"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def select_backend(override: str | None, cuda_available: bool, interpret: bool) -> str:
    """Pure decision, separated from the environment so that it can be tested directly."""
    if override is not None and override.strip():
        choice = override.strip().lower()
        if choice not in BACKENDS:
            raise SatscopeError(
                f"{ENV_VAR}={override!r} is not a kernel backend",
                f"set {ENV_VAR} to one of {', '.join(BACKENDS)} or unset it",
            )
        if choice == "triton" and not (cuda_available or interpret):
            raise SatscopeError(
                f"{ENV_VAR}=triton needs a CUDA GPU, and none is available",
                f"set TRITON_INTERPRET=1 to run the kernels on the CPU, or {ENV_VAR}=torch",
            )
        return choice
    return "triton" if cuda_available else "torch"


@functools.cache
def backend() -> str:
    """``"triton"`` or ``"torch"``, decided on the first call and fixed for the process."""
    import torch

    return select_backend(
        os.environ.get(ENV_VAR),
        cuda_available=torch.cuda.is_available(),
        interpret=_truthy(os.environ.get("TRITON_INTERPRET")),
    )
