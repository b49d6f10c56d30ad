"""`satscope run`: not built yet (issue #4)."""

from __future__ import annotations

from satscope._notyet import not_yet


def run() -> None:
    """Not available yet (issue #4)."""
    raise not_yet("run", 4)
