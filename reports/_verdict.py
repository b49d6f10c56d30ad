"""The one-sentence verdict: saturation point and bottleneck, with the figures."""

from __future__ import annotations

from typing import Any

__all__ = ["verdict_sentence"]


def _num(value: Any, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _load(value: Any, kind: str) -> str:
    if value is None:
        return "an unknown load"
    return f"{value:.3g} req/s offered" if kind == "rate_rps" else f"{value:g} users"


def verdict_sentence(summary: dict[str, Any]) -> str:
    """E.g. ``Saturates at 8 users (stage users-8): 10.9 req/s, 349 output tokens/s, TTFT p99
    0.11 s, ITL p99 0.021 s. Bottleneck: KV cache full: usage 97% at 30.0 s ...``"""
    sat = summary["saturation"]
    where = _load(sat["offered_load"], sat["load_kind"])
    if sat["stage"]:
        where += f" (stage {sat['stage']})"
    figures = (
        f"{_num(sat['requests_per_s'], '.1f')} req/s, {_num(sat['output_tokens_per_s'], '.0f')} output "
        f"tokens/s, TTFT p99 {_num(sat['ttft_p99_s'], '.3g', ' s')}, ITL p99 {_num(sat['itl_p99_s'], '.3g', ' s')}"
    )
    if not summary["run"]["requests_ok"]:
        head = f"No request succeeded ({summary['run']['requests_total']} sent)"
    elif sat["offered_load"] is None:
        head = "No load level to analyse"
    elif sat["found"]:
        head = f"Saturates at {where}: {figures}"
    else:
        head = f"No saturation up to {where}: {figures}"
    bn = summary["bottleneck"]
    tail = f"Bottleneck: {bn['sentence']}"
    good = summary["goodput"]
    if good["best_goodput_per_s"] is not None:
        tail += (
            f". Best goodput {good['best_goodput_per_s']:.2f} req/s within SLO at "
            f"{_load(good['best_offered_load'], sat['load_kind'])}"
        )
    return f"{head}. {tail}."
