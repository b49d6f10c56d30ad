"""Host probe on real processes: the server's CPU counts its children; a vanished server is explained."""

from __future__ import annotations

import subprocess
import sys
import time

from satscope.probes._host import HostProbe

# A "server" whose work happens in a child process, as engines with worker processes do.
PARENT = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time\\nend = time.monotonic() + 4\\n"
    "while time.monotonic() < end: pass'])\n"
    "child.wait()\n"
)


def test_server_cpu_includes_its_children_and_rss_is_reported() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        time.sleep(0.5)  # the child exists before the probe first looks for it
        probe = HostProbe(parent.pid)
        probe.open()
        first = {r.metric: r.value for r in probe.sample()}
        time.sleep(1.5)
        second = {r.metric: r.value for r in probe.sample()}
    finally:
        parent.kill()
        parent.wait()
    assert "server_cpu_cores" not in first  # a rate needs two readings
    assert second["server_rss_bytes"] > 1_000_000
    assert second["server_cpu_cores"] > 0.3, "the busy child's CPU belongs to the server"
    assert 0.0 <= second["host_cpu_util"] <= 1.0
    assert second["host_mem_used_bytes"] > 0


def test_a_server_that_is_gone_is_noted_and_host_metrics_go_on() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    probe = HostProbe(proc.pid)
    probe.open()
    metrics = {r.metric for r in probe.sample()}
    assert metrics == {"host_cpu_util", "host_mem_used_bytes"}
    assert probe.server_gone is not None and str(proc.pid) in probe.server_gone
