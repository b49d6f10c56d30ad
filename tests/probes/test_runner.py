"""The runner in-process: a server that answers late, and a source that breaks, do not end the run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from satscope.probes import ProbeConfig, ProbeRunner
from satscope.run_format import PROBES_FILE
from tests.probes.conftest import ExpositionServer, fixture_text


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_server_that_answers_late_turns_pending_into_ok(tmp_path: Path, exposition_server: ExpositionServer) -> None:
    exposition_server.status = 503
    exposition_server.body = fixture_text("sglang.1.txt")
    runner = ProbeRunner(
        ProbeConfig(target=exposition_server.url, out=tmp_path, gpu=False, interval_s=0.1, flush_interval_s=0.2),
        quiet=True,
    )
    runner.start()
    try:
        written = json.loads((tmp_path / PROBES_FILE).read_text())
        assert written["sources"]["server"] == "pending" and written["engine"] is None
        time.sleep(0.4)
        exposition_server.status = 200
        _wait_until(lambda: json.loads((tmp_path / PROBES_FILE).read_text())["sources"]["server"] == "ok")
        assert json.loads((tmp_path / PROBES_FILE).read_text())["engine"] == "sglang"
    finally:
        runner.stop()
    final = json.loads((tmp_path / PROBES_FILE).read_text())
    assert final["unavailable"] == {} and final["end_s"] > final["start_s"]


class _Broken:
    name = "server"

    def open(self) -> None:
        raise RuntimeError("boom")


def test_a_source_that_breaks_on_open_is_reported_and_the_rest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("satscope.probes._runner.ServerProbe", lambda *args: _Broken())
    runner = ProbeRunner(
        ProbeConfig(target="http://127.0.0.1:9", out=tmp_path, gpu=False, duration_s=0.5, interval_s=0.1), quiet=True
    )
    runner.run()
    probes = json.loads((tmp_path / PROBES_FILE).read_text())
    assert probes["sources"] == {"server": "unavailable", "host": "ok"}
    assert "RuntimeError: boom" in probes["unavailable"]["server"]
    assert probes["rows"] > 0


def test_the_server_queue_goes_live_to_a_search_and_the_file_goes_at_the_end(
    tmp_path: Path, exposition_server: ExpositionServer
) -> None:
    """Each scrape appends the server's queue figures to .server-live.jsonl as it is taken; the load
    generator's reader (satscope/loadgen/server_live.py) sees them during the run, not only at the end."""
    from satscope.loadgen.server_live import ServerLive
    from satscope.run_format import SERVER_LIVE_FILE

    exposition_server.body = fixture_text("vllm.1.txt")
    runner = ProbeRunner(ProbeConfig(target=exposition_server.url, out=tmp_path, gpu=False, interval_s=0.1,
                                     flush_interval_s=5.0), quiet=True)  # fmt: skip
    live = ServerLive(tmp_path)
    t0 = time.monotonic()
    runner.start()
    try:
        _wait_until(lambda: live.window(t0, time.monotonic() + 1) is not None and len(live.rows) >= 3)
        window = live.window(t0, time.monotonic() + 1)
        assert window is not None and window.samples >= 3
        # the fixture's gauges: 4 running, 2 waiting, KV 0.25 (vllm:kv_cache_usage_perc)
        assert (window.running_max, window.waiting_p50) == (4.0, 2.0) and window.kv_max == pytest.approx(0.25)
        assert not (tmp_path / "samples.parquet").exists()  # live before the first flush of the samples
    finally:
        runner.stop()
    assert not (tmp_path / SERVER_LIVE_FILE).exists()
