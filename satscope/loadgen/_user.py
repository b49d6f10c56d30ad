"""Locust classes: the closed-loop LLM user, the open-loop dispatcher and the traffic shape.

Imports locust, so only the load-generator process (``satscope/loadgen/runner.py``) imports this module.
The user classes are made per process by :func:`make_user_classes` around a :class:`ProcessHolder`,
because a worker learns its configuration from the master only after it has connected; a worker
offers both classes and the master's shape decides which one is spawned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from locust import LoadTestShape, User, constant, task
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING

from satscope.loadgen._level_feed import DISPATCH_MESSAGE, LEVEL_MESSAGE, SEND_EVERY_S, clock_offset
from satscope.loadgen._process import LoadgenProcess, Outcome
from satscope.loadgen.conversation import SessionSlot
from satscope.loadgen.search import SearchRun
from satscope.loadgen.shapes import Shape

__all__ = ["ORIGIN_MESSAGE", "ProcessHolder", "make_search_shape", "make_shape", "make_user_classes"]

ORIGIN_MESSAGE = "satscope_origin"  # master -> workers: the shape's start on the master's clock

_CONNECT_RETRY_S = 0.1


@dataclass
class ProcessHolder:
    """The process's :class:`LoadgenProcess` once known (a worker gets it from the master)."""

    proc: LoadgenProcess | None = None
    origin: float | None = None  # a worker: the master's shape start, on this process's clock

    def set_origin(self, data: dict) -> None:
        """The master's ``satscope_origin`` message (sent before any spawn), onto this clock."""
        self.origin = data["origin"] - clock_offset(data)


def make_user_classes(holder: ProcessHolder, fire: Callable[[Outcome], None]) -> dict[str, type[User]]:
    """The closed-loop user and the open-loop dispatcher, by shape kind."""

    class LLMUser(User):
        """Closed loop: send a request, wait for the whole response, send the next."""

        wait_time = constant(0)

        def on_start(self) -> None:
            assert holder.proc is not None, "the load generator was not configured before users spawned"
            self.proc = holder.proc
            self.conn = self.proc.new_connection()
            with contextlib.suppress(OSError):  # connected before its first request is timed
                self.conn.open()  # (a target not reachable: the request says so, as a connection_error)
            self.session_slot = SessionSlot()  # --turns: this user's session in progress

        @task
        def requests_until_stopped(self) -> None:
            # Our own loop, not one Locust task per request: between tasks Locust marks a user
            # "waiting" and a stop kills it there at once, and the kill can land in the request
            # that starts right after. Inside one long task a stop only flags the user
            # "stopping": the request in flight completes, then the loop ends.
            while self._state != LOCUST_STATE_STOPPING:
                if not self.proc.claim():  # --max-requests: this process's share is sent; idle until the stop
                    gevent.sleep(_CONNECT_RETRY_S)
                    continue
                outcome = self.proc.send_closed(self.conn, self.session_slot, self._stopping)
                if outcome is None:  # stopped during a session's think time
                    break
                fire(outcome)
                if outcome.status == "connection_error":
                    # a dead target refuses in microseconds: do not spin a core recording refusals
                    gevent.sleep(_CONNECT_RETRY_S)
            raise StopUser

        def _stopping(self) -> bool:
            return self._state == LOCUST_STATE_STOPPING

        def on_stop(self) -> None:
            self.conn.discard()

    class OpenLoopDispatcher(User):
        """Open loop: follow the arrival schedule from the moment this user starts, then stop."""

        wait_time = constant(0)

        @task
        def dispatch(self) -> None:
            proc = holder.proc
            assert proc is not None
            proc.dispatch(self._origin, fire)
            proc.drain(proc.config.stop_timeout_s)  # let the requests in flight finish
            raise StopUser

        def on_start(self) -> None:
            # one origin for every process: the master's shape start (a worker hears of it before it
            # spawns); the local runner's dispatcher starts with its shape
            self._origin = holder.origin if holder.origin is not None else time.perf_counter()
            proc = holder.proc
            runner = self.environment.runner
            if proc is not None and proc.levels is not None and isinstance(runner, WorkerRunner):
                # a worker of an open-loop search: the master announces each level it decides, and
                # hears of this worker's dispatches (its records come only once requests end)
                feed = proc.levels
                if LEVEL_MESSAGE not in runner.custom_messages:
                    runner.register_message(LEVEL_MESSAGE, lambda environment, msg, **_: feed.apply(msg.data))
                gevent.spawn(_send_dispatches, proc, runner)

    return {"closed": LLMUser, "open": OpenLoopDispatcher}


def _send_dispatches(proc: LoadgenProcess, runner: WorkerRunner) -> None:
    """A worker's dispatches to the master, every ``SEND_EVERY_S``, until the process ends."""
    assert proc.dispatch_log is not None
    while True:
        gevent.sleep(SEND_EVERY_S)
        runner.send_message(DISPATCH_MESSAGE, proc.dispatch_log.message(proc.worker))


def make_shape(shape: Shape, n_processes: int) -> LoadTestShape:
    """The Locust shape: users from the shape (closed loop), or one dispatcher per process (open)."""

    class SatscopeShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            point = shape.at(self.get_run_time())
            if point is None:
                return None
            if shape.kind == "open":
                return n_processes, float(max(n_processes, 100))
            return point.users, point.spawn_rate

    return SatscopeShape()


def make_search_shape(
    search: SearchRun, n_processes: int = 1, setup: Callable[[object], None] | None = None
) -> LoadTestShape:
    """The Locust shape of ``--shape search``: each tick asks the search for the load now; it decides
    a level when the level's time is up, from the records the master holds. Closed loop: that many
    users; open loop: one dispatcher per process, which follows the levels the search announces.
    ``setup(runner)`` runs at the first tick (the runner exists then: a master registers handlers)."""

    class SearchShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            nonlocal setup
            if setup is not None:
                setup(self.runner)
                setup = None
            load = search.at(self.get_run_time())
            if load is None:
                return None
            if search.kind == "open":
                return n_processes, float(max(n_processes, 100))
            spawn = search.search.settings.spawn_rate
            return round(load), spawn if spawn is not None else max(10.0, load)

    return SearchShape()
