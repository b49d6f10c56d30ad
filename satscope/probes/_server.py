"""Server-metrics probe: scrape the target's ``/metrics`` and map it onto the canonical set.

The target may still be starting when the probes start, so a failed scrape is retried every
interval; the source counts as unavailable only if no scrape ever succeeded (the last error is
the reason). The engine is detected from the metric names of the first scrape that has any.
"""

from __future__ import annotations

from typing import Any

from satscope.probes._engines import ENGINE_PREFIXES, detect_engine
from satscope.probes._http import MetricsEndpoint
from satscope.probes._mapping import CanonicalMapper
from satscope.probes._model_info import model_description
from satscope.probes._source import Row

__all__ = ["ServerProbe"]


class ServerProbe:
    """Periodic scraper of ``{target}/metrics`` (source ``server``)."""

    name = "server"

    def __init__(self, target: str, timeout_s: float = 2.0, metrics_url: str | None = None) -> None:
        base = target.rstrip("/")
        # An OpenAI base URL (".../v1") is common as a target; /metrics lives at the server root.
        base = base[: -len("/v1")] if base.endswith("/v1") else base
        # metrics_url: a server that publishes /metrics on another port or path (--metrics-url)
        self.endpoint = MetricsEndpoint(metrics_url or f"{base}/metrics", timeout_s)
        self.url = self.endpoint.url
        self.engine: str | None = None
        self.model: dict[str, Any] | None = None
        self.scrapes_ok = 0
        self._mapper: CanonicalMapper | None = None
        self._prefixes: tuple[str, ...] | None = None

    @property
    def last_error(self) -> str | None:
        return self.endpoint.last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self.endpoint.last_error = message

    def open(self) -> None:
        self.endpoint.open()

    def sample(self) -> list[Row]:
        # Once the engine is known, only its own names are parsed (the scrape's main CPU cost).
        scraped = self.endpoint.fetch_exposition(self._prefixes)
        if scraped is None:
            return []
        t, expo = scraped
        self.scrapes_ok += 1
        if self._mapper is None:
            self.engine = detect_engine(expo.names())
            if self.engine is None:
                known = ", ".join(ENGINE_PREFIXES.values())
                self.last_error = f"{self.url} has no metrics of a known engine (prefixes {known})"
                return []
            self._mapper = CanonicalMapper(self.engine)
            self._prefixes = (ENGINE_PREFIXES[self.engine],)
        if self.model is None:
            self.model = model_description(self.engine, expo)
        return self._mapper.rows(t, expo)

    @property
    def unavailable_reason(self) -> str | None:
        """Why this source gave no data, or ``None`` if it did."""
        if self._mapper is not None:
            return None
        return self.last_error or f"no scrape of {self.url} succeeded"

    def close(self) -> None:
        self.endpoint.close()
