"""The report's sessions section: TTFT by turn and what the sessions achieved (from ``summary["sessions"]``)."""

from __future__ import annotations

from typing import Any

from satscope.reports._html import Section, Table

__all__ = ["sessions_section"]


def sessions_section(summary: dict[str, Any]) -> list[Section]:
    """One section with a row per turn number, or none when the run had no sessions."""
    block = summary.get("sessions")
    if not block:
        return []
    duration = block["session_duration_s"]
    per = "" if block["turns_per_session"] is None else f" of {block['turns_per_session']} turns"
    text = (
        f"{block['sessions']} sessions{per}, {block['sessions_complete']} complete, "
        f"{block['mean_turns_completed']:.2f} turns completed on average; complete sessions took "
        f"{_s(duration['p50'])} (p50) to {_s(duration['p99'])} (p99), think times included. Turn k carries "
        "turns 1 … k−1 and the server's answers, so its prompt grows with k."
    )
    rows = [
        [str(t["turn"]), f"{t['requests_ok']}/{t['requests']}", _tokens(t["prompt_tokens_mean"]),
         _s(t["ttft_s"]["p50"]), _s(t["ttft_s"]["p99"])]
        for t in block["per_turn"]
    ]  # fmt: skip
    table = Table(["turn", "ok / sent", "prompt tokens (mean)", "TTFT p50", "TTFT p99"], rows)
    return [Section("Sessions: TTFT by turn", paragraphs=[text], table=table)]


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g} s"


def _tokens(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"
