"""A JSONL file whose every line carries its send time: the reading both replays share.

A Mooncake trace (``satscope/loadgen/trace.py``) and a ``--fixed-schedule`` dataset
(``satscope/loadgen/schedule_file.py``) are read the same way: each non-blank line parsed by the
caller (which names the line in its own one-line error), then put in time order, ties in the
file's order, times in seconds after the earliest line. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from satscope.errors import SatscopeError

__all__ = ["read_timed_lines"]

T = TypeVar("T")


def read_timed_lines(
    path: Path, noun: str, parse: Callable[[str, int], tuple[float, T]], empty: tuple[str, str]
) -> list[tuple[float, T]]:
    """``(seconds after the earliest line, item)`` per non-blank line of ``path``, in time order.

    ``parse(line, number)`` gives the line's time in ms and its item, or raises SatscopeError;
    ``noun`` names the file in the error for an unreadable one, ``empty`` is the (message, fix) of
    one with no lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SatscopeError(f"cannot read {noun} {path}: {exc}", "check the --dataset path") from exc
    timed = [parse(line, number) for number, line in enumerate(lines, start=1) if line.strip()]
    if not timed:
        raise SatscopeError(*empty)
    timed.sort(key=lambda item: item[0])  # stable: ties keep the file's order
    first = timed[0][0]
    return [((at_ms - first) / 1000.0, item) for at_ms, item in timed]
