"""`satscope probe`: the probes alone with a live table, as a real subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from satscope._probe import parse_duration
from satscope.errors import SatscopeError
from tests.helpers import satscope_cli
from tests.probes.conftest import ExpositionServer, fixture_text


def _satscope(*args: str) -> subprocess.CompletedProcess[str]:
    return satscope_cli("probe", *args, timeout=60, env={"COLUMNS": "160"})


def test_probe_shows_the_server_metrics_and_writes_the_files(tmp_path: Path,
                                                             exposition_server: ExpositionServer) -> None:
    exposition_server.body = fixture_text("satscope.2.txt")
    result = _satscope("--target", exposition_server.url, "--duration", "1.5s", "--no-gpu", "--out", str(tmp_path),
                       "--interval-s", "0.25")
    assert result.returncode == 0, result.stderr
    assert "kv_cache_usage" in result.stdout and "87.5 %" in result.stdout
    assert "requests_running" in result.stdout
    assert json.loads((tmp_path / "probes.json").read_text())["engine"] == "satscope"
    assert (tmp_path / "samples.parquet").stat().st_size > 0


@pytest.mark.parametrize("args", [("--duration", "soon"), ("--target", "localhost:1", "--duration", "1s")])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    result = _satscope(*args, "--no-gpu")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_parse_duration() -> None:
    assert parse_duration("30s") == 30.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("1.5") == 1.5
    with pytest.raises(SatscopeError):
        parse_duration("0s")
