"""A target killed mid-run ends the run: the load stops after `--dead-after` seconds of nothing but
connection errors, run.json says `failed` with the time the target went away, the report builds,
and the exit code is 3 (not 2, bad input; not 0)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq

from tests.loadgen.conftest import ROOT, fake_server

_DEAD_AFTER_S = 2.0


def _wait_served(server, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while server.records()["served"] < n:
        assert time.monotonic() < deadline, "the load generator never got going"
        time.sleep(0.1)


def test_a_killed_target_stops_the_run_with_exit_code_3(tmp_path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--users", "3", "--duration", "60",
        "--output-len", "20", "--timeout", "5", "--dead-after", str(_DEAD_AFTER_S), "--out", str(out),
    ]  # fmt: skip
    with fake_server(ttft=0.01, itl=0.01) as server:
        proc = subprocess.Popen(
            [*cmd, "--target", server.url], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_served(server, 10)
        killed_at = time.monotonic()
        server.proc.kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    manifest = json.loads((out / "run.json").read_text())
    req = pq.read_table(out / "requests.parquet").to_pandas()
    lost = manifest["validity"]["target_lost_s"]
    assert manifest["status"] == "failed"
    assert killed_at - 0.5 <= lost <= killed_at + 2.0, (lost - killed_at)
    assert any("went away" in n for n in manifest["validity"]["notes"])
    # said on stderr even with --quiet: what failed, and where the partial run is
    assert "failed: the target went away" in err and f"partial run saved in {out}" in err, err
    # the load stopped within a few seconds of the stretch, not at the end of the 60 s shape
    assert req.start.max() < lost + _DEAD_AFTER_S + 4.0
    assert manifest["stages"][-1]["end_s"] < lost + _DEAD_AFTER_S + 10.0
    assert (req.status == "ok").sum() >= 5 and (req.status == "connection_error").sum() >= 2
    summary = json.loads((out / "summary.json").read_text())  # the report still builds
    assert (out / "report.html").exists() and summary["validity"]["warnings"]
