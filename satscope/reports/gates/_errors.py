"""The gate's input error: anything that makes a run, baseline or rules file unusable (exit 2)."""

from __future__ import annotations

from satscope.errors import SatscopeError

__all__ = ["GateInputError"]


class GateInputError(SatscopeError):
    """The rules, the run or the baseline cannot be used: exit code 2."""
