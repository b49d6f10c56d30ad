"""The load generator's resolved configuration, handed from `satscope run` to the Locust process.

``satscope run`` validates flags into a :class:`LoadgenConfig`, writes it as JSON next to the run
(``loadgen_config.json``) and starts ``python -m satscope.loadgen.runner --config FILE``. The API key is
never part of it: it travels in the ``SATSCOPE_API_KEY`` environment variable of the subprocess,
and so do the values of ``--header`` (``SATSCOPE_HEADERS``; the config holds ``Name: ***``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from satscope.errors import SatscopeError
from satscope.loadgen.request_extras import check_extra_body
from satscope.loadgen.shapes import Shape
from satscope.loadgen.workload import WorkloadConfig

__all__ = ["ENDPOINTS", "LoadgenConfig", "request_quota"]

ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(slots=True)
class LoadgenConfig:
    """Everything a load-generator process needs; times in seconds."""

    target_url: str
    run_dir: str
    shape: list[dict[str, Any]]
    workload: dict[str, Any] = field(default_factory=lambda: WorkloadConfig().to_json())
    endpoint: str = "completions"
    model: str = ""  # "": ask the target's /v1/models (satscope run does, before the load)
    stream: bool = True
    timeout_s: float = 120.0
    max_in_flight: int = 1024  # open loop, over all processes
    late_threshold_s: float = 0.005  # an open-loop dispatch later than this counts as late
    workers: int = 0  # load-generator worker processes (0: a single local process)
    flush_interval_s: float = 2.0
    progress_interval_s: float = 1.0
    monitor_interval_s: float = 0.5
    stop_timeout_s: float = 30.0  # at the end, in-flight requests get this long to finish
    dead_after_s: float = 10.0  # nothing but connection errors this long: the target is gone, stop (0: never)
    locust_csv: bool = True
    headers: list[str] = field(default_factory=list)  # "Name: ***": the values travel in SATSCOPE_HEADERS
    extra_body: dict[str, Any] = field(default_factory=dict)  # merged into every request body
    max_requests: int | None = None  # requests sent over all processes, then the run ends (None: no limit)
    search: dict[str, Any] | None = None  # --shape search: satscope.loadgen.search.SearchSettings (shape: its envelope)

    def __post_init__(self) -> None:
        _check_target_url(self.target_url)
        if self.endpoint not in ENDPOINTS:
            raise SatscopeError(f"endpoint {self.endpoint!r} unknown", f"use one of {sorted(ENDPOINTS)}")
        if self.timeout_s <= 0 or self.stop_timeout_s < 0:
            raise SatscopeError("timeouts must be > 0", "use a positive --timeout")
        if self.max_in_flight < 1:
            raise SatscopeError("--max-in-flight must be >= 1", "it caps open-loop requests in flight")
        if self.dead_after_s < 0:
            raise SatscopeError("--dead-after must be >= 0", "seconds of only connection errors; 0 never stops")
        if self.workers < 0:
            raise SatscopeError("--workers must be >= 0", "0 runs one local process")
        if self.max_requests is not None and self.max_requests < 1:
            raise SatscopeError(f"--max-requests must be >= 1, got {self.max_requests}", "e.g. --max-requests 500")
        check_extra_body(self.extra_body)
        Shape.from_json(self.shape)  # validates
        if self.search is not None:
            from satscope.loadgen.search import SearchSettings

            SearchSettings(**self.search)
        WorkloadConfig.from_json(self.workload)

    @property
    def header_names(self) -> list[str]:
        return [h.split(":", 1)[0] for h in self.headers]

    @property
    def path(self) -> str:
        return ENDPOINTS[self.endpoint]

    def shape_obj(self) -> Shape:
        return Shape.from_json(self.shape)

    def workload_obj(self) -> WorkloadConfig:
        return WorkloadConfig.from_json(self.workload)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        from satscope.run_format import write_json_atomic

        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> LoadgenConfig:
        return cls(**json.loads(Path(path).read_text()))


def request_quota(total: int | None, index: int, processes: int) -> int | None:
    """Process ``index``'s share of ``--max-requests`` over ``processes`` load-generator processes:
    equal shares, the first ``total % processes`` one more, so they add up to ``total`` exactly."""
    if total is None:
        return None
    return total // processes + (1 if index < total % processes else 0)


def _check_target_url(url: str) -> None:
    """An http(s) URL with a host and a valid port, and no credentials (they would be written into
    run.json with the URL; the key goes in --api-key)."""
    example = "e.g. http://127.0.0.1:8000"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise SatscopeError(f"target {url!r} is not an http(s) URL with a host and port", example)
    if parts.username is not None or parts.password is not None:
        raise SatscopeError(f"target {parts.hostname!r}: credentials in the URL", "pass the key with --api-key")
