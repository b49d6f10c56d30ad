"""Hand-built run directories with a known knee and a known bottleneck, for tests and benchmarks.

A stepped closed-loop run (one stage per user count) against an imaginary server that scales
linearly up to ``knee_load`` users and then stays flat; the probe samples show the resource that
ran out, by ``kind``. Files are written exactly per docs/run-format.md with the contract's
writers, so the report code reads them as it reads a real run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satscope.run_format import (
    LOADGEN_FILE,
    MANIFEST_FILE,
    PROBES_FILE,
    REQUESTS_FILE,
    SAMPLES_FILE,
    TOKENS_FILE,
    requests_schema,
    samples_schema,
    tokens_schema,
    write_json_atomic,
    write_parquet_atomic,
)
from satscope.run_manifest import Clock, LoadgenFigures, Manifest, StageRecord, Validity

__all__ = ["KINDS", "SyntheticRun", "write_synthetic_run"]

KINDS = ("kv_cache", "memory_bandwidth", "compute", "batch_limit", "client", "errors", "none")

ORIGIN_S = 5000.0  # a monotonic origin far from zero, so readers that forget it get it wrong


@dataclass(slots=True)
class SyntheticRun:
    """What to build. The server saturates at ``knee_load`` users (unless ``kind == "none"``)."""

    kind: str = "kv_cache"
    levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    knee_load: int = 8
    stage_s: float = 10.0
    output_tokens: int = 32
    prompt_tokens: int = 128
    ttft_s: float = 0.1
    itl_s: float = 0.02
    sample_interval_s: float = 0.5
    gpu: bool = True
    probes: bool = True
    model: str = "synthetic-7b"
    error_text: str = "503 Service Unavailable: queue full"
    prompt_text: str = "Tell me a story."
    open_loop: bool = False  # stages are arrival rates; past the knee requests queue at the server
    seed: int = 0
    extra_notes: list[str] = field(default_factory=list)
    kv_gauge: bool = True  # False: an engine without KV usage (llama.cpp slots)
    worker_lag_s: tuple[float, ...] = ()  # one loop lag per worker: writes loadgen.parquet
    host_others_cores: float = 0.0  # CPU used by other processes on the host

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if not self.levels or any(b <= a for a, b in zip(self.levels, self.levels[1:], strict=False)):
            raise ValueError("levels must be a non-empty increasing tuple")
        if self.stage_s <= 0 or self.output_tokens < 1 or self.sample_interval_s <= 0:
            raise ValueError("stage_s, output_tokens and sample_interval_s must be positive")

    @property
    def saturated_at(self) -> float:
        """Load beyond which throughput stops rising (infinite for ``none``)."""
        return float("inf") if self.kind == "none" else float(self.knee_load)


def write_synthetic_run(run_dir: str | Path, spec: SyntheticRun | None = None) -> Path:
    """Write run.json, probes.json, requests/tokens/samples.parquet for ``spec`` into ``run_dir``."""
    import numpy as np
    import pyarrow as pa

    spec = spec or SyntheticRun()
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    e2e_base = spec.ttft_s + (spec.output_tokens - 1) * spec.itl_s
    parts: list[dict[str, Any]] = []
    tok_idx, tok_t = [], []
    stages, n_total = [], 0
    next_slot = ORIGIN_S  # open loop: when the server can admit its next request
    for i, load in enumerate(spec.levels):
        s0 = ORIGIN_S + i * spec.stage_s
        over = max(load / spec.saturated_at, 1.0)
        # Little's law: with the server flat, each user's request takes `over` times longer.
        ttft, itl = spec.ttft_s, spec.itl_s
        if spec.kind in ("memory_bandwidth", "compute"):
            itl = itl * over  # a bigger batch makes every step slower
        else:
            ttft = ttft + e2e_base * (over - 1.0)  # the extra time is spent queued
        e2e = ttft + (spec.output_tokens - 1) * itl
        if spec.open_loop:
            # the schedule offers `load / e2e_base` req/s; the server admits at most its capacity, so
            # past the knee requests queue at the server (and the client lags half as much)
            n = max(1, int(load / e2e_base * spec.stage_s))
            intended = np.sort(s0 + rng.uniform(0.0, spec.stage_s, n))
            admitted = np.empty(n)
            gap = e2e_base / spec.saturated_at
            for j in range(n):
                slot = max(intended[j], next_slot)
                admitted[j], next_slot = slot, slot + gap
            lag = 0.5 * (admitted - intended)
            start = intended + lag
            ttft = spec.ttft_s
        else:
            n = max(1, int(load * spec.stage_s / e2e))
            start = np.sort(s0 + rng.uniform(0.0, spec.stage_s - 0.2 * e2e, n))
            lag = admitted = np.zeros(n)
        jitter = rng.uniform(0.95, 1.05, n)
        first = (admitted if spec.open_loop else start) + ttft * jitter
        end = first + (spec.output_tokens - 1) * itl * jitter
        failed = np.zeros(n, dtype=bool)
        if spec.kind == "errors" and over > 1.0:
            failed = rng.uniform(size=n) < 1.0 - 1.0 / over
        end = np.where(failed, start + 0.01, end)
        offered = load / e2e_base if spec.open_loop else float(load)
        parts.append(
            {
                "stage": np.full(n, f"users-{load}", dtype=object),
                "offered_load": np.full(n, offered),
                "intended_start": start - lag,
                "start": start,
                "first_token": first,
                "end": end,
                "failed": failed,
                "lag": lag,
            }
        )
        ok = np.flatnonzero(~failed)
        steps = np.arange(spec.output_tokens)
        tok_idx.append(np.repeat(n_total + ok, spec.output_tokens))
        tok_t.append((first[ok, None] + (itl * jitter[ok])[:, None] * steps[None, :]).ravel())
        stages.append(
            {
                "name": f"users-{load}",
                "start_s": s0,
                "end_s": s0 + spec.stage_s,
                "kind": "open" if spec.open_loop else "closed",
                "users": None if spec.open_loop else load,
                "spawn_rate": None if spec.open_loop else float(load),
                "rate_rps": offered if spec.open_loop else None,
                "arrival": "poisson" if spec.open_loop else None,
            }
        )
        n_total += n
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ids = pa.array([f"w0-{j:07d}" for j in range(n_total)], pa.string())
    write_parquet_atomic(out / REQUESTS_FILE, _requests_table(spec, col, ids))
    idx = np.concatenate(tok_idx).astype(np.int32)
    tokens = pa.table(
        {
            "request_id": pa.DictionaryArray.from_arrays(pa.array(idx), ids).cast(pa.string()),
            "index": pa.array(np.tile(np.arange(spec.output_tokens, dtype=np.int32), len(idx) // spec.output_tokens)),
            "t": pa.array(np.concatenate(tok_t)),
        },
        schema=tokens_schema(),
    )
    write_parquet_atomic(out / TOKENS_FILE, tokens)
    probes = _probes_json(spec)
    if spec.probes:
        write_parquet_atomic(out / SAMPLES_FILE, _samples(spec, rng))
        write_json_atomic(out / PROBES_FILE, probes)
    if spec.worker_lag_s or spec.kind == "client":
        write_parquet_atomic(out / LOADGEN_FILE, _loadgen(spec))
    write_json_atomic(out / MANIFEST_FILE, _manifest(spec, out, stages, n_total))
    return out


def _requests_table(spec: SyntheticRun, col: dict[str, Any], ids: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    failed = col["failed"]
    n = len(failed)

    def ints(value: int, null_if_failed: bool = False) -> Any:
        return pa.array(np.full(n, value, dtype=np.int32), mask=failed if null_if_failed else None)

    ttft = col["first_token"] - col["start"]
    e2e = col["end"] - col["start"]
    columns = {
        "request_id": ids,
        "worker": pa.array(_workers(spec, n), pa.string()),
        "stage": pa.array(col["stage"], pa.string()),
        "offered_load": pa.array(col["offered_load"]),
        "endpoint": pa.array(np.full(n, "completions", dtype=object), pa.string()),
        "stream": pa.array(np.ones(n, dtype=bool)),
        "intended_start": pa.array(col["intended_start"]),
        "start": pa.array(col["start"]),
        "first_token": pa.array(col["first_token"], mask=failed),
        "first_reasoning_token": pa.nulls(n, pa.float64()),
        "first_visible_token": pa.array(col["first_token"], mask=failed),
        "end": pa.array(col["end"]),
        "status": pa.array(np.where(failed, "http_error", "ok").astype(object), pa.string()),
        "http_status": pa.array(np.where(failed, 503, 200).astype(np.int32)),
        "error": pa.array(np.where(failed, spec.error_text, None), pa.string()),
        "prompt_tokens": ints(spec.prompt_tokens, True),
        "prompt_tokens_cached": pa.nulls(n, pa.int32()),
        "output_tokens": ints(spec.output_tokens, True),
        "reasoning_tokens": pa.nulls(n, pa.int32()),
        "output_chunks": pa.array(np.where(failed, 0, spec.output_tokens).astype(np.int32)),
        "reasoning_chunks": ints(0),
        "token_mismatch": pa.array(np.zeros(n, dtype=bool)),
        "input_tokens_requested": ints(spec.prompt_tokens),
        "max_tokens": ints(spec.output_tokens),
        "retried": pa.array(np.zeros(n, dtype=bool)),
        "ttft_s": pa.array(ttft, mask=failed),
        "ttfo_s": pa.array(ttft, mask=failed),
        "e2e_s": pa.array(e2e),
        "ttft_intended_s": pa.array(ttft + col["lag"], mask=failed),
        "ttfo_intended_s": pa.array(ttft + col["lag"], mask=failed),
        "e2e_intended_s": pa.array(e2e + col["lag"]),
    }
    schema = requests_schema()
    for fld in schema:  # a nullable column this writer has no figure for (sessions, ...) is null
        if fld.name not in columns and fld.nullable:
            columns[fld.name] = pa.nulls(n, fld.type)
    return pa.table(columns, schema=schema)


def _workers(spec: SyntheticRun, n: int) -> Any:
    import numpy as np

    if not spec.worker_lag_s:
        return np.full(n, "local", dtype=object)
    return np.array([f"w{i % len(spec.worker_lag_s)}" for i in range(n)], dtype=object)


def _loadgen(spec: SyntheticRun) -> Any:
    """Each worker's CPU and loop lag, every 0.5 s of the run: 30% of a core, or 99% for ``client``."""
    import numpy as np
    import pyarrow as pa

    t = np.arange(ORIGIN_S, ORIGIN_S + len(spec.levels) * spec.stage_s, 0.5)
    lags = spec.worker_lag_s or (0.001,)
    cpu = 0.99 if spec.kind == "client" else 0.3
    name = (lambda i: f"w{i}") if spec.worker_lag_s else (lambda i: "local")
    rows = [
        (metric, f"worker={name(i)}", value)
        for i, lag in enumerate(lags)
        for metric, value in (("loadgen_cpu", cpu), ("loadgen_loop_lag_s", lag))
    ]
    return pa.table(
        {
            "t": pa.array(np.tile(t, len(rows))),
            "source": pa.array(["loadgen"] * len(t) * len(rows), pa.string()),
            "metric": pa.array([m for m, _, _ in rows for _ in t], pa.string()),
            "value": pa.array([float(v) for _, _, v in rows for _ in t]),
            "labels": pa.array([lb for _, lb, _ in rows for _ in t], pa.string()),
        },
        schema=samples_schema(),
    )


def _probes_json(spec: SyntheticRun) -> dict[str, Any]:
    gpu_ok = spec.gpu and spec.probes
    return {
        "sources": {"server": "ok", "gpu": "ok" if gpu_ok else "unavailable", "host": "ok"},
        "unavailable": {} if gpu_ok else {"gpu": "NVML library not found: no NVIDIA driver"},
        "engine": "satscope",
        "model": {
            "name": spec.model,
            "parameters": 7_000_000_000,
            "weight_bytes": 14_000_000_000,
            "layers": 32,
            "kv_bytes_per_token": 524_288,
            "dtype": "bfloat16",
            "device": "cuda" if spec.gpu else "cpu",
            "kernels": "triton",
        },
        "gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_bytes": 150_000_000_000, "gpm": True}]
        if gpu_ok
        else [],
        "interval_s": {"server": spec.sample_interval_s, "gpu": spec.sample_interval_s, "host": 1.0},
    }


def _levels_at(spec: SyntheticRun, t: Any) -> Any:
    import numpy as np

    stage = np.clip(((t - ORIGIN_S) // spec.stage_s).astype(int), 0, len(spec.levels) - 1)
    return np.asarray(spec.levels, dtype=float)[stage]


def _samples(spec: SyntheticRun, rng: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    t = np.arange(ORIGIN_S, ORIGIN_S + len(spec.levels) * spec.stage_s, spec.sample_interval_s)
    load = _levels_at(spec, t)
    u = np.minimum(load / spec.saturated_at, 1.0)  # share of the limiting resource in use
    at_limit = load >= spec.saturated_at
    over = np.maximum(load - spec.knee_load, 0.0) if spec.kind != "none" else np.zeros_like(load)
    noise = rng.uniform(-0.01, 0.01, len(t))
    low = 0.3 * u + noise + 0.05
    k = spec.kind
    kv = np.where(at_limit, 0.97 + noise / 2, 0.9 * u + noise) if k == "kv_cache" else low
    waiting = over if k in ("kv_cache", "batch_limit") else np.zeros_like(load)
    if k in ("kv_cache", "batch_limit"):
        waiting = np.where(at_limit & (over == 0), 1.0, waiting)  # the queue starts at the knee
    running = np.minimum(load, spec.knee_load) if k in ("kv_cache", "batch_limit") else load
    preempt = np.where(at_limit, 2.0 + over / 4, 0.0) if k == "kv_cache" else np.zeros_like(load)
    metrics: dict[tuple[str, str], Any] = {
        ("server", "requests_running"): running,
        ("server", "requests_waiting"): waiting,
        ("server", "preemptions_per_s"): preempt,
        ("server", "batch_size"): running,
        ("host", "server_cpu_cores"): 0.5 + 0.5 * u,
        ("host", "host_cpu_util"): 0.2 + 0.3 * u + spec.host_others_cores / 2,  # 2 cores
    }
    if spec.kv_gauge:
        metrics[("server", "kv_cache_usage")] = np.clip(kv, 0, 1)
    if spec.gpu:
        bw = np.where(at_limit, 0.92, 0.85 * u) + noise if k == "memory_bandwidth" else 0.4 * u + 0.05 + noise
        sm = np.where(at_limit, 0.96, 0.9 * u) + noise if k == "compute" else 0.5 * u + 0.1 + noise
        tensor = np.where(at_limit, 0.8, 0.7 * u) if k == "compute" else 0.3 * u
        metrics |= {
            ("gpu", "gpu_dram_bw_util"): np.clip(bw, 0, 1),
            ("gpu", "gpu_sm_active"): np.clip(sm, 0, 1),
            ("gpu", "gpu_sm_occupancy"): np.clip(sm * 0.8, 0, 1),
            ("gpu", "gpu_tensor_active"): np.clip(tensor, 0, 1),
            ("gpu", "gpu_power_w"): 150.0 + 500.0 * u,
        }
    names = list(metrics)
    n = len(t)
    return pa.table(
        {
            "t": pa.array(np.tile(t, len(names))),
            "source": pa.array([s for s, _ in names for _ in range(n)], pa.string()),
            "metric": pa.array([m for _, m in names for _ in range(n)], pa.string()),
            "value": pa.array(np.concatenate([np.asarray(metrics[key], dtype=float) for key in names])),
            "labels": pa.array(["gpu=0" if s == "gpu" else "" for s, _ in names for _ in range(n)], pa.string()),
        },
        schema=samples_schema(),
    )


def _manifest(spec: SyntheticRun, out: Path, stages: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The run.json `satscope run` would write, built through the same type."""
    client = spec.kind == "client"
    end_s = ORIGIN_S + len(spec.levels) * spec.stage_s
    kind = "open" if spec.open_loop else "closed"
    shape = [  # satscope.loadgen.shapes.Stage.to_json, as LoadgenConfig carries it
        {"name": st["name"], "duration_s": spec.stage_s, "load": float(level), "kind": kind, "profile": "hold",
         "load_end": None, "amplitude": 0.0, "period_s": 60.0, "spawn_rate": st["spawn_rate"],
         "arrival": "poisson", "arrival_cv": 1.0}
        for st, level in zip(stages, spec.levels, strict=True)
    ]  # fmt: skip
    workers = len(spec.worker_lag_s)
    manifest = Manifest(
        run_id=out.name,
        status="complete",
        command=["satscope", "run", "--synthetic", spec.kind],
        config={
            "target_url": "http://127.0.0.1:8000",
            "run_dir": str(out),
            "shape": shape,
            "workload": {"prompt": spec.prompt_text, "max_tokens": spec.output_tokens, "seed": spec.seed},
            "endpoint": "completions",
            "model": spec.model,
            "stream": True,
            "workers": workers,
        },
        target={
            "url": "http://127.0.0.1:8000",
            "endpoint": "completions",
            "model": spec.model,
            "served_by": "external",
        },
        versions={"satscope": "0.1.0", "python": "3.11", "locust": None, "torch": None},
        host={"hostname": "synthetic", "cpu_count": 2, "platform": "linux", "memory_bytes": 8 << 30},
        clock=Clock(ORIGIN_S, 1_790_000_000.0),
        start_s=ORIGIN_S,
        end_s=end_s,
        stages=[StageRecord(**{"profile": "hold", **st}) for st in stages],
        validity=Validity(missing_probes=[] if spec.gpu or not spec.probes else ["gpu"], notes=list(spec.extra_notes)),
        loadgen=LoadgenFigures(
            requests_sent=n,
            records_written=n,
            workers=workers,
            cpu_max=0.99 if client else 0.4,
            cpu_p90=0.99 if client else 0.3,
            loop_lag_p99_s=0.002,
            max_in_flight=float(max(spec.levels)),
        ),
        files=[MANIFEST_FILE, REQUESTS_FILE, TOKENS_FILE]
        + ([SAMPLES_FILE, PROBES_FILE] if spec.probes else [])
        + ([LOADGEN_FILE] if spec.worker_lag_s or client else []),
    )
    return manifest.to_json()
