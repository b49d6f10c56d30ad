"""Run the Triton kernels through the interpreter when there is no GPU, and share test fixtures.

``TRITON_INTERPRET`` is read when ``@triton.jit`` decorates a kernel, so it is set here, before
the test modules import the kernels. On a GPU it is left alone and the same tests run compiled,
in bf16 and fp16 as well as fp32.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator

import pytest
import torch

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"
    # Another test folder may have imported the ops (through the model) before this conftest ran;
    # re-decorate their kernels so they are interpreted too.
    for _name in [n for n in sys.modules if n.startswith("satscope.server_under_test.ops.")]:
        importlib.reload(sys.modules[_name])

DEVICE = "cuda" if ON_GPU else "cpu"
# The interpreter mishandles bf16, and CPU fp16 matmuls are slow and imprecise: low precision on GPU only.
DTYPES = [torch.float32, torch.bfloat16, torch.float16] if ON_GPU else [torch.float32]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread() -> Iterator[None]:
    # Tiny tensors gain nothing from threads, and the cores are shared; restored for other folders.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
