"""The host's memory bandwidth, measured once: the peak for MBU when the server runs on the CPU.

A GPU's peak comes from a table (satscope/reports/_mbu.py); a CPU's depends on the machine, so the probes
measure it at start: the best of a few copies of a 64 MiB array with numpy (one thread, bytes
read + bytes written). That is what one core can stream, which is the right peak for a server whose
torch runs on one thread (the bundled server's default for small models) and a lower bound otherwise.
"""

from __future__ import annotations

import time

__all__ = ["MEMBW_METHOD", "measure_memory_bandwidth"]

_SIZE_BYTES = 64 * 1024 * 1024
_REPEATS = 5
MEMBW_METHOD = f"numpy copy of {_SIZE_BYTES // 2**20} MiB, 1 thread, best of {_REPEATS} (read + write bytes)"


def measure_memory_bandwidth(size_bytes: int = _SIZE_BYTES, repeats: int = _REPEATS) -> float:
    """Bytes per second moved by the fastest of ``repeats`` array copies of ``size_bytes``."""
    import numpy as np

    src = np.ones(size_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # first touch: page faults are not bandwidth
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * src.nbytes / best
