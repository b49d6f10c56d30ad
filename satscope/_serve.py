"""`satscope serve`: not built yet (issue #2)."""

from __future__ import annotations

from satscope._notyet import not_yet


def serve() -> None:
    """Not available yet (issue #2)."""
    raise not_yet("serve", 2)
