"""How much of the prompt the server took from its prompt cache, and a warning when that was not asked.

A prompt-cache hit skips prefill, so TTFT and throughput look better than the workload would get
cold. ``requests.parquet`` has ``prompt_tokens_cached`` where the server reported it
(``usage.prompt_tokens_details.cached_tokens``); a high share in a run whose workload asked for no
shared prefixes (``--prefix-groups``) nor sessions (``--turns``, whose later turns repeat the
history) usually means the same prompts were sent before (a repeated ``--seed``) and the figures
are biased. Every prompt of a run starts with the same few tokens of
the server's prompt format (BOS, a chat template's opening): those hits are expected, so the
warning judges only cached tokens beyond the calibrated per-prompt overhead
(``config.workload.prompt_overhead_tokens``, at least one token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satscope.reports._measures import cached_prompt_tokens

if TYPE_CHECKING:
    from satscope.reports._load import RunData

__all__ = ["CACHED_SHARE_WARN", "prompt_cache_warnings"]

CACHED_SHARE_WARN = 0.2  # of prompt tokens, over the ok requests that reported it


def prompt_cache_warnings(run: RunData) -> list[dict[str, str]]:
    """One validity entry with the cached share (``warning`` when high and not asked for); none
    when the server reported no cached counts."""
    r = run.requests
    cached_all, prompt_all, reported = cached_prompt_tokens(r)
    rows = reported & (r["status"] == "ok").to_numpy()
    prompt = float(prompt_all[rows].sum())
    if not rows.any() or prompt <= 0:
        return []
    cached = cached_all[rows]
    share = float(cached.sum()) / prompt
    workload = (run.manifest.get("config") or {}).get("workload") or {}
    # shared prefixes, or sessions (--turns): a later turn repeats the session's history, cached or not
    asked = int(workload.get("prefix_groups") or 0) > 0 or int(workload.get("turns") or 1) > 1
    format_tokens = max(1.0, float(workload.get("prompt_overhead_tokens") or 0.0))
    beyond = float((cached - format_tokens).clip(min=0.0).sum()) / prompt
    text = (
        f"the server took {share:.0%} of prompt tokens from its prompt cache ({beyond:.0%} beyond the "
        f"prompt format's first {format_tokens:g} tokens; {int(rows.sum())} requests reported it)"
    )
    if beyond >= CACHED_SHARE_WARN and not asked:
        fix = "the workload asked for no shared prefixes, so TTFT is better than cold prompts get; rerun without --seed"
        return [{"code": "prompt_cache_hits", "severity": "warning", "message": f"{text}; {fix}"}]
    return [{"code": "prompt_cache", "severity": "info", "message": text}]
