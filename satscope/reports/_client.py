"""Was the load generator, not the server, the limit? Judged per worker from what it recorded.

A worker that runs out of CPU, or whose event loop lags, delays its reads and so inflates the
latencies it reports; an open loop that leaves late offers less than it was asked to. Each matters
in proportion to what is measured: loop lag against the inter-token gaps (the finest figure timed),
lateness against the time to first token. Latency from the intended send already counts lateness,
so a few late dispatches do not invalidate a run. Figures come from ``loadgen.parquet`` and
``requests.parquet``; a run without ``loadgen.parquet`` keeps the flag its ``run.json`` recorded.
Whether this verdict wins over the server's is decided in ``satscope.reports._bottleneck``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._evidence import LABELS, evidence_item, miss
from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["client_rule"]

T = THRESHOLDS


def _p(values: Any, q: float) -> float | None:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.quantile(v, q)) if len(v) else None


def _worker_of(labels: str) -> str:
    parts = dict(p.split("=", 1) for p in str(labels).split(",") if "=" in p)
    return parts.get("worker", str(labels) or "local")


def _judge_worker(
    name: str, samples: pd.DataFrame, req: pd.DataFrame, itl_p50: float | None
) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """(reasons, evidence, figures) for one worker."""
    cpu = _p(samples.loc[samples["metric"] == "loadgen_cpu", "value"], 0.9)
    lag = _p(samples.loc[samples["metric"] == "loadgen_loop_lag_s", "value"], 0.9)
    mine = req[req["worker"].astype(str) == name] if "worker" in req else req.iloc[0:0]
    ttft_p50 = _p(mine.loc[mine["ok"], "ttft_s"], 0.5)
    late_s = (mine["start"] - mine["intended_start"]).to_numpy(dtype=float)
    open_loop = bool(len(late_s)) and bool((late_s > 1e-6).any())
    figures: dict[str, Any] = {"worker": name, "cpu_p90": cpu, "loop_lag_p90_s": lag, "dispatched": len(mine)}
    reasons: list[str] = []
    ev: list[dict[str, Any]] = []
    if cpu is not None and cpu >= T.client_cpu_p90:
        reasons.append(f"worker {name}: CPU p90 {cpu:.0%} of a core (limit {T.client_cpu_p90:.0%})")
        ev.append(evidence_item("loadgen_cpu_p90", cpu, T.client_cpu_p90, ">=", None, None, reasons[-1]))
    scale = itl_p50 if itl_p50 else ttft_p50
    if lag is not None and lag >= T.client_loop_lag_p90_s and (not scale or lag >= T.client_lag_vs_itl * scale):
        against = f", {lag / scale:.1f}x the {'ITL' if itl_p50 else 'TTFT'} p50 measured" if scale else ""
        reasons.append(
            f"worker {name}: event-loop lag p90 {lag * 1e3:.0f} ms "
            f"(limit {T.client_loop_lag_p90_s * 1e3:.0f} ms{against})"
        )
        ev.append(evidence_item("loadgen_loop_lag_p90_s", lag, T.client_loop_lag_p90_s, ">=", None, None, reasons[-1]))
    if open_loop and ttft_p50:
        limit_s = T.client_late_vs_ttft * ttft_p50
        late = int((late_s > limit_s).sum())
        share = late / len(late_s)
        figures |= {"late_dispatches": late, "late_limit_s": limit_s, "late_max_s": float(late_s.max())}
        if share >= T.client_late_share:
            reasons.append(
                f"worker {name}: {late} of {len(late_s)} open-loop dispatches ({share:.0%}, limit "
                f"{T.client_late_share:.0%}) left over {limit_s * 1e3:.0f} ms late (half the TTFT p50)"
            )
            ev.append(evidence_item("late_dispatch_share", share, T.client_late_share, ">=", None, None, reasons[-1]))
    return reasons, ev, figures


def client_rule(run: RunData, req: pd.DataFrame, itl_p50: float | None, spare_cores: bool) -> dict[str, Any]:
    """The client candidate (``hit``/``miss`` shape of the other rules) plus ``workers`` figures."""
    lg = run.loadgen
    if lg is None:
        return _from_manifest(run.manifest)
    start, end = run.manifest.get("start_s"), run.manifest.get("end_s")
    s = lg
    if start is not None and end is not None:  # start-up and the final flush are not load
        s = lg[(lg["t"] >= float(start) - run.origin_s) & (lg["t"] <= float(end) - run.origin_s)]
    names = sorted({_worker_of(x) for x in s["labels"].unique()} | set(req["worker"].astype(str).unique()))
    reasons, evidence, workers = [], [], []
    for name in names:
        mine = s[s["labels"].map(_worker_of) == name]
        r, e, f = _judge_worker(name, mine, req, itl_p50)
        reasons += r
        evidence += e
        workers.append(f)
    if not reasons:
        out = miss("client", "every load-generator worker kept up (CPU, event-loop lag and dispatch lateness)")
        return out | {"workers": workers}
    advice = "add --workers" if spare_cores else "run the load generator where cores are free"
    return {
        "kind": "client",
        "label": LABELS["client"],
        "hit": True,
        "at_s": None,
        "stage": None,
        "sentence": "client (load generator) saturated, so the server's limit was not measured: "
        + "; ".join(reasons)
        + f"; {advice}",
        "evidence": evidence,
        "reason_not": None,
        "workers": workers,
    }


def _from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """An old run without loadgen.parquet: the orchestrator's recorded judgement is all there is."""
    validity = manifest.get("validity") or {}
    if not validity.get("loadgen_saturated"):
        return miss("client", "no loadgen.parquet, and run.json does not mark the load generator saturated") | {
            "workers": []
        }
    reason = validity.get("loadgen_saturated_reason") or "no reason recorded"
    text = f"load generator saturated (recorded in run.json): {reason}"
    return {
        "kind": "client",
        "label": LABELS["client"],
        "hit": True,
        "at_s": None,
        "stage": None,
        "sentence": f"client (load generator) saturated, so the server's limit was not measured: {reason}",
        "evidence": [evidence_item("loadgen_saturated", True, None, "==", None, None, text)],
        "reason_not": None,
        "workers": [],
    }
