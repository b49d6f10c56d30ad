"""One Prometheus text endpoint scraped over HTTP and parsed: the part the server and DCGM probes share."""

from __future__ import annotations

import time
from typing import Any

from satscope.probes._exposition import Exposition, parse_exposition

__all__ = ["MetricsEndpoint"]


class MetricsEndpoint:
    """GETs ``url`` with a reused client; remembers the last error instead of raising it."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.last_error: str | None = None
        self._client: Any = None

    def open(self) -> None:
        import httpx

        # No proxies from the environment: the target is a server we measure, not the internet.
        self._client = httpx.Client(timeout=self.timeout_s, trust_env=False)

    def fetch(self) -> tuple[float, str] | None:
        """(monotonic time of the scrape's midpoint, body), or None with ``last_error`` set."""
        import httpx

        sent = time.monotonic()
        try:
            response = self._client.get(self.url)
            response.raise_for_status()
            text = response.text
        except httpx.HTTPError as exc:
            self.last_error = f"scraping {self.url} failed: {type(exc).__name__}: {exc}"
            return None
        return (sent + time.monotonic()) / 2.0, text

    def fetch_exposition(self, prefixes: tuple[str, ...] | None = None) -> tuple[float, Exposition] | None:
        """(time, parsed exposition) of one scrape, or None with ``last_error`` set."""
        fetched = self.fetch()
        if fetched is None:
            return None
        t, text = fetched
        try:
            return t, parse_exposition(text, prefixes)
        except ValueError as exc:
            self.last_error = f"{self.url} is not Prometheus text exposition: {exc}"
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
