"""The subprocesses of a run: the bundled server, the probes and the Locust process(es).

Each is started with its own session (a Ctrl-C in the terminal reaches `satscope run` only, which
stops them in order) and stopped with SIGTERM, then SIGKILL after a grace period. Each also gets a
parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): when `satscope run` is SIGKILLed or its
terminal closes, the probes and the server get SIGTERM (they flush and exit) and the Locust
processes SIGKILL (a graceful Locust stop waits for requests in flight, up to ``stop_timeout_s``;
its files are at most one flush old). The Locust process's stdout carries ``SATSCOPE {json}``
lines, read here on a thread.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from satscope._plan import RunPlan
from satscope._tls import tls_context
from satscope.errors import SatscopeError
from satscope.loadgen.request_extras import HEADERS_ENV

__all__ = [
    "LocustProcesses",
    "die_with_parent",
    "served_model",
    "start_probes",
    "start_serve",
    "stop_process",
    "wait_for_health",
]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child get ``sig`` when this process dies (Linux); else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: after fork only async-safe calls run
    parent = os.getpid()

    def set_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return set_signal


def wait_for_health(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url/health`` (or ``url``) until the server answers; SatscopeError if it never does."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        if proc is not None and proc.poll() is not None:
            raise SatscopeError(
                f"`satscope serve` exited with code {proc.returncode} before answering",
                "see serve.log in the run directory",
            )
        for path in ("/health", "/v1/models"):
            try:
                r = httpx.get(url.rstrip("/") + path, timeout=2.0, verify=tls_context())
                if r.status_code < 500:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise SatscopeError(f"target {url} is unreachable ({last})", "start the server or fix --target")
        time.sleep(0.2)


def served_model(url: str, api_key: str | None, extra_headers: dict[str, str] | None = None) -> str:
    """The first model the target lists at /v1/models; ``default`` if it lists none."""
    import httpx

    headers = {**(extra_headers or {}), **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    try:
        response = httpx.get(url.rstrip("/") + "/v1/models", headers=headers, timeout=5.0, verify=tls_context())
        data = response.json().get("data") or []
        return str(data[0]["id"]) if data else "default"
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return "default"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocustProcesses:
    """The Locust process(es) and what their stdout lines said."""

    def __init__(self, plan: RunPlan, run_dir: Path, config_path: Path) -> None:
        cfg = plan.config
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if plan.api_key:
            env["SATSCOPE_API_KEY"] = plan.api_key
        else:
            env.pop("SATSCOPE_API_KEY", None)
        # --header values, like the key: through the environment, never a file
        env.pop(HEADERS_ENV, None)
        if plan.headers:
            env[HEADERS_ENV] = json.dumps(plan.headers)
        py = [sys.executable, "-m", "satscope.loadgen.runner"]
        self.log = open(run_dir / "locust.log", "ab")  # noqa: SIM115
        self.progress: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.start: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.workers: list[subprocess.Popen] = []
        if cfg.workers:
            port = plan.master_port or _free_port()
            main_cmd = [
                *py,
                "--role",
                "master",
                "--config",
                str(config_path),
                "--expect-workers",
                str(cfg.workers),
                "--master-bind-host",
                plan.master_bind_host,
                "--master-port",
                str(port),
            ]
        else:
            main_cmd = [*py, "--role", "local", "--config", str(config_path)]
        self.main = subprocess.Popen(
            main_cmd, stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        if cfg.workers and plan.master_bind_host in ("127.0.0.1", "localhost"):
            for i in range(cfg.workers):
                self.workers.append(
                    subprocess.Popen(
                        [
                            *py,
                            "--role",
                            "worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(port),
                            "--worker-name",
                            f"w{i}",
                        ],
                        stdout=self.log,
                        stderr=self.log,
                        env=env,
                        start_new_session=True,
                        preexec_fn=die_with_parent(signal.SIGKILL),
                    )
                )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.main.stdout is not None
        for raw in self.main.stdout:
            if not raw.startswith(b"SATSCOPE "):
                self.log.write(raw)
                continue
            msg = json.loads(raw[9:])
            kind = msg.pop("kind")
            if kind == "progress":
                self.progress = msg
            elif kind == "final":
                self.final = msg
            elif kind == "start":
                self.start = msg
            else:
                self.errors.append(msg.get("message", str(msg)))

    def signal(self, sig: int) -> None:
        for p in [self.main, *self.workers]:
            if p.poll() is None:
                p.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.main.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_process(self.main, 5)
            code = None
        for w in self.workers:
            stop_process(w, 10)
        self._reader.join(timeout=5)
        self.log.close()
        return code


def stop_process(proc: subprocess.Popen, grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_serve(plan: RunPlan, run_dir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(run_dir / "serve.log", "ab")  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "satscope",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(plan.serve_flags or []),
    ]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, 300, proc)
    except BaseException:  # including Ctrl-C while the model loads: never leave the server behind
        stop_process(proc, 10)
        raise
    return proc, url


def start_probes(plan: RunPlan, run_dir: Path, server_pid: int | None, notes: list[str]) -> subprocess.Popen | None:
    if not plan.probes:
        return None
    if importlib.util.find_spec("satscope.probes.__main__") is None:
        notes.append("probes were not run: the probes package has no `python -m satscope.probes` entry point yet")
        return None
    cmd = [
        sys.executable,
        "-m",
        "satscope.probes",
        "--target",
        plan.config.target_url,
        "--out",
        str(run_dir),
        "--duration",
        str(plan.config.shape_obj().duration_s + 120),
    ]
    server_pid = server_pid if server_pid is not None else plan.server_pid
    if server_pid is not None:
        cmd += ["--server-pid", str(server_pid)]
    if plan.metrics_url is not None:
        cmd += ["--metrics-url", plan.metrics_url]
    if plan.probes_no_gpu:
        cmd.append("--no-gpu")
    env = {k: v for k, v in os.environ.items() if k not in ("SATSCOPE_API_KEY", HEADERS_ENV)}
    if plan.api_key:  # for the model facts at /v1/models of a server that wants a key
        env["SATSCOPE_API_KEY"] = plan.api_key
    log = open(run_dir / "probes.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )
    return proc  # one that dies early is noted when the run stops it (probes_failure_note)


def probes_failure_note(proc: subprocess.Popen) -> str | None:
    """Before the probes are stopped: a note when they already exited with an error."""
    code = proc.poll()
    if code is None or code == 0:
        return None
    return f"the probes exited early (exit code {code}; see probes.log): the run has no probe data after that"
