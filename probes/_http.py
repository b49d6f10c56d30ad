"""One Prometheus text endpoint scraped over HTTP: the part the server and DCGM probes share."""

from __future__ import annotations

import time
from typing import Any

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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
