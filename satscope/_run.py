"""`satscope run`: drive a server with a traffic shape into a run directory (issue #4).

Imports only typer and the standard library at module level so `satscope --help` stays instant;
the load generator runs as a subprocess (``python -m loadgen.runner``), never in this process.
"""

from __future__ import annotations

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
    ctx: typer.Context,
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
    dead_after: Annotated[
        float,
        typer.Option(help="Stop the run after this many seconds of nothing but connection errors (the target "
                     "went away): status failed, exit code 3. 0: never.", rich_help_panel=_TARGET),
    ] = 10.0,
    server_pid: Annotated[
        int | None,
        typer.Option(help="Process id of an external server: the probes sample its CPU cores and RSS.",
                     rich_help_panel=_TARGET),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="Prometheus /metrics URL of the server when it is not TARGET/metrics.",
                     rich_help_panel=_TARGET),
    ] = None,
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
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for prompts, lengths and arrivals; repeats a run exactly (default: a fresh one, "
                     "recorded in run.json, so reruns do not hit the server's prompt cache).", rich_help_panel=_WORK),
    ] = None,
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
    master_wait: Annotated[
        float, typer.Option(help="--worker: seconds to wait for the master to listen.", rich_help_panel=_RUN)
    ] = 60.0,
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
    allow_invalid: Annotated[
        bool,
        typer.Option("--allow-invalid", help="--gate: judge the run even when it says it is invalid.",
                     rich_help_panel=_RUN),
    ] = False,
) -> None:
    """Drive a server with a traffic shape; time every token; write runs/NAME/.

    Exit codes: 0 complete; 1 interrupted, failed, or a --gate failed; 2 bad input (nothing run);
    3 the target went away mid-run (see --dead-after).
    """
    from satscope._flags import check_run_flags, check_server_pid, given_flags
    from satscope._preflight import preflight_check
    from satscope._worker import run_worker
    from satscope.errors import SatscopeError

    given = given_flags(ctx)
    if worker:
        raise typer.Exit(run_worker(master_host, master_port, master_wait, given))
    check_run_flags(given, serve=serve, master=master, arrival=arrival)
    if serve == (target is not None):
        raise SatscopeError("give exactly one of --target URL and --serve", "e.g. --target http://127.0.0.1:8000")
    if (gate is not None or baseline is not None) and no_report:
        raise SatscopeError("--gate needs the report", "drop --no-report")
    if baseline is not None and gate is None:
        raise SatscopeError("--baseline is only used with --gate", "add --gate RULES.toml")
    if allow_invalid and gate is None:
        raise SatscopeError("--allow-invalid is only used with --gate", "add --gate RULES.toml")
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
    if server_pid is not None:
        check_server_pid(server_pid, serve)
    if metrics_url is not None and not metrics_url.startswith(("http://", "https://")):
        raise SatscopeError(f"--metrics-url {metrics_url!r} is not an http(s) URL", "e.g. http://127.0.0.1:9090/metrics")
    from rich.console import Console

    from loadgen.config import LoadgenConfig
    from loadgen.orchestrate import RunPlan, execute
    from loadgen.shape_options import ShapeOptions, build_shape, check_flag_combination
    from loadgen.workload import LengthDist, WorkloadConfig, fresh_seed, load_sharegpt

    check_flag_combination(shape, users is not None, given)
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
        seed=fresh_seed() if seed is None else seed,
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
        dead_after_s=dead_after,
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
        server_pid=server_pid,
        metrics_url=metrics_url,
        preflight=preflight_check(endpoint, api_key, not no_stream, not no_ignore_eos, timeout),
    )
    # diagnostics on stderr, never wrapped nor read as markup; results on stdout (print)
    console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    try:
        code, path = execute(plan, console)
    except KeyboardInterrupt:
        kept = (run_dir / "run.json").exists()
        left = f"the run directory {run_dir} holds no requests" if kept else "nothing was saved"
        print(f"interrupted before any load; {left}", file=sys.stderr)
        raise typer.Exit(130) from None
    _print_outcome(path)
    if gate_config is not None:
        from reports.gates import append_step_summary, evaluate, print_table

        result = evaluate(path, gate_config, baseline, allow_invalid=allow_invalid)
        print_table(result)
        append_step_summary(result)
        code = code or (0 if result.passed else 1)
    raise typer.Exit(code)


def _print_outcome(path: Path) -> None:
    """The run directory, the report and its verdict on stdout; an interruption on stderr."""
    import json

    print(f"run directory: {path}")
    summary = path / "summary.json"
    report = f"{path / 'report.html'}" if summary.exists() else f"`satscope report {path}`"
    if summary.exists():
        print(f"report: {report}")
        print(json.loads(summary.read_text()).get("verdict", ""))
    try:
        status = json.loads((path / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        status = None
    if status == "interrupted":
        print(f"interrupted: partial run saved in {path}; report: {report}", file=sys.stderr)

