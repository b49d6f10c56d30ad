"""Small numeric helpers shared by the window, stage and correlation tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PCTS", "clean", "distribution", "group_percentiles", "slope"]

PCTS = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))


def group_percentiles(keys: Any, values: Any, prefix: str) -> pd.DataFrame:
    """``{prefix}_p50_s``, ``_p90_s``, ``_p99_s`` of ``values`` grouped by ``keys`` (NaNs ignored)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"k": np.asarray(keys), "v": np.asarray(values, dtype=float)}).dropna()
    cols = [f"{prefix}_{name}_s" for _, name in PCTS]
    if frame.empty:
        return pd.DataFrame(columns=cols, dtype=float)
    q = frame.groupby("k")["v"].quantile([p for p, _ in PCTS]).unstack()
    q.columns = cols
    return q


def distribution(values: Any) -> dict[str, Any]:
    """``{count, mean, p50, p90, p99, max}`` of the finite values (nulls when there are none)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    q = np.quantile(v, [p for p, _ in PCTS])
    return {"count": len(v), "mean": float(v.mean()), "p50": float(q[0]), "p90": float(q[1]),
            "p99": float(q[2]), "max": float(v.max())}


def slope(x: Any, y: Any) -> float | None:
    """Least-squares slope of ``y`` over ``x``; None with fewer than 2 distinct points."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def clean(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers to Python, NaN/inf to None."""
    import math

    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
