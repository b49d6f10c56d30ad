"""Prefix-cache figures through the whole report: a synthetic KV-cache run given the server's
prefix-cache samples (and the answers' cached-token counts) gets them in its windows and stages, the
verdict names the eviction when the hit rate fell with the pool full, and the timeline draws the
prefix-cache panels only for a run that has them."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from satscope.reports import analyze, build_report
from satscope.reports._samples import window_samples
from satscope.reports._synthetic import ORIGIN_S, SyntheticRun
from satscope.run_format import REQUESTS_FILE, SAMPLES_FILE, requests_schema, samples_schema, write_parquet_atomic

SPEC = SyntheticRun()  # kind kv_cache: the pool fills from the knee (8 users) on
QUERIED_PER_USER = 100.0  # prompt tokens/s looked up in the prefix cache per user below the knee


def _hit_rate(load: np.ndarray, fall: bool) -> np.ndarray:
    return np.where((load >= SPEC.knee_load) & fall, 0.15, 0.6)


def with_prefix_cache(run: Path, fall: bool = True, labels: tuple[str, ...] = ("",)) -> Path:
    """Add the server's prefix-cache samples (per label set: an engine each) and the answers' counts."""
    samples = pd.read_parquet(run / SAMPLES_FILE)
    t = np.sort(samples.loc[samples["metric"] == "kv_cache_usage", "t"].to_numpy())
    load = np.asarray(SPEC.levels, dtype=float)[np.clip(((t - ORIGIN_S) // SPEC.stage_s).astype(int), 0, 5)]
    hit = _hit_rate(load, fall)
    queried = QUERIED_PER_USER * np.minimum(load, SPEC.knee_load) / len(labels)
    rows = [
        pd.DataFrame({"t": t, "source": "server", "metric": metric, "value": value, "labels": label})
        for label in labels
        for metric, value in (
            ("prefix_cache_hit_rate", hit),
            ("prefix_cache_query_tokens_per_s", queried),
            ("prefix_cache_hit_tokens_per_s", hit * queried),
        )
    ]
    table = pa.Table.from_pandas(pd.concat([samples, *rows], ignore_index=True), preserve_index=False)
    write_parquet_atomic(run / SAMPLES_FILE, table.cast(samples_schema()))
    req = pd.read_parquet(run / REQUESTS_FILE)
    cached = np.round(req["prompt_tokens"].astype(float) * _hit_rate(req["offered_load"].to_numpy(), fall))
    req["prompt_tokens_cached"] = pd.array(cached.where(req["status"] == "ok"), dtype="Int32")
    write_parquet_atomic(run / REQUESTS_FILE, pa.Table.from_pandas(req, requests_schema(), preserve_index=False))
    return run


def _stages(summary: dict) -> dict[float, dict]:
    return {st["offered_load"]: st for st in summary["stages"]}


def test_stages_carry_the_hit_rate_prefill_and_cached_share(scratch_run: Callable[..., Path]) -> None:
    s = analyze(with_prefix_cache(scratch_run(kind="kv_cache")))
    for load, st in _stages(s).items():
        hit = 0.15 if load >= SPEC.knee_load else 0.6
        queried = QUERIED_PER_USER * min(load, SPEC.knee_load)
        assert st["prefix_cache_hit_rate_mean"] == pytest.approx(hit)
        assert st["prefill_tokens_per_s"] == pytest.approx(queried * (1 - hit))  # queried less found
        assert st["prompt_tokens_cached_share"] == pytest.approx(hit, abs=0.01)


def test_eviction_refines_the_kv_cache_verdict(scratch_run: Callable[..., Path]) -> None:
    s = analyze(with_prefix_cache(scratch_run(kind="kv_cache")))
    bn = s["bottleneck"]
    cand = {c["kind"]: c for c in bn["candidates"]}
    assert cand["kv_cache"]["hit"] and bn["kind"] == "prefix_cache", s["verdict"]
    # at 8 users the hit rate fell but TTFT had not climbed yet; at 16 it had (the queue)
    assert (
        bn["stage"] == "users-16" and "hit rate fell from 60% at 4 users (stage users-4) to 15% at 16" in s["verdict"]
    )
    assert "the answers reported 60% → 15% of prompt tokens cached" in bn["sentence"]


def test_a_hit_rate_that_held_leaves_kv_cache_the_verdict(scratch_run: Callable[..., Path]) -> None:
    s = analyze(with_prefix_cache(scratch_run(kind="kv_cache"), fall=False))
    cand = {c["kind"]: c for c in s["bottleneck"]["candidates"]}
    assert s["bottleneck"]["kind"] == "kv_cache" and cand["prefix_cache"]["reason_not"].startswith("the hit rate held")


def test_token_rates_add_up_across_engines_and_the_hit_rate_is_averaged() -> None:
    t = np.repeat([0.2, 0.7], 2)
    samples = pd.DataFrame(
        {
            "t": np.tile(t, 3),
            "source": "server",
            "metric": np.repeat(
                ["prefix_cache_hit_rate", "prefix_cache_query_tokens_per_s", "prefix_cache_hit_tokens_per_s"], 4
            ),
            "value": [0.2, 0.6, 0.2, 0.6] + [100.0, 300.0] * 2 + [20.0, 180.0] * 2,
            "labels": ["engine=0", "engine=1"] * 6,
        }
    )
    w = window_samples(samples, 1.0)
    assert w.loc[0, "prefix_cache_hit_rate"] == pytest.approx(0.4)
    assert w.loc[0, "prefix_cache_query_tokens_per_s"] == pytest.approx(400.0)
    assert w.loc[0, "prefill_tokens_per_s"] == pytest.approx(400.0 - 200.0)
    # without the lookups, the server's own prompt tokens/s (llama.cpp's leave the cached ones out)
    prompt = samples.assign(
        metric=samples["metric"].replace({"prefix_cache_query_tokens_per_s": "prompt_tokens_per_s"})
    )
    assert window_samples(prompt, 1.0).loc[0, "prefill_tokens_per_s"] == pytest.approx(400.0)
    none = samples[samples["metric"] == "prefix_cache_hit_rate"]
    assert "prefill_tokens_per_s" not in window_samples(none, 1.0)


def _timeline(html: Path) -> dict:
    """The timeline figure's JSON out of the page."""
    blob = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html.read_text(), re.S)
    assert blob is not None
    return next(f for f in json.loads(blob.group(1))["figures"] if f["id"] == "fig-timeline")


def test_the_timeline_draws_prefix_cache_panels_only_when_sampled(
    synth: Callable[..., Path], scratch_run: Callable[..., Path], tmp_path: Path
) -> None:
    run = with_prefix_cache(scratch_run(kind="kv_cache"), labels=("engine=0", "engine=1"))
    fig = _timeline(build_report(run, out=tmp_path / "with.html").html_path)
    names = [d["name"] for d in fig["data"]]
    assert "prefix-cache hit rate" in names
    cached = next(d for d in fig["data"] if d["name"] == "prompt tokens/s found there (cached)")
    queried = next(d for d in fig["data"] if d["name"] == "prompt tokens/s looked up in the prefix cache")
    assert cached["yaxis"] == queried["yaxis"]  # one panel
    assert max(y for y in queried["y"] if y is not None) == pytest.approx(SPEC.knee_load * QUERIED_PER_USER)
    bare_run = shutil.copytree(synth(kind="kv_cache"), tmp_path / "bare")
    bare = _timeline(build_report(bare_run, out=tmp_path / "bare.html").html_path)
    assert not any("prefix" in d["name"] for d in bare["data"])
    assert not any("prefix" in a["text"] for a in bare["layout"]["annotations"])  # not named as missing
