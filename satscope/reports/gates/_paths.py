"""Metric paths into `summary.json`: `saturation.output_tokens_per_s`, `stages[s3].ttft_p99_s`.

A path is dot-separated keys; a key may carry one selector in brackets to pick items of a list
of objects: `[NAME]` the item whose `stage` (or `metric`) is NAME, `[3]` by index, `[*]` every
item (the rule then applies to each). `run.error_rate` is derived when the summary lacks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from satscope.reports.gates._errors import GateInputError

__all__ = ["PathError", "Resolved", "parse_path", "resolve"]

_PART = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<sel>[^\[\]]+)\])?$")


class PathError(GateInputError):
    """A metric path is malformed or names nothing in the summary."""


@dataclass(slots=True, frozen=True)
class Resolved:
    """One value a path reached, with the stage it belongs to (for the noise model)."""

    path: str
    value: Any
    stage: str | None


def parse_path(path: str) -> list[tuple[str, str | None]]:
    parts = []
    for piece in path.split("."):
        m = _PART.match(piece.strip())
        if not m:
            raise PathError(f"metric path {path!r} is malformed at {piece!r}", "write e.g. stages[s3].ttft_p99_s")
        parts.append((m["key"], m["sel"]))
    return parts


def _select(items: list[Any], sel: str, where: str) -> list[tuple[str, Any]]:
    if sel == "*":
        return [(f"{where}[{_name(it, i)}]", it) for i, it in enumerate(items)]
    if sel.isdigit():
        i = int(sel)
        if i >= len(items):
            raise PathError(f"{where}[{sel}]: only {len(items)} item(s)")
        return [(f"{where}[{sel}]", items[i])]
    for i, it in enumerate(items):
        if _name(it, i) == sel:
            return [(f"{where}[{sel}]", it)]
    names = [_name(it, i) for i, it in enumerate(items)]
    raise PathError(f"{where} has no item named {sel!r}", f"names in this run: {names}")


def _name(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ("stage", "metric", "name"):
            if isinstance(item.get(key), str):
                return item[key]
    return str(index)


def _run_error_rate(summary: dict[str, Any]) -> float | None:
    run = summary.get("run") or {}
    sent = (run.get("requests_total") or 0) - (run.get("requests_dropped") or 0)
    return (run.get("requests_failed") or 0) / sent if sent else None


def resolve(summary: dict[str, Any], path: str) -> list[Resolved]:
    """Every value ``path`` reaches in ``summary``; a missing key raises :class:`PathError`."""
    if path == "run.error_rate" and "error_rate" not in (summary.get("run") or {}):
        return [Resolved(path, _run_error_rate(summary), None)]
    current: list[tuple[str, Any, str | None]] = [("", summary, None)]
    for key, sel in parse_path(path):
        nxt: list[tuple[str, Any, str | None]] = []
        for where, obj, stage in current:
            here = f"{where}.{key}" if where else key
            if not isinstance(obj, dict) or key not in obj:
                keys = sorted(obj) if isinstance(obj, dict) else []
                raise PathError(f"summary has no {here!r}", f"keys there: {keys}" if keys else None)
            value = obj[key]
            if key == "saturation" and isinstance(value, dict):
                stage = value.get("stage")
            if sel is None:
                nxt.append((here, value, stage))
                continue
            if not isinstance(value, list):
                raise PathError(f"{here!r} is not a list, so [{sel}] cannot select from it")
            for sub_where, item in _select(value, sel, here):
                item_stage = item.get("stage") if key == "stages" and isinstance(item, dict) else stage
                nxt.append((sub_where, item, item_stage))
        current = nxt
    return [Resolved(where, value, stage) for where, value, stage in current]
