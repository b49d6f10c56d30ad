"""The options of `satscope run`, declared once: each field is a flag (``satscope._options``).

A field's default is the flag's default, its metadata the help, the help section and, where the
flag is not ``--field-name``, its spelling. ``satscope/_run.py`` reads the values from one
``RunOptions``; nothing restates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunOptions"]

_SHAPE = "Traffic shape"
_WORK = "Workload"
_TARGET = "Target"
_RUN = "Run"


def _m(help: str, panel: str | None = None, **cli: Any) -> dict[str, Any]:
    """A field's option: its help, help section, and ``flag``/``envvar`` where needed."""
    return {"help": help, "panel": panel, **cli}


@dataclass(slots=True)
class RunOptions:
    """Every flag of `satscope run`, with its default and help."""

    target: str | None = field(default=None, metadata=_m("Base URL of an OpenAI-compatible server.", _TARGET))
    serve: bool = field(
        default=False, metadata=_m("Start the bundled `satscope serve` for this run.", _TARGET, flag="--serve")
    )
    serve_arg: list[str] | None = field(
        default=None, metadata=_m("A flag for `satscope serve` (repeat it), e.g. --serve-arg=--kv-blocks=64.", _TARGET)
    )
    endpoint: str = field(default="completions", metadata=_m("completions or chat.", _TARGET))
    model: str | None = field(
        default=None, metadata=_m("Model name sent (default: the first of the target's /v1/models).", _TARGET)
    )
    api_key: str | None = field(
        default=None,
        metadata=_m("Bearer key, sent only to the target, never written.", _TARGET, envvar="SATSCOPE_API_KEY"),
    )
    header: list[str] | None = field(
        default=None,
        metadata=_m(
            "An HTTP header for every request to the target, NAME:VALUE (repeat it); the value is "
            "never written (run.json shows NAME: ***).",
            _TARGET,
        ),
    )
    extra_body: str | None = field(
        default=None,
        metadata=_m(
            'A JSON object merged into every request body, e.g. \'{"temperature": 0.7, "top_p": 0.9}\'.', _TARGET
        ),
    )
    timeout: float = field(default=120.0, metadata=_m("Seconds one request may take.", _TARGET))
    dead_after: float = field(
        default=10.0,
        metadata=_m(
            "Stop the run after this many seconds of nothing but connection errors (the target went "
            "away): status failed, exit code 3. 0: never.",
            _TARGET,
        ),
    )
    server_pid: int | None = field(
        default=None, metadata=_m("Process id of an external server: the probes sample its CPU cores and RSS.", _TARGET)
    )
    metrics_url: str | None = field(
        default=None, metadata=_m("Prometheus /metrics URL of the server when it is not TARGET/metrics.", _TARGET)
    )
    no_stream: bool = field(default=False, metadata=_m("Non-streaming requests.", _TARGET, flag="--no-stream"))
    shape: str = field(
        default="constant",
        metadata=_m(
            "constant, ramp, step, spike, sine, stages, or search (find the knee: doubles the users "
            "from --start-load up to --users, then bisects).",
            _SHAPE,
        ),
    )
    users: str | None = field(
        default=None,
        metadata=_m(
            "Closed loop: concurrent users (peak/end load); a list 1,2,4,8 or geom:1:64:7 runs one stage per value.",
            _SHAPE,
        ),
    )
    rate: str | None = field(
        default=None,
        metadata=_m(
            "Open loop: requests/s (peak/end load); a list 0.5,1,2 or geom:0.5:8:5 runs one stage per value.", _SHAPE
        ),
    )
    duration: float = field(default=60.0, metadata=_m("Seconds of load.", _SHAPE))
    stage_duration: float | None = field(
        default=None, metadata=_m("With a list of loads: seconds per level (default: --duration shared).", _SHAPE)
    )
    start_load: float = field(
        default=1.0, metadata=_m("ramp: start; step: first step; spike: base load; search: first level.", _SHAPE)
    )
    precision: float = field(
        default=0.1, metadata=_m("search: relative width of the final bracket (users: 1 user at least).", _SHAPE)
    )
    budget: float | None = field(
        default=None, metadata=_m("search: seconds of load in all (default --duration).", _SHAPE)
    )
    steps: int = field(default=5, metadata=_m("step: number of steps.", _SHAPE))
    amplitude: float = field(default=0.0, metadata=_m("sine: amplitude.", _SHAPE))
    period: float = field(default=60.0, metadata=_m("sine: period in s.", _SHAPE))
    spawn_rate: float | None = field(default=None, metadata=_m("Users started per second.", _SHAPE))
    arrival: str = field(default="poisson", metadata=_m("Open loop: constant, poisson or gamma.", _SHAPE))
    cv: float = field(default=1.0, metadata=_m("gamma: coefficient of variation of the gaps.", _SHAPE))
    stages: Path | None = field(default=None, metadata=_m("TOML file of [[stage]] tables (--shape stages).", _SHAPE))
    max_in_flight: int = field(
        default=1024, metadata=_m("Open loop: cap on requests in flight (then dropped).", _SHAPE)
    )
    max_requests: int | None = field(
        default=None,
        metadata=_m(
            "End the run once N requests were sent and answered (over all workers), or at the end of "
            "the shape, whichever comes first.",
            _SHAPE,
        ),
    )
    input_len: str = field(
        default="128", metadata=_m("Prompt tokens: N or KIND:MEAN[:SPREAD] (fixed, uniform, normal, lognormal).", _WORK)
    )
    output_len: str = field(default="128", metadata=_m("max_tokens: N or KIND:MEAN[:SPREAD].", _WORK))
    prefix_groups: int = field(default=0, metadata=_m("Shared-prefix groups.", _WORK))
    prefix_tokens: int = field(default=0, metadata=_m("Tokens of each group's prefix.", _WORK))
    dataset: Path | None = field(default=None, metadata=_m("ShareGPT JSON/JSONL file.", _WORK))
    turns: int = field(
        default=1,
        metadata=_m(
            "Turns per session: turn k carries the earlier prompts and the server's answers "
            "(--input-len, --output-len per turn).",
            _WORK,
        ),
    )
    think_time: str = field(
        default="0",
        metadata=_m(
            "Seconds between a turn's answer and the session's next turn: S or KIND:MEAN[:SPREAD] "
            "(fixed, uniform, normal, lognormal).",
            _WORK,
        ),
    )
    dataset_format: str = field(
        default="sharegpt",
        metadata=_m(
            "--dataset FILE is: sharegpt (the first human turns), sharegpt-sessions (each "
            "conversation a session, all its turns), messages (OpenAI messages JSONL, a session a "
            "line) or mooncake (a trace to replay at its own times).",
            _WORK,
        ),
    )
    speedup: float = field(
        default=1.0, metadata=_m("mooncake trace or --fixed-schedule: replay this many times faster.", _WORK)
    )
    trace_block_tokens: int = field(default=512, metadata=_m("mooncake trace: prompt tokens per hash id.", _WORK))
    fixed_schedule: bool = field(
        default=False,
        metadata=_m(
            "Send each line of --dataset at its `timestamp` (ms; with --speedup), as a trace replay: "
            "sharegpt lines are requests, messages and sharegpt-sessions lines sessions.",
            _WORK,
            flag="--fixed-schedule",
        ),
    )
    tokenizer: Path | None = field(
        default=None,
        metadata=_m(
            "The served model's Hugging Face tokenizer.json (or its folder): prompts of exactly "
            "--input-len tokens and counted dataset prompts, without calibration (needs `tokenizers`).",
            _WORK,
        ),
    )
    no_ignore_eos: bool = field(default=False, metadata=_m("Let the model stop early.", _WORK, flag="--no-ignore-eos"))
    seed: int | None = field(
        default=None,
        metadata=_m(
            "Seed for prompts, lengths and arrivals; repeats a run exactly (default: a fresh one, "
            "recorded in run.json, so reruns do not hit the server's prompt cache).",
            _WORK,
        ),
    )
    out: Path | None = field(default=None, metadata=_m("Run directory (default runs/<timestamp>).", _RUN))
    workers: int = field(default=0, metadata=_m("Local Locust worker processes under a master (0: one process).", _RUN))
    master: bool = field(
        default=False, metadata=_m("Be the master for --workers N remote workers.", _RUN, flag="--master")
    )
    worker: bool = field(default=False, metadata=_m("Be a worker of a master at --master-host.", _RUN, flag="--worker"))
    master_host: str = field(default="127.0.0.1", metadata=_m("Master address (--worker).", _RUN))
    master_port: int = field(default=5557, metadata=_m("Master port (--master / --worker).", _RUN))
    master_wait: float = field(default=60.0, metadata=_m("--worker: seconds to wait for the master to listen.", _RUN))
    no_probes: bool = field(default=False, metadata=_m("Do not start the probes.", _RUN, flag="--no-probes"))
    no_gpu: bool = field(default=False, metadata=_m("Probes: skip the GPU.", _RUN, flag="--no-gpu"))
    no_report: bool = field(default=False, metadata=_m("Do not build the report.", _RUN, flag="--no-report"))
    quiet: bool = field(default=False, metadata=_m("No live progress.", _RUN, flag="--quiet"))
    slo: list[str] | None = field(
        default=None, metadata=_m("Goodput SLO for the report, repeatable: ttft=0.5, itl=50ms.", _RUN)
    )
    slo_attainment: float = field(
        default=0.99,
        metadata=_m(
            "search with --slo: find the highest load at which this share of requests meets every --slo "
            "(the max goodput load).",
            _SHAPE,
        ),
    )
    warmup: float = field(
        default=0.0,
        metadata=_m(
            "Leave the first S seconds of load out of every figure of the report (the requests stay "
            "in requests.parquet).",
            _RUN,
        ),
    )
    percentiles: str | None = field(
        default=None,
        metadata=_m(
            "Latency percentiles for the report's tables and summary, e.g. 50,90,95,99,99.9 (p50, "
            "p90 and p99 always; default 50,90,95,99).",
            _RUN,
        ),
    )
    as_json: bool = field(
        default=False,
        metadata=_m(
            "Print the run's summary.json to stdout (and nothing else; the rest on stderr).", _RUN, flag="--json"
        ),
    )
    gate: Path | None = field(
        default=None, metadata=_m("After the report, judge the run with this rules file (see `satscope gate`).", _RUN)
    )
    baseline: Path | None = field(
        default=None, metadata=_m("Baseline run directory for --gate regression rules.", _RUN)
    )
    allow_invalid: bool = field(
        default=False,
        metadata=_m("--gate: judge the run even when it says it is invalid.", _RUN, flag="--allow-invalid"),
    )
