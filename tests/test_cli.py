"""The CLI's start-up promises: `satscope --help` is instant and imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "triton", "locust", "gevent", "pandas", "pyarrow", "plotly", "pynvml", "fastapi", "uvicorn")
COMMANDS = ("serve", "run", "probe", "report", "compare", "gate", "demo")


def _loaded_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = _loaded_modules("import satscope.cli")
    assert not [m for m in HEAVY if m in loaded], f"heavy imports at CLI start-up: {sorted(loaded & set(HEAVY))}"


def test_every_command_help_loads_no_heavy_library() -> None:
    for command in COMMANDS:
        code = (
            "import sys\nfrom satscope.cli import app\nfrom typer.testing import CliRunner\n"
            f"r = CliRunner().invoke(app, ['{command}', '--help'])\n"
            "assert r.exit_code == 0, r.output\n"
        )
        loaded = _loaded_modules(code)
        heavy = sorted(m for m in HEAVY if m in loaded)
        assert not heavy, f"`satscope {command} --help` imported {heavy}"


def test_top_level_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "satscope", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in COMMANDS:
        assert command in out


def test_satscope_error_becomes_one_line_and_exit_2(tmp_path) -> None:
    # `report` on a directory that is not a run must fail with a one-line error, not a traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "satscope", "report", str(tmp_path / "missing-run")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
