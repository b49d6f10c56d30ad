"""A load generator that really cannot keep up is named the client; a server that dies, errors.

The throttled client is stopped with SIGSTOP for 0.3 s in every 0.5 s (SIGCONT in between) while
it runs an open loop far below the server's capacity: most of its dispatches leave later than half
the TTFT it measures. The killed server is SIGKILLed mid-run.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import bundled_server
from tests.verdicts.scenarios import COMMON, loadgen_pids, run_scenario, throttle_loadgen

pytestmark = pytest.mark.slow


def test_throttled_client_is_named_client(tmp_path: Path) -> None:
    r = run_scenario(
        tmp_path, "--serve", *COMMON, "--rate", "3", "--duration", "10", "--output-len", "32",
        during=throttle_loadgen(stop_s=0.3, run_s=0.2, limit_s=40.0),
    )  # fmt: skip
    print(r.row("open 3 req/s, load generator SIGSTOPped 60% of the time"))
    assert r.kind == "client", r.verdict
    (worker,) = next(c for c in r.summary["bottleneck"]["candidates"] if c["kind"] == "client")["workers"]
    # stopped, it leaves late against its own TTFT (and its loop lags when a monitor tick is caught)
    late = worker.get("late_dispatches", 0) >= 0.05 * worker["dispatched"]
    assert late or worker["loop_lag_p90_s"] >= 0.010, worker
    assert "worker local" in r.verdict and r.warnings()["loadgen_saturated"]


def test_killed_server_is_named_errors(tmp_path: Path) -> None:
    with bundled_server("--preset=tiny", "--step-delay-ms=30") as server:

        def kill_once_loaded(proc: subprocess.Popen) -> None:
            deadline = time.monotonic() + 60
            while not loadgen_pids(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            time.sleep(4.0)
            server.proc.kill()

        r = run_scenario(
            tmp_path, "--target", server.url, *COMMON[2:], "--users", "2", "--duration", "8",
            "--output-len", "32", during=kill_once_loaded,
        )  # fmt: skip
    print(r.row("closed 2 users, server SIGKILLed 4 s into the load"))
    assert r.kind == "errors", r.verdict
    assert r.summary["run"]["requests_failed"] > 0 and "failed" in r.verdict
