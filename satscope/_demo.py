"""`satscope demo`: not built yet (issue #7)."""

from __future__ import annotations

from satscope._notyet import not_yet


def demo() -> None:
    """Not available yet (issue #7)."""
    raise not_yet("demo", 7)
