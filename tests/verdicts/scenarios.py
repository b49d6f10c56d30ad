"""Verdict-accuracy scenarios: real `satscope run` subprocesses against the bundled server.

The server sleeps 30 ms in every engine step (``--step-delay-ms``), so its capacity is set by its
configuration (KV blocks, --max-num-seqs), not by how busy the shared CPU is. Each scenario's true
capacity is read from the server's own record (its /metrics samples in samples.parquet), never from
the client's figures the verdict is built on. Disturbances are real processes: a CPU burner
(spinning interpreters, bounded in time) and a throttler that stops and continues the load
generator with SIGSTOP / SIGCONT.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COMMON", "Result", "cpu_burner", "loadgen_pids", "run_scenario", "server_metric", "throttle_loadgen"]

COMMON = ("--serve-arg=--preset=tiny", "--serve-arg=--step-delay-ms=30", "--input-len", "16", "--quiet", "--no-gpu")
BURN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"


@dataclass
class Result:
    """What a scenario produced: the summary, the run directory and its samples."""

    summary: dict[str, Any]
    run_dir: Path

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"])

    @property
    def kind(self) -> str:
        return str(self.summary["bottleneck"]["kind"])

    def warnings(self) -> dict[str, str]:
        return {w["code"]: w["message"] for w in self.summary["validity"]["warnings"]}

    def row(self, name: str) -> str:
        """One line of the scenario table: scenario → verdict kind → figures."""
        sat = self.summary["saturation"]
        safe = sat.get("safe") or {}
        return (
            f"| {name} | {self.kind} | saturation {sat['offered_load_named']} (found={sat['found']}), "
            f"knee {sat['knee_offered_load']}, safe {safe.get('offered_load_named')}, "
            f"sustainable {sat['sustainable_per_s']} | {self.verdict[:400]} |"
        )


def run_scenario(
    tmp_path: Path, *flags: str, name: str = "run", timeout_s: float = 150.0, during: Any = None
) -> Result:
    """``satscope run`` with ``flags``; ``during(proc)`` runs in a thread while the run goes on."""
    out = tmp_path / name
    # no HTML: the verdict is analysed here from the files, as `satscope report` would re-judge them
    cmd = [sys.executable, "-m", "satscope", "run", *flags, "--no-report", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    helper = threading.Thread(target=during, args=(proc,), daemon=True) if during else None
    if helper:
        helper.start()
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if helper:
        helper.join(timeout=30)
    from satscope.reports import analyze

    assert (out / "requests.parquet").exists(), f"no requests.parquet (exit {proc.returncode}):\n{output[-3000:]}"
    return Result(analyze(out), out)


def server_metric(result: Result, metric: str, stage: str | None = None) -> Any:
    """The server's own samples of ``metric`` (during ``stage`` if given), elapsed run seconds."""
    import pandas as pd

    samples = pd.read_parquet(result.run_dir / "samples.parquet")
    manifest = json.loads((result.run_dir / "run.json").read_text())
    origin = float(manifest["clock"]["monotonic_origin_s"])
    s = samples[(samples["source"] == "server") & (samples["metric"] == metric)]
    t = s["t"] - origin
    if stage is not None:
        st = next(x for x in manifest["stages"] if x["name"] == stage)
        keep = (t >= float(st["start_s"]) - origin) & (t < float(st["end_s"]) - origin)
        s = s[keep]
    return s["value"].to_numpy(dtype=float)


@contextlib.contextmanager
def cpu_burner(seconds: float, processes: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """Spinning interpreters on every core (bounded by ``seconds``; stopped on exit)."""
    n = processes or os.cpu_count() or 2
    procs = [subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def loadgen_pids(root_pid: int) -> list[int]:
    import psutil

    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return []
    return [c.pid for c in children if "satscope.loadgen.runner" in " ".join(_cmdline(c))]


def _cmdline(proc: Any) -> list[str]:
    import psutil

    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def throttle_loadgen(stop_s: float, run_s: float, limit_s: float) -> Any:
    """A ``during`` callback: SIGSTOP the load generator for ``stop_s`` every ``stop_s + run_s``."""

    def during(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + limit_s
        pids: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            pids = pids or loadgen_pids(proc.pid)
            if not pids:
                time.sleep(0.2)
                continue
            for sig, pause in ((signal.SIGSTOP, stop_s), (signal.SIGCONT, run_s)):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                time.sleep(pause)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    return during
