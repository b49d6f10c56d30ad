"""The records a timing process keeps: the recent ones, for its live consumers, and running counts.

The load generator's master (or local runner) forwards every batch to the record writer and keeps
here only what its own judgements read while the run goes: the live progress figures (the last
~7 s), the dead-target watch (the rows since its last look), ``--max-requests`` (a running count)
and a search's level figures (the current level's span). :meth:`RecentRecords.prune` drops rows that
ended before a horizon, so memory is bounded by time, not by the run's length. ``cols`` keeps the
``RequestRecord`` field names (what ``satscope.loadgen.search.level_figures`` reads); ``first_row`` is the
run-wide index of its first row, for readers that scan incrementally.
"""

from __future__ import annotations

from typing import Any

from satscope.loadgen.records import RAW_FIELDS

__all__ = ["RecentRecords"]


class RecentRecords:
    """Rows of the batches received, oldest dropped by :meth:`prune`; counts over the whole run."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in RAW_FIELDS}
        self.first_row = 0  # rows pruned so far
        self.requests = 0  # records received, dropped dispatches included
        self.errors = 0  # records whose status is not ok
        self.sent = 0  # records of requests that were sent (not dropped)
        self.received: dict[str, int] = {}  # worker -> records received
        self.announced: dict[str, int] = {}  # worker -> records it says it sent (final batch)
        self.complete_to: dict[str, float] = {}  # worker -> its records are all here up to this time

    def __len__(self) -> int:
        return len(self.cols["request_id"])

    def extend(self, worker: str, batch: dict[str, Any]) -> None:
        cols = batch["cols"]
        for name in RAW_FIELDS:
            self.cols[name].extend(cols[name])
        statuses = cols["status"]
        n = len(statuses)
        self.requests += n
        self.errors += sum(1 for s in statuses if s != "ok")
        self.sent += sum(1 for s in statuses if s != "dropped")
        self.received[worker] = self.received.get(worker, 0) + n
        if batch["final"]:
            self.announced[worker] = batch["total_requests"]
        if "complete_to" in batch:
            self.complete_to[worker] = batch["complete_to"]

    def prune(self, before_s: float) -> None:
        """Drop the oldest rows, those that ended before ``before_s``, up to the first that did not
        (rows come roughly in end order: a straggler from another worker stays a little longer)."""
        ends = self.cols["end"]
        n = 0
        while n < len(ends) and ends[n] < before_s:
            n += 1
        if n:
            for values in self.cols.values():
                del values[:n]
            self.first_row += n

    def missing(self) -> dict[str, int]:
        """Workers whose final count is not yet matched by received records (or not yet announced)."""
        return {w: n - self.received.get(w, 0) for w, n in self.announced.items() if self.received.get(w, 0) != n}
