"""Run-to-run noise for regression rules: bootstrap confidence intervals from a run's raw rows.

A regression rule compares one summary figure between a candidate run and a baseline run. To
tell a real regression from noise, the gate goes back to each run's own rows: per-window counts
for rates (`*_tokens_per_s`, `requests_per_s`) and per-request values for latency percentiles
(`ttft_p99_s`, `percentiles.e2e_s.p90`, ...), restricted to the stage the figure belongs to, and
bootstraps the relative change between the two runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from satscope.reports._measures import prompt_time
from satscope.run_format import MANIFEST_FILE, REQUESTS_FILE, TOKENS_FILE, read_requests_table
from satscope.run_manifest import Manifest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["RunRows", "Sample", "bootstrap_relative_change", "load_rows", "sample_for"]

_COLUMNS = ("ttft", "ttft_intended", "ttfo", "ttfo_intended", "e2e", "e2e_intended", "itl")
_LEVEL = r"p(?P<q>\d+(?:_\d+)?)"  # p99, p99_9 (satscope/reports/_percentiles.py names levels so)
_LATENCY = re.compile(rf"^(?P<col>{'|'.join(_COLUMNS)})_{_LEVEL}_s$")
_RATES = ("output_tokens_per_s", "total_tokens_per_s", "requests_per_s")


@dataclass(slots=True)
class RunRows:
    """The rows of one run, on elapsed run time."""

    requests: pd.DataFrame
    tokens: pd.DataFrame | None
    spans: dict[str, tuple[float, float]]
    window_s: float
    run_span: tuple[float, float]


@dataclass(slots=True)
class Sample:
    """Values to resample and the statistic that turns them into the summary figure."""

    values: np.ndarray
    statistic: Callable[[np.ndarray], np.ndarray]  # applied along axis 1 of a (draws, n) matrix
    unit: str


def load_rows(run_dir: Path, summary: dict) -> RunRows:
    """Read what the noise model needs from a run directory (requests, tokens, clock)."""
    import pandas as pd

    origin = Manifest.from_json(json.loads((run_dir / MANIFEST_FILE).read_text())).clock.monotonic_origin_s
    # through the contract's reader: a file older than a column gets it (first_visible_token too)
    req = read_requests_table(run_dir / REQUESTS_FILE).to_pandas()[
        ["request_id", "stage", "status", "start", "intended_start", "first_token", "first_visible_token", "end",
         "prompt_tokens", "output_tokens", "output_chunks", "stream"]
    ]  # fmt: skip
    for col in ("start", "intended_start", "first_token", "first_visible_token", "end"):
        req[col] = req[col] - origin
    warmup_end = (summary.get("run") or {}).get("warmup_end_at_s")
    if warmup_end is not None:  # the summary's figures left the warm-up out: so does their noise
        req = req[req["intended_start"] >= float(warmup_end)]
    tok = None
    if (run_dir / TOKENS_FILE).exists():
        tok = pd.read_parquet(run_dir / TOKENS_FILE, columns=["request_id", "index", "t"])
        tok["t"] = tok["t"] - origin
        tok = tok[tok["request_id"].isin(req["request_id"])]
    spans = {
        s["stage"]: (float(s["start_at_s"]), float(s["end_at_s"]))
        for s in summary.get("stages") or []
        if s.get("start_at_s") is not None and s.get("end_at_s") is not None
    }
    run_span = (float(req["start"].min()), float(req["end"].max())) if len(req) else (0.0, 0.0)
    return RunRows(req, tok, spans, float(summary.get("window_s") or 1.0), run_span)


def _window_counts(times: np.ndarray, weights: np.ndarray, span: tuple[float, float], width: float) -> np.ndarray:
    import numpy as np

    start, end = span
    n = max(1, int(np.floor((end - start) / width)))
    inside = (times >= start) & (times < start + n * width)
    bins = ((times[inside] - start) // width).astype(int)
    return np.bincount(bins, weights=weights[inside], minlength=n)[:n] / width


def _rate_sample(rows: RunRows, leaf: str, stage: str | None) -> Sample | None:
    import numpy as np

    span = rows.spans.get(stage, rows.run_span) if stage else rows.run_span
    ok = rows.requests[rows.requests["status"] == "ok"]
    if leaf == "requests_per_s":
        times, weights = ok["end"].to_numpy(float), np.ones(len(ok))
    else:
        streamed = ok[ok["stream"] & (ok["output_chunks"] > 0)]
        plain = ok[~ok.index.isin(streamed.index)]
        parts_t = [plain["end"].to_numpy(float)]
        parts_w = [plain["output_tokens"].fillna(plain["output_chunks"]).to_numpy(float)]
        if rows.tokens is not None and len(streamed):
            tok = rows.tokens[rows.tokens["request_id"].isin(streamed["request_id"])]
            parts_t.append(tok["t"].to_numpy(float))
            parts_w.append(np.ones(len(tok)))
        if leaf == "total_tokens_per_s":  # prompt tokens where windows and stages count them
            parts_t.append(prompt_time(ok))
            parts_w.append(ok["prompt_tokens"].fillna(0).to_numpy(float))
        times, weights = np.concatenate(parts_t), np.concatenate(parts_w)
    counts = _window_counts(times, weights, span, rows.window_s)
    return Sample(counts, lambda m: m.mean(axis=1), "per window") if len(counts) >= 2 else None


def _latency_sample(rows: RunRows, col: str, q: float, stage: str | None) -> Sample | None:
    import numpy as np

    req = rows.requests[rows.requests["status"] == "ok"]
    if stage:
        req = req[req["stage"] == stage]
    if col == "itl":
        if rows.tokens is None:
            return None
        tok = rows.tokens[rows.tokens["request_id"].isin(req["request_id"])].sort_values(["request_id", "index"])
        gaps = tok.groupby("request_id", sort=False)["t"].diff().dropna().to_numpy(float)
        values = gaps
    else:
        origin_col = "intended_start" if col.endswith("_intended") else "start"
        end_col = {"ttft": "first_token", "ttfo": "first_visible_token"}.get(col.split("_")[0], "end")
        values = (req[end_col] - req[origin_col]).dropna().to_numpy(float)
    if len(values) < 5:
        return None
    return Sample(values, lambda m: np.percentile(m, q, axis=1), "per request")


def sample_for(rows: RunRows, path: str, stage: str | None) -> Sample | None:
    """The resampling unit behind a summary figure, or None when the gate has no noise model for it."""
    parts = path.replace("]", "").split(".")
    leaf = parts[-1]
    if leaf in _RATES:
        return _rate_sample(rows, leaf, stage)
    m = _LATENCY.match(leaf)
    if m:
        return _latency_sample(rows, m["col"], _level(m["q"]), stage)
    pm = re.match(rf"^{_LEVEL}$", leaf)
    if pm and len(parts) >= 2 and parts[-2].endswith("_s") and parts[0] == "percentiles":
        col = parts[-2][: -len("_s")]
        if col in _COLUMNS:
            return _latency_sample(rows, col, _level(pm["q"]), None)
    return None


def _level(text: str) -> float:
    """``99`` → 99.0, ``99_9`` → 99.9."""
    return float(text.replace("_", "."))


def bootstrap_relative_change(
    candidate: Sample, baseline: Sample, draws: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Confidence interval of (statistic(candidate) / statistic(baseline) - 1) by the percentile bootstrap."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def stats(sample: Sample) -> np.ndarray:
        n = len(sample.values)
        chunk = max(1, min(draws, 4_000_000 // max(n, 1)))
        out = []
        for done in range(0, draws, chunk):
            k = min(chunk, draws - done)
            out.append(sample.statistic(sample.values[rng.integers(0, n, size=(k, n))]))
        return np.concatenate(out)

    cand, base = stats(candidate), stats(baseline)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = cand / base - 1.0
    rel = rel[np.isfinite(rel)]
    if not len(rel):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(rel, [tail, 100 - tail])
    return float(lo), float(hi)
