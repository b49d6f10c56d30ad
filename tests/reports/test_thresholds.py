"""One thresholds object, and docs/reports.md states every value it holds."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from satscope.reports._thresholds import THRESHOLDS, Thresholds

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"


def test_docs_table_matches_the_thresholds() -> None:
    section = DOC.read_text().split("## Thresholds", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([0-9.]+) \|", section, flags=re.M))
    assert {k: float(v) for k, v in rows.items()} == {k: float(v) for k, v in THRESHOLDS.as_dict().items()}


def test_thresholds_are_frozen_and_checked() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        THRESHOLDS.served_share = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="served_share"):
        Thresholds(served_share=0.0)
