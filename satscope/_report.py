"""`satscope report` and `satscope compare`: not built yet (issue #6)."""

from __future__ import annotations

from satscope._notyet import not_yet


def report() -> None:
    """Not available yet (issue #6)."""
    raise not_yet("report", 6)


def compare() -> None:
    """Not available yet (issue #6)."""
    raise not_yet("compare", 6)
