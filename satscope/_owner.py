"""Abandoned runs: a ``run.json`` that says ``running`` while no process of this machine owns it.

`satscope run` records its pid, host and process start time (``owner``) in the manifest. When it
is SIGKILLed or its terminal closes, its children end with it (a parent-death signal) but the
manifest is left at ``running``; the next `satscope report` or `satscope gate` marks it
``abandoned`` so that nobody mistakes it for a run still going on, and the report says so; its
stages are cut at the last recorded request, so rates are not diluted by time never run.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from satscope.run_format import MANIFEST_FILE, REQUESTS_FILE, read_parquet, write_json_atomic
from satscope.run_manifest import Manifest

__all__ = ["ABANDONED_NOTE", "mark_if_abandoned", "owner_alive"]

ABANDONED_NOTE = "abandoned: the process running it ended without finishing (killed, or its terminal closed)"


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """True/False for an owner on this machine; None when it cannot be told (another host, no pid)."""
    import psutil

    pid, host = owner.get("pid"), owner.get("hostname")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    recorded = owner.get("process_start_unix_s")
    # a recycled pid belongs to a process started later than the recorded one
    return not isinstance(recorded, int | float) or abs(started - recorded) < 1.0


def _last_record_end(run_dir: Path) -> float | None:
    """When the last recorded request ended (monotonic seconds), or None without records."""
    import pyarrow.compute as pc

    try:
        ends = read_parquet(run_dir / REQUESTS_FILE, ["end"]).column("end")
    except (OSError, ValueError, KeyError):
        return None
    last = pc.max(ends).as_py() if len(ends) else None
    return float(last) if last is not None else None


def mark_if_abandoned(run_dir: str | Path) -> bool:
    """Rewrite a ``running`` manifest whose owner is gone as ``abandoned``; True if it did."""
    path = Path(run_dir) / MANIFEST_FILE
    try:
        manifest = Manifest.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):  # ManifestError is a ValueError
        return False  # the report's loader gives the one-line error for an unreadable manifest
    if manifest.status != "running":
        return False
    if owner_alive(asdict(manifest.owner)) is not False:
        return False
    manifest.status = "abandoned"
    end_s = _last_record_end(Path(run_dir))
    if end_s is not None:  # the timeline as it ran, as `satscope run` would have cut it
        manifest.end_s = end_s
        manifest.stages = [
            replace(s, end_s=end_s if s.end_s is None else min(s.end_s, end_s))
            for s in manifest.stages
            if s.start_s < end_s
        ]
    manifest.validity.interrupted = True
    if ABANDONED_NOTE not in manifest.validity.notes:
        manifest.validity.notes.append(ABANDONED_NOTE)
    write_json_atomic(path, manifest.to_json())
    return True
