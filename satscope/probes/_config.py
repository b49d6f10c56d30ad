"""What the probes process is asked to do: one validated dataclass built from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_INTERVALS_S", "ProbeConfig"]

# Per-source sampling periods. The server scrape is the fastest because KV fill and queue length
# move within a second under load; NVML's GPM needs a window of at least 100 ms and is stable at 1 s.
DEFAULT_INTERVALS_S: dict[str, float] = {
    "server": 0.5, "gpu": 1.0, "dcgm": 1.0, "host": 1.0, "prometheus": 1.0,
}
GPM_MIN_WINDOW_S = 0.1


@dataclass(slots=True)
class ProbeConfig:
    """Configuration of one probes run.

    ``interval_s`` overrides every source's period when given (``--interval-s``); otherwise each
    source uses :data:`DEFAULT_INTERVALS_S`. ``duration_s`` of ``None`` runs until SIGTERM/SIGINT.
    """

    target: str | None
    out: Path | None = None
    metrics_url: str | None = None  # the server's /metrics when not at {target}/metrics
    server_pid: int | None = None
    duration_s: float | None = None
    gpu: bool = True
    dcgm_url: str | None = None
    prometheus_url: str | None = None
    prometheus_selector: str = ""
    prometheus_rate_window_s: float = 30.0
    interval_s: float | None = None
    flush_interval_s: float = 2.0
    scrape_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        for name, url in (("--target", self.target), ("--dcgm-url", self.dcgm_url),
                          ("--prometheus", self.prometheus_url), ("--metrics-url", self.metrics_url)):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL, got {url!r}")
        if self.target is not None:
            self.target = self.target.rstrip("/")
        if self.metrics_url is not None and self.target is None:
            raise ValueError("--metrics-url needs --target (the server whose metrics they are)")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if self.interval_s is not None and self.interval_s < GPM_MIN_WINDOW_S:
            raise ValueError(f"interval must be at least {GPM_MIN_WINDOW_S} s (NVML GPM window), "
                             f"got {self.interval_s}")
        if self.server_pid is not None and self.server_pid <= 0:
            raise ValueError(f"server pid must be positive, got {self.server_pid}")
        if self.flush_interval_s <= 0 or self.scrape_timeout_s <= 0 or self.prometheus_rate_window_s <= 0:
            raise ValueError("flush interval, scrape timeout and rate window must be positive")
        if self.out is not None:
            self.out = Path(self.out)

    def interval(self, source: str) -> float:
        """Sampling period of ``source`` in seconds."""
        return self.interval_s if self.interval_s is not None else DEFAULT_INTERVALS_S[source]
