"""List-valued loads: ``--users 1,2,4,8`` or ``--rate geom:0.5:8:5`` give one hold stage per value.

A user who does not know where the server saturates should not have to space equal linear steps
around a guess: a geometric series covers a wide range with a few levels, each a stage of the run.
"""

from __future__ import annotations

import math

from satscope.errors import SatscopeError

__all__ = ["parse_loads"]

_MAX_LEVELS = 64


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fix = f"e.g. {flag} 8, {flag} 1,2,4,8 or {flag} geom:1:64:7"
        raise SatscopeError(f"{flag} {text!r} is not a number", fix) from None
    if not math.isfinite(value):
        raise SatscopeError(f"{flag} {text!r} is not a finite number", f"e.g. {flag} 8")
    return value


def _geometric(text: str, flag: str, whole: bool) -> list[float]:
    parts = text.split(":")
    if len(parts) != 4:
        raise SatscopeError(f"{flag} {text!r}: a geometric series is geom:START:END:COUNT", f"e.g. {flag} geom:1:256:9")
    start, end = _number(parts[1], flag), _number(parts[2], flag)
    count = _number(parts[3], flag)
    if not (start > 0 and end > start and count.is_integer() and 2 <= count <= _MAX_LEVELS):
        raise SatscopeError(f"{flag} {text!r}: need 0 < START < END and 2 <= COUNT <= {_MAX_LEVELS}",
                            f"e.g. {flag} geom:1:256:9")  # fmt: skip
    n = int(count)
    values = [start * (end / start) ** (i / (n - 1)) for i in range(n)]
    # users are whole: round, and drop the repeats that rounding makes at the low end
    return sorted({float(round(v)) for v in values}) if whole else [float(f"{v:.3g}") for v in values]


def parse_loads(text: str, flag: str, whole: bool) -> tuple[float, ...]:
    """The loads ``text`` names: one number, a comma list, or ``geom:START:END:COUNT``.

    ``whole`` (users) requires whole numbers. Every load must be > 0.
    """
    text = text.strip()
    values = _geometric(text, flag, whole) if text.startswith("geom:") else [_number(t, flag) for t in text.split(",")]
    if len(values) > _MAX_LEVELS:
        raise SatscopeError(f"{flag}: {len(values)} levels, at most {_MAX_LEVELS}", "use fewer values")
    for v in values:
        what = "concurrent users" if whole else "requests/s"
        if not v > 0:
            raise SatscopeError(f"{flag} must be > 0, got {v:g}", f"{flag} is a load in {what}")
        if whole and not v.is_integer():
            raise SatscopeError(f"{flag} must be a whole number, got {v:g}", f"e.g. {flag} {max(round(v), 1)}")
    return tuple(values)
