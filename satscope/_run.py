"""`satscope run`: drive a server with a traffic shape into a run directory (issue #4).

Its flags are the fields of ``RunOptions`` (``satscope/_run_options.py``), declared once there.
Imports only typer and the standard library at module level so `satscope --help` stays instant;
the load generator runs as a subprocess (``python -m satscope.loadgen.runner``), never in this process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import typer

from satscope._options import command_from
from satscope._run_options import RunOptions

__all__ = ["run"]


def _run(ctx: typer.Context, o: RunOptions) -> None:
    """Drive a server with a traffic shape; time every token; write runs/NAME/.

    Exit codes: 0 complete; 1 interrupted, failed, or a --gate failed; 2 bad input (nothing run);
    3 the target went away mid-run (see --dead-after).
    """

    from satscope._flags import check_run_flags, check_server_pid, given_flags
    from satscope._preflight import preflight_check
    from satscope._worker import run_worker
    from satscope.errors import SatscopeError

    given = given_flags(ctx)
    if o.worker:
        raise typer.Exit(run_worker(o.master_host, o.master_port, o.master_wait, given))
    check_run_flags(given, serve=o.serve, master=o.master, arrival=o.arrival)
    if o.serve == (o.target is not None):
        raise SatscopeError("give exactly one of --target URL and --serve", "e.g. --target http://127.0.0.1:8000")
    if o.serve:
        from satscope._extras import require_server

        require_server("satscope run --serve")
    if (o.gate is not None or o.baseline is not None) and o.no_report:
        raise SatscopeError("--gate needs the report", "drop --no-report")
    if o.baseline is not None and o.gate is None:
        raise SatscopeError("--baseline is only used with --gate", "add --gate RULES.toml")
    if o.allow_invalid and o.gate is None:
        raise SatscopeError("--allow-invalid is only used with --gate", "add --gate RULES.toml")
    if o.as_json and o.no_report:
        raise SatscopeError("--json prints the report's summary", "drop --no-report")
    from satscope.loadgen.request_extras import parse_extra_body, parse_headers, redacted_headers
    from satscope.reports import ReportSettings

    headers = parse_headers(list(o.header or []), o.api_key)
    body_extra = parse_extra_body(o.extra_body) if o.extra_body is not None else {}
    report_settings = ReportSettings.parse(o.warmup, o.percentiles)
    gate_config = None
    if o.gate is not None:
        from satscope.reports.gates import load_rules

        gate_config = load_rules(o.gate)  # a bad rules file fails now, before any load
        if o.baseline is not None and not (o.baseline / "run.json").exists():
            raise SatscopeError(f"baseline {o.baseline} is not a run directory", "pass a runs/NAME of an earlier run")
    if o.slo:
        from satscope.reports import parse_slos

        parse_slos(o.slo)  # one-line error for a bad SLO before any load
    if o.master and o.workers < 1:
        raise SatscopeError("--master needs --workers N (the remote workers to wait for)", "e.g. --workers 2")
    if o.server_pid is not None:
        check_server_pid(o.server_pid, o.serve)
    if o.metrics_url is not None and not o.metrics_url.startswith(("http://", "https://")):
        raise SatscopeError(
            f"--metrics-url {o.metrics_url!r} is not an http(s) URL", "e.g. http://127.0.0.1:9090/metrics"
        )
    from rich.console import Console

    from satscope._orchestrate import RunPlan, execute
    from satscope.loadgen.config import LoadgenConfig
    from satscope.loadgen.load_list import parse_loads
    from satscope.loadgen.shape_options import ShapeOptions, build_shape, check_flag_combination, search_settings
    from satscope.loadgen.trace import check_replay_flags, replay_envelope
    from satscope.loadgen.workload import LengthDist, WorkloadConfig, fresh_seed, load_sharegpt

    if check_replay_flags(given, o.dataset is not None, o.dataset_format, o.fixed_schedule):  # the file's times
        o.rate, o.duration = replay_envelope(o.dataset, o.speedup, o.dataset_format)
    tokenizer_path, overhead = None, 0
    if o.tokenizer is not None:  # the target's tokenizer: exact lengths, no calibration
        from satscope.loadgen.tokenizer import run_settings

        tokenizer_path, overhead, note = run_settings(o.tokenizer, o.endpoint)
        if note:
            print(f"note: {note}", file=sys.stderr)
    user_loads = parse_loads(o.users, "--users", whole=True) if o.users is not None else None
    rate_loads = parse_loads(o.rate, "--rate", whole=False) if o.rate is not None else None
    levels = user_loads or rate_loads or ()
    check_flag_combination(o.shape, o.users is not None, given, load_list=len(levels) > 1)
    shape_options = ShapeOptions(
        shape=o.shape,
        users=max(user_loads) if user_loads else None,
        rate=max(rate_loads) if rate_loads else None,
        levels=levels if len(levels) > 1 else (),
        stage_duration_s=o.stage_duration,
        duration_s=o.duration,
        start_load=o.start_load,
        steps=o.steps,
        amplitude=o.amplitude,
        period_s=o.period,
        spawn_rate=o.spawn_rate,
        arrival=o.arrival,
        arrival_cv=o.cv,
        stages_file=None if o.stages is None else str(o.stages),
        precision=o.precision,
        budget_s=o.budget,
        slos=tuple(o.slo or ()),
        slo_attainment=o.slo_attainment,
    )
    shape_obj = build_shape(shape_options)
    search = search_settings(shape_options)
    peak_users = max(st.peak_load() for st in shape_obj.stages) if shape_obj.kind == "closed" else None
    if o.max_requests is not None and o.workers and peak_users is not None and peak_users < o.workers:
        # each worker sends its share of --max-requests; one that never gets a user would never send it
        raise SatscopeError(
            f"--max-requests is shared by the {o.workers} workers but at most {peak_users:g} users run",
            f"use --users {o.workers} or more, or fewer --workers",
        )
    if o.warmup >= shape_obj.duration_s:
        raise SatscopeError(
            f"--warmup {o.warmup:g} leaves no load of the {shape_obj.duration_s:g} s run",
            "shorten --warmup or lengthen the run",
        )
    from satscope.loadgen.conversation import ThinkTime
    from satscope.loadgen.conversations_file import SESSION_FORMATS, load_conversations
    from satscope.loadgen.workload import DATASET_FORMATS

    if o.dataset_format not in DATASET_FORMATS:
        raise SatscopeError(f"--dataset-format {o.dataset_format!r} unknown", f"use one of {DATASET_FORMATS}")
    if "--dataset-format" in given and o.dataset is None:
        raise SatscopeError("--dataset-format says what --dataset FILE holds", "add --dataset FILE")
    conversations = o.dataset is not None and o.dataset_format in SESSION_FORMATS
    if o.dataset is not None and o.dataset_format != "mooncake" and not o.fixed_schedule:  # unreadable or empty
        load_conversations(o.dataset, o.dataset_format) if conversations else load_sharegpt(o.dataset)
    if "--think-time" in given and o.turns < 2 and not conversations:
        raise SatscopeError(
            "--think-time is the pause between the turns of a session",
            "add --turns N (N >= 2), or a --dataset-format of conversations",
        )
    workload = WorkloadConfig(
        input_len=LengthDist.parse(o.input_len),
        output_len=LengthDist.parse(o.output_len),
        prefix_groups=o.prefix_groups,
        prefix_tokens=o.prefix_tokens,
        dataset=None if o.dataset is None else str(o.dataset.resolve()),
        ignore_eos=not o.no_ignore_eos,
        seed=fresh_seed() if o.seed is None else o.seed,
        turns=o.turns,
        think_time=ThinkTime.parse(o.think_time),
        dataset_format=o.dataset_format,
        speedup=o.speedup,
        trace_block_tokens=o.trace_block_tokens,
        fixed_schedule=o.fixed_schedule,
        tokenizer=tokenizer_path,
        prompt_overhead_tokens=overhead,
    )
    run_dir = o.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    config = LoadgenConfig(
        target_url=o.target or "http://127.0.0.1",
        run_dir=str(run_dir),
        shape=shape_obj.to_json(),
        workload=workload.to_json(),
        endpoint=o.endpoint,
        model=o.model or "",
        stream=not o.no_stream,
        timeout_s=o.timeout,
        max_in_flight=o.max_in_flight,
        dead_after_s=o.dead_after,
        workers=o.workers,
        headers=redacted_headers(headers),
        extra_body=body_extra,
        max_requests=o.max_requests,
        search=None if search is None else search.to_json(),
    )
    from satscope._manifest import redact_command

    plan = RunPlan(
        config=config,
        command=redact_command(sys.argv, o.api_key),
        api_key=o.api_key,
        headers=headers,
        serve_flags=list(o.serve_arg or []) if o.serve else None,
        probes=not o.no_probes,
        probes_no_gpu=o.no_gpu,
        report=not o.no_report,
        master_bind_host="*" if o.master else "127.0.0.1",
        master_port=o.master_port if o.master else 0,
        live=not o.quiet,
        slos=list(o.slo or []),
        server_pid=o.server_pid,
        metrics_url=o.metrics_url,
        preflight=preflight_check(
            o.endpoint, o.api_key, not o.no_stream, not o.no_ignore_eos, o.timeout, headers, body_extra
        ),
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
    results = sys.stderr if o.as_json else sys.stdout
    _print_outcome(path, results)
    if gate_config is not None:
        import contextlib

        from satscope.reports.gates import append_step_summary, evaluate, print_table

        result = evaluate(path, gate_config, o.baseline, allow_invalid=o.allow_invalid)
        with contextlib.redirect_stdout(results):
            print_table(result)
        append_step_summary(result)
        code = code or (0 if result.passed else 1)
    if o.as_json and (path / "summary.json").exists():
        print((path / "summary.json").read_text().rstrip("\n"))
    raise typer.Exit(code)


run = command_from(RunOptions, _run, _run.__doc__ or "", context=True)


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
