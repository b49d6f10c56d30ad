"""The bundled reference LLM server: a Llama decoder over a paged KV cache, continuous batching,
an OpenAI-compatible streaming API and Prometheus metrics. `satscope serve` runs it.

Importing this package is cheap; torch loads with the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satscope.server_under_test.config import PRESETS, ModelConfig, ServerConfig
from satscope.server_under_test.sampling_params import SamplingParams

if TYPE_CHECKING:
    from satscope.server_under_test.api import build_app
    from satscope.server_under_test.engine import LLMEngine
    from satscope.server_under_test.server import ServerThread, serve

__all__ = [
    "PRESETS",
    "LLMEngine",
    "ModelConfig",
    "SamplingParams",
    "ServerConfig",
    "ServerThread",
    "build_app",
    "serve",
]

_LAZY = {
    "LLMEngine": "satscope.server_under_test.engine",
    "build_app": "satscope.server_under_test.api",
    "serve": "satscope.server_under_test.server",
    "ServerThread": "satscope.server_under_test.server",
}


def __getattr__(name: str) -> Any:
    # torch, fastapi and uvicorn load only when the engine or the app is asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'satscope.server_under_test' has no attribute {name!r}")
