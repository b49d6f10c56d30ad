"""Run the app under uvicorn: in the foreground (`satscope serve`) or on a thread (tests, embedding).

uvicorn turns SIGTERM/SIGINT into a graceful shutdown: it stops accepting connections, lets the
requests in flight finish (up to `DRAIN_TIMEOUT_S`), then the app's lifespan stops the engine.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING

from satscope.server_under_test.config import ConfigError, ServerConfig

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

__all__ = ["DRAIN_TIMEOUT_S", "ServerThread", "check_port_free", "serve"]

DRAIN_TIMEOUT_S = 30


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise ConfigError(f"{host}:{port} {reason}: choose another --port or --host") from None


def _uvicorn_config(config: ServerConfig, app: FastAPI) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        access_log=config.log_level == "debug",
        timeout_graceful_shutdown=DRAIN_TIMEOUT_S,
        limit_concurrency=None,
        timeout_keep_alive=30,
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(config: ServerConfig) -> None:
    """Build the engine and serve until SIGTERM (drain, exit 0) or SIGINT."""
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_port_free(config.host, config.port)  # before the slow part, so a clash fails fast

    import uvicorn

    from satscope.server_under_test.api import build_app
    from satscope.server_under_test.engine import LLMEngine

    engine = LLMEngine(config)
    # uvicorn drains on SIGTERM, then re-raises the signal to whatever handler was there before:
    # this one, so a drained server exits 0 rather than dying of the signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.Server(_uvicorn_config(config, build_app(engine))).run()


class ServerThread:
    """The server on a background thread of this process, for tests: `with ServerThread(cfg) as s:`."""

    def __init__(self, config: ServerConfig) -> None:
        import uvicorn

        from satscope.server_under_test.api import build_app
        from satscope.server_under_test.engine import LLMEngine

        self.config = config
        self.engine = LLMEngine(config)
        self._server = uvicorn.Server(_uvicorn_config(config, build_app(self.engine)))
        self._thread = threading.Thread(target=self._server.run, name="satscope-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(DRAIN_TIMEOUT_S + 5)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
