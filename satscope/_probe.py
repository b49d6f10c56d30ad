"""`satscope probe`: not built yet (issue #5)."""

from __future__ import annotations

from satscope._notyet import not_yet


def probe() -> None:
    """Not available yet (issue #5)."""
    raise not_yet("probe", 5)
