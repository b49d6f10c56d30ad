"""`satscope demo`: the whole loop on this machine in about two minutes.

Starts the bundled server on the CPU with a KV pool small enough that the knee shows up, runs a
step shape through the knee with the probes on, builds the HTML report, prints its path and the
one-sentence verdict, and stops everything it started. It is `satscope run` with chosen flags,
run as a child process so Ctrl-C reaches it and every process it started is stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import typer

from satscope._extras import require_server

__all__ = ["demo", "demo_command"]

# The bundled `tiny` model with a 48-block pool (768 tokens): each request holds 160 tokens
# (10 blocks) at its end, so about 4-5 sequences fit before the pool is full and the scheduler
# starts preempting; the step shape goes well past that.
DEMO_SERVER_FLAGS = ("--kv-blocks=48", "--block-size=16", "--max-num-seqs=32")


def demo_command(out: Path, duration_s: float, users: int, steps: int, quiet: bool) -> list[str]:
    """The `satscope run` command line the demo runs."""
    cmd = [sys.executable, "-m", "satscope", "run", "--serve"]
    cmd += [f"--serve-arg={flag}" for flag in DEMO_SERVER_FLAGS]
    cmd += [
        "--shape", "step", "--start-load", "1", "--users", str(users), "--steps", str(steps),
        "--duration", f"{duration_s:g}", "--input-len", "32", "--output-len", "128",
        "--out", str(out), "--seed", "0",
    ]
    return cmd + (["--quiet"] if quiet else [])


def demo(
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/demo-<timestamp>)."),
    duration: float = typer.Option(100.0, "--duration", min=10.0, help="Seconds of load (the step shape's length)."),
    users: int = typer.Option(16, "--users", min=2, help="Users at the last step."),
    steps: int = typer.Option(5, "--steps", min=2, help="Steps from 1 user to --users."),
    quiet: bool = typer.Option(False, "--quiet", help="No live progress."),
) -> None:
    """Serve the bundled model on this machine, load it through its knee, and write the HTML report."""
    require_server("satscope demo")
    run_dir = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    cmd = demo_command(run_dir, duration, users, steps, quiet)
    typer.echo(f"satscope demo: serving the bundled tiny model and stepping 1 → {users} users over {duration:g} s")
    try:
        # the child's stdout repeats the verdict printed below; its progress and errors are on stderr
        code = subprocess.call(cmd, stdout=subprocess.DEVNULL)
    except KeyboardInterrupt:
        code = 130  # the child got the same Ctrl-C and keeps what was measured
    summary = run_dir / "summary.json"
    if summary.exists():
        verdict = json.loads(summary.read_text()).get("verdict") or "(no verdict)"
        typer.echo(f"\nverdict: {verdict}")
        typer.echo(f"report:  {(run_dir / 'report.html').resolve()}")
    else:
        typer.echo(f"\nno report was built; the run directory is {run_dir.resolve()}", err=True)
    raise typer.Exit(code)
