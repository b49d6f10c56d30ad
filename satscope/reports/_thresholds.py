"""Every limit the verdict uses, in one place: the knee, the open-loop served rate, the safe
operating point, the bottleneck rules, the client and the host. docs/reports.md states each rule
with these values; change a value here and the docs' table must follow (a test checks it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["THRESHOLDS", "Thresholds"]


@dataclass(slots=True, frozen=True)
class Thresholds:
    """Limits of the verdict's rules; ratios are 0–1 unless the name says otherwise."""

    # the knee (closed loop: throughput against users)
    min_efficiency: float = 0.5  # throughput gain ÷ load gain under this is a knee ...
    min_latency_rise: float = 1.2  # ... while a tail latency rose by this factor ...
    min_latency_rise_s: float = 0.02  # ... and by at least this much ...
    min_dropped_share: float = 0.05  # ... or the dropped share of dispatches rose by this
    resume_margin: float = 1.2  # no later level may beat the one before the knee by more
    queue_efficiency: float = 0.75  # search: a server holding requests waiting, and gain ÷ load gain under this
    # open loop: a level is served when it delivered this share of what it offered
    served_share: float = 0.9
    # the safe operating point: no preemptions, no queue (growth), no tail-latency jump
    preemptions_per_s: float = 0.05
    queue_mean: float = 1.0  # closed loop: requests waiting on average
    queue_growth_per_s: float = 0.25  # requests/s the waiting queue grew by over a level
    tail_jump: float = 2.0  # p99 (TTFT from intended send, ITL) against the level before ...
    tail_jump_min_s: float = 0.05  # ... and by at least this much (16 → 36 ms is noise, not a jump)
    # bottleneck rules, per time window (a condition must hold for `min_windows` in a row)
    min_windows: int = 2
    kv_cache_usage: float = 0.95
    kv_room: float = 0.90
    bw_room: float = 0.80
    requests_waiting: float = 1.0
    running_at_cap: float = 0.90
    gpu_dram_bw_util: float = 0.80
    gpu_sm_active: float = 0.90
    gpu_tensor_active: float = 0.70
    server_cpu_share: float = 0.90
    error_rate: float = 0.05
    # prefix cache: the hit rate at a level against the best at a lower load (hold stages)
    prefix_cache_reuse: float = 0.2  # a lower level hit at least this much: there was reuse to lose
    prefix_cache_hit_fall: float = 0.75  # the hit rate fell to this share of it or less ...
    prefix_cache_kv_usage: float = 0.8  # ... with KV usage this high on average there (or full in a window) ...
    prefill_rise: float = 1.2  # ... and prefill tokens/s up by at least this factor
    # the client (per load-generator worker)
    client_cpu_p90: float = 0.90  # of one core: gevent runs on one
    client_loop_lag_p90_s: float = 0.010
    client_lag_vs_itl: float = 0.25  # loop lag p90 distorts timings when ≥ this share of ITL p50
    client_late_vs_ttft: float = 0.5  # a dispatch is late when later than this share of TTFT p50
    client_late_share: float = 0.05  # of a worker's open-loop dispatches
    # the host: CPU used by processes other than the server and the load generator
    host_others_share: float = 0.25  # of all cores

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"threshold {name} must be positive, not {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


THRESHOLDS = Thresholds()
