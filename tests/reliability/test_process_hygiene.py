"""`satscope run`'s children end with it, and what it prints without a terminal.

Real processes throughout: `satscope run --serve --workers 1` (bundled server, probes, Locust master
and worker) is SIGKILLed mid-run and no child may outlive it by more than a few seconds; the next
`satscope report` marks the run `abandoned`. Against the deterministic server, a run without a TTY
prints plain progress lines on stderr and its results on stdout, and Ctrl-C says what was kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.loadgen.conftest import ROOT, fake_server


def _wait(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.2)


def test_sigkill_of_run_ends_every_child_and_report_marks_it_abandoned(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "satscope", "run", "--serve", "--serve-arg=--preset=tiny", "--users", "2",
           "--duration", "120", "--output-len", "8", "--input-len", "16", "--workers", "1", "--no-gpu",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        me = psutil.Process(proc.pid)
        # server, probes, Locust master and worker, and some requests on disk
        _wait(lambda: len(me.children()) >= 4 and (out / "requests.parquet").exists(), 180, "load running")
        children = me.children(recursive=True)
        kinds = " ".join(" ".join(c.cmdline()) for c in children)
        assert "satscope serve" in kinds and "-m satscope.probes" in kinds and "--role master" in kinds, kinds
        proc.kill()
        proc.wait(10)
        killed = time.monotonic()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"outlived satscope run: {[' '.join(c.cmdline()) for c in alive]}"
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 10
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    res = subprocess.run([sys.executable, "-m", "satscope", "report", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "abandoned" and manifest["validity"]["interrupted"]
    # the 120 s stage is cut where the records end, so rates are not diluted by time never run
    assert manifest["stages"][-1]["end_s"] == manifest["end_s"] < manifest["stages"][0]["start_s"] + 100
    assert "marked abandoned" in res.stderr and f"report: {out}/report.html" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert any("abandoned" in w["message"] for w in summary["validity"]["warnings"])


def test_without_a_tty_progress_is_plain_lines_on_stderr_and_results_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fake_server(ttft=0.005, itl=0.002) as server:
        cmd = [sys.executable, "-m", "satscope", "run", "--target", server.url, "--users", "2", "--duration", "7",
               "--output-len", "4", "--no-probes", "--out", str(out)]
        env = {**os.environ, "COLUMNS": "40"}  # a narrow terminal width must not wrap the verdict
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    stdout = res.stdout.splitlines()
    assert stdout[0] == f"run directory: {out}" and stdout[1] == f"report: {out}/report.html"
    verdict = json.loads((out / "summary.json").read_text())["verdict"]
    assert stdout[2] == verdict and len(verdict) > 40 and len(stdout) == 3  # one line at any width
    progress = [ln for ln in res.stderr.splitlines() if ln.startswith("stage ")]
    assert len(progress) >= 2, res.stderr  # one every 5 s, and the last
    assert all(ln.endswith(" errors") for ln in progress), progress  # whole lines, nothing glued on


def test_ctrl_c_says_what_was_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fake_server(ttft=0.005, itl=0.005) as server:
        cmd = [sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", "--no-report", "--target",
               server.url, "--users", "2", "--duration", "60", "--output-len", "4", "--out", str(out)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(lambda: server.records()["served"] >= 3, 60, "3 requests served")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"interrupted: partial run saved in {out}; report: `satscope report {out}`" in stderr.splitlines()
    assert stdout.splitlines() == [f"run directory: {out}"]
