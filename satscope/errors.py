"""The one exception type that the CLI turns into a one-line error message with a fix.

Subsystems raise subclasses of :class:`SatscopeError` for bad input (flags, files, targets);
``satscope.cli.main`` prints ``error: <message>`` and exits with code 2. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["SatscopeError"]


class SatscopeError(Exception):
    """Bad input or an unusable environment, explained in one line with the fix."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if fix is None else f"{message} ({fix})")
