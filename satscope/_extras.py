"""Optional parts of the install: the bundled server needs ``satscope[server]`` (torch, triton, ...).

``pip install satscope`` gives the load tester (run, report, compare, gate, probe) without torch;
the commands that start the bundled server check for its packages first and say how to add them,
instead of failing deep inside an import.
"""

from __future__ import annotations

import importlib.util

from satscope.errors import SatscopeError

__all__ = ["SERVER_PACKAGES", "missing_server_packages", "require_server"]

# import name → what pip installs; the `server` extra of pyproject.toml lists the same
SERVER_PACKAGES = {
    "torch": "torch",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "safetensors": "safetensors",
    "tokenizers": "tokenizers",
}


def missing_server_packages() -> list[str]:
    """The bundled server's packages that this environment lacks (pip names)."""
    return [pip for name, pip in SERVER_PACKAGES.items() if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked install is as good as none
        return False


def require_server(what: str = "the bundled server") -> None:
    """Raise a one-line :class:`SatscopeError` naming the fix when the server's packages are missing."""
    missing = missing_server_packages()
    if missing:
        raise SatscopeError(
            f"{what} needs {', '.join(missing)}, which this install lacks",
            "pip install 'satscope[server]' (the CPU build of torch: pip install torch==2.13.0 first)",
        )
