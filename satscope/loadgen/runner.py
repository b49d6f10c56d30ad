"""The load-generator process: ``python -m satscope.loadgen.runner --role local|master|worker``.

`satscope run` starts it as a subprocess (Locust monkey-patches the standard library with gevent
on import, so it never runs inside the CLI, pytest, or next to torch). It drives Locust through
``Environment`` and its runners rather than Locust's own CLI, so that the end of a run is ours:
Locust's runner stops when the shape's ``tick()`` returns ``None`` but never returns from
``greenlet.join()`` unless quit, and a worker's last records must reach the master before it quits.

Talks to `satscope run` through stdout lines ``SATSCOPE <json>`` (``start``, ``progress``,
``final``) and writes Locust's stats CSV into the run directory. The records leave this process as
their batches arrive: the master (or local runner) forwards each batch to the record writer, a
process of its own (``satscope/loadgen/_record_writer.py``) that writes ``requests.parquet``,
``tokens.parquet`` and ``loadgen.parquet`` every ``flush_interval_s`` and at the end, and keeps only
the recent records its live figures read (``satscope/loadgen/recent.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import gevent
import locust.stats
from locust.env import Environment

from satscope.loadgen._level_feed import clock_offset, clock_stamp
from satscope.loadgen._process import LoadgenProcess, Outcome
from satscope.loadgen._record_pipe import RecordPipe
from satscope.loadgen._user import ORIGIN_MESSAGE, ProcessHolder, make_search_shape, make_shape, make_user_classes
from satscope.loadgen.config import LoadgenConfig, request_quota
from satscope.loadgen.dead_target import DeadTargetWatch
from satscope.loadgen.level_figures import LevelFigures, level_figures
from satscope.loadgen.output import progress
from satscope.loadgen.recent import RecentRecords
from satscope.loadgen.search import Search, SearchRun, SearchSettings
from satscope.loadgen.server_live import ServerLive
from satscope.loadgen.shapes import Shape
from satscope.run_format import write_json_atomic
from satscope.search_file import SEARCH_FILE

__all__ = ["main"]

_SEND_INTERVAL_S = 1.0  # worker -> master record batches
_FINAL_WAIT_S = 20.0  # how long the master waits for workers' last batches
_KEEP_S = 60.0  # recent records kept here at least this long (a search keeps two levels' worth if longer)


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
                request(
                    request_type=kind,
                    name=endpoint,
                    response_time=seconds * 1000,
                    response_length=length,
                    exception=error,
                    context={},
                )

    return fire


class _Run:
    """Master or local side: collects records, writes files, reports progress."""

    def __init__(self, cfg: LoadgenConfig, env: Environment, local: LoadgenProcess | None, keep_s: float = _KEEP_S):
        self.cfg, self.env, self.local = cfg, env, local
        self.store = RecentRecords()
        self.keep_s = max(keep_s, 2 * float((cfg.search or {}).get("stage_duration_s", 0.0)))
        self.planned = cfg.shape_obj()
        self.writer = RecordPipe(cfg.run_dir, cfg.flush_interval_s)
        self.writer.shape(self.planned, None)
        self.search: SearchRun | None = None  # --shape search: the levels are decided as the run goes
        self.server_live: ServerLive | None = None  # a search's view of the server's queue
        self.dispatches: Any = None  # an open-loop search's DispatchLog (satscope/loadgen/_level_feed.py)
        self.origin: float | None = None
        self.interrupted = False
        self.offsets: dict[str, float] = {}
        self.worker_figures: dict[str, dict[str, int]] = {}
        self.dead = DeadTargetWatch(cfg.dead_after_s)
        self.quota_met = False  # --max-requests were all sent and answered

    @property
    def shape(self) -> Shape:
        """The shape as it runs: the planned one, or a search's levels so far."""
        return self.search.shape() if self.search is not None else self.planned

    def locust_shape(self, n_processes: int) -> Any:
        """The Locust shape; for a search, one that decides each level from this run's records."""
        if self.cfg.search is None:
            return make_shape(self.planned, n_processes)
        from satscope.loadgen._level_feed import DISPATCH_MESSAGE, LEAD_S, DispatchLog, announce

        search = Search(SearchSettings(**self.cfg.search))
        self.server_live = ServerLive(self.cfg.run_dir)  # the probes' live lines: the server's own queue
        feed = self.local.levels if self.local is not None else None
        # open loop: the dispatches, for what a level dispatched (a master's arrive from its workers)
        self.dispatches = self.local.dispatch_log if self.local is not None else DispatchLog()

        def setup(runner: Any) -> None:
            if self.local is None and search.settings.kind == "open" and DISPATCH_MESSAGE not in runner.custom_messages:
                log = self.dispatches
                runner.register_message(DISPATCH_MESSAGE, lambda environment, msg, **_: log.apply(msg.data))

        def on_level(run: SearchRun) -> None:
            self.write_search(run)
            announce(run, self.origin or 0.0, feed, self.env.runner)  # open loop: the dispatchers follow

        # a master's workers hear of a level by message: it begins a moment after it is decided
        lead = LEAD_S if self.local is None and search.settings.kind == "open" else 0.0
        self.search = SearchRun(search, self.measure_level, on_level, lead_s=lead)
        return make_search_shape(self.search, n_processes, setup)

    def measure_level(self, load: float, start_s: float, end_s: float) -> LevelFigures:
        """A search level's figures (elapsed seconds) from the records here now. A master's records
        come from its workers every second: the level's span stops where every worker's records (and
        open loop, its dispatches) are known complete, the earliest of their ``complete_to``."""
        self.collect_local()
        origin = self.origin or 0.0
        settings = self.search.search.settings if self.search is not None else None
        open_loop = settings is not None and settings.kind == "open"
        measured_to = origin + end_s
        if self.local is None:
            workers = len(getattr(self.env.runner, "clients", {}))
            known = [self.store.complete_to, *([self.dispatches.complete_to] if open_loop else [])]
            if workers and all(len(k) >= workers for k in known):
                measured_to = min(measured_to, *(t for k in known for t in k.values()))
            else:  # not yet heard from every worker: their batches come every second
                measured_to -= _SEND_INTERVAL_S + 0.5
            measured_to = max(measured_to, origin + start_s + 0.6 * (end_s - start_s))
        log = self.dispatches if open_loop else None  # records lack the requests in flight
        if log is not None:
            log.prune(origin + start_s - 1.0)
        count = None if log is None else log.count
        slos = settings.slo if settings is not None else None
        live = self.server_live.window if self.server_live is not None else None
        return level_figures(self.store.cols, load, origin + start_s, origin + end_s, measured_to, count, slos, live)

    def write_search(self, search: SearchRun) -> None:
        write_json_atomic(Path(self.cfg.run_dir) / SEARCH_FILE, search.record(self.origin or 0.0).to_json())

    def collect_local(self, final: bool = False) -> None:
        if self.local is not None:
            self.accept(self.local.worker, self.local.buffer.drain(final=final))

    def accept(self, worker: str, batch: dict[str, Any]) -> None:
        """A batch of records: on to the record writer, and into the recent records here."""
        self.writer.batch(worker, batch)
        self.store.extend(worker, batch)

    def loop_until_stopped(self) -> None:
        runner = self.env.runner
        assert runner is not None
        while not self._load_stopped():
            self._nap(self.cfg.progress_interval_s)
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
            self.writer.shape(self.shape, self.origin)  # a search's grows: the writer labels stages with it
            self.store.prune(now - self.keep_s)
        while runner.state != "stopped":
            gevent.sleep(0.1)

    def _load_stopped(self) -> bool:
        runner = self.env.runner
        return runner is not None and runner.state in ("stopped", "stopping", "cleanup") and self.origin is not None

    def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking once the load stops: the end of a run waits for no tick
        (half a progress interval per run, on average)."""
        end = time.perf_counter() + seconds
        while not self._load_stopped() and (left := end - time.perf_counter()) > 0:
            gevent.sleep(min(0.1, left))

    def requests_done(self) -> bool:
        """Whether ``--max-requests`` requests have their records (so none is in flight any more)."""
        return self.cfg.max_requests is not None and self.store.sent >= self.cfg.max_requests

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
        n = self.writer.close(self.shape, self.origin)
        if self.writer.error:
            emit("error", message=self.writer.error)
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
            recent_records=len(self.store),  # what this process still held: bounded by keep_s, not the run
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


def run_local(cfg: LoadgenConfig, keep_s: float = _KEEP_S) -> None:
    holder = ProcessHolder(LoadgenProcess(cfg, "local", 0, quota=cfg.max_requests))
    env = Environment(host=cfg.target_url, stop_timeout=cfg.stop_timeout_s)
    run = _Run(cfg, env, holder.proc, keep_s)
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


def run_master(cfg: LoadgenConfig, bind_host: str, port: int, expect: int, keep_s: float = _KEEP_S) -> None:
    env = Environment(host=cfg.target_url, stop_timeout=cfg.stop_timeout_s)
    holder = ProcessHolder()
    run = _Run(cfg, env, None, keep_s)
    shape = run.locust_shape(expect)
    env.user_classes, env.shape_class = [make_user_classes(holder, _fire(env, holder))[shape_kind(cfg)]], shape
    runner = env.create_master_runner(bind_host, port)
    _on_signals(run)
    names: dict[str, int] = {}

    def on_records(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        run.accept(data["worker"], data["batch"])
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
                **clock_stamp(),
            },
            client_id=client_id,
        )
    csv = _start_csv(env, cfg.run_dir) if cfg.locust_csv else None
    warm_stop_path()
    runner.start_shape()
    run.origin = shape.start_time
    # the shape's start, before any spawn message (the shape's greenlet has not run yet): a worker's
    # open-loop dispatcher times its arrivals from it, not from its own start (7-23 ms later, unequal)
    runner.send_message(ORIGIN_MESSAGE, {"origin": run.origin, **clock_stamp()})
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
        state["offset"] = clock_offset(data)
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
    runner.register_message(ORIGIN_MESSAGE, lambda environment, msg, **_: holder.set_origin(msg.data))
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, runner.quit)
    runner.greenlet.join()


def main(argv: list[str] | None = None) -> None:
    # a thread of this process (gevent's threadpool: DNS) that holds the GIL hands it back to the
    # gevent loop, which timestamps tokens, within 0.5 ms instead of the default 5 ms
    sys.setswitchinterval(0.0005)
    ap = argparse.ArgumentParser(prog="python -m satscope.loadgen.runner", description="satscope's Locust process")
    ap.add_argument("--role", choices=("local", "master", "worker"), default="local")
    ap.add_argument("--config", help="loadgen config JSON (local, master)")
    ap.add_argument("--master-host", default="127.0.0.1")
    ap.add_argument("--master-bind-host", default="127.0.0.1")
    ap.add_argument("--master-port", type=int, default=5557)
    ap.add_argument("--expect-workers", type=int, default=1)
    ap.add_argument("--worker-name", default=None)
    ap.add_argument("--keep-recent-s", type=float, default=_KEEP_S, help="recent records kept here (local, master)")
    args = ap.parse_args(argv)
    if args.role == "worker":
        run_worker(args.master_host, args.master_port, args.worker_name)
        os._exit(0)
    cfg = LoadgenConfig.load(args.config)
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    if args.role == "local":
        run_local(cfg, args.keep_recent_s)
    else:
        run_master(cfg, args.master_bind_host, args.master_port, args.expect_workers, args.keep_recent_s)
    os._exit(0)  # Locust leaves greenlets (zmq, stats) behind; everything is written by now


if __name__ == "__main__":
    main()
