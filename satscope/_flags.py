"""Which flags the user typed, and the `satscope run` flags that only mean something together.

A flag that a combination would silently ignore (``--serve-arg`` without ``--serve``, ``--cv``
without ``--arrival gamma``) is bad input: a one-line error with the fix, before any load.
The shape's own combinations are checked in ``satscope.loadgen.shape_options``.
"""

from __future__ import annotations

from typing import Any

from satscope.errors import SatscopeError

__all__ = ["check_run_flags", "check_server_pid", "given_flags"]


def given_flags(ctx: Any) -> set[str]:
    """The long names (``--steps``) of the options given on the command line, defaults excluded."""
    given: set[str] = set()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name else None
        # by name: typer may carry its own copy of click, whose enum is not click.core's
        if source is not None and source.name == "COMMANDLINE":
            given.add(next((o for o in param.opts if o.startswith("--")), param.opts[0]))
    return given


def check_run_flags(given: set[str], *, serve: bool, master: bool, arrival: str) -> None:
    """SatscopeError for a flag of `satscope run` that the other flags make meaningless."""
    for flag in ("--server-pid", "--metrics-url", "--no-gpu"):
        if flag in given and "--no-probes" in given:
            raise SatscopeError(f"{flag} is for the probes, which --no-probes turns off", "drop one of them")
    if "--serve-arg" in given and not serve:
        raise SatscopeError("--serve-arg is only used with --serve", "add --serve, or drop --serve-arg")
    if "--master-port" in given and not master:
        raise SatscopeError("--master-port is only used with --master or --worker", "add --master --workers N")
    if "--master-host" in given:
        raise SatscopeError("--master-host is only used with --worker", "a master binds all addresses; drop it")
    if "--master-wait" in given:
        raise SatscopeError("--master-wait is only used with --worker", "drop --master-wait")
    if "--cv" in given and arrival != "gamma":
        raise SatscopeError("--cv is only used with --arrival gamma", "add --arrival gamma, or drop --cv")
    if "--metrics-url" in given and serve:
        raise SatscopeError("--metrics-url is for an external server", "--serve scrapes the bundled server already")
    if "--prefix-tokens" in given and "--prefix-groups" not in given:
        raise SatscopeError("--prefix-tokens needs --prefix-groups N", "e.g. --prefix-groups 4 --prefix-tokens 256")


def check_server_pid(pid: int, serve: bool) -> None:
    """--server-pid names a live process, and is not given with --serve (whose pid is known)."""
    import psutil

    if serve:
        raise SatscopeError("--server-pid is for an external server", "--serve samples the bundled server already")
    if pid <= 0 or not psutil.pid_exists(pid):
        raise SatscopeError(f"--server-pid {pid}: no such process on this machine",
                            "pass the pid of the server process, e.g. $(pgrep -f llama-server)")

