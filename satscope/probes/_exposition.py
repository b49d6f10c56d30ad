"""Prometheus text exposition parsed into a flat index: sample name -> [(labels, value)]."""

from __future__ import annotations

import math

__all__ = ["Exposition", "parse_exposition"]

Series = list[tuple[dict[str, str], float]]
_UNUSED_SUFFIXES = ("_bucket", "_created")


class Exposition:
    """Samples of one scrape, looked up by full sample name (``x_total``, ``x_sum``, ``x_bucket``)."""

    def __init__(self, samples: dict[str, Series]) -> None:
        self.samples = samples

    def names(self) -> set[str]:
        return set(self.samples)

    def has(self, name: str) -> bool:
        return name in self.samples

    def series(self, name: str, where: dict[str, str] | None = None) -> Series:
        """Series of ``name`` whose labels include every ``where`` pair."""
        found = self.samples.get(name, [])
        if not where:
            return found
        return [(labels, v) for labels, v in found if all(labels.get(k) == w for k, w in where.items())]

    def total(self, name: str, where: dict[str, str] | None = None) -> float | None:
        """Sum over the series of ``name``; ``None`` when there are none."""
        found = self.series(name, where)
        return math.fsum(v for _, v in found) if found else None

    def mean(self, name: str, where: dict[str, str] | None = None) -> float | None:
        """Mean over the series of ``name`` (for ratios, where a sum would mean nothing)."""
        found = self.series(name, where)
        return math.fsum(v for _, v in found) / len(found) if found else None


def _wanted(line: str, prefixes: tuple[str, ...] | None) -> bool:
    if line.startswith("#"):
        parts = line.split(None, 3)
        return len(parts) < 3 or prefixes is None or parts[2].startswith(prefixes)
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if name.endswith(_UNUSED_SUFFIXES):
        return False
    return prefixes is None or name.startswith(prefixes)


def parse_exposition(text: str, prefixes: tuple[str, ...] | None = None) -> Exposition:
    """Parse with ``prometheus_client.parser``; NaN samples are dropped (a value the server lacks).

    Histogram buckets and ``_created`` timestamps are never used (means come from ``_sum`` and
    ``_count``), and with ``prefixes`` only those metric names are kept: the lines are filtered out
    before parsing, which is most of a scrape's parsing cost.
    """
    from prometheus_client.parser import text_string_to_metric_families

    kept = "\n".join(line for line in text.splitlines() if line and _wanted(line, prefixes))
    samples: dict[str, Series] = {}
    try:
        for family in text_string_to_metric_families(kept + "\n"):
            for sample in family.samples:
                if math.isnan(sample.value):
                    continue
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except ValueError as exc:  # prometheus_client sometimes raises a bare ValueError: say what it was
        raise ValueError(f"not a Prometheus text exposition: {exc or 'a line could not be parsed'}") from exc
    return Exposition(samples)
