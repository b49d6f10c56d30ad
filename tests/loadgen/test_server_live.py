"""The search's view of the server's queue: the probes' live lines, read as they are appended."""

from __future__ import annotations

import json
from pathlib import Path

from satscope.loadgen.search import LevelFigures, Search, SearchSettings, judge, level_figures, server_at_limit
from satscope.loadgen.server_live import ServerLive
from satscope.run_format import SERVER_LIVE_FILE


def test_lines_are_read_as_they_come_and_a_half_written_one_waits(tmp_path: Path) -> None:
    live = ServerLive(tmp_path)
    assert live.window(0, 10) is None  # no file (--no-probes): no figures, no error
    path = tmp_path / SERVER_LIVE_FILE
    with path.open("a") as f:
        for t, waiting in ((1.0, 0), (1.5, 2), (2.0, 3)):
            f.write(json.dumps({"t": t, "requests_waiting": waiting, "requests_running": 4}) + "\n")
        f.write('{"t": 2.5, "requests_wai')  # the probe is still writing this one
    w = live.window(1.2, 3.0)
    assert w is not None and (w.samples, w.waiting_p50, w.running_max, w.kv_max) == (2, 2.5, 4, None)
    with path.open("a") as f:
        f.write('ting": 5, "kv_cache_usage": 0.97}\nnot json\n')
    w = live.window(1.2, 3.0)
    assert w is not None and (w.samples, w.waiting_p50, w.kv_max) == (3, 3, 0.97)


def _fig(load: float, rps: float, ttft: float, waiting: float | None) -> LevelFigures:
    return LevelFigures(load, 3.0, 50, 50, 0, rps, rps * 16, ttft, ttft + 0.5, server_samples=5,
                        server_waiting_p50=waiting)  # fmt: skip


def test_a_server_at_its_limit_saturates_the_level_whatever_the_client_saw() -> None:
    lower = [_fig(4, 8.0, 0.05, 0)]
    # 4 users to 5, one request waiting: by the client's figures alone the level passes (its throughput
    # rose 0.5x its load gain, not under it, and its latency barely moved); the server says it is at its limit
    level = _fig(5, 9.0, 0.052, 1)
    assert not judge(LevelFigures(5, 3.0, 50, 50, 0, 9.0, 144.0, 0.052, 0.552), lower)[0]
    saturated, why = judge(level, lower)
    assert saturated and why == ("the server kept requests waiting (1 in the median of its 5 scrapes): at its limit, "
                                 "efficiency 0.50 vs 4 (< 0.75)")  # fmt: skip
    # a server that keeps up holds a new request a step before it runs it: not saturated by that
    assert not judge(_fig(5, 10.0, 0.05, 1), lower)[0]
    assert server_at_limit(_fig(5, 9.5, 0.05, 0)) is None and server_at_limit(_fig(5, 9.5, 0.05, None)) is None
    kv = LevelFigures(5, 3.0, 50, 50, 0, 9.5, 152.0, 0.05, 0.55, server_preemptions_per_s_max=0.7)
    assert server_at_limit(kv) == "the server preempted requests (0.7/s): its KV cache was full"


def test_with_the_servers_queue_a_closed_search_finds_a_capacity_off_the_doubling_path() -> None:
    """5 slots: by the client's knee rule the search ends at [6, 7] (test_search.py); the server's
    waiting queue at 6 users says the limit is 5."""

    def at(load: float) -> LevelFigures:
        over = max(load - 5, 0)
        return _fig(load, 2.0 * min(load, 5), 0.05 + 0.5 * over / 5, over)

    s = Search(SearchSettings("closed", 1, 256, 3.0, 0.1, 1000))
    while (load := s.next_load()) is not None:
        s.record(at(load))
    assert (s.good, s.saturated) == (5, 6) and [f.load for f, _, _ in s.levels] == [1, 2, 4, 8, 6, 5]


def test_level_figures_take_the_servers_scrapes_of_the_span() -> None:
    from satscope.loadgen.server_live import ServerWindow

    cols = {"intended_start": [1.0, 2.0], "first_token": [1.1, 2.1], "end": [3.5, 4.0], "status": ["ok", "ok"],
            "output_tokens": [8, 8], "output_chunks": [8, 8]}  # fmt: skip
    spans = []

    def server(a: float, b: float) -> ServerWindow:
        spans.append((a, b))
        return ServerWindow(4, 1.5, 4.0, 0.9, None)

    f = level_figures(cols, 2, 0.0, 4.0, 4.0, server=server)
    assert spans == [(1.0, 4.0)]  # the level's span: its first quarter left out
    assert (f.server_samples, f.server_waiting_p50, f.server_running_max, f.server_kv_max) == (4, 1.5, 4.0, 0.9)
