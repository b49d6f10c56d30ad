"""Placeholder for commands whose subsystem has not landed yet: a clear error, never a fake result."""

from __future__ import annotations

from satscope.errors import SatscopeError


def not_yet(command: str, issue: int) -> SatscopeError:
    return SatscopeError(f"`satscope {command}` is not available yet", f"tracked in issue #{issue}")
