"""The validated plan of one `satscope run`, shared by the orchestrator and its process helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from satscope.loadgen.config import LoadgenConfig

__all__ = ["RunPlan"]


@dataclass(slots=True)
class RunPlan:
    """The validated plan of one `satscope run`."""

    config: LoadgenConfig
    command: list[str]
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # --header: sent to the target only, never written
    serve_flags: list[str] | None = None  # --serve: flags for `satscope serve`
    probes: bool = True
    probes_no_gpu: bool = False
    report: bool = True
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0  # 0: pick a free port
    live: bool = True
    slos: list[str] = field(default_factory=list)  # passed to the report's goodput
    extra_config: dict[str, Any] = field(default_factory=dict)
    server_pid: int | None = None  # an external server's process, for the probes' CPU and RSS
    metrics_url: str | None = None  # the server's /metrics when it is not at the target's root
    # (url, model) -> the model to send, after one real request; raises SatscopeError when unfit
    preflight: Callable[[str, str], str] | None = None
