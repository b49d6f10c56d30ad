"""Host probe (psutil): the machine's CPU and memory, and the server process's cores and RSS.

Useful when the server runs on the CPU, where host CPU is the resource that saturates. The
server process's CPU counts its threads and children, so a server that forks workers is seen whole.
"""

from __future__ import annotations

import time
from typing import Any

from satscope.probes._membw import measure_memory_bandwidth
from satscope.probes._source import Row, SourceUnavailable

__all__ = ["CHILDREN_RESCAN_S", "HostProbe"]

CHILDREN_RESCAN_S = 10.0


class HostProbe:
    """Periodic host sampler (source ``host``); ``server_pid`` adds the server process's figures."""

    name = "host"

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.server_gone: str | None = None
        self._psutil: Any = None
        self._process: Any = None
        self._children: dict[int, Any] = {}
        self._last: tuple[float, float] | None = None
        self._next_rescan = 0.0
        self.memory_bandwidth_bytes_per_s: float | None = None

    def open(self) -> None:
        try:
            import psutil
        except ImportError as exc:
            raise SourceUnavailable(f"psutil is not installed ({exc})") from exc
        self._psutil = psutil
        psutil.cpu_percent(interval=None)  # primes the counter: the first call always returns 0.0
        self.memory_bandwidth_bytes_per_s = measure_memory_bandwidth()  # the CPU's MBU peak, once
        if self.server_pid is not None:
            try:
                self._process = psutil.Process(self.server_pid)
            except psutil.Error as exc:
                self.server_gone = f"server process {self.server_pid} not found ({exc})"

    def sample(self) -> list[Row]:
        psutil = self._psutil
        t = time.monotonic()
        rows = [
            Row(t, self.name, "host_cpu_util", psutil.cpu_percent(interval=None) / 100.0),
            Row(t, self.name, "host_mem_used_bytes", float(psutil.virtual_memory().used)),
        ]
        if self._process is not None:
            rows.extend(self._server_rows(t))
        return rows

    def _server_rows(self, t: float) -> list[Row]:
        psutil = self._psutil
        try:
            with self._process.oneshot():
                cpu = self._process.cpu_times()
                rss = float(self._process.memory_info().rss)
            busy = cpu.user + cpu.system + self._children_cpu()
        except psutil.Error as exc:
            self.server_gone = f"server process {self.server_pid} ended ({type(exc).__name__})"
            self._process = None
            return []
        rows = [Row(t, self.name, "server_rss_bytes", rss)]
        if self._last is not None and t > self._last[0]:
            cores = max(busy - self._last[1], 0.0) / (t - self._last[0])
            rows.append(Row(t, self.name, "server_cpu_cores", cores))
        self._last = (t, busy)
        return rows

    def _children_cpu(self) -> float:
        """CPU seconds of the live children; a child that exits takes its seconds with it.

        Finding children scans every process on the machine (most of this probe's cost), so it
        is redone only every ``CHILDREN_RESCAN_S``: servers start their workers once, at start-up.
        """
        psutil = self._psutil
        now = time.monotonic()
        if now >= self._next_rescan:
            self._next_rescan = now + CHILDREN_RESCAN_S
            for child in self._process.children(recursive=True):
                self._children.setdefault(child.pid, child)
        total = 0.0
        for pid, child in list(self._children.items()):
            try:
                times = child.cpu_times()
            except psutil.Error:
                del self._children[pid]
                continue
            total += times.user + times.system
        return total

    def close(self) -> None:
        self._process = None
