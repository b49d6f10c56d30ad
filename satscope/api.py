"""The Python face of satscope: drive a run and read its summary from a script or a notebook.

``satscope.run(...)`` runs ``satscope run`` with the same options (keyword names are the flags
without their dashes, ``_`` for ``-``) in a child process — Locust's gevent patching never enters
the caller's process — and returns the run directory with its summary. ``satscope.report(dir)``
re-analyses a run in this process. Bad input raises :class:`SatscopeError` with the CLI's one-line
message; a run that ended ``failed`` or ``interrupted`` still returns, with its exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satscope.errors import SatscopeError

__all__ = ["RunResult", "report", "run"]


@dataclass(slots=True, frozen=True)
class RunResult:
    """What a run left: its directory, its summary (``summary.json``, or None without one) and the exit code."""

    run_dir: Path
    summary: dict[str, Any] | None
    exit_code: int

    @property
    def verdict(self) -> str | None:
        return None if self.summary is None else self.summary.get("verdict")


_LOAD_LISTS = ("users", "rate")


def _flags(options: dict[str, Any]) -> list[str]:
    """``users=8`` → ``--users 8``; ``serve=True`` → ``--serve``; ``users=[1, 2, 4]`` → ``--users 1,2,4``;
    any other list repeats the flag (``slo=[...]``); None and False are left out."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif key in _LOAD_LISTS and isinstance(value, list | tuple):  # users=[1, 2, 4] → --users 1,2,4
            out += [flag, ",".join(f"{v:g}" for v in value)]
        elif isinstance(value, dict):  # extra_body={"temperature": 0.7} → --extra-body '{"temperature": 0.7}'
            out += [flag, json.dumps(value)]
        elif isinstance(value, list | tuple):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def run(target: str | None = None, *, out: str | Path | None = None, **options: Any) -> RunResult:
    """Run a load test, e.g. ``run("http://127.0.0.1:8000", users=8, duration=60, slo=["ttft=0.5"])``.

    Without ``target`` pass ``serve=True`` (the bundled server, ``satscope[server]``). Progress goes
    to this process's stderr unless ``quiet=True``.
    """
    run_dir = Path(out) if out is not None else Path("runs") / time.strftime("api-%Y%m%d-%H%M%S")
    args = [sys.executable, "-m", "satscope", "run", "--out", str(run_dir)]
    if target is not None:
        args += ["--target", target]
    args += _flags(options)
    last = ""
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # diagnostics and progress: passed on, the last one kept for an error
            if line.strip():
                last = line.strip()
            if not options.get("quiet"):
                sys.stderr.write(line)
    if proc.returncode == 2:
        raise SatscopeError(last.removeprefix("error: ") or "satscope run refused its input")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return RunResult(run_dir, summary, proc.returncode)


def report(run_dir: str | Path, slos: Any = None) -> dict[str, Any]:
    """The summary of a run directory (docs/summary-format.md), analysed here; nothing is written."""
    from satscope.reports import analyze

    return analyze(run_dir, slos)
