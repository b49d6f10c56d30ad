"""The load-generator process: ``python -m loadgen.runner --role local|master|worker``.

`satscope run` starts it as a subprocess (Locust monkey-patches the standard library with gevent
on import, so it never runs inside the CLI, pytest, or next to torch). It drives Locust through
``Environment`` and its runners rather than Locust's own CLI, so that the end of a run is ours:
Locust's runner stops when the shape's ``tick()`` returns ``None`` but never returns from
``greenlet.join()`` unless quit, and a worker's last records must reach the master before it quits.

Talks to `satscope run` through stdout lines ``SATSCOPE <json>`` (``start``, ``progress``,
``final``) and writes ``requests.parquet``, ``tokens.parquet``, ``loadgen.parquet`` and Locust's
stats CSV into the run directory, every ``flush_interval_s`` and at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import gevent
import locust.stats
import numpy  # noqa: F401
import pandas  # noqa: F401  pyarrow imports it on the first Parquet write: 0.3 s of CPU mid-run
import pyarrow.parquet  # noqa: F401  (all three now, before the load: not inside a flush)
from locust.env import Environment

from loadgen._process import LoadgenProcess, Outcome
from loadgen._user import ProcessHolder, make_search_shape, make_shape, make_user_classes
from loadgen.config import LoadgenConfig, request_quota
from loadgen.dead_target import DeadTargetWatch
from loadgen.output import progress, write_run_files
from loadgen.records import RunStore
from loadgen.search import LevelFigures, Search, SearchRun, SearchSettings, level_figures
from loadgen.shapes import Shape
from satscope.run_format import write_json_atomic
from satscope.search_file import SEARCH_FILE

__all__ = ["main"]

_SEND_INTERVAL_S = 1.0  # worker -> master record batches
_FINAL_WAIT_S = 20.0  # how long the master waits for workers' last batches


def emit(kind: str, **data: Any) -> None:
    """One machine-readable line for `satscope run`."""
    sys.stdout.write("SATSCOPE " + json.dumps({"kind": kind, **data}) + "\n")
    sys.stdout.flush()


def _fire(env: Environment, holder: ProcessHolder) -> Any:
    """Locust request events for TTFT, mean ITL and E2E, so Locust's stats and CSV show them."""

    def fire(o: Outcome) -> None:
        request = env.events.request.fire
        endpoint = holder.proc.config.endpoint if holder.proc else "?"
        exc = None if o.status == "ok" else RuntimeError(f"{o.status}: {o.error}")
        # TTFT and ITL are timings of a request, not requests: they never carry its failure.
        for kind, seconds, length, error in (
            ("TTFT", o.ttft_s, 0, None),
            ("ITL", o.itl_mean_s, 0, None),
            ("E2E", o.e2e_s, o.chunks, exc),
        ):
            if seconds is not None:
                request(request_type=kind, name=endpoint, response_time=seconds * 1000,
                        response_length=length, exception=error, context={})

    return fire


class _Run:
    """Master or local side: collects records, writes files, reports progress."""

    def __init__(self, cfg: LoadgenConfig, env: Environment, store: RunStore, local: LoadgenProcess | None):
        self.cfg, self.env, self.store, self.local = cfg, env, store, local
        self.planned = cfg.shape_obj()
        self.search: SearchRun | None = None  # --shape search: the levels are decided as the run goes
        self.origin: float | None = None
        self.interrupted = False
        self.offsets: dict[str, float] = {}
        self.worker_figures: dict[str, dict[str, int]] = {}
        self.dead = DeadTargetWatch(cfg.dead_after_s)
        self.quota_met = False  # --max-requests were all sent and answered
        self._sent, self._scanned = 0, 0  # records that were sent (not dropped), and how far they were counted

    @property
    def shape(self) -> Shape:
        """The shape as it runs: the planned one, or a search's levels so far."""
        return self.search.shape() if self.search is not None else self.planned

    def locust_shape(self, n_processes: int) -> Any:
        """The Locust shape; for a search, one that decides each level from this run's records."""
        if self.cfg.search is None:
            return make_shape(self.planned, n_processes)
        search = Search(SearchSettings(**self.cfg.search))
        self.search = SearchRun(search, self.measure_level, self.write_search)
        return make_search_shape(self.search)

    def measure_level(self, load: float, start_s: float, end_s: float) -> LevelFigures:
        """A search level's figures (elapsed seconds) from the records here now. A master's records
        come from its workers every second: the level's throughput span stops that much earlier."""
        self.collect_local()
        origin = self.origin or 0.0
        lag = 0.0 if self.local is not None else _SEND_INTERVAL_S + 0.5
        measured_to = max(origin + end_s - lag, origin + start_s + 0.6 * (end_s - start_s))
        return level_figures(self.store.cols, load, origin + start_s, origin + end_s, measured_to)

    def write_search(self, search: SearchRun) -> None:
        write_json_atomic(Path(self.cfg.run_dir) / SEARCH_FILE, search.record(self.origin or 0.0).to_json())

    def collect_local(self, final: bool = False) -> None:
        if self.local is not None:
            self.store.extend(self.local.worker, self.local.buffer.drain(final=final))

    def flush(self) -> int:
        self.collect_local()
        snapshot = self.store.snapshot()  # in the loop thread: the store changes as batches arrive
        return gevent.get_hub().threadpool.apply(write_run_files, (self.cfg.run_dir, snapshot, self.shape, self.origin))

    def loop_until_stopped(self) -> None:
        runner = self.env.runner
        assert runner is not None
        last_flush = time.perf_counter()
        interval = self.cfg.flush_interval_s
        while runner.state not in ("stopped", "stopping", "cleanup") or self.origin is None:
            gevent.sleep(self.cfg.progress_interval_s)
            self.collect_local()
            now = time.perf_counter()
            if self.dead.lost_s is None and self.dead.update(self.store, now):
                self.stop_load()  # the target is gone: recording refusals until the end helps no one
            elif not self.quota_met and self.requests_done():
                self.quota_met = True
                self.stop_load()  # --max-requests sent and answered: the run ends here, complete
            point = self.shape.at(now - self.origin) if self.origin is not None else None
            emit(
                "progress",
                stage=point.stage.name if point else None,
                load=point.load if point else None,
                loop=self.shape.kind,
                users=runner.user_count,
                **progress(self.store, now),
            )
            if now - last_flush >= interval:
                self.flush()
                last_flush = time.perf_counter()
                # each flush rewrites whole files: keep it under ~10% of the time as the run grows
                interval = max(self.cfg.flush_interval_s, 10 * (last_flush - now))
        interval = self.cfg.flush_interval_s
        while runner.state != "stopped":
            gevent.sleep(0.1)

    def requests_done(self) -> bool:
        """Whether ``--max-requests`` requests have their records (so none is in flight any more)."""
        if self.cfg.max_requests is None:
            return False
        statuses = self.store.cols["status"]
        self._sent += sum(1 for s in itertools.islice(statuses, self._scanned, None) if s != "dropped")
        self._scanned = len(statuses)
        return self._sent >= self.cfg.max_requests

    def stop_load(self) -> None:
        """Stop the users (and the open-loop dispatchers); the requests in flight may finish."""
        runner = self.env.runner
        assert runner is not None
        if self.local is not None:
            self.local.stopping = True
        gevent.spawn(runner.stop)

    def finish(self) -> None:
        if self.local is not None:
            self.local.drain(self.cfg.stop_timeout_s)
        self.collect_local(final=True)
        n = self.flush()
        figures = dict(self.local.figures()) if self.local else {}
        for wf in self.worker_figures.values():
            for k, v in wf.items():
                figures[k] = figures.get(k, 0) + v
        if self.search is not None and self.origin is not None:
            if not self.search.search.stopped:  # Ctrl-C, a lost target, --max-requests: not the search's choice
                self.search.search.stopped = "interrupted" if self.interrupted else "the load stopped first"
            self.write_search(self.search)
            figures["stages"] = self.shape.timeline(self.origin)  # the levels that ran, for run.json
        emit(
            "final",
            records_written=n,
            received=self.store.received,
            announced=self.store.announced,
            missing=self.store.missing(),
            interrupted=self.interrupted,
            target_lost_s=self.dead.lost_s,
            shape_origin_s=self.origin,
            worker_clock_offsets_s=self.offsets,
            **figures,
        )


def shape_kind(cfg: LoadgenConfig) -> str:
    return cfg.shape_obj().kind


def _start_csv(env: Environment, run_dir: str) -> Any:
    writer = locust.stats.StatsCSVFileWriter(
        env, locust.stats.PERCENTILES_TO_REPORT, str(Path(run_dir) / "locust"), full_history=False
    )
    gevent.spawn(writer.stats_writer)
    return writer


def _on_signals(run: _Run) -> None:
    def stop() -> None:
        runner = run.env.runner
        assert runner is not None
        if run.interrupted:  # a second signal: cut the requests in flight (recorded as disconnected)
            runner.user_greenlets.kill(block=False)
            if run.local is not None:
                run.local.abandon()
            return
        run.interrupted = True
        run.stop_load()

    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop)


def warm_stop_path() -> None:
    """Pay at start-up what Locust's ``Runner.stop()`` would pay while the last requests are timed.

    ``stop()`` logs its caller through ``inspect.stack()``, whose first call builds inspect's module
    and source caches: 68 ms measured in this process, a stall of the gevent loop right when the
    shape ends, which inflated the E2E of the requests still in flight (p50 138 ms against 110 ms
    in the stage). Warmed here, the call takes 0.2 ms.
    """
    import inspect

    inspect.getframeinfo(inspect.stack()[0][0])


def run_local(cfg: LoadgenConfig) -> None:
    holder = ProcessHolder(LoadgenProcess(cfg, "local", 0, quota=cfg.max_requests))
    env = Environment(host=cfg.target_url, stop_timeout=cfg.stop_timeout_s)
    run = _Run(cfg, env, RunStore(), holder.proc)
    shape = run.locust_shape(1)
    env.user_classes, env.shape_class = [make_user_classes(holder, _fire(env, holder))[shape_kind(cfg)]], shape
    runner = env.create_local_runner()
    _on_signals(run)
    csv = _start_csv(env, cfg.run_dir) if cfg.locust_csv else None
    gevent.spawn(holder.proc.monitor)  # type: ignore[union-attr]
    warm_stop_path()
    runner.start_shape()
    run.origin = shape.start_time
    emit("start", shape_origin_s=run.origin, workers=0)
    run.loop_until_stopped()
    run.finish()
    runner.quit()
    if csv:
        csv.close_files()


def run_master(cfg: LoadgenConfig, bind_host: str, port: int, expect: int) -> None:
    env = Environment(host=cfg.target_url, stop_timeout=cfg.stop_timeout_s)
    holder = ProcessHolder()
    run = _Run(cfg, env, RunStore(), None)
    shape = run.locust_shape(expect)
    env.user_classes, env.shape_class = [make_user_classes(holder, _fire(env, holder))[shape_kind(cfg)]], shape
    runner = env.create_master_runner(bind_host, port)
    _on_signals(run)
    names: dict[str, int] = {}

    def on_records(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        run.store.extend(data["worker"], data["batch"])
        run.offsets[data["worker"]] = data["clock_offset_s"]
        if data["batch"]["final"]:
            run.worker_figures[data["worker"]] = data["figures"]

    runner.register_message("satscope_records", on_records)
    deadline = time.monotonic() + 120
    while runner.worker_count < expect:
        if time.monotonic() > deadline or run.interrupted:
            emit("error", message=f"only {runner.worker_count} of {expect} workers connected")
            runner.quit()
            sys.exit(3)
        gevent.sleep(0.1)
    # configure the workers only now, once all are in: a worker registers its handler after it has
    # connected, and messages to one worker arrive in order, so the config precedes any spawn
    for index, client_id in enumerate(sorted(runner.clients)):
        names[client_id] = index
        runner.send_message(
            "satscope_config",
            {
                "config": cfg.to_json(),
                "index": index,
                "share": 1.0 / expect,
                "quota": request_quota(cfg.max_requests, index, expect),
                "host": socket.gethostname(),
                "now": time.perf_counter(),
            },
            client_id=client_id,
        )
    csv = _start_csv(env, cfg.run_dir) if cfg.locust_csv else None
    warm_stop_path()
    runner.start_shape()
    run.origin = shape.start_time
    emit("start", shape_origin_s=run.origin, workers=expect)
    run.loop_until_stopped()
    deadline = time.monotonic() + _FINAL_WAIT_S
    while (len(run.store.announced) < len(names) or run.store.missing()) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    run.finish()
    runner.quit()
    if csv:
        csv.close_files()


def run_worker(master_host: str, port: int, name: str | None) -> None:
    holder = ProcessHolder()
    env = Environment()
    state: dict[str, Any] = {}

    def on_config(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        cfg = LoadgenConfig(**data["config"])
        worker = name or f"w{data['index']}"
        same_host = data["host"] == socket.gethostname()
        state["offset"] = 0.0 if same_host else data["now"] - time.perf_counter()
        holder.proc = LoadgenProcess(
            cfg,
            worker,
            zlib.crc32(worker.encode()) if name else data["index"] + 1,
            share=data["share"],
            quota=data.get("quota"),
        )
        gevent.spawn(holder.proc.monitor)
        gevent.spawn(sender)

    def send(final: bool) -> None:
        proc = holder.proc
        if proc is None:
            return
        runner.send_message(
            "satscope_records",
            {
                "worker": proc.worker,
                "clock_offset_s": state["offset"],
                "figures": proc.figures(),
                "batch": proc.buffer.drain(state["offset"], final=final),
            },
        )

    def sender() -> None:
        while True:
            gevent.sleep(_SEND_INTERVAL_S)
            send(final=False)

    def on_stopping(**_: Any) -> None:
        if holder.proc is not None:
            holder.proc.stopping = True

    env.events.test_stopping.add_listener(on_stopping)

    def on_stop(**_: Any) -> None:
        if holder.proc is not None:
            holder.proc.drain(holder.proc.config.stop_timeout_s)
        send(final=True)
        # a satscope run is one test: leave now rather than idle through Locust's post-stop wait
        # (stop_timeout seconds, during which a worker does not even read the master's quit)
        gevent.spawn_later(1.0, runner.quit)

    env.events.test_stop.add_listener(on_stop)
    env.user_classes = list(make_user_classes(holder, _fire(env, holder)).values())
    runner = env.create_worker_runner(master_host, port)
    warm_stop_path()
    runner.register_message("satscope_config", on_config)  # before the first yield: nothing is missed
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, runner.quit)
    runner.greenlet.join()


def main(argv: list[str] | None = None) -> None:
    # the Parquet writer thread holds the GIL while it builds tables; hand it back to the gevent
    # loop (which timestamps tokens) within 0.5 ms instead of the default 5 ms
    sys.setswitchinterval(0.0005)
    ap = argparse.ArgumentParser(prog="python -m loadgen.runner", description="satscope's Locust process")
    ap.add_argument("--role", choices=("local", "master", "worker"), default="local")
    ap.add_argument("--config", help="loadgen config JSON (local, master)")
    ap.add_argument("--master-host", default="127.0.0.1")
    ap.add_argument("--master-bind-host", default="127.0.0.1")
    ap.add_argument("--master-port", type=int, default=5557)
    ap.add_argument("--expect-workers", type=int, default=1)
    ap.add_argument("--worker-name", default=None)
    args = ap.parse_args(argv)
    if args.role == "worker":
        run_worker(args.master_host, args.master_port, args.worker_name)
        os._exit(0)
    cfg = LoadgenConfig.load(args.config)
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    if args.role == "local":
        run_local(cfg)
    else:
        run_master(cfg, args.master_bind_host, args.master_port, args.expect_workers)
    os._exit(0)  # Locust leaves greenlets (zmq, stats) behind; everything is written by now


if __name__ == "__main__":
    main()
