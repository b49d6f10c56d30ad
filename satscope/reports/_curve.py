"""A model of the throughput curve: fitted to the load levels, with a predicted peak and its interval.

Closed loop (users): the Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)) — λ the
throughput of one user, σ contention (the serial share), κ coherency (the cost that grows with
pairs of users). Its peak is at N* = √((1−σ)/κ); with κ = 0 it has none and tends to λ/σ. Its
*knee* is where ideal scaling λN would reach the peak, X(N*)/λ: the load past which adding users
mostly queues. Open loop (req/s offered): served = min(s·r, C), a line through the origin up to
the knee r* = C/s and flat at the capacity C after it.

Both are fitted by least squares with numpy only: the USL over a (σ, κ) grid refined twice around
its best point, λ in closed form at each; the two segments over every split of the levels sorted
by load. The interval is a seeded residual bootstrap (residuals drawn with replacement, scaled
by √(n/(n−p)), added to the fitted curve and fitted again). A fit needs ``MIN_LOADS`` distinct
loads; ``curve_block`` says why when there is none, and whether the model agrees with the knee
the rule found (docs/reports.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from satscope.quantile import quantile
from satscope.reports._stats import clean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MIN_LOADS", "RESAMPLES", "CurveFit", "curve_block", "fit_two_segment", "fit_usl", "fitted_line", "predict"]

MIN_LOADS = 4
RESAMPLES = 200
SEED = 0
INTERVAL = 0.95
_SIGMA = 41  # grid points of the first USL pass
_KAPPA = 48
_REFINE = 15


@dataclass(frozen=True, slots=True)
class CurveFit:
    """One fitted curve. ``params``: USL ``lambda``, ``sigma``, ``kappa``; two-segment ``slope``,
    ``capacity``. Peak and knee are None when the model has none within reach (still rising)."""

    model: str  # "usl" or "two_segment"
    params: dict[str, float]
    peak_load: float | None
    peak: float | None
    knee_load: float | None
    r_squared: float | None


def predict(fit: CurveFit, x: Any) -> np.ndarray:
    """The fitted throughput at loads ``x``."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    p = fit.params
    if fit.model == "usl":
        return p["lambda"] * x / (1.0 + p["sigma"] * (x - 1.0) + p["kappa"] * x * (x - 1.0))
    return np.minimum(p["slope"] * x, p["capacity"])


def fitted_line(block: dict[str, Any] | None, series: str, x_max: float, points: int = 80) -> tuple[Any, Any] | None:
    """(loads, fitted throughput) from 0 to ``x_max`` for the ``curve`` block's ``series``
    (``requests`` or ``output_tokens``), to draw beside the measured points; None without a fit."""
    import numpy as np

    fit = (block or {}).get(series) if (block or {}).get("fitted") else None
    if not fit or not x_max > 0:
        return None
    params = {k: (math.inf if v is None else float(v)) for k, v in fit["params"].items()}
    x = np.linspace(0.0, x_max, points)
    return x, predict(CurveFit(block["model"], params, None, None, None, None), x)  # type: ignore[index]


def _r_squared(y: np.ndarray, yhat: np.ndarray) -> float | None:
    import numpy as np

    total = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - yhat) ** 2)) / total if total > 0 else None


def _usl_best(x: np.ndarray, ys: np.ndarray, sigma: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row of ``ys`` (B, n): (λ, σ, κ) of the best point of its (σ, κ) grid, ``sigma`` (B, S) and
    ``kappa`` (B, K); λ is the least-squares scale at each grid point."""
    import numpy as np

    s, k = sigma[:, :, None, None], kappa[:, None, :, None]
    f = x / (1.0 + s * (x - 1.0) + k * x * (x - 1.0))  # (B, S, K, n)
    fy, ff = np.einsum("bskn,bn->bsk", f, ys), (f * f).sum(-1)
    lam = np.where(ff > 0, fy / np.where(ff > 0, ff, 1.0), 0.0)
    sse = (lam * fy).reshape(len(ys), -1)  # the sum of squares left is Σy² − λ·fy: maximise λ·fy
    best = np.argmax(sse, axis=1)
    i, j = np.unravel_index(best, lam.shape[1:])
    rows = np.arange(len(ys))
    return lam[rows, i, j], sigma[rows, i], kappa[rows, j]


def _usl_params(x: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares (λ, σ, κ) for each row of ``ys``: a coarse grid, then refined twice around the best."""
    import numpy as np

    lo, hi = max(float(x.min()), 1e-9), float(x.max())
    # κ from a peak 100x past the highest load to one at the lowest load
    log_k = np.linspace(math.log10(1e-4 / hi**2), math.log10(1.0 / lo**2), _KAPPA - 1)
    b = len(ys)
    sigma = np.broadcast_to(np.linspace(0.0, 1.0, _SIGMA), (b, _SIGMA))
    kappa = np.broadcast_to(np.r_[0.0, 10.0**log_k], (b, _KAPPA))
    lam, s, k = _usl_best(x, ys, sigma, kappa)
    ds, dk = 1.0 / (_SIGMA - 1), log_k[1] - log_k[0]
    steps = np.linspace(-1.0, 1.0, _REFINE)
    for _ in range(2):
        sigma = np.clip(s[:, None] + ds * steps, 0.0, 1.0)
        centre = np.where(k > 0, np.log10(np.where(k > 0, k, 1.0)), log_k[0])
        kappa = np.concatenate([np.zeros((b, 1)), 10.0 ** (centre[:, None] + dk * steps)], axis=1)
        lam, s, k = _usl_best(x, ys, sigma, kappa)
        ds, dk = 2 * ds / (_REFINE - 1), 2 * dk / (_REFINE - 1)
    return lam, s, k


def _usl_fit(x: np.ndarray, y: np.ndarray | None, lam: float, s: float, k: float) -> CurveFit:
    fit = CurveFit("usl", {"lambda": lam, "sigma": s, "kappa": k}, None, None, None, None)
    if k > 0 and s < 1.0:
        peak_load: float | None = math.sqrt((1.0 - s) / k)
        peak = float(predict(fit, peak_load))
    else:  # no retrograde term: it tends to λ/σ (σ > 0) or rises for ever
        peak_load, peak = None, (lam / s if s > 0 else None)
    knee = peak / lam if peak is not None and lam > 0 else None
    r2 = _r_squared(y, predict(fit, x)) if y is not None else None
    return replace(fit, peak_load=peak_load, peak=peak, knee_load=knee, r_squared=r2)


def fit_usl(x: Any, y: Any) -> CurveFit:
    """Least-squares USL through (load, throughput) points; σ in [0, 1], κ ≥ 0, λ ≥ 0."""
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    lam, s, k = _usl_params(x, y[None, :])
    return _usl_fit(x, y, float(lam[0]), float(s[0]), float(k[0]))


def fit_two_segment(x: Any, y: Any) -> CurveFit:
    """Least-squares min(s·x, C): the best split of the points sorted by load into a rising part
    (a line through the origin) and a flat part (their mean); no flat part is no capacity found."""
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    best: tuple[float, float, float] | None = None
    for k in range(len(x), 0, -1):  # no flat part first: a flat part must fit strictly better
        slope = float((x[:k] * y[:k]).sum() / (x[:k] ** 2).sum())
        cap = float(y[k:].mean()) if k < len(x) else math.inf
        sse = float(((np.minimum(slope * x, cap) - y) ** 2).sum())
        if best is None or sse < best[0] - 1e-12 * max(1.0, float((y * y).sum())):
            best = (sse, slope, cap)
    assert best is not None
    _, slope, cap = best
    if not math.isfinite(cap) or slope <= 0:  # still rising: no capacity within the loads measured
        fit = CurveFit("two_segment", {"slope": slope, "capacity": math.inf}, None, None, None, None)
    else:
        fit = CurveFit("two_segment", {"slope": slope, "capacity": cap}, cap / slope, cap, cap / slope, None)
    return replace(fit, r_squared=_r_squared(y, predict(fit, x)))


def _fitter(model: str) -> Any:
    return fit_usl if model == "usl" else fit_two_segment


def _interval(values: list[float | None]) -> tuple[float | None, float | None]:
    """Central ``INTERVAL`` of the resampled values (satscope's one quantile, ``satscope/quantile.py``);
    None (no peak) counts as past every bound, so a bound that reaches a resample without one is
    None."""
    v = sorted(math.inf if x is None else float(x) for x in values)
    tail = (1.0 - INTERVAL) / 2
    bounds = (quantile(v, tail), quantile(v, 1.0 - tail)) if v else (None, None)
    return tuple(clean(b) if b is not None and math.isfinite(b) else None for b in bounds)  # type: ignore[return-value]


def _bootstrap(model: str, x: np.ndarray, y: np.ndarray, fit: CurveFit) -> dict[str, tuple[float | None, float | None]]:
    """Seeded residual bootstrap: intervals of ``peak_load``, ``peak`` and ``knee_load``."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    n, p = len(x), len(fit.params)
    yhat = predict(fit, x)
    resid = (y - yhat) * math.sqrt(n / max(n - p, 1))
    ys = np.maximum(yhat + rng.choice(resid, (RESAMPLES, n)), 0.0)
    if model == "usl":  # every resample's grids at once
        fits = [_usl_fit(x, None, *map(float, row)) for row in zip(*_usl_params(x, ys), strict=True)]
    else:
        fits = [fit_two_segment(x, row) for row in ys]
    draws = {key: [getattr(f, key) for f in fits] for key in ("peak_load", "peak", "knee_load")}
    return {key: _interval(v) for key, v in draws.items()}


def _series(model: str, x: np.ndarray, y: np.ndarray, column: str) -> dict[str, Any]:
    fit = _fitter(model)(x, y)
    ci = _bootstrap(model, x, y, fit)
    out: dict[str, Any] = {"column": column, "params": {k: clean(v) for k, v in fit.params.items()}}
    for key in ("peak_load", "peak", "knee_load"):
        out[key] = clean(getattr(fit, key))
        out[f"{key}_low"], out[f"{key}_high"] = ci[key]
    out["r_squared"] = clean(fit.r_squared)
    return out


def _no_fit(reason: str, model: str | None, n: int) -> dict[str, Any]:
    return {
        "fitted": False,
        "model": model,
        "reason": reason,
        "loads": n,
        "requests": None,
        "output_tokens": None,
        "agrees_with_knee": None,
        "note": f"No curve fitted: {reason}.",
    }


def curve_block(levels: pd.DataFrame, sat: dict[str, Any], kind: str) -> dict[str, Any]:
    """The ``curve`` block of summary.json (docs/summary-format.md) from the knee's levels."""
    import numpy as np

    model = {"users": "usl", "rate_rps": "two_segment"}.get(kind)
    lv = levels[levels["offered_load"].notna() & (levels["offered_load"] > 0)] if len(levels) else levels
    n = int(lv["offered_load"].nunique()) if len(lv) else 0
    if model is None:
        return _no_fit(
            f"load kind {kind!r}: a curve is fitted to closed-loop (users) or open-loop (rate) runs", None, n
        )
    req_col = "served_per_s" if model == "two_segment" and "served_per_s" in lv else "requests_per_s"
    cols = [c for c in (req_col, "output_tokens_per_s") if c in lv]
    lv = lv[np.isfinite(lv[cols].to_numpy(dtype=float)).all(axis=1)] if len(lv) else lv
    n = int(lv["offered_load"].nunique()) if len(lv) else 0
    if n < MIN_LOADS:
        return _no_fit(f"only {n} distinct load(s) measured, the fit needs {MIN_LOADS}", model, n)
    x = lv["offered_load"].to_numpy(dtype=float)
    out: dict[str, Any] = {"fitted": True, "model": model, "reason": None, "loads": n}
    out["requests"] = _series(model, x, lv[req_col].to_numpy(dtype=float), req_col)
    tokens = lv["output_tokens_per_s"].to_numpy(dtype=float) if "output_tokens_per_s" in lv else np.zeros(0)
    out["output_tokens"] = _series(model, x, tokens, "output_tokens_per_s") if tokens.sum() > 0 else None
    main = out["output_tokens"] or out["requests"]
    out["agrees_with_knee"], out["note"] = _against_knee(main, sat, kind, float(x.max()), out["requests"])
    return out


def _name(load: float | None, kind: str) -> str:
    if load is None:
        return "none"
    return f"{load:.3g} req/s" if kind == "rate_rps" else f"{load:.3g} users"


def _span(fit: dict[str, Any], key: str, kind: str) -> str:
    lo, hi = fit[f"{key}_low"], fit[f"{key}_high"]
    low = f"{lo:.3g}" if lo is not None else "?"
    return f"{low}–{_name(hi, kind)}" if hi is not None else f"{_name(lo, kind) if lo is not None else '?'} or more"


def _against_knee(
    fit: dict[str, Any], sat: dict[str, Any], kind: str, top: float, req: dict[str, Any]
) -> tuple[bool | None, str]:
    """Whether the model's knee interval meets the measured bracket (saturation point to knee), and
    the sentence that says so: the fit never contradicts the knee rule silently."""
    label = "USL" if kind == "users" else "two-segment fit"
    unit = "output tokens/s" if fit["column"] == "output_tokens_per_s" else "req/s"
    knee, lo, hi = fit["knee_load"], fit["knee_load_low"], fit["knee_load_high"]
    r2 = f", R² {fit['r_squared']:.2f}" if fit["r_squared"] is not None else ""
    text = f"Curve model ({label}{r2}): "
    also = f", {req['peak']:.3g} req/s" if req is not fit and req["peak"] is not None else ""
    if fit["peak"] is None:
        text += "throughput still rising at the highest load, no peak predicted"
    elif kind != "users":
        text += f"capacity {fit['peak']:.3g} {unit}{also}"
    elif fit["peak_load"] is None:
        text += f"no peak, throughput levels off towards {fit['peak']:.3g} {unit}{also}"
    else:
        text += f"peak {fit['peak']:.3g} {unit}{also} at {_name(fit['peak_load'], kind)}"
        text += f" (past the {_name(top, kind)} tested: extrapolated)" if fit["peak_load"] > top else ""
    if knee is not None:
        text += f"; knee {_name(knee, kind)} (95% interval {_span(fit, 'knee_load', kind)})"
        text += f", past the {_name(top, kind)} tested: extrapolated" if knee > top else ""
    found = bool(sat.get("found"))
    top_named = _name(top, kind)
    if found:
        below = sat.get("offered_load") or 0.0
        above = sat.get("knee_offered_load") or top
        bracket = f"the knee rule's {_name(below, kind) if below else 'lowest level'} to {_name(above, kind)}"
        if knee is None:
            return False, f"{text}. It disagrees with the knee rule, which found saturation ({bracket})."
        meets = (lo if lo is not None else knee) <= above and (hi if hi is not None else math.inf) >= below
        if meets:
            return True, f"{text}; it agrees with {bracket}."
        return False, f"{text}. It disagrees with {bracket}: the levels fit the model poorly or too few lie past it."
    if knee is not None and hi is not None and hi < top:
        return False, (
            f"{text}. It disagrees with the knee rule, which found no saturation up to {top_named}: "
            "throughput bent without the tail-latency rise the rule asks for."
        )
    return True, f"{text}; like the knee rule, it finds no saturation clearly below {top_named}."
