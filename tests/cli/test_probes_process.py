"""The probes process is started without waiting for it; one that dies early is noted when the run
stops it, one still running (or that ended cleanly) is not."""

from __future__ import annotations

import subprocess
import sys

from satscope._processes import probes_failure_note


def test_probes_that_died_early_are_noted_with_their_exit_code() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait(30)
    note = probes_failure_note(dead)
    assert note is not None and "exit code 3" in note and "probes.log" in note


def test_running_or_cleanly_ended_probes_get_no_note() -> None:
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert probes_failure_note(running) is None
    finally:
        running.kill()
        running.wait(10)
    clean = subprocess.Popen([sys.executable, "-c", "pass"])
    clean.wait(30)
    assert probes_failure_note(clean) is None
