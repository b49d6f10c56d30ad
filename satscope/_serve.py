"""`satscope serve`: the bundled reference LLM server (OpenAI-compatible API, Prometheus /metrics).

Its flags are the fields of ``ServerConfig`` (``satscope/server_under_test/config.py``), built by
``satscope._options``: a setting is declared once, with its help, on the field. Only typer, the
standard library and that dataclass load at import time; torch, FastAPI and uvicorn load when the
command runs.
"""

from __future__ import annotations

from typing import Any

from satscope._extras import require_server
from satscope._options import command_from
from satscope.errors import SatscopeError


def _serve(**values: Any) -> None:
    require_server("satscope serve")
    from satscope.server_under_test.config import ConfigError, ServerConfig

    try:
        config = ServerConfig(**values)
        from satscope.server_under_test.server import serve as run_server

        run_server(config)
    except ConfigError as exc:
        raise SatscopeError(str(exc), "see `satscope serve --help`") from None


def _config_class() -> type:
    from satscope.server_under_test.config import ServerConfig  # dataclasses and pathlib only: no torch

    return ServerConfig


serve = command_from(
    _config_class(),
    _serve,
    """Serve the bundled reference LLM server: /v1/completions, /v1/chat/completions, /v1/models,
    /health and /metrics. SIGTERM drains requests in flight and exits.""",
)
