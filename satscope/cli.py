"""The `satscope` command line: serve | run | probe | report | compare | gate | demo.

Each command lives in its own private module that imports only typer and the standard library
at module level, so `satscope --help` is instant; torch, triton, locust and plotly are imported
inside the commands that need them. Locust never runs in this process: `run` starts it as a
subprocess (it monkey-patches the standard library with gevent on import).
"""

from __future__ import annotations

import sys

import typer

from satscope import _demo, _gate, _probe, _report, _run, _serve
from satscope.errors import SatscopeError

app = typer.Typer(
    name="satscope",
    help="Find the load at which an LLM server saturates, which resource ran out first, "
    "and the tokens/s just before it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from satscope import __version__

        typer.echo(f"satscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find the load at which an LLM server saturates, which resource ran out first, and the tokens/s
    just before it."""


app.command("serve")(_serve.serve)
app.command("run")(_run.run)
app.command("probe")(_probe.probe)
app.command("report")(_report.report)
app.command("compare")(_report.compare)
app.command("gate")(_gate.gate)
app.command("demo")(_demo.demo)


def main() -> None:
    """Entry point: run the app, turning :class:`SatscopeError` into a one-line error (exit 2).

    Every command prints its results on stdout and its diagnostics (errors, progress, notes) on
    stderr."""
    try:
        app()
    except SatscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
