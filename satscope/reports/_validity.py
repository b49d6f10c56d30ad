"""What a reader must know before trusting the figures: validity warnings and probe coverage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._prompt_cache import prompt_cache_warnings

if TYPE_CHECKING:
    import pandas as pd

    from satscope.reports._load import RunData

__all__ = ["probes_block", "validity_block"]


def probes_block(run: RunData) -> dict[str, Any]:
    """The `probes` block: which sources and metrics the run has, and which are missing."""
    s = run.samples
    validity = run.manifest.get("validity") or {}
    unavailable = dict(run.probes.get("unavailable") or {})
    missing = list(dict.fromkeys([*(validity.get("missing_probes") or []), *unavailable]))
    return {
        "present": bool(len(s)),
        "sources": sorted(s["source"].unique().tolist()) if len(s) else [],
        "metrics": sorted(s["metric"].unique().tolist()) if len(s) else [],
        "missing": missing,
        "unavailable": {str(k): str(v) for k, v in unavailable.items()},
    }


def validity_block(
    run: RunData, req: pd.DataFrame, levels: int, bottleneck: dict[str, Any], host_warning: str | None
) -> dict[str, Any]:
    """The `validity` block; ``ok`` is false when any warning has severity ``error``.

    The client is judged again from the run's data (``satscope.reports._client``); the run.json flag is
    only the fallback for runs without loadgen.parquet.
    """
    m = run.manifest
    v = m.get("validity") or {}
    lg = m.get("loadgen") or {}
    warnings: list[dict[str, str]] = []

    def warn(code: str, severity: str, message: str) -> None:
        warnings.append({"code": code, "severity": severity, "message": message})

    if not req["ok"].any():
        warn("no_successful_requests", "error", f"none of the {len(req)} requests ended ok: nothing was measured")
    client = next((c for c in bottleneck.get("candidates", []) if c["kind"] == "client"), None)
    if client is not None and client["hit"]:
        reason = client["sentence"].split(": ", 1)[-1]
        if bottleneck["kind"] == "client":
            warn("loadgen_saturated", "error", f"the load generator was saturated, so it limited the load: {reason}")
        else:
            warn(
                "loadgen_strained",
                "warning",
                f"the load generator struggled ({reason}), but the server's own evidence decides the verdict",
            )
    if host_warning:
        warn("host_contended", "warning", host_warning)
    if v.get("interrupted"):
        warn("interrupted", "warning", "the run was interrupted; the last stage may be cut short")
    if m.get("status") not in (None, "complete"):
        warn("run_not_complete", "warning", f"run status is {m.get('status')!r}")
    mismatches = int(v.get("token_mismatches") or req["token_mismatch"].sum())
    if mismatches:
        warn(
            "token_mismatches",
            "warning",
            f"{mismatches} requests' usage token count disagrees with the chunks "
            "counted; tokens/s uses usage, ITL uses chunks",
        )
    failed = int((req["sent"] & ~req["ok"]).sum())
    if failed:
        warn("target_errors", "warning", f"{failed} of {int(req['sent'].sum())} requests did not end ok")
    dropped = int((~req["sent"]).sum())
    if dropped:
        warn("dropped_requests", "warning", f"{dropped} scheduled requests were dropped by the load generator")
    if lg.get("late_dispatches"):
        warn(
            "late_dispatches",
            "info",
            f"{lg['late_dispatches']} open-loop dispatches left late; latency from the intended send counts it",
        )
    probes = probes_block(run)
    if probes["missing"]:
        reasons = "; ".join(
            f"{k}: {probes['unavailable'][k]}" if k in probes["unavailable"] else k for k in probes["missing"]
        )
        warn(
            "missing_probes", "warning", f"probe sources missing ({reasons}); verdicts that need them are not possible"
        )
    if not probes["present"]:
        warn("no_samples", "warning", "no probe samples: the verdict cannot name a server resource")
    if levels < 3:
        warn("few_levels", "info", f"only {levels} load level(s): the saturation point is weakly determined")
    warnings.extend(prompt_cache_warnings(run))
    for note in v.get("notes") or []:
        warn("note", "info", str(note))
    return {"ok": not any(w["severity"] == "error" for w in warnings), "warnings": warnings}
