"""Run every probe source on its own thread, flush ``samples.parquet`` and write ``probes.json``.

Plain threads in a plain Python process (never under gevent): each periodic source samples on a
fixed-rate schedule (a missed tick is skipped, not bunched), rows go to one :class:`SampleBuffer`,
and a flusher thread rewrites ``samples.parquet`` atomically every ``flush_interval_s`` so a kill
loses at most that much. The Prometheus source runs once at stop, over the whole window.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from satscope.probes._buffer import SampleBuffer
from satscope.probes._config import ProbeConfig
from satscope.probes._dcgm import DcgmProbe
from satscope.probes._host import HostProbe
from satscope.probes._live import LiveLine
from satscope.probes._membw import MEMBW_METHOD
from satscope.probes._model_info import listed_model_facts, merge_model
from satscope.probes._nvml import GpuProbe
from satscope.probes._prometheus import PrometheusSource
from satscope.probes._server import ServerProbe
from satscope.probes._source import Source, SourceUnavailable
from satscope.run_format import PROBES_FILE, SAMPLES_FILE, write_json_atomic

__all__ = ["ProbeRunner"]


class ProbeRunner:
    """Starts the configured sources, samples until stopped, and leaves the files behind."""

    def __init__(self, config: ProbeConfig, nvml: ModuleType | None = None, quiet: bool = False) -> None:
        self.config = config
        self.quiet = quiet
        self.buffer = SampleBuffer()
        self.sources: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self.start_s: float | None = None
        self.end_s: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.live: LiveLine | None = None  # the server's queue for a search (satscope/probes/_live.py)
        if config.target is not None:
            self.sources["server"] = ServerProbe(config.target, config.scrape_timeout_s, config.metrics_url)
        self.listed_model: dict[str, Any] | None = None  # facts from the target's /v1/models
        if config.gpu:
            self.sources["gpu"] = GpuProbe(nvml)
        if config.dcgm_url is not None:
            self.sources["dcgm"] = DcgmProbe(config.dcgm_url, config.scrape_timeout_s)
        self.sources["host"] = HostProbe(config.server_pid)
        self.prometheus = None
        if config.prometheus_url is not None:
            self.prometheus = PrometheusSource(
                config.prometheus_url,
                config.prometheus_selector,
                config.interval("prometheus"),
                config.prometheus_rate_window_s,
            )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.start_s = time.monotonic()
        if self.config.target is not None:
            self.listed_model = listed_model_facts(self.config.target, self.config.scrape_timeout_s)
        for name, source in list(self.sources.items()):
            try:
                source.open()
            except SourceUnavailable as exc:
                self._mark_unavailable(name, str(exc))
                del self.sources[name]
            except Exception as exc:  # a bug in one source must not stop the others or the run
                self._mark_unavailable(name, f"could not start: {type(exc).__name__}: {exc}")
                del self.sources[name]
        self.write_probes_json()
        if self.config.out is not None and "server" in self.sources:
            self.live = LiveLine(self.config.out)
        for name, source in self.sources.items():
            thread = threading.Thread(target=self._sample_loop, args=(name, source), name=f"probe-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.config.out is not None:
            flusher = threading.Thread(target=self._flush_loop, name="probe-flush", daemon=True)
            flusher.start()
            self._threads.append(flusher)

    def request_stop(self) -> None:
        """Ask the run to end (safe from a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        """Block until :meth:`request_stop` or the configured duration."""
        deadline = None if self.config.duration_s is None else self.start_s + self.config.duration_s
        while not self._stop.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                break
            self._stop.wait(left)  # short waits so signal handlers run promptly in the main thread

    def stop(self) -> None:
        """Stop the samplers, read the Prometheus window, write the final files."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self.end_s = time.monotonic()
        for source in self.sources.values():
            source.close()
        if self.live is not None:
            self.live.close()
        if self.prometheus is not None:
            try:
                self.buffer.add(self.prometheus.collect(self.start_s, self.end_s))
            except SourceUnavailable as exc:
                self._mark_unavailable("prometheus", str(exc))
        for name, source in self.sources.items():
            reason = getattr(source, "unavailable_reason", None)
            if reason is not None:
                self._mark_unavailable(name, reason)
        if self.config.out is not None:
            self.buffer.flush(self.config.out / SAMPLES_FILE, force=True)
        self.write_probes_json()

    def run(self) -> None:
        self.start()
        try:
            self.wait()
        finally:
            self.stop()

    # -- threads ---------------------------------------------------------------------------
    def _sample_loop(self, name: str, source: Source) -> None:
        interval = self.config.interval(name)
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                rows = source.sample()
                self.buffer.add(rows)
                if name == "server" and self.live is not None:
                    self.live.add(rows)
            except Exception as exc:  # a probe bug must not end the run; it is recorded instead
                self._note(name, f"sampling raised {type(exc).__name__}: {exc}", traceback.format_exc())
            now = time.monotonic()
            next_t += interval
            if next_t <= now:
                next_t += interval * (int((now - next_t) / interval) + 1)
            self._stop.wait(next_t - now)

    def _flush_loop(self) -> None:
        assert self.config.out is not None
        statuses = self.status()
        while not self._stop.wait(self.config.flush_interval_s):
            try:
                self.buffer.flush(self.config.out / SAMPLES_FILE)
                if self.status() != statuses:  # e.g. the server answered its first scrape
                    statuses = self.status()
                    self.write_probes_json()
            except OSError as exc:  # a full disk now may clear later; the final flush tries again
                self._note("flush", f"writing {self.config.out} failed: {exc}")

    # -- reporting -------------------------------------------------------------------------
    def _mark_unavailable(self, name: str, reason: str) -> None:
        if name not in self.unavailable:
            self.unavailable[name] = reason
            if not self.quiet:
                print(f"probes: {name} unavailable: {reason}", file=sys.stderr, flush=True)

    def _note(self, name: str, message: str, detail: str = "") -> None:
        if name not in self.notes:
            self.notes[name] = message
            if not self.quiet:
                print(f"probes: {name}: {message}\n{detail}", file=sys.stderr, flush=True)

    def status(self) -> dict[str, str]:
        """``ok``, ``pending`` (no successful scrape yet) or ``unavailable`` per requested source."""
        out: dict[str, str] = {}
        for name, source in self.sources.items():
            if name in self.unavailable:
                out[name] = "unavailable"
            elif getattr(source, "unavailable_reason", None) is not None:
                out[name] = "pending"
            else:
                out[name] = "ok"
        for name in self.unavailable:
            out.setdefault(name, "unavailable")
        if self.prometheus is not None:
            out.setdefault("prometheus", "ok" if self.end_s is not None else "pending")
        return out

    def probes_json(self) -> dict[str, Any]:
        server = self.sources.get("server")
        gpu = self.sources.get("gpu")
        engine = server.engine if server is not None else None
        if engine is None and self.prometheus is not None:
            engine = self.prometheus.engine
        notes = dict(self.notes)
        if gpu is not None and gpu.errors:
            notes["gpu_queries"] = "; ".join(f"{k}: {v}" for k, v in sorted(gpu.errors.items()))
        if "host" in self.sources and self.sources["host"].server_gone:
            notes["server_process"] = self.sources["host"].server_gone
        intervals = {name: self.config.interval(name) for name in self.status()}
        host = self.sources.get("host")
        membw = getattr(host, "memory_bandwidth_bytes_per_s", None)
        return {
            "sources": self.status(),
            "unavailable": dict(self.unavailable),
            "engine": engine,
            "model": merge_model(server.model if server is not None else None, self.listed_model),
            "gpus": list(gpu.gpus) if gpu is not None else [],
            "host": {"memory_bandwidth_bytes_per_s": membw, "memory_bandwidth_method": MEMBW_METHOD if membw else None},
            "interval_s": intervals,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "rows": len(self.buffer),
            "notes": notes,
        }

    def write_probes_json(self) -> Path | None:
        if self.config.out is None:
            return None
        return write_json_atomic(self.config.out / PROBES_FILE, self.probes_json())
