"""Little's law per load level: a consistency test of the measurement, never of the server.

Over a level's span [a, b) of length T, from the records of every request sent:

- L, requests in flight on average: the time each request spent in flight within the span
  (from its ``start`` and ``end``), summed, over T;
- X, throughput: requests that ended in the span (any status) per second;
- W, their mean latency: the recorded ``e2e_s`` (from the actual send), which every latency
  figure of the report is built from.

When the records agree with themselves L = X·W up to the requests straddling the span's edges:
with A the time within the span of those still in flight at b and B the time before a of those
that started before it and ended in it, L − X·W = (A − B)/T exactly, so |L − X·W| ≤ max(A, B)/T.
That bound, measured from the level's own straddling requests, plus 1% for clock rounding, is the
tolerance; a level past it has latencies that do not match its timeline (records doctored or
written by a broken clock or client), and the report says so as a validity warning.

Closed loop, L should also be about the users: a level's own requests cannot have more in flight
than its users (2% slack), and all of them together should not have fewer than the users less
``CLIENT_IDLE_SHARE`` (the client's turn-around between a user's requests), the users still being
spawned (``spawn_rate``, from run.json) and the count noise √n·W/T of its n requests. Levels with
sessions (think time between turns), a ``--max-requests`` quota or an error rate of
``error_rate`` or more (a failed request's user pauses) are not held to it, nor the level that
starts where a warm-up ended (its requests in flight then were left out with the warm-up). Only
hold-stage levels are checked: a pooled level (``load_bins``) has no single span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._stats import clean
from satscope.reports._thresholds import THRESHOLDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLIENT_IDLE_SHARE", "level_little", "little_block", "little_warnings"]

CLIENT_IDLE_SHARE = 0.10  # closed loop: a user may be idle this share of the time between requests
CLOCK_SHARE = 0.01  # of L: rounding of the recorded times
OVER_USERS_SHARE = 0.02


def level_little(start: Any, end: Any, e2e: Any, a: float, b: float) -> dict[str, float]:
    """L, X, W, X·W and the edge tolerance over [a, b) from the requests' start, end and e2e_s."""
    import numpy as np

    s, e, w = (np.asarray(v, dtype=float) for v in (start, end, e2e))
    span = max(b - a, 1e-9)
    inside = np.clip(np.minimum(e, b) - np.maximum(s, a), 0.0, None)
    in_flight = float(inside.sum()) / span
    done = (e >= a) & (e < b)
    x = float(done.sum()) / span
    mean_w = float(w[done].mean()) if done.any() else float("nan")
    little = x * mean_w if done.any() else 0.0
    out_edge = float(np.where((s < b) & (e >= b), b - np.maximum(s, a), 0.0).sum())
    in_edge = float(np.where(done & (s < a), a - s, 0.0).sum())
    tolerance = max(out_edge, in_edge) / span + CLOCK_SHARE * max(in_flight, little)
    return {
        "in_flight_mean": in_flight,
        "throughput_per_s": x,
        "latency_mean_s": mean_w,
        "in_flight_little": little,
        "tolerance": tolerance,
    }


def _ramp_deficit(manifest: dict[str, Any], stage: Any, users: float, span: float) -> float:
    """Users missing on average over the span while the step up to ``users`` was being spawned."""
    stages = manifest.get("stages") or []
    names = [s.get("name") for s in stages]
    if stage not in names:
        return 0.0
    i = names.index(stage)
    before = float(stages[i - 1].get("users") or 0.0) if i > 0 else 0.0
    rate = stages[i].get("spawn_rate") or max(10.0, users)
    added = max(users - before, 0.0)
    ramp_s = min(added / float(rate), span)
    return added * ramp_s / 2.0 / max(span, 1e-9)


def _users_check(row: Any, own: pd.DataFrame, figures: dict[str, float], ctx: dict) -> dict:
    import math

    users = float(row.offered_load)
    a, b = float(row.start_at_s), float(row.end_at_s)
    span = max(b - a, 1e-9)
    failed = float((~own["ok"]).mean()) if len(own) else 0.0
    if ctx["skip_users"] or failed >= THRESHOLDS.error_rate:
        return {"users": users, "users_in_flight_low": None, "users_consistent": None}
    own_l = level_little(own["start"], own["end"], own["e2e_s"], a, b)["in_flight_mean"]
    # the count noise of the in-flight average, were the requests' times independent: √n · W / T
    noise = math.sqrt(figures["throughput_per_s"] * span) * (figures["latency_mean_s"] or 0.0) / span
    low = users * (1.0 - CLIENT_IDLE_SHARE) - _ramp_deficit(ctx["manifest"], row.stage, users, span) - noise
    ok = figures["in_flight_mean"] >= low and own_l <= users * (1.0 + OVER_USERS_SHARE) + 1e-9
    return {"users": users, "users_in_flight_low": max(low, 0.0), "users_consistent": bool(ok)}


def little_block(
    levels: pd.DataFrame,
    method: str,
    req: pd.DataFrame,
    kind: str,
    manifest: dict,
    warmup_end_at_s: float | None = None,
) -> dict[str, Any]:
    """The ``little`` block of summary.json (docs/summary-format.md). A level that starts where the
    warm-up ended is not held to its users: the requests in flight then were left out with the warm-up."""
    if method != "stages":
        return {"checked": False, "reason": "levels pooled from windows have no single span", "levels": []}
    sent = req[req["sent"] & req["start"].notna() & req["end"].notna()]
    has_sessions = "session_id" in sent and bool(sent["session_id"].notna().any())
    config = manifest.get("config") or {}
    ctx = {
        "manifest": manifest,
        "skip_users": kind != "users" or has_sessions or bool(config.get("max_requests")),
    }
    rows = []
    for row in levels.itertuples(index=False):
        if row.stage is None or not row.end_at_s > row.start_at_s:
            continue
        figures = level_little(sent["start"], sent["end"], sent["e2e_s"], float(row.start_at_s), float(row.end_at_s))
        consistent = abs(figures["in_flight_mean"] - figures["in_flight_little"]) <= figures["tolerance"]
        item: dict[str, Any] = {"stage": row.stage, "offered_load": clean(row.offered_load)}
        item |= {k: clean(v) for k, v in figures.items()}
        item["consistent"] = bool(consistent)
        after_warmup = warmup_end_at_s is not None and float(row.start_at_s) <= warmup_end_at_s + 1e-6
        if kind == "users" and not after_warmup:
            item |= _users_check(row, sent[sent["stage"] == row.stage], figures, ctx)
        else:
            users = clean(row.offered_load) if kind == "users" else None
            item |= {"users": users, "users_in_flight_low": None, "users_consistent": None}
        rows.append(item)
    ok = all(r["consistent"] and r["users_consistent"] is not False for r in rows)
    reason = None if rows else "no hold stage with a span"
    return {"checked": bool(rows), "reason": reason, "consistent": ok if rows else None, "levels": rows}


def little_warnings(block: dict[str, Any]) -> list[dict[str, str]]:
    """Validity warnings (severity ``warning``): the levels where the records disagree with themselves."""
    out = []
    for r in block["levels"]:
        if not r["consistent"]:
            out.append(
                {
                    "code": "little_law_mismatch",
                    "severity": "warning",
                    "message": (
                        f"Little's law does not hold at stage {r['stage']}: {r['in_flight_mean']:.3g} requests in "
                        f"flight on average by the records' start and end times, but throughput × mean latency is "
                        f"{r['throughput_per_s']:.3g}/s × {r['latency_mean_s'] or 0:.3g} s = "
                        f"{r['in_flight_little']:.3g} (tolerance ±{r['tolerance']:.2g} from the requests straddling "
                        "the stage's edges): the recorded latencies do not match the timeline"
                    ),
                }
            )
        if r["users_consistent"] is False:
            out.append(
                {
                    "code": "users_not_in_flight",
                    "severity": "warning",
                    "message": (
                        f"at {r['users']:g} users (stage {r['stage']}) {r['in_flight_mean']:.3g} requests were in "
                        f"flight on average, expected {r['users_in_flight_low']:.3g} to {r['users']:g}: the load "
                        "generator did not keep its users busy (or recorded more than it ran)"
                    ),
                }
            )
    return out
