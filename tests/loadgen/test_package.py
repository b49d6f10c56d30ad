"""The package's public names, and that the CLI and the pure modules never import locust or gevent."""

from __future__ import annotations

import subprocess
import sys

from satscope import loadgen
from tests.loadgen.conftest import ROOT

PUBLIC = {
    "ENDPOINTS", "SHAPES", "LengthDist", "LineKind", "LoadgenConfig", "RequestSpec", "RunStore", "Shape",
    "ShapeOptions", "ShapePoint", "SseEvent", "Stage", "WorkerBuffer", "Workload", "WorkloadConfig",
    "arrival_times", "build_shape", "load_sharegpt", "load_stages_toml", "loadgen_figures", "next_gap",
    "parse_line", "progress", "request_body", "write_run_files",
}  # fmt: skip


def test_public_names() -> None:
    assert set(loadgen.__all__) == PUBLIC and len(loadgen.__all__) == len(PUBLIC)
    assert all(hasattr(loadgen, name) for name in PUBLIC)


def test_cli_and_pure_modules_stay_light() -> None:
    code = (
        "import sys, satscope.loadgen, satscope._orchestrate, satscope._live, satscope.cli\n"
        "heavy = [m for m in ('locust', 'gevent', 'torch', 'pyarrow', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
