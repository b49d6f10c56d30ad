"""Fixtures: the tiny server on a loopback port, in this process (uvicorn on a thread)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from satscope.server_under_test.config import ServerConfig
from satscope.server_under_test.server import ServerThread
from tests.helpers import free_port


@contextmanager
def _running(**overrides: object) -> Iterator[ServerThread]:
    config = ServerConfig(port=free_port(), log_level="warning", **overrides)  # type: ignore[arg-type]
    with ServerThread(config) as server:
        yield server


@pytest.fixture
def make_server() -> Callable[..., AbstractContextManager[ServerThread]]:
    """`with make_server(kv_blocks=8, ...) as server:` a fresh tiny server with those settings."""
    return _running


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """One default tiny server shared by a module's tests."""
    with _running() as s:
        yield s
