"""Shared test helpers: free loopback ports, the bundled server as a real subprocess, the CLI.

Every server a test starts binds 127.0.0.1 and is stopped by the test (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["ROOT", "JsonHandler", "ServerProcess", "bundled_server", "free_port", "satscope_cli", "wait_http_ok"]

ROOT = Path(__file__).resolve().parents[1]


def satscope_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m satscope ARGS`` from the repository root, output captured as text (``env`` adds
    to the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "satscope", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler base for the small test servers, with one way to answer JSON."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s (last error: {last})")


@dataclass
class ServerProcess:
    """A running `satscope serve` subprocess."""

    url: str
    port: int
    proc: subprocess.Popen
    log_path: str

    def log(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()


@contextlib.contextmanager
def bundled_server(*flags: str, timeout_s: float = 120.0, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Start `satscope serve --port P FLAGS...` on loopback, wait for /health, stop it afterwards."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="satscope-serve-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [sys.executable, "-m", "satscope", "serve", "--host", "127.0.0.1", "--port", str(port), *flags]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    server = ServerProcess(url=f"http://127.0.0.1:{port}", port=port, proc=proc, log_path=log.name)
    try:
        try:
            wait_http_ok(f"{server.url}/health", timeout_s, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- server log ---\n{server.log()[-4000:]}") from exc
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
