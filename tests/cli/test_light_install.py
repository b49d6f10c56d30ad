"""The light install: `pip install satscope` runs, reports and gates without the bundled server's
packages (torch, triton, FastAPI, ...); the commands that need them say how to add them. Also the
Python API (`satscope.run`, `satscope.report`) and `--version`.

The server's packages are hidden from every satscope process (the CLI, the load generator, the
probes) by a `sitecustomize` on PYTHONPATH that refuses to import them, so an import of torch
anywhere on the load tester's path fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import satscope
from satscope._extras import SERVER_PACKAGES
from satscope.errors import SatscopeError
from tests.helpers import satscope_cli
from tests.loadgen.conftest import ROOT, fake_server

HIDDEN = ("torch", "triton", "fastapi", "uvicorn", "safetensors", "tokenizers", "transformers")
BLOCKER = f"""
import sys

class _NoServerPackages:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden: light install)", name=name)
        return None

sys.meta_path.insert(0, _NoServerPackages())
"""



def _light_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_core_dependencies_leave_the_server_to_its_extra() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split("=")[0].split(">")[0].split("<")[0].split("[")[0].strip() for d in meta["dependencies"]}
    extra = {d.split("=")[0].split(">")[0].strip() for d in meta["optional-dependencies"]["server"]}
    assert not names & {"torch", "triton", "fastapi", "uvicorn", "safetensors", "tokenizers"}, names
    assert set(SERVER_PACKAGES.values()) <= extra and "triton" in extra


def test_every_package_installs_under_the_satscope_name() -> None:
    """No top-level `loadgen`, `probes` or `reports` to collide with a user's own: what setuptools
    packages is `satscope` and its subpackages, the bundled server and the test tree aside."""
    from setuptools import find_packages

    rule = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(ROOT), include=rule["include"]))
    assert {p.split(".")[0] for p in found} == {"satscope"}, found
    assert {"satscope.loadgen", "satscope.probes", "satscope.reports", "satscope.server_under_test"} <= found
    # and nothing importable is left at the top of the checkout but the package and its tests
    tops = {d.name for d in ROOT.iterdir() if (d / "__init__.py").exists()}
    assert tops == {"satscope", "tests"}, tops


def test_run_and_report_without_the_server_packages(tmp_path: Path) -> None:
    env = _light_env(tmp_path)
    hidden = subprocess.run([sys.executable, "-c", "import torch"], env={**os.environ, **env}, capture_output=True)
    assert hidden.returncode != 0 and b"hidden: light install" in hidden.stderr  # the blocker works
    out = tmp_path / "run"
    with fake_server(ttft=0.01, itl=0.005) as server:
        res = satscope_cli("run", "--target", server.url, "--users", "2", "--duration", "2", "--output-len", "4",
                        "--out", str(out), "--quiet", env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["requests_ok"] > 0 and (out / "report.html").exists()
    rebuilt = satscope_cli("report", str(out), env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]


@pytest.mark.parametrize("command", [["serve"], ["demo"], ["run", "--serve", "--users", "1"]])
def test_server_commands_name_the_extra_when_it_is_missing(tmp_path: Path, command: list[str]) -> None:
    res = satscope_cli(*command, env=_light_env(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "pip install 'satscope[server]'" in line and "torch" in line


def test_version_flag_prints_the_package_version() -> None:
    res = satscope_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"satscope {satscope.__version__}"


def test_python_api_runs_and_reports(tmp_path: Path) -> None:
    with fake_server(ttft=0.01, itl=0.005) as server:
        result = satscope.run(server.url, out=tmp_path / "api", users=[1, 2], duration=3, output_len=4, quiet=True)
        with pytest.raises(SatscopeError, match="users"):
            satscope.run(server.url, out=tmp_path / "bad", users=0, duration=2, quiet=True)
    assert result.exit_code == 0 and result.run_dir == tmp_path / "api"
    assert result.summary is not None and result.verdict == result.summary["verdict"]
    # a list of loads is one hold stage per value, the duration shared
    stages = result.summary["stages"]
    assert [(s["offered_load"], s["duration_s"]) for s in stages] == [(1.0, 1.5), (2.0, 1.5)], stages
    again = satscope.report(result.run_dir)
    assert again["run"]["requests_ok"] == result.summary["run"]["requests_ok"] > 0
    assert not (tmp_path / "bad").exists()
