"""`satscope run`: drive a server with a traffic shape into a run directory (issue #4).

Imports only typer and the standard library at module level so `satscope --help` stays instant;
the load generator runs as a subprocess (``python -m loadgen.runner``), never in this process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["run"]

_SHAPE = "Traffic shape"
_WORK = "Workload"
_TARGET = "Target"
_RUN = "Run"


def run(
    target: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.", rich_help_panel=_TARGET)
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Start the bundled `satscope serve` for this run.", rich_help_panel=_TARGET)
    ] = False,
    serve_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="A flag for `satscope serve` (repeat it), e.g. --serve-arg=--kv-blocks=64.", rich_help_panel=_TARGET
        ),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="completions or chat.", rich_help_panel=_TARGET)] = "completions",
    model: Annotated[
        str | None,
        typer.Option(help="Model name sent (default: the first of the target's /v1/models).", rich_help_panel=_TARGET),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SATSCOPE_API_KEY",
            show_envvar=True,
            help="Bearer key, sent only to the target, never written.",
            rich_help_panel=_TARGET,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take.", rich_help_panel=_TARGET)] = 120.0,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Non-streaming requests.", rich_help_panel=_TARGET)
    ] = False,
    shape: Annotated[
        str, typer.Option(help="constant, ramp, step, spike, sine or stages.", rich_help_panel=_SHAPE)
    ] = "constant",
    users: Annotated[
        float | None, typer.Option(help="Closed loop: concurrent users (peak/end load).", rich_help_panel=_SHAPE)
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Open loop: requests/s (peak/end load).", rich_help_panel=_SHAPE)
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load.", rich_help_panel=_SHAPE)] = 60.0,
    start_load: Annotated[
        float, typer.Option(help="ramp: start; step: first step; spike: base load.", rich_help_panel=_SHAPE)
    ] = 1.0,
    steps: Annotated[int, typer.Option(help="step: number of steps.", rich_help_panel=_SHAPE)] = 5,
    amplitude: Annotated[float, typer.Option(help="sine: amplitude.", rich_help_panel=_SHAPE)] = 0.0,
    period: Annotated[float, typer.Option(help="sine: period in s.", rich_help_panel=_SHAPE)] = 60.0,
    spawn_rate: Annotated[float | None, typer.Option(help="Users started per second.", rich_help_panel=_SHAPE)] = None,
    arrival: Annotated[
        str, typer.Option(help="Open loop: constant, poisson or gamma.", rich_help_panel=_SHAPE)
    ] = "poisson",
    cv: Annotated[
        float, typer.Option(help="gamma: coefficient of variation of the gaps.", rich_help_panel=_SHAPE)
    ] = 1.0,
    stages: Annotated[
        Path | None, typer.Option(help="TOML file of [[stage]] tables (--shape stages).", rich_help_panel=_SHAPE)
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option(help="Open loop: cap on requests in flight (then dropped).", rich_help_panel=_SHAPE)
    ] = 1024,
    input_len: Annotated[
        str,
        typer.Option(
            help="Prompt tokens: N or KIND:MEAN[:SPREAD] (fixed, uniform, normal, lognormal).", rich_help_panel=_WORK
        ),
    ] = "128",
    output_len: Annotated[
        str, typer.Option(help="max_tokens: N or KIND:MEAN[:SPREAD].", rich_help_panel=_WORK)
    ] = "128",
    prefix_groups: Annotated[int, typer.Option(help="Shared-prefix groups.", rich_help_panel=_WORK)] = 0,
    prefix_tokens: Annotated[int, typer.Option(help="Tokens of each group's prefix.", rich_help_panel=_WORK)] = 0,
    dataset: Annotated[Path | None, typer.Option(help="ShareGPT JSON/JSONL file.", rich_help_panel=_WORK)] = None,
    no_ignore_eos: Annotated[
        bool, typer.Option("--no-ignore-eos", help="Let the model stop early.", rich_help_panel=_WORK)
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for prompts, lengths and arrivals.", rich_help_panel=_WORK)] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<timestamp>).", rich_help_panel=_RUN)
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Local Locust worker processes under a master (0: one process).", rich_help_panel=_RUN)
    ] = 0,
    master: Annotated[
        bool, typer.Option("--master", help="Be the master for --workers N remote workers.", rich_help_panel=_RUN)
    ] = False,
    worker: Annotated[
        bool, typer.Option("--worker", help="Be a worker of a master at --master-host.", rich_help_panel=_RUN)
    ] = False,
    master_host: Annotated[str, typer.Option(help="Master address (--worker).", rich_help_panel=_RUN)] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Master port (--master / --worker).", rich_help_panel=_RUN)] = 5557,
    no_probes: Annotated[
        bool, typer.Option("--no-probes", help="Do not start the probes.", rich_help_panel=_RUN)
    ] = False,
    no_gpu: Annotated[bool, typer.Option("--no-gpu", help="Probes: skip the GPU.", rich_help_panel=_RUN)] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Do not build the report.", rich_help_panel=_RUN)
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress.", rich_help_panel=_RUN)] = False,
    slo: Annotated[
        list[str] | None,
        typer.Option(help="Goodput SLO for the report, repeatable: ttft=0.5, itl=50ms.", rich_help_panel=_RUN),
    ] = None,
    gate: Annotated[
        Path | None,
        typer.Option(help="After the report, judge the run with this rules file (see `satscope gate`).",
                     rich_help_panel=_RUN),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="Baseline run directory for --gate regression rules.", rich_help_panel=_RUN)
    ] = None,
) -> None:
    """Drive a server with a traffic shape; time every token; write runs/NAME/."""
    from satscope.errors import SatscopeError

    if worker:
        cmd = [
            sys.executable,
            "-m",
            "loadgen.runner",
            "--role",
            "worker",
            "--master-host",
            master_host,
            "--master-port",
            str(master_port),
        ]
        raise typer.Exit(subprocess.call(cmd))
    if serve == (target is not None):
        raise SatscopeError("give exactly one of --target URL and --serve", "e.g. --target http://127.0.0.1:8000")
    if (gate is not None or baseline is not None) and no_report:
        raise SatscopeError("--gate needs the report", "drop --no-report")
    if baseline is not None and gate is None:
        raise SatscopeError("--baseline is only used with --gate", "add --gate RULES.toml")
    gate_config = None
    if gate is not None:
        from reports.gates import load_rules

        gate_config = load_rules(gate)  # a bad rules file fails now, before any load
        if baseline is not None and not (baseline / "run.json").exists():
            raise SatscopeError(f"baseline {baseline} is not a run directory", "pass a runs/NAME of an earlier run")
    if slo:
        from reports import parse_slos

        parse_slos(slo)  # one-line error for a bad SLO before any load
    if master and workers < 1:
        raise SatscopeError("--master needs --workers N (the remote workers to wait for)", "e.g. --workers 2")
    from rich.console import Console

    from loadgen.config import LoadgenConfig
    from loadgen.orchestrate import RunPlan, execute
    from loadgen.shape_options import ShapeOptions, build_shape
    from loadgen.workload import LengthDist, WorkloadConfig, load_sharegpt

    shape_obj = build_shape(
        ShapeOptions(
            shape=shape,
            users=users,
            rate=rate,
            duration_s=duration,
            start_load=start_load,
            steps=steps,
            amplitude=amplitude,
            period_s=period,
            spawn_rate=spawn_rate,
            arrival=arrival,
            arrival_cv=cv,
            stages_file=None if stages is None else str(stages),
        )
    )
    if dataset is not None:
        load_sharegpt(dataset)  # unreadable or empty: one-line error now, before any load
    workload = WorkloadConfig(
        input_len=LengthDist.parse(input_len),
        output_len=LengthDist.parse(output_len),
        prefix_groups=prefix_groups,
        prefix_tokens=prefix_tokens,
        dataset=None if dataset is None else str(dataset.resolve()),
        ignore_eos=not no_ignore_eos,
        seed=seed,
    )
    run_dir = out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    config = LoadgenConfig(
        target_url=target or "http://127.0.0.1",
        run_dir=str(run_dir),
        shape=shape_obj.to_json(),
        workload=workload.to_json(),
        endpoint=endpoint,
        model=model or "",
        stream=not no_stream,
        timeout_s=timeout,
        max_in_flight=max_in_flight,
        workers=workers,
    )
    from loadgen.manifest import redact_command

    plan = RunPlan(
        config=config,
        command=redact_command(sys.argv, api_key),
        api_key=api_key,
        serve_flags=list(serve_arg or []) if serve else None,
        probes=not no_probes,
        probes_no_gpu=no_gpu,
        report=not no_report,
        master_bind_host="*" if master else "127.0.0.1",
        master_port=master_port if master else 0,
        live=not quiet,
        slos=list(slo or []),
    )
    console = Console(stderr=True)
    code, path = execute(plan, console)
    console.print(f"run directory: {path}")
    if gate_config is not None:
        from reports.gates import append_step_summary, evaluate, print_table

        result = evaluate(path, gate_config, baseline)
        print_table(result)
        append_step_summary(result)
        code = code or (0 if result.passed else 1)
    raise typer.Exit(code)
