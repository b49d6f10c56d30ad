"""Synthetic run directories, built once per session per spec (they are read-only to the tests)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from satscope.reports._synthetic import SyntheticRun, write_synthetic_run


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``synth(kind="kv_cache", **fields)`` → path of a run directory built from that spec."""
    built: dict[str, Path] = {}

    def make(**fields: object) -> Path:
        key = repr(sorted(fields.items()))
        if key not in built:
            built[key] = write_synthetic_run(tmp_path_factory.mktemp("run"), SyntheticRun(**fields))  # type: ignore[arg-type]
        return built[key]

    return make


@pytest.fixture
def scratch_run(synth: Callable[..., Path], tmp_path: Path) -> Callable[..., Path]:
    """A private copy of a synthetic run, for tests that damage or change its files."""

    def make(**fields: object) -> Path:
        dest = tmp_path / "run"
        shutil.copytree(synth(**fields), dest)
        return dest

    return make
