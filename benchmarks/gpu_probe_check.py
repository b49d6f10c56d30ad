"""GPU check of the NVML probe on real hardware: a bandwidth-bound torch copy loop while it samples.

Run by benchmarks/gpu_check.sh when a GPU is lent (and by tests/probes/test_gpu_real.py, marked
``gpu``). It samples the real GPU through ``satscope.probes._nvml.GpuProbe`` on a thread, first idle, then
while the main thread copies a large buffer on the device again and again (pure DRAM traffic:
every byte read once and written once), and prints what the probe read next to the copy's own
achieved bandwidth. It asserts, on a GPM-capable GPU (Hopper+), that DRAM bandwidth utilization
reads high during the copy and low when idle, and that SM occupancy is present; on an older GPU it
checks the basic tier and says that GPM could not be checked.

    python benchmarks/gpu_probe_check.py [--seconds 4] [--gib 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from satscope.probes._nvml import GpuProbe
from satscope.probes._source import SourceUnavailable

INTERVAL_S = 0.5
REPO = Path(__file__).resolve().parents[1]


def _nvml_module() -> ModuleType | None:
    """``pynvml`` from this Python, or else the pure-Python file from the repo's .venv.

    gpu_check.sh may run this with a separate CUDA-torch Python that lacks nvidia-ml-py, on a
    machine that cannot reach a package index; nvidia-ml-py is one pure-Python file.
    """
    try:
        import pynvml
    except ImportError:
        for path in sorted(REPO.glob(".venv/lib/python3*/site-packages/pynvml.py")):
            spec = importlib.util.spec_from_file_location("pynvml", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules["pynvml"] = module
                spec.loader.exec_module(module)
                return module
        return None
    return pynvml


def _sample_during(probe: GpuProbe, stop: threading.Event, into: list) -> None:
    while not stop.wait(INTERVAL_S):
        into.extend(r for r in probe.sample() if r.labels.get("gpu") == "0" and "mig" not in r.labels)


def _values(rows: list, metric: str) -> list[float]:
    return [r.value for r in rows if r.metric == metric]


def _phase(probe: GpuProbe, seconds: float, work: Callable[[float], float] | None = None) -> tuple[list, float]:
    """Sample for ``seconds`` while ``work(deadline)`` runs (or idle); return rows and the work's GB/s."""
    rows: list = []
    probe.sample()  # start a fresh GPM window at the phase boundary
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_during, args=(probe, stop, rows))
    sampler.start()
    rate = 0.0
    if work is None:
        time.sleep(seconds)
    else:
        rate = work(time.monotonic() + seconds)
    stop.set()
    sampler.join()
    return rows, rate


def _show(values: list[float]) -> str:
    return "absent" if not values else f"median {statistics.median(values):8.3f} (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    parser.add_argument("--gib", type=float, default=2.0, help="size of the copied buffer")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA GPU")
        return 2
    probe = GpuProbe(_nvml_module())
    try:
        probe.open()
    except SourceUnavailable as exc:
        print(f"FAIL: GPU probe unavailable on a GPU machine: {exc}")
        return 1
    gpu = probe.gpus[0]
    print(f"GPU 0: {gpu['name']}  GPM: {gpu['gpm']}  MIG: {gpu['mig']}  torch: {torch.cuda.get_device_name(0)}")
    n = int(args.gib * 2**30) // 4
    src = torch.empty(n, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)

    def copy_loop(deadline: float) -> float:
        copies, start = 0, time.perf_counter()
        while time.monotonic() < deadline:
            for _ in range(10):
                dst.copy_(src)
            torch.cuda.synchronize()
            copies += 10
        return 2 * src.numel() * 4 * copies / (time.perf_counter() - start) / 1e9  # read + write

    idle, _ = _phase(probe, args.seconds)
    busy, gbps = _phase(probe, args.seconds, copy_loop)
    probe.close()
    failures: list[str] = []
    print(f"copy loop achieved {gbps:.0f} GB/s (read + write)")
    for metric in ("gpu_dram_bw_util", "gpu_sm_occupancy", "gpu_sm_active", "gpu_time_busy", "gpu_mem_time_busy",
                   "gpu_power_w", "gpu_sm_clock_mhz"):
        i, b = _values(idle, metric), _values(busy, metric)
        print(f"  {metric:20s} idle: {_show(i):26s} copy: {_show(b)}")
    if gpu["gpm"]:
        dram_busy, dram_idle = _values(busy, "gpu_dram_bw_util"), _values(idle, "gpu_dram_bw_util")
        if not dram_busy:
            failures.append("gpu_dram_bw_util absent during the copy on a GPM GPU")
        elif statistics.median(dram_busy) < 0.5:
            failures.append(f"gpu_dram_bw_util median {statistics.median(dram_busy):.2f} < 0.5 during the copy")
        if dram_idle and dram_busy and statistics.median(dram_idle) >= statistics.median(dram_busy):
            failures.append("gpu_dram_bw_util idle is not below copy")
        if not _values(busy, "gpu_sm_occupancy"):
            failures.append("gpu_sm_occupancy absent during the copy on a GPM GPU")
    else:
        print("GPM not supported on this GPU: DRAM bandwidth and SM occupancy could not be checked (basic tier only)")
    busy_time = _values(busy, "gpu_time_busy")
    if busy_time and statistics.median(busy_time) < 0.8:
        failures.append(f"gpu_time_busy median {statistics.median(busy_time):.2f} < 0.8 during the copy")
    if not _values(busy, "gpu_mem_used_bytes"):
        failures.append("gpu_mem_used_bytes absent")
    if probe.errors:
        print("NVML refused:", "; ".join(f"{k}: {v}" for k, v in sorted(probe.errors.items())))
    for failure in failures:
        print("FAIL:", failure)
    print("GPU probe check:", "FAILED" if failures else "PASSED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
