"""The throughput-curve model: the fits recover known parameters, and the summary never lets the
model contradict the knee rule without saying so."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satscope.reports import analyze
from satscope.reports._curve import MIN_LOADS, CurveFit, curve_block, fit_two_segment, fit_usl, predict

LOADS = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=float)


def _noisy(fit: CurveFit, x: np.ndarray, share: float, seed: int) -> np.ndarray:
    return predict(fit, x) * np.random.default_rng(seed).normal(1.0, share, len(x))


@pytest.mark.parametrize(("lam", "sigma", "kappa"), [(2.0, 0.05, 0.002), (40.0, 0.02, 0.0005), (1.0, 0.2, 0.01)])
def test_usl_fit_recovers_known_parameters(lam: float, sigma: float, kappa: float) -> None:
    true = CurveFit("usl", {"lambda": lam, "sigma": sigma, "kappa": kappa}, None, None, None, None)
    fit = fit_usl(LOADS, _noisy(true, LOADS, 0.02, seed=int(lam * 100)))
    n_star = math.sqrt((1 - sigma) / kappa)
    assert fit.params["lambda"] == pytest.approx(lam, rel=0.1)
    assert fit.params["sigma"] == pytest.approx(sigma, abs=0.03)
    assert fit.peak_load == pytest.approx(n_star, rel=0.15)
    assert fit.peak == pytest.approx(float(predict(true, n_star)), rel=0.05)
    assert fit.r_squared is not None and fit.r_squared > 0.95


def test_usl_interval_covers_the_true_peak_and_narrows_with_less_noise() -> None:
    true = CurveFit("usl", {"lambda": 3.0, "sigma": 0.04, "kappa": 0.001}, None, None, None, None)
    n_star = math.sqrt(0.96 / 0.001)
    widths = []
    for share in (0.06, 0.01):
        levels = pd.DataFrame(
            {
                "offered_load": LOADS,
                "requests_per_s": _noisy(true, LOADS, share, seed=7),
                "output_tokens_per_s": 32 * _noisy(true, LOADS, share, seed=8),
            }
        )
        started = time.perf_counter()
        block = curve_block(levels, {"found": False}, "users")
        assert time.perf_counter() - started < 5.0  # a few hundred resamples stay fast
        req = block["requests"]
        assert req["peak_load_low"] <= n_star <= req["peak_load_high"], req
        assert req["peak_low"] <= float(predict(true, n_star)) <= req["peak_high"], req
        widths.append(req["peak_load_high"] - req["peak_load_low"])
    assert widths[1] < widths[0]


def test_two_segment_fit_recovers_capacity_and_knee() -> None:
    rates = np.array([0.5, 1, 2, 3, 4, 6, 8, 12], dtype=float)
    served = np.minimum(0.97 * rates, 3.5) * np.random.default_rng(3).normal(1.0, 0.02, len(rates))
    fit = fit_two_segment(rates, served)
    assert fit.peak == pytest.approx(3.5, rel=0.04)
    assert fit.knee_load == pytest.approx(3.5 / 0.97, rel=0.08)
    still_rising = fit_two_segment(rates, 0.9 * rates)
    assert still_rising.peak is None and still_rising.knee_load is None


def test_too_few_loads_is_no_fit_with_the_reason() -> None:
    levels = pd.DataFrame({"offered_load": [1.0, 2.0, 4.0], "requests_per_s": [1.0, 2.0, 3.9]})
    block = curve_block(levels, {"found": False}, "users")
    assert not block["fitted"] and block["requests"] is None
    assert f"needs {MIN_LOADS}" in block["reason"] and block["reason"] in block["note"]


def test_synthetic_run_fit_agrees_with_the_knee(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="kv_cache"))
    curve, sat = s["curve"], s["saturation"]
    assert curve["fitted"] and curve["model"] == "usl" and curve["loads"] == 6
    tokens = curve["output_tokens"]
    # the synthetic server scales linearly to 8 users, then stays flat
    assert tokens["knee_load_low"] <= 8 <= tokens["knee_load_high"]
    flat = [st["output_tokens_per_s"] for st in s["stages"] if st["offered_load"] >= 8]
    assert tokens["peak_low"] <= max(flat) * 1.05 and tokens["peak_high"] >= min(flat)
    assert curve["agrees_with_knee"] is True and sat["found"]
    assert "agrees with the knee rule" in curve["note"]


def test_open_loop_run_gets_the_two_segment_fit(synth: Callable[..., Path]) -> None:
    s = analyze(synth(kind="batch_limit", open_loop=True))
    curve = s["curve"]
    assert curve["model"] == "two_segment" and curve["requests"]["column"] == "served_per_s"
    sustained = s["saturation"]["sustainable_per_s"]
    assert curve["requests"]["peak"] == pytest.approx(sustained, rel=0.1)
    assert curve["agrees_with_knee"] is True


def test_a_model_far_from_the_knee_is_said() -> None:
    loads = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    levels = pd.DataFrame({"offered_load": loads, "requests_per_s": 1.3 * loads, "output_tokens_per_s": 40 * loads})
    claimed = {"found": True, "offered_load": 2.0, "knee_offered_load": 4.0}
    block = curve_block(levels, claimed, "users")
    assert block["agrees_with_knee"] is False and "disagrees" in block["note"]
    # and the reverse: the model bends well inside the range while the rule found no knee
    bent = 30 * loads / (1 + 0.02 * (loads - 1) + 0.02 * loads * (loads - 1))
    block = curve_block(levels.assign(output_tokens_per_s=bent), {"found": False}, "users")
    assert block["agrees_with_knee"] is False and "found no saturation" in block["note"]


def test_curve_and_little_fields_are_the_documented_ones(synth: Callable[..., Path]) -> None:
    from tests.reports.test_summary_schema import _documented_fields

    s = analyze(synth(kind="kv_cache"))
    fits = _documented_fields("`curve` fits (`curve.requests`, `curve.output_tokens`)")
    for fit in (s["curve"]["requests"], s["curve"]["output_tokens"]):
        assert set(fit) == fits
    for row in s["little"]["levels"]:
        assert set(row) == _documented_fields("`little` levels")
