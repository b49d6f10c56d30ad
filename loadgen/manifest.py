"""``run.json``: the manifest `satscope run` writes when a run starts and rewrites when it ends.

Holds the command (API key redacted), the resolved configuration, target, versions, host, the
clock origin, the stages timeline, validity flags and the load generator's own figures, per
``docs/run-format.md``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

from satscope.run_format import FORMAT_VERSION, MANIFEST_FILE, write_json_atomic

__all__ = ["base_manifest", "owner_record", "redact_command", "write_manifest"]

_SECRET_FLAGS = ("--api-key",)


def redact_command(argv: list[str], secret: str | None) -> list[str]:
    """argv with the value of ``--api-key`` (and any other appearance of the key) replaced."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg in _SECRET_FLAGS:
            out.append(arg)
            hide_next = True
        elif any(arg.startswith(f + "=") for f in _SECRET_FLAGS):
            out.append(arg.split("=", 1)[0] + "=***")
        elif secret and secret in arg:
            out.append(arg.replace(secret, "***"))
        else:
            out.append(arg)
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def owner_record() -> dict[str, Any]:
    """The process writing the run: while ``status`` is ``running``, a reader checks it is alive."""
    try:
        import psutil

        started: float | None = psutil.Process().create_time()
    except (ImportError, OSError):
        started = None
    return {"pid": os.getpid(), "hostname": socket.gethostname(), "process_start_unix_s": started}


def base_manifest(run_id: str, command: list[str], config: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` manifest with the clock origin taken now."""
    mono, wall = time.monotonic(), time.time()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "status": "running",
        "command": command,
        "config": config,
        "target": target,
        "versions": {
            "satscope": _version("satscope"),
            "python": platform.python_version(),
            "locust": _version("locust"),
            "torch": _version("torch") if target.get("served_by") != "external" else None,
        },
        "host": {
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "memory_bytes": memory,
        },
        "clock": {"monotonic_origin_s": mono, "wall_origin_unix_s": wall},
        "owner": owner_record(),
        "start_s": mono,
        "end_s": None,
        "stages": [],
        "validity": {
            "interrupted": False,
            "loadgen_saturated": False,
            "loadgen_saturated_reason": None,
            "token_mismatches": 0,
            "target_errors": 0,
            "target_lost_s": None,
            "missing_probes": [],
            "notes": [],
        },
        "loadgen": {
            "requests_sent": 0,
            "records_written": 0,
            "calibration_requests": 0,
            "workers": config.get("workers", 0),
            "worker_clock_offsets_s": {},
            "cpu_max": None,
            "cpu_p90": None,
            "loop_lag_p99_s": None,
            "late_dispatches": 0,
            "dropped_dispatches": 0,
            "connection_retries": 0,
            "max_in_flight": None,
        },
        "probes": None,
        "files": [],
    }


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    d = Path(run_dir)
    manifest["files"] = sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    if MANIFEST_FILE not in manifest["files"]:
        manifest["files"] = sorted([*manifest["files"], MANIFEST_FILE])
    write_json_atomic(d / MANIFEST_FILE, manifest)
