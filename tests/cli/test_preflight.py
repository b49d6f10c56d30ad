"""`satscope run`'s preflight and flag checks, against real servers on loopback.

Every refusal is exit code 2, one line on stderr that names the fix, nothing sent as load and no
run directory left behind: a static file server, a base URL ending in /v1, a missing or wrong key,
an unknown model (from /v1/models, and from the server's error when it lists none), an answer that
is not a stream, bad flag combinations and zero or fractional loads, a worker without a master.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import JsonHandler, bundled_server, free_port
from tests.loadgen.conftest import ROOT, fake_server, run_satscope


@contextlib.contextmanager
def _http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Static(http.server.SimpleHTTPRequestHandler):
    """`python3 -m http.server`: GET answers (404 here), POST is 501."""

    def log_message(self, *_: object) -> None:
        pass


class _NoModelsListed(JsonHandler):
    """No /v1/models; a POST names the unknown model in an OpenAI-style 404, like OpenAI's API."""

    def do_GET(self) -> None:
        self.send_json(404 if self.path == "/v1/models" else 200, {"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/completions") and body.get("model") != "served-one":
            message = f"The model `{body.get('model')}` does not exist or you do not have access to it."
            return self.send_json(404, {"error": {"message": message, "code": "model_not_found"}})
        if self.path.endswith("/completions"):  # a JSON answer where a stream was asked for
            return self.send_json(200, {"choices": [{"index": 0, "text": "hi"}]})
        return self.send_json(404, {"error": {"message": "not found"}})


def _refused(res: subprocess.CompletedProcess, out: Path, *fragments: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in res.stderr and not out.exists()
    return lines[0]


def test_a_static_file_server_is_refused_before_any_load(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with _http_server(_Static) as url:
        res = run_satscope("--target", url, "--users", "2", "--duration", "2", "--out", str(out), timeout=60)
    _refused(res, out, "does not accept POST /v1/completions (HTTP 501)", "not an OpenAI-compatible server")


def test_a_base_url_ending_in_v1_names_the_url_without_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fake_server() as server:
        res = run_satscope("--target", server.url + "/v1", "--users", "2", "--out", str(out), timeout=60)
        assert server.records()["served"] == 0
    _refused(res, out, "HTTP 404 for /v1/v1/completions", f"(drop /v1 from the URL: --target {server.url})")


def test_the_preflight_is_one_streamed_request_not_counted_as_load(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with fake_server(ttft=0.005, itl=0.002) as server:
        res = run_satscope(
            "--target",
            server.url,
            "--users",
            "1",
            "--duration",
            "1",
            "--output-len",
            "3",
            "--out",
            str(out),
            timeout=60,
        )
        rec = server.records()
    assert res.returncode == 0, res.stderr
    assert rec["preflights"] == 1 and rec["served"] == len(rec["requests"]) > 0


def test_unknown_model_from_the_servers_error_when_it_lists_none(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with _http_server(_NoModelsListed) as url:
        res = run_satscope("--target", url, "--users", "1", "--model", "gpt-x", "--out", str(out), timeout=60)
        _refused(res, out, "does not serve model 'gpt-x'", "does not exist", "--model")
        # the right model, but a JSON answer to a streamed request: not what the load can read
        res = run_satscope("--target", url, "--users", "1", "--model", "served-one", "--out", str(out), timeout=60)
    _refused(res, out, "not an OpenAI-compatible stream", "--no-stream")


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    with bundled_server("--preset", "tiny", "--api-key", "sk-right") as server:
        yield server.url


@pytest.mark.parametrize(
    "args, fragments",
    [
        ([], ("needs an API key (HTTP 401", "(pass it with --api-key KEY or SATSCOPE_API_KEY)")),
        (["--api-key", "sk-wrong"], ("refused the key given with --api-key (HTTP 401",)),
        (
            ["--api-key", "sk-right", "--model", "nope"],
            ("does not serve model 'nope' (it serves: tiny)", "(use --model tiny)"),
        ),
    ],
)
def test_keys_and_models_on_the_bundled_server(
    keyed_server: str, tmp_path: Path, args: list[str], fragments: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    res = run_satscope(
        "--target", keyed_server, "--users", "1", *args, "--out", str(out), timeout=60, env={"SATSCOPE_API_KEY": ""}
    )
    line = _refused(res, out, *fragments)
    assert "sk-wrong" not in line and "sk-right" not in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--users", "0"], "--users must be > 0, got 0"),
        (["--rate", "0"], "--rate must be > 0, got 0"),
        (["--users", "2.5"], "--users must be a whole number, got 2.5 (e.g. --users 2)"),
        (["--users", "2", "--stages", "s.toml"], "--stages is only used with --shape stages"),
        (["--users", "2", "--steps", "3"], "--steps is only used with --shape step, not --shape constant"),
        (["--users", "2", "--shape", "sine", "--start-load", "1"], "--start-load is only used with --shape ramp"),
        (["--users", "2", "--amplitude", "3"], "--amplitude is only used with --shape sine"),
        (["--users", "2", "--arrival", "gamma"], "--arrival is only used with --rate (open loop)"),
        (["--rate", "2", "--spawn-rate", "3"], "--spawn-rate is only used with --users (closed loop)"),
        (["--rate", "2", "--cv", "2"], "--cv is only used with --arrival gamma"),
        (["--users", "2", "--serve-arg=--kv-blocks=8"], "--serve-arg is only used with --serve"),
        (["--users", "2", "--no-probes", "--server-pid", "1"], "--server-pid is for the probes"),
        (["--users", "1,2,4", "--steps", "3"], "--steps is ignored with a list of loads: --users sets every level"),
        (["--users", "2", "--stage-duration", "5"], "--stage-duration is only used with a list of loads"),
        (["--users", "1,2", "--shape", "ramp"], "a list of loads (--users) makes one stage per value"),
        (["--rate", "1,2", "--duration", "9", "--stage-duration", "3"], "give --duration (all levels) or"),
        (["--rate", "geom:4:1:3"], "need 0 < START < END and 2 <= COUNT <= 64"),
        (["--users", "1,x"], "--users 'x' is not a number"),
        (["--users", "1,2.5"], "--users must be a whole number, got 2.5"),
    ],
)
def test_bad_flag_combinations_are_one_line_before_any_load(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    res = run_satscope("--target", "http://127.0.0.1:9", *args, "--out", str(out), timeout=60)
    _refused(res, out, message)


def test_a_server_pid_that_names_no_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "satscope",
        "run",
        "--target",
        "http://127.0.0.1:9",
        "--users",
        "2",
        "--server-pid",
        "999999999",
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    _refused(res, out, "--server-pid 999999999: no such process on this machine")


def test_a_worker_without_a_master_gives_up_with_a_message(tmp_path: Path) -> None:
    port = str(free_port())
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "satscope", "run", "--worker", "--master-port", port, "--master-wait", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0] == f"waiting up to 2 s for the master at 127.0.0.1:{port}"
    assert lines[-1].startswith(f"error: no master answered at 127.0.0.1:{port} within 2 s")
    assert "start `satscope run --master --workers N ...` there first" in lines[-1]
