"""``run.json``: the manifest `satscope run` writes when a run starts and rewrites when it ends.

Holds the command (API key redacted), the resolved configuration, target, versions, host, the
clock origin, the stages timeline, validity flags and the load generator's own figures, per
``docs/run-format.md``; the type is ``satscope.run_manifest.Manifest``.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import Any

from satscope.run_format import MANIFEST_FILE, write_json_atomic
from satscope.run_manifest import Manifest

__all__ = ["base_manifest", "redact_command", "write_manifest"]

_SECRET_FLAGS = ("--api-key",)
_HEADER_FLAG = "--header"


def redact_command(argv: list[str], secret: str | None) -> list[str]:
    """argv with the value of ``--api-key`` (and any other appearance of the key) replaced, and each
    ``--header NAME:VALUE`` shown as ``NAME: ***``."""
    out: list[str] = []
    hide_next = header_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif header_next:
            out.append(_redact_header(arg))
            header_next = False
        elif arg == _HEADER_FLAG:
            out.append(arg)
            header_next = True
        elif arg.startswith(_HEADER_FLAG + "="):
            out.append(f"{_HEADER_FLAG}={_redact_header(arg.split('=', 1)[1])}")
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


def _redact_header(header: str) -> str:
    """``NAME:VALUE`` as ``NAME: ***`` (a header without a colon is refused before it is written)."""
    name, colon, _ = header.partition(":")
    return f"{name.strip()}: ***" if colon else "***"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def base_manifest(run_id: str, command: list[str], config: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` manifest (``satscope.run_manifest.Manifest``) with the clock origin taken now.

    The orchestrator fills it in as the run goes; ``write_manifest`` checks it against the type."""
    versions = {
        "satscope": _version("satscope"),
        "python": platform.python_version(),
        "locust": _version("locust"),
        "torch": _version("torch") if target.get("served_by") != "external" else None,
    }
    return Manifest.new(run_id, command, config, target, versions).to_json()


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``run.json`` through the typed manifest: a field that drifted is a ManifestError here."""
    d = Path(run_dir)
    manifest["files"] = sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    if MANIFEST_FILE not in manifest["files"]:
        manifest["files"] = sorted([*manifest["files"], MANIFEST_FILE])
    write_json_atomic(d / MANIFEST_FILE, Manifest.from_json(manifest, strict=True).to_json())
