"""The probes package's public names are exactly its ``__all__`` (kept sorted by ruff's RUF022)."""

from __future__ import annotations

from satscope import probes


def test_public_names_are_exactly_all() -> None:
    public = {name for name in vars(probes) if not name.startswith("_")}
    assert len(probes.__all__) == len(set(probes.__all__))
    assert public == set(probes.__all__)
