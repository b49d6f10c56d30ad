"""Compile every Triton kernel ahead of time for NVIDIA GPUs (sm_80, sm_90), no GPU needed.

The interpreter accepts some code that the compiler rejects (and the reverse), so CPU tests alone
do not prove that the kernels build. Triton can lower a kernel to PTX and a cubin for a named target
without a device; this does that at the shapes the server runs (Llama-3.1-8B layers), in fp32 and
bf16. Run as ``python -m tests.ops.compile_kernels`` in a process without ``TRITON_INTERPRET``;
prints one JSON line per kernel (name, target, shared memory, and, where the cuobjdump that ships
with Triton is present, registers and spill stack bytes) and exits non-zero if any fails to build.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

INT32_POINTERS = {"block_tables_ptr", "context_lens_ptr", "cu_seqlens_ptr"}
INT64_POINTERS = {"pos_ptr", "slot_ptr"}
FP32_POINTERS = {"part_out_ptr", "part_m_ptr", "part_l_ptr", "cos_ptr", "sin_ptr"}
FLOAT_SCALARS = {"eps", "scale_log2e"}
# At launch Triton specializes pointers and integers that are multiples of 16 (alignment lets it
# vectorize loads); the server's shapes make these so. Group sizes and block-table widths are not.
NOT_MULTIPLE_OF_16 = {"group", "num_kv_heads", "stride_bt"}


def _signature(fn: object, dtype: str, constexprs: dict[str, object]) -> dict[str, str]:
    names = inspect.signature(fn.fn).parameters  # type: ignore[attr-defined]
    signature = {}
    for name in names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in INT32_POINTERS:
            signature[name] = "*i32"
        elif name in INT64_POINTERS:
            signature[name] = "*i64"
        elif name in FP32_POINTERS:
            signature[name] = "*fp32"
        elif name.endswith("_ptr"):
            signature[name] = f"*{dtype}"
        else:
            signature[name] = "fp32" if name in FLOAT_SCALARS else "i32"
    return signature


def _divisibility(fn: object, dtype: str, constexprs: dict[str, object]) -> dict[tuple[int, ...], list]:
    signature = _signature(fn, dtype, constexprs)
    return {
        (i,): [["tt.divisibility", 16]]
        for i, (name, kind) in enumerate(signature.items())
        if kind.startswith("*") or (kind == "i32" and name not in NOT_MULTIPLE_OF_16)
    }


def cases() -> list[tuple[str, object, str, dict[str, object], int]]:
    from satscope.server_under_test.ops.decode_attention import _combine_splits_kernel, _paged_decode_kernel
    from satscope.server_under_test.ops.kv_store import _store_kvcache_kernel
    from satscope.server_under_test.ops.prefill_attention import _prefill_attention_kernel
    from satscope.server_under_test.ops.rms_norm import _rms_norm_kernel
    from satscope.server_under_test.ops.rope import _rope_kernel
    from satscope.server_under_test.ops.silu_mul import _silu_and_mul_kernel

    attention = {"BLOCK_D": 128, "BLOCK_SIZE": 16, "BLOCK_N": 64}
    out = []
    for dtype in ("fp32", "bf16"):
        out += [
            ("rms_norm", _rms_norm_kernel, dtype, {"HAS_RESIDUAL": False, "BLOCK_H": 4096}, 16),
            ("rms_norm+residual", _rms_norm_kernel, dtype, {"HAS_RESIDUAL": True, "BLOCK_H": 4096}, 16),
            ("silu_and_mul", _silu_and_mul_kernel, dtype, {"BLOCK": 1024}, 4),
            ("apply_rope", _rope_kernel, dtype, {"BLOCK_HQ": 32, "BLOCK_HKV": 8, "BLOCK_HALF": 64}, 4),
            ("store_kvcache", _store_kvcache_kernel, dtype, {"BLOCK": 1024}, 4),
            ("paged_decode", _paged_decode_kernel, dtype, {"NUM_SPLITS": 1, "BLOCK_G": 16, **attention}, 4),
            ("paged_decode split", _paged_decode_kernel, dtype, {"NUM_SPLITS": 4, "BLOCK_G": 16, **attention}, 4),
            ("combine_splits", _combine_splits_kernel, dtype, {"NUM_SPLITS": 4, "BLOCK_S": 4, "BLOCK_D": 128}, 4),
            ("prefill", _prefill_attention_kernel, dtype, {"BLOCK_M": 64, **attention}, 4),
        ]
    return out


def _resource_usage(cubin: bytes) -> dict[str, int]:
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not tool.exists():
        return {}
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", text)
    return {"registers": int(found[1]), "stack_bytes": int(found[2])} if found else {}


def main() -> int:
    assert not os.environ.get("TRITON_INTERPRET"), "compile in a process without TRITON_INTERPRET"
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    failures = 0
    targets = [int(a) for a in sys.argv[1:]] or [90]
    for capability in targets:
        for name, kernel, dtype, constexprs, num_warps in cases():
            signature = _signature(kernel, dtype, constexprs)
            attrs = _divisibility(kernel, dtype, constexprs)
            source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
            try:
                compiled = triton.compile(
                    source, target=GPUTarget("cuda", capability, 32), options={"num_warps": num_warps}
                )
                record = {"kernel": name, "dtype": dtype, "sm": capability, "shared_bytes": compiled.metadata.shared}
                record |= _resource_usage(compiled.asm["cubin"])
            except Exception as error:  # report every kernel, then fail
                failures += 1
                record = {"kernel": name, "dtype": dtype, "sm": capability, "error": repr(error)[:2000]}
            print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
