"""`satscope run`: drive a server with a traffic shape into a run directory (issue #4).

Imports only typer and the standard library at module level so `satscope --help` stays instant;
the load generator runs as a subprocess (``python -m loadgen.runner``), never in this process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, TextIO

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
    header: Annotated[
        list[str] | None,
        typer.Option(help="An HTTP header for every request to the target, NAME:VALUE (repeat it); the value is "
                     "never written (run.json shows NAME: ***).", rich_help_panel=_TARGET),
    ] = None,
    extra_body: Annotated[
        str | None,
        typer.Option(help="A JSON object merged into every request body, e.g. '{\"temperature\": 0.7, "
                     "\"top_p\": 0.9}'.", rich_help_panel=_TARGET),
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
        str, typer.Option(help="constant, ramp, step, spike, sine, stages, or search (find the knee: doubles the "
                          "users from --start-load up to --users, then bisects).", rich_help_panel=_SHAPE)
    ] = "constant",
    users: Annotated[
        str | None,
        typer.Option(help="Closed loop: concurrent users (peak/end load); a list 1,2,4,8 or geom:1:64:7 runs one "
                     "stage per value.", rich_help_panel=_SHAPE),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(help="Open loop: requests/s (peak/end load); a list 0.5,1,2 or geom:0.5:8:5 runs one stage "
                     "per value.", rich_help_panel=_SHAPE),
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load.", rich_help_panel=_SHAPE)] = 60.0,
    stage_duration: Annotated[
        float | None,
        typer.Option(help="With a list of loads: seconds per level (default: --duration shared).",
                     rich_help_panel=_SHAPE),
    ] = None,
    start_load: Annotated[
        float, typer.Option(help="ramp: start; step: first step; spike: base load; search: first level.",
                            rich_help_panel=_SHAPE)
    ] = 1.0,
    precision: Annotated[
        float, typer.Option(help="search: relative width of the final bracket (users: 1 user at least).",
                            rich_help_panel=_SHAPE)
    ] = 0.1,
    budget: Annotated[
        float | None, typer.Option(help="search: seconds of load in all (default --duration).",
                                   rich_help_panel=_SHAPE)
    ] = None,
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
    max_requests: Annotated[
        int | None,
        typer.Option(help="End the run once N requests were sent and answered (over all workers), or at the end of "
                     "the shape, whichever comes first.", rich_help_panel=_SHAPE),
    ] = None,
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
    turns: Annotated[
        int,
        typer.Option(help="Turns per session: turn k carries the earlier prompts and the server's answers "
                     "(--input-len, --output-len per turn).", rich_help_panel=_WORK),
    ] = 1,
    think_time: Annotated[
        str,
        typer.Option(help="Seconds between a turn's answer and the session's next turn: S or KIND:MEAN[:SPREAD] "
                     "(fixed, uniform, normal, lognormal).", rich_help_panel=_WORK),
    ] = "0",
    dataset_format: Annotated[
        str,
        typer.Option(help="--dataset FILE is: sharegpt (the first human turns), sharegpt-sessions (each "
                     "conversation a session, all its turns), messages (OpenAI messages JSONL, a session a line) "
                     "or mooncake (a trace to replay at its own times).", rich_help_panel=_WORK),
    ] = "sharegpt",
    speedup: Annotated[
        float, typer.Option(help="mooncake trace: replay this many times faster.", rich_help_panel=_WORK)
    ] = 1.0,
    trace_block_tokens: Annotated[
        int, typer.Option(help="mooncake trace: prompt tokens per hash id.", rich_help_panel=_WORK)
    ] = 512,
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
    warmup: Annotated[
        float,
        typer.Option(help="Leave the first S seconds of load out of every figure of the report (the requests stay "
                     "in requests.parquet).", rich_help_panel=_RUN),
    ] = 0.0,
    percentiles: Annotated[
        str | None,
        typer.Option(help="Latency percentiles for the report's tables and summary, e.g. 50,90,95,99,99.9 (p50, "
                     "p90 and p99 always; default 50,90,95,99).", rich_help_panel=_RUN),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the run's summary.json to stdout (and nothing else; the rest on stderr).",
                     rich_help_panel=_RUN),
    ] = False,
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
    if serve:
        from satscope._extras import require_server

        require_server("satscope run --serve")
    if (gate is not None or baseline is not None) and no_report:
        raise SatscopeError("--gate needs the report", "drop --no-report")
    if baseline is not None and gate is None:
        raise SatscopeError("--baseline is only used with --gate", "add --gate RULES.toml")
    if allow_invalid and gate is None:
        raise SatscopeError("--allow-invalid is only used with --gate", "add --gate RULES.toml")
    if as_json and no_report:
        raise SatscopeError("--json prints the report's summary", "drop --no-report")
    from loadgen.request_extras import parse_extra_body, parse_headers, redacted_headers
    from reports import ReportSettings

    headers = parse_headers(list(header or []), api_key)
    body_extra = parse_extra_body(extra_body) if extra_body is not None else {}
    report_settings = ReportSettings.parse(warmup, percentiles)
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
    from loadgen.load_list import parse_loads
    from loadgen.shape_options import ShapeOptions, build_shape, check_flag_combination, search_settings
    from loadgen.workload import LengthDist, WorkloadConfig, fresh_seed, load_sharegpt
    from satscope._orchestrate import RunPlan, execute

    if dataset_format == "mooncake" and dataset is not None:  # the trace's own schedule: an open-loop envelope
        from loadgen.trace import check_trace_flags, replay_envelope

        check_trace_flags(given)
        rate, duration = replay_envelope(dataset, speedup)
    elif "--speedup" in given or "--trace-block-tokens" in given:
        raise SatscopeError("--speedup and --trace-block-tokens are for a trace replay",
                            "add --dataset TRACE.jsonl --dataset-format mooncake")
    user_loads = parse_loads(users, "--users", whole=True) if users is not None else None
    rate_loads = parse_loads(rate, "--rate", whole=False) if rate is not None else None
    levels = user_loads or rate_loads or ()
    check_flag_combination(shape, users is not None, given, load_list=len(levels) > 1)
    shape_options = ShapeOptions(
        shape=shape,
        users=max(user_loads) if user_loads else None,
        rate=max(rate_loads) if rate_loads else None,
        levels=levels if len(levels) > 1 else (),
        stage_duration_s=stage_duration,
        duration_s=duration,
        start_load=start_load,
        steps=steps,
        amplitude=amplitude,
        period_s=period,
        spawn_rate=spawn_rate,
        arrival=arrival,
        arrival_cv=cv,
        stages_file=None if stages is None else str(stages),
        precision=precision,
        budget_s=budget,
    )
    shape_obj = build_shape(shape_options)
    search = search_settings(shape_options)
    peak_users = max(st.peak_load() for st in shape_obj.stages) if shape_obj.kind == "closed" else None
    if max_requests is not None and workers and peak_users is not None and peak_users < workers:
        # each worker sends its share of --max-requests; one that never gets a user would never send it
        raise SatscopeError(f"--max-requests is shared by the {workers} workers but at most {peak_users:g} users run",
                            f"use --users {workers} or more, or fewer --workers")
    if warmup >= shape_obj.duration_s:
        raise SatscopeError(f"--warmup {warmup:g} leaves no load of the {shape_obj.duration_s:g} s run",
                            "shorten --warmup or lengthen the run")
    from loadgen.conversation import ThinkTime
    from loadgen.conversations_file import SESSION_FORMATS, load_conversations
    from loadgen.workload import DATASET_FORMATS

    if dataset_format not in DATASET_FORMATS:
        raise SatscopeError(f"--dataset-format {dataset_format!r} unknown", f"use one of {DATASET_FORMATS}")
    if "--dataset-format" in given and dataset is None:
        raise SatscopeError("--dataset-format says what --dataset FILE holds", "add --dataset FILE")
    conversations = dataset is not None and dataset_format in SESSION_FORMATS
    if dataset is not None and dataset_format != "mooncake":  # unreadable or empty: one-line error now
        load_conversations(dataset, dataset_format) if conversations else load_sharegpt(dataset)
    if "--think-time" in given and turns < 2 and not conversations:
        raise SatscopeError("--think-time is the pause between the turns of a session",
                            "add --turns N (N >= 2), or a --dataset-format of conversations")
    workload = WorkloadConfig(
        input_len=LengthDist.parse(input_len),
        output_len=LengthDist.parse(output_len),
        prefix_groups=prefix_groups,
        prefix_tokens=prefix_tokens,
        dataset=None if dataset is None else str(dataset.resolve()),
        ignore_eos=not no_ignore_eos,
        seed=fresh_seed() if seed is None else seed,
        turns=turns,
        think_time=ThinkTime.parse(think_time),
        dataset_format=dataset_format,
        speedup=speedup,
        trace_block_tokens=trace_block_tokens,
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
        headers=redacted_headers(headers),
        extra_body=body_extra,
        max_requests=max_requests,
        search=None if search is None else search.to_json(),
    )
    from satscope._manifest import redact_command

    plan = RunPlan(
        config=config,
        command=redact_command(sys.argv, api_key),
        api_key=api_key,
        headers=headers,
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
        preflight=preflight_check(endpoint, api_key, not no_stream, not no_ignore_eos, timeout, headers, body_extra),
        extra_config={"report": report_settings.to_json()},
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
    # --json: stdout carries the summary and nothing else
    results = sys.stderr if as_json else sys.stdout
    _print_outcome(path, results)
    if gate_config is not None:
        import contextlib

        from reports.gates import append_step_summary, evaluate, print_table

        result = evaluate(path, gate_config, baseline, allow_invalid=allow_invalid)
        with contextlib.redirect_stdout(results):
            print_table(result)
        append_step_summary(result)
        code = code or (0 if result.passed else 1)
    if as_json and (path / "summary.json").exists():
        print((path / "summary.json").read_text().rstrip("\n"))
    raise typer.Exit(code)


def _print_outcome(path: Path, results: TextIO) -> None:
    """The run directory, the report and its verdict on ``results`` (stdout); an interruption on stderr."""
    import json

    print(f"run directory: {path}", file=results)
    summary = path / "summary.json"
    report = f"{path / 'report.html'}" if summary.exists() else f"`satscope report {path}`"
    if summary.exists():
        print(f"report: {report}", file=results)
        print(json.loads(summary.read_text()).get("verdict", ""), file=results)
    try:
        manifest = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    status = manifest.get("status")
    if status == "interrupted":
        print(f"interrupted: partial run saved in {path}; report: {report}", file=sys.stderr)
    elif status == "failed":  # said even with --quiet: an exit code alone does not tell what broke
        notes = (manifest.get("validity") or {}).get("notes") or ["see run.json"]
        crash = _last_line(path / "locust.log") if "load generator exited" in notes[-1] else None
        print(f"failed: {notes[-1]}{f' ({crash})' if crash else ''}; partial run saved in {path}", file=sys.stderr)


def _last_line(log: Path) -> str | None:
    """The last line of a log, e.g. the exception that ended the load generator."""
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None

