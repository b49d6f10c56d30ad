"""Targets for fault-injection tests as real subprocesses on loopback: the hostile server, the bundled
server on a chosen port (so it can be restarted where the load generator expects it), and
`satscope run`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, wait_http_ok

__all__ = ["ROOT", "Hostile", "hostile_target", "satscope_run", "start_serve", "stop"]

ROOT = Path(__file__).resolve().parents[2]


def stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; this process's own child only."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Hostile:
    url: str
    proc: subprocess.Popen

    def records(self) -> dict[str, dict[str, Any]]:
        return httpx.get(f"{self.url}/_records", timeout=10).json()


@contextlib.contextmanager
def hostile_target(modes: str = "normal", huge_mib: int = 64) -> Iterator[Hostile]:
    port = free_port()
    cmd = [sys.executable, "-m", "tests.reliability.hostile_server", "--port", str(port), "--modes", modes]
    proc = subprocess.Popen([*cmd, "--huge-mib", str(huge_mib)], cwd=ROOT)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", 20, proc)
        yield Hostile(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc, 5)


def start_serve(port: int, *flags: str) -> tuple[subprocess.Popen, str]:
    """`satscope serve` on 127.0.0.1:port, answering /health; returns the process and its log path."""
    log = tempfile.NamedTemporaryFile(prefix="satscope-serve-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [sys.executable, "-m", "satscope", "serve", "--host", "127.0.0.1", "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    log.close()
    wait_http_ok(f"http://127.0.0.1:{port}/health", 120, proc)
    return proc, log.name


def satscope_run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`satscope run ARGS` in the background (stdout/stderr piped as text)."""
    cmd = [sys.executable, "-m", "satscope", "run", "--quiet", *args]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
