"""`satscope serve` as a real subprocess: flags, one-line errors, no prompt text in logs, SIGTERM drains."""

from __future__ import annotations

import json
import signal
import socket

import httpx
import pytest

from tests.helpers import bundled_server, satscope_cli

FLAGS = [
    "--host",
    "--port",
    "--preset",
    "--model",
    "--served-model-name",
    "--seed",
    "--dtype",
    "--device",
    "--kv-blocks",
    "--block-size",
    "--gpu-memory-utilization",
    "--max-num-seqs",
    "--max-batched-tokens",
    "--max-waiting",
    "--max-model-len",
    "--max-tokens-limit",
    "--max-body-bytes",
    "--api-key",
    "--step-delay-ms",
    "--log-level",
]



def test_help_documents_every_flag() -> None:
    out = satscope_cli("serve", "--help")
    assert out.returncode == 0
    for flag in FLAGS:
        assert flag in out.stdout
    assert "SATSCOPE_API_KEY" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--block-size", "0"], "block_size must be >= 1"),
        (["--preset", "gpt-5"], "unknown preset 'gpt-5'"),
        (["--dtype", "float8"], "unknown dtype 'float8'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--gpu-memory-utilization", "1.5"], "gpu_memory_utilization must be in (0, 1]"),
        (["--model", "/nonexistent/ckpt"], "is not a directory"),
        (["--max-model-len", "100000"], "exceeds the model's 2048 positions"),
        (["--max-body-bytes", "0"], "max_body_bytes must be >= 1"),
    ],
)
def test_bad_flags_are_one_line_errors(args: list[str], message: str) -> None:
    out = satscope_cli("serve", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        out = satscope_cli("serve", "--port", str(sock.getsockname()[1]), "--log-level", "error")
    assert out.returncode == 2 and "is in use" in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_sigterm_drains_streams_in_flight_and_logs_no_prompt_or_key() -> None:
    marker, key = "PROMPT-MARKER-7f3a", "key-from-env-91c2"
    flags = ("--step-delay-ms", "20", "--log-level", "debug", "--served-model-name", "m")
    with bundled_server(*flags, env={"SATSCOPE_API_KEY": key}) as server:
        health = httpx.get(f"{server.url}/health").json()
        assert health["model"] == "m" and health["kernels"] == "torch"
        body = {"model": "m", "prompt": marker, "max_tokens": 60, "ignore_eos": True, "stream": True}
        assert httpx.post(f"{server.url}/v1/completions", json=body).status_code == 401
        chunks = []
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=auth, timeout=60) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                chunks.append(line)
                if len(chunks) == 3:
                    server.proc.send_signal(signal.SIGTERM)
        assert chunks[-1] == "data: [DONE]"
        texts = [json.loads(c[len("data: ") :])["choices"][0]["text"] for c in chunks[:-1]]
        assert len(texts) == 60  # the stream in flight finished after SIGTERM
        assert server.proc.wait(timeout=30) == 0
        log = server.log()
        assert "Shutting down" in log
        assert marker not in log and key not in log


def test_every_config_field_is_a_flag_declared_on_the_field() -> None:
    """`satscope serve`'s flags are built from ServerConfig's fields: none is missing, none extra."""
    import dataclasses
    import re

    from satscope.server_under_test.config import ServerConfig

    out = satscope_cli("serve", "--help").stdout
    shown = set(re.findall(r"^\s+(--[a-z-]+)", out, flags=re.M)) - {"--help"}
    declared = {
        (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]
        for f in dataclasses.fields(ServerConfig)
    }
    assert shown == declared
    for f in dataclasses.fields(ServerConfig):
        assert f.metadata["help"].split()[0] in out  # each option's help is the field's
