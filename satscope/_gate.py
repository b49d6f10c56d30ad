"""`satscope gate`: not built yet (issue #7)."""

from __future__ import annotations

from satscope._notyet import not_yet


def gate() -> None:
    """Not available yet (issue #7)."""
    raise not_yet("gate", 7)
