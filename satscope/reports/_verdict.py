"""The verdict: saturation point, the knee past it, the safe operating point and the bottleneck,
each with its figures; loads named as a reader would say them (``round_load``)."""

from __future__ import annotations

from typing import Any

from satscope.reports._saturation import round_load
from satscope.reports._search import bracket_sentence

__all__ = ["verdict_sentence"]


def _num(value: Any, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _load(value: Any, kind: str) -> str:
    if value is None:
        return "an unknown load"
    named = round_load(value)
    return f"{named:g} req/s offered" if kind == "rate_rps" else f"{named:g} users"


def _where(level: dict[str, Any], kind: str) -> str:
    where = _load(level["offered_load"], kind)
    return where + (f" (stage {level['stage']})" if level.get("stage") else "")


def _figures(level: dict[str, Any], kind: str) -> str:
    rate = (
        f"dispatched {_num(level.get('dispatched_per_s'), '.2g')}, "
        f"served {_num(level.get('served_per_s'), '.2g')} req/s"
        if kind == "rate_rps" and level.get("served_per_s") is not None
        else f"{_num(level.get('requests_per_s'), '.2g')} req/s"
    )
    return (
        f"{rate}, {_num(level.get('output_tokens_per_s'), '.0f')} output tokens/s, TTFT p99 "
        f"{_num(level.get('ttft_p99_s'), '.3g', ' s')}, ITL p99 {_num(level.get('itl_p99_s'), '.3g', ' s')}"
    )


def _head(sat: dict[str, Any], kind: str) -> str:
    knee = sat.get("knee")
    if not sat["found"]:
        return f"No saturation up to {_where(sat, kind)}: {_figures(sat, kind)}"
    if kind == "rate_rps" and knee is not None:
        past = (
            f"at {_where(knee, kind)} it served only {_num(sat.get('sustainable_per_s'), '.2g')} req/s, "
            "the most it sustained"
        )
        if sat["offered_load"] is None:
            return f"Saturated from the lowest level: {past}"
        return f"Saturates at {_where(sat, kind)}: {_figures(sat, kind)}; {past}"
    head = f"Saturates at {_where(sat, kind)}: {_figures(sat, kind)}"
    if knee is not None:
        head += f"; throughput stopped scaling at {_where(knee, kind)}: {_figures(knee, kind)}"
    return head


def _safe(sat: dict[str, Any], kind: str) -> str:
    safe = sat.get("safe")
    if not safe:
        return ""
    why = safe.get("next_level_issue")
    if safe["offered_load"] is None:
        return f" No level was a safe operating point: {why} already at the lowest load." if why else ""
    same = safe["offered_load"] == sat["offered_load"] and safe["stage"] == sat["stage"]
    text = " It is also the safe operating point" if same else f" Safe operating point {_where(safe, kind)}: "
    text += "" if same else _figures(safe, kind)
    return text + (f"; the next level had {why}." if why else " (no preemptions, queue or tail-latency jump).")


def verdict_sentence(summary: dict[str, Any]) -> str:
    """E.g. ``Saturates at 8 users (stage users-8): 11 req/s, 349 output tokens/s, TTFT p99 0.11 s,
    ITL p99 0.021 s; throughput stopped scaling at 16 users ... Safe operating point 4 users ...
    Bottleneck: KV cache full: usage 97% at 30.0 s ...``"""
    sat = summary["saturation"]
    kind = sat["load_kind"]
    if not summary["run"]["requests_ok"]:
        head, safe = f"No request succeeded ({summary['run']['requests_total']} sent)", ""
    elif sat["offered_load"] is None and not sat.get("knee"):
        head, safe = "No load level to analyse", ""
    else:
        head, safe = _head(sat, kind), _safe(sat, kind)
    bn = summary["bottleneck"]
    tail = f"Bottleneck: {bn['sentence']}"
    good = summary["goodput"]
    if good["best_goodput_per_s"] is not None:
        tail += (
            f". Best goodput {good['best_goodput_per_s']:.2f} req/s within SLO at "
            f"{_load(good['best_offered_load'], kind)}"
        )
    return f"{head}.{safe}{bracket_sentence(summary.get('search'), sat)} {tail}."
