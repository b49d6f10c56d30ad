"""Multi-turn sessions (``--turns``): TTFT by turn number, and what the sessions achieved.

Turn k carries the history of turns 1 … k−1 (their prompts and the server's answers), so its
prompt grows with k; TTFT by turn shows what the longer prefill (or a prompt cache that spares it)
costs. The figures come from the ``session_id`` and ``turn`` columns of requests.parquet; a run
without sessions has none (``sessions`` is null in summary.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.reports._stats import clean, distribution

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["sessions_block"]


def sessions_block(req: pd.DataFrame, workload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``sessions`` block of summary.json from the request frame (``satscope/reports/_requests.py``);
    ``workload`` is run.json's ``config.workload``: its ``turns`` (> 1) is how many a complete
    synthetic session has; a conversation file's sessions have as many as their conversation, which
    the run does not record, so for them a session counts as complete when no turn of it failed."""
    if "session_id" not in req or not req["session_id"].notna().any():
        return None
    rows = req[req["session_id"].notna()]
    configured = int((workload or {}).get("turns") or 1)
    turns = configured if configured > 1 else None
    per_turn = []
    for turn, group in rows.groupby("turn", sort=True):
        ok = group[group["ok"]]
        per_turn.append(
            {
                "turn": int(turn),
                "requests": len(group),
                "requests_ok": len(ok),
                "prompt_tokens_mean": clean(ok["prompt_tokens"].astype("float64").mean()) if len(ok) else None,
                "ttft_s": distribution(ok["ttft_s"]),
            }
        )
    by_session = rows.groupby("session_id", sort=False)
    turns_ok = by_session["ok"].sum()
    complete = turns_ok[turns_ok >= turns].index if turns is not None else turns_ok[by_session["ok"].all()].index
    span = by_session["end"].max() - by_session["intended_start"].min()
    return {
        "sessions": len(turns_ok),
        "turns_per_session": turns,
        "sessions_complete": len(complete),
        "mean_turns_completed": float(turns_ok.mean()),
        "session_duration_s": distribution(span.loc[complete]),
        "per_turn": per_turn,
    }
