"""What `satscope run` does, as plain Python with subprocesses for everything else.

Order: check the target (or start ``satscope serve`` and wait for ``/health``), send the plan's
preflight request (a target unfit for the load fails here, leaving no run directory), write a
``running`` manifest, start the probes if the ``probes`` package provides them, start the Locust
process(es) (``python -m satscope.loadgen.runner``), show live progress from their ``SATSCOPE`` lines, then
stop probes and server, rewrite ``run.json`` (status, stages, validity, figures, probes) and build
the report if ``reports`` provides it. Ctrl-C / SIGTERM stop the load gracefully; the run
directory is valid whatever happens, because every writer flushes complete files as it goes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from satscope._manifest import base_manifest, redact_command, write_manifest
from satscope._plan import RunPlan
from satscope._processes import (
    LocustProcesses,
    probes_failure_note,
    served_model,
    start_probes,
    start_serve,
    stop_process,
    wait_for_health,
)
from satscope.errors import SatscopeError
from satscope.loadgen.output import write_run_files
from satscope.loadgen.records import RunStore
from satscope.loadgen.saturation import loadgen_figures
from satscope.run_format import LOADGEN_FILE, PROBES_FILE, REQUESTS_FILE, read_parquet

__all__ = ["EXIT_TARGET_LOST", "RunPlan", "execute"]

EXIT_TARGET_LOST = 3  # the target stopped answering mid-run (2 is bad input, 1 any other failed run)


def execute(plan: RunPlan, console: Any) -> tuple[int, Path]:
    """Run it; return (exit code, run directory). SatscopeError before any load for bad input."""
    from satscope._live import live_progress

    cfg = plan.config
    run_dir = Path(cfg.run_dir)
    if (run_dir / "run.json").exists():
        raise SatscopeError(f"{run_dir} already holds a run", "choose another --out")
    if plan.serve_flags is None:
        wait_for_health(cfg.target_url, 2.0)
        _preflight(plan)  # before the run directory exists: a target unfit for the load leaves nothing
    created = not run_dir.exists()
    discard = False  # a run stopped before its manifest leaves no half-made directory behind
    run_dir.mkdir(parents=True, exist_ok=True)
    server: subprocess.Popen | None = None
    probes: subprocess.Popen | None = None
    locust: LocustProcesses | None = None
    manifest: dict[str, Any] | None = None
    interrupted = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        interrupted["n"] += 1
        if locust is None:  # nothing to stop gracefully yet
            raise KeyboardInterrupt
        locust.signal(signal.SIGTERM)

    # SIGHUP: the terminal closed; stop as for Ctrl-C (a SIGKILL is the children's parent-death signal)
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if plan.serve_flags is not None:
            server, url = start_serve(plan, run_dir)
            cfg.target_url = url
            try:
                _preflight(plan)
            except SatscopeError:
                discard = created
                raise
        if not cfg.model:
            cfg.model = served_model(cfg.target_url, plan.api_key, plan.headers)
        calibration_note = _calibrate_prompts(plan)
        shape = cfg.shape_obj()
        serve_flags = redact_command(plan.serve_flags or [], plan.api_key)  # --serve-arg=--api-key=...
        served_by = "external" if server is None else " ".join(["satscope serve", *serve_flags])
        target = {"url": cfg.target_url, "endpoint": cfg.endpoint, "model": cfg.model, "served_by": served_by}
        manifest = base_manifest(run_dir.name, plan.command, {**cfg.to_json(), **plan.extra_config}, target)
        manifest["loadgen"]["calibration_requests"] = cfg.workload.get("calibration", {}).get("requests", 0)
        if calibration_note:
            manifest["validity"]["notes"].append(calibration_note)
        write_manifest(run_dir, manifest)
        config_path = run_dir / ".loadgen_config.json"
        cfg.save(config_path)
        probes = start_probes(plan, run_dir, server.pid if server else None, manifest["validity"]["notes"])
        locust = LocustProcesses(plan, run_dir, config_path)
        # a hung load generator must not hang the run: the shape, the drain, and a margin
        limit_s = shape.duration_s + cfg.stop_timeout_s + 180
        def on_start(start: dict[str, Any]) -> None:  # the planned timeline, for a run that is never finished
            if start.get("shape_origin_s") is not None and cfg.search is None:  # a search plans no levels
                manifest["stages"] = shape.timeline(start["shape_origin_s"])
                write_manifest(run_dir, manifest)

        live_progress(console, locust, shape, enabled=plan.live, limit_s=limit_s, on_start=on_start)
        code = locust.wait(cfg.stop_timeout_s + 60)
    except KeyboardInterrupt:  # before any load ran
        discard = created and manifest is None
        if manifest is not None:
            manifest.update(status="interrupted", end_s=time.monotonic())
            manifest["validity"]["interrupted"] = True
            write_manifest(run_dir, manifest)
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if locust is not None and locust.main.poll() is None:
            locust.wait(0)
        if probes is not None:
            if manifest is not None and (note := probes_failure_note(probes)):
                manifest["validity"]["notes"].append(note)
            stop_process(probes, 15)
        if server is not None:
            stop_process(server, 20)
        if discard:
            shutil.rmtree(run_dir, ignore_errors=True)
    config_path.unlink(missing_ok=True)
    try:
        return _finish(plan, run_dir, manifest, locust, code, interrupted["n"] > 0, probes is not None, console)
    except Exception as exc:  # never leave a run that says `running`
        manifest["status"] = "failed"
        manifest["validity"]["notes"].append(f"finishing the run failed: {type(exc).__name__}: {exc}")
        write_manifest(run_dir, manifest)
        raise


def _preflight(plan: RunPlan) -> None:
    """One real request of the run's endpoint and model (the plan's check); it picks the model."""
    if plan.preflight is not None:
        plan.config.model = plan.preflight(plan.config.target_url, plan.config.model)


def _calibrate_prompts(plan: RunPlan) -> str | None:
    """Scale synthetic prompts to the target's tokenizer; a note when it could not be measured."""
    from satscope.loadgen.calibrate import calibrate

    cfg = plan.config
    if cfg.workload.get("dataset") or cfg.workload.get("tokenizer"):
        return None  # dataset prompts are sent as they are; --tokenizer counts exactly
    fit = calibrate(
        cfg.target_url,
        cfg.endpoint,
        cfg.model,
        plan.api_key,
        timeout_s=min(cfg.timeout_s, 30.0),
        extra_headers=plan.headers,
        extra_body=cfg.extra_body,
    )
    cfg.workload["calibration"] = {"requests": fit.requests, "points": [list(p) for p in fit.points]}
    if fit.tokens_per_word is None:
        return (
            "prompt lengths not calibrated: the target reported no usage.prompt_tokens for three prompt lengths; "
            "1 word = 1 token assumed"
        )
    cfg.workload["tokens_per_word"] = fit.tokens_per_word
    cfg.workload["prompt_overhead_tokens"] = fit.overhead_tokens
    return None


def _finish(
    plan: RunPlan,
    run_dir: Path,
    manifest: dict[str, Any],
    locust: LocustProcesses,
    code: int | None,
    interrupted: bool,
    probes_ran: bool,
    console: Any,
) -> tuple[int, Path]:
    cfg = plan.config
    final = locust.final or {}
    origin = final.get("shape_origin_s") or (locust.start or {}).get("shape_origin_s")
    shape = cfg.shape_obj()
    v, lg, notes = manifest["validity"], manifest["loadgen"], manifest["validity"]["notes"]
    manifest["end_s"] = end_s = time.monotonic()
    # the timeline as it ran (a search's levels, from the load generator): none after the run's end
    planned = shape.timeline(origin) if origin is not None and cfg.search is None else []
    manifest["stages"] = [
        {**row, "end_s": min(row["end_s"], end_s)} for row in final.get("stages", planned) if row["start_s"] < end_s
    ]
    interrupted = interrupted or bool(final.get("interrupted"))
    v["interrupted"] = interrupted
    notes.extend(locust.errors)
    if not (run_dir / REQUESTS_FILE).exists():
        # stopped before its first flush: empty files with the contract's schemas keep the run readable
        write_run_files(run_dir, RunStore(), shape, origin)
    if (run_dir / REQUESTS_FILE).exists():
        req = read_parquet(run_dir / REQUESTS_FILE, ["status", "error", "token_mismatch"]).to_pydict()
        v["target_errors"] = sum(1 for s in req["status"] if s != "ok")
        v["token_mismatches"] = sum(req["token_mismatch"])
        lg["records_written"] = len(req["status"])
        if v["target_errors"]:
            first = next(f"{s}: {e}" for s, e in zip(req["status"], req["error"], strict=True) if s != "ok")
            console.print(f"{v['target_errors']} of {len(req['status'])} requests failed; the first: {first[:300]}")
        if v["token_mismatches"]:
            notes.append(f"{v['token_mismatches']} requests: usage output_tokens differs from chunks counted")
    if (run_dir / LOADGEN_FILE).exists():
        s = read_parquet(run_dir / LOADGEN_FILE).to_pydict()
        # only while the shape ran: start-up and the final flush are not load
        end = (origin or 0.0) + shape.duration_s
        keep = [i for i, t in enumerate(s["t"]) if origin is not None and origin <= t <= end]
        lg.update(
            loadgen_figures([s["t"][i] for i in keep], [s["metric"][i] for i in keep], [s["value"][i] for i in keep])
        )
    for k in ("requests_sent", "late_dispatches", "dropped_dispatches", "connection_retries"):
        lg[k] = final.get(k, lg[k])
    lg["worker_clock_offsets_s"] = final.get("worker_clock_offsets_s", {})
    if not lg["records_written"]:
        notes.append("no request was recorded; see locust.log")
    if final.get("missing"):
        notes.append(f"records missing from workers: {final['missing']}")
    if lg["dropped_dispatches"]:
        notes.append(f"{lg['dropped_dispatches']} open-loop dispatches dropped at --max-in-flight {cfg.max_in_flight}")
    if plan.probes and not probes_ran:
        v["missing_probes"] = ["server", "gpu", "host"]
    if (run_dir / PROBES_FILE).exists():  # probes.json is the probes' own record; run.json does not copy it
        v["missing_probes"] = sorted(json.loads((run_dir / PROBES_FILE).read_text()).get("unavailable", {}))
    lost = final.get("target_lost_s")
    v["target_lost_s"] = lost
    if lost is not None:
        notes.append(
            f"the target went away {lost - manifest['start_s']:.1f} s into the run: nothing but connection errors "
            f"for {cfg.dead_after_s:g} s (--dead-after), so the load was stopped"
        )
    if interrupted:
        manifest["status"] = "interrupted"
    elif lost is not None:
        manifest["status"] = "failed"
    elif code == 0 and locust.final is not None:
        manifest["status"] = "complete"
    else:
        manifest["status"] = "failed"
        notes.append(f"the load generator exited with code {code}; see locust.log")
    write_manifest(run_dir, manifest)
    if plan.report and lg["records_written"]:
        _report(run_dir, manifest, plan.slos, console)  # a failed run's report shows what went wrong
    if manifest["status"] == "failed" and lost is not None:
        return EXIT_TARGET_LOST, run_dir
    return (0 if manifest["status"] == "complete" else 1), run_dir


def _report(run_dir: Path, manifest: dict[str, Any], slos: list[str], console: Any) -> None:
    try:
        from satscope.reports import build_report  # type: ignore[attr-defined]
    except ImportError:
        manifest["validity"]["notes"].append("no report: the reports package does not provide build_report yet")
        write_manifest(run_dir, manifest)
        return
    try:
        build_report(run_dir, out=None, slos=slos or None)
    except Exception as exc:  # the run is valid without a report; say why there is none
        manifest["validity"]["notes"].append(f"report failed: {type(exc).__name__}: {exc}")
        write_manifest(run_dir, manifest)
        return
    write_manifest(run_dir, manifest)  # `files` now lists the report's files too; `satscope run` prints the verdict
