"""An open-loop search's two channels: the levels to the dispatchers, their dispatches back.

What a dispatcher knows of a search's levels: their starts and rates, and the end.

The search decides each level in the Locust master (or the local runner) as the run goes;
:func:`announce` tells the dispatchers: directly in a local run, in a ``satscope_level`` message
to every worker otherwise, with the level's start on the master's monotonic clock (a worker on
another host moves it onto its own by the master's clock at sending). The dispatcher
(``LoadgenProcess.dispatch``) waits on :meth:`LevelFeed.wait` so that a level announced while it
sleeps towards its next arrival is seen at once.

The other way, the search needs how many requests were dispatched in a level's span: those still in
flight have no record yet, and a saturated level's are exactly the ones that pile up. Each
dispatcher logs its intended times (:class:`DispatchLog`); a worker sends the new ones to the master
every ``SEND_EVERY_S`` (``satscope_dispatches``); the master measures a level up to the time its
every worker's records and dispatches are known complete (``RecentRecords.complete_to``,
``DispatchLog.complete_to``). Imported only inside the load-generator process.
"""

from __future__ import annotations

import socket
import time
from array import array
from typing import TYPE_CHECKING, Any

from gevent.event import Event

from satscope.loadgen.records import COMPLETE_MARGIN_S

if TYPE_CHECKING:
    from satscope.loadgen.search import SearchRun

__all__ = ["DISPATCH_MESSAGE", "LEAD_S", "LEVEL_MESSAGE", "SEND_EVERY_S", "DispatchLog", "LevelFeed", "announce",
           "level_message"]  # fmt: skip

LEVEL_MESSAGE = "satscope_level"
DISPATCH_MESSAGE = "satscope_dispatches"
SEND_EVERY_S = 0.5
# a master's level begins this long after it is decided, so that every worker hears of it before
# (the decided level goes on until then): no arrival of the new level is sent late for the message
LEAD_S = 0.3


class LevelFeed:
    """The levels so far, ``(start, rate)`` on this process's clock, and the end (None: running)."""

    def __init__(self, first_rate: float) -> None:
        self.levels: list[tuple[float, float]] = [(-float("inf"), first_rate)]
        self.end: float | None = None
        self.version = 0
        self._changed = Event()

    def begin_at(self, origin_s: float) -> None:
        """The first level starts when the dispatcher does."""
        self.levels[0] = (origin_s, self.levels[0][1])

    def begin(self, start_s: float, rate: float) -> None:
        self.levels.append((start_s, rate))
        self._wake()

    def finish(self, end_s: float) -> None:
        self.end = end_s
        self._wake()

    def wait(self, seconds: float, seen: int) -> bool:
        """Sleep up to ``seconds`` or until the feed changes after version ``seen``; True if it did."""
        if self.version == seen:
            self._changed.wait(max(seconds, 0.0))  # the event of version ``seen``: set by the next change
        return self.version != seen

    def apply(self, data: dict[str, Any]) -> None:
        """A ``satscope_level`` message, its times moved onto this process's clock."""
        offset = clock_offset(data)
        if data["end"] is not None:
            self.finish(data["end"] - offset)
        else:
            self.begin(data["start"] - offset, data["rate"])

    def _wake(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, Event()  # the waiters hold the old one: set for good
        changed.set()


def clock_stamp() -> dict[str, Any]:
    """This process's host and clock now, sent with a message whose times the receiver moves onto its
    own clock (:func:`clock_offset`)."""
    return {"host": socket.gethostname(), "now": time.perf_counter()}


def clock_offset(data: dict[str, Any]) -> float:
    """The sender's clock minus this process's, from a message carrying :func:`clock_stamp`: its time
    ``t`` is ``t - offset`` here (0 on one host, where every process reads one monotonic clock)."""
    return 0.0 if data["host"] == socket.gethostname() else data["now"] - time.perf_counter()


def level_message(run: SearchRun, origin_s: float) -> dict[str, Any]:
    """The level the search just began (or its end), on the monotonic clock from ``origin_s``."""
    if run.done:
        return {"end": origin_s + run.ends_s[-1], "start": None, "rate": None}
    return {"end": None, "start": origin_s + run.starts_s[-1], "rate": run.loads[-1]}


def announce(run: SearchRun, origin_s: float, local: LevelFeed | None, runner: Any) -> None:
    """Tell the dispatchers of an open-loop search what the search just decided."""
    if run.kind != "open":
        return
    data = {**level_message(run, origin_s), **clock_stamp()}
    if local is not None:
        local.apply(data)
    elif runner is not None:
        runner.send_message(LEVEL_MESSAGE, data)


class DispatchLog:
    """Intended times of the dispatches (dropped ones included), for the level figures."""

    def __init__(self) -> None:
        self.times = array("d")
        self._sent = 0
        self.complete_to: dict[str, float] = {}  # sender -> its dispatches are all here up to this time

    def add(self, t: float) -> None:
        self.times.append(t)

    def count(self, start_s: float, end_s: float) -> int:
        """Dispatches intended in ``[start_s, end_s)``."""
        return sum(1 for t in self.times if start_s <= t < end_s)

    def prune(self, before_s: float) -> None:
        """Forget dispatches intended before ``before_s`` (a level reads only its own span)."""
        keep = array("d", (t for t in self.times if t >= before_s))
        self._sent = max(self._sent - (len(self.times) - len(keep)), 0)
        self.times = keep

    def message(self, sender: str = "") -> dict[str, Any]:
        """The dispatches since the last message, for the master (``satscope_dispatches``): an
        arrival is logged once sent, so the log is complete up to the message's ``now``."""
        new = self.times[self._sent :]
        self._sent = len(self.times)
        return {"times": new.tobytes(), "sender": sender, **clock_stamp()}

    def apply(self, data: dict[str, Any]) -> None:
        """A worker's ``satscope_dispatches`` message, its times moved onto this process's clock."""
        offset = clock_offset(data)
        times = array("d")
        times.frombytes(data["times"])
        self.times.extend(t - offset for t in times)
        self.complete_to[data.get("sender", "")] = data["now"] - offset - COMPLETE_MARGIN_S
