"""Telling that the target went away: a stretch of nothing but connection errors.

A target that dies mid-run refuses every connection in microseconds; without this the run would go
on recording refusals until the shape ends and exit 0. The master (or the local runner) feeds the
records it has merged to :meth:`DeadTargetWatch.update` once a progress tick; once every request
that ended in the last ``after_s`` seconds was a ``connection_error`` (no response, not even a
failed one), the target is taken as gone since the first of them, and the run stops. A response of
any kind (even a ``timeout`` or ``http_error``: the target accepted the connection) resets the
watch; ``dropped`` dispatches never reached the target and count for nothing.
"""

from __future__ import annotations

from satscope.loadgen.recent import RecentRecords

__all__ = ["DeadTargetWatch"]


class DeadTargetWatch:
    """Incremental over the store's rows; ``lost_s`` is set once the target is taken as gone."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.lost_s: float | None = None
        self._scanned = 0
        self._last_answer_end = float("-inf")
        self._refused_starts: list[float] = []  # connection errors that began after the last answer

    def update(self, store: RecentRecords, now_s: float) -> bool:
        """Scan the rows added since the last call; True once the target is gone."""
        if self.after_s <= 0 or self.lost_s is not None:
            return self.lost_s is not None
        status, start, end = store.cols["status"], store.cols["start"], store.cols["end"]
        base = store.first_row  # rows before it were pruned (after this watch had scanned them)
        for i in range(max(self._scanned - base, 0), len(status)):
            if status[i] == "connection_error":
                self._refused_starts.append(start[i])
            elif status[i] != "dropped":
                self._last_answer_end = max(self._last_answer_end, end[i])
        self._scanned = base + len(status)
        refused = [t for t in self._refused_starts if t >= self._last_answer_end]
        self._refused_starts = refused
        if len(refused) >= 2 and now_s - min(refused) >= self.after_s:
            self.lost_s = min(refused)
        return self.lost_s is not None
