"""The shape every probe source has, and the one exception a source raises when it cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Row", "Source", "SourceUnavailable"]


class SourceUnavailable(Exception):
    """The source cannot run here; ``str(exc)`` is the one-line reason recorded in ``probes.json``."""


@dataclass(slots=True, frozen=True)
class Row:
    """One sample of one canonical metric (see docs/run-format.md, ``samples.parquet``)."""

    t: float
    source: str
    metric: str
    value: float
    labels: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """A periodic sampler. ``open`` may raise :class:`SourceUnavailable`; ``sample`` returns rows."""

    name: str

    def open(self) -> None: ...

    def sample(self) -> list[Row]: ...

    def close(self) -> None: ...
