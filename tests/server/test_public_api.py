"""The package's public names are exactly these, and importing it does not load torch."""

from __future__ import annotations

import subprocess
import sys

from satscope import server_under_test

PUBLIC = ["PRESETS", "LLMEngine", "ModelConfig", "SamplingParams", "ServerConfig", "ServerThread", "build_app", "serve"]


def test_public_names() -> None:
    assert sorted(server_under_test.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(server_under_test, name) is not None


def test_import_is_light() -> None:
    code = "import sys, satscope.server_under_test; print('torch' in sys.modules, 'fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_tiny_preset_is_small() -> None:
    tiny = server_under_test.PRESETS["tiny"]
    assert 2_000_000 < tiny.num_parameters < 5_000_000
    assert tiny.num_heads % tiny.num_kv_heads == 0 and tiny.num_kv_heads < tiny.num_heads
