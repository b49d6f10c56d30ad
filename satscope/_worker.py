"""`satscope run --worker`: be a Locust worker of a master on another machine (or this one).

The worker waits, bounded by ``--master-wait``, for the master's port to accept a connection, and
says so on stderr; a master that never comes is a one-line error, not a silent hang. The worker
process gets a parent-death signal, so it ends with this command.
"""

from __future__ import annotations

import subprocess
import sys
import time

__all__ = ["run_worker"]


def run_worker(host: str, port: int, wait_s: float, given: set[str]) -> int:
    """`run --worker`: wait (bounded) for the master to listen, then be its Locust worker."""
    import signal
    import socket

    from satscope._processes import die_with_parent
    from satscope.errors import SatscopeError

    extra = sorted(given - {"--worker", "--master-host", "--master-port", "--master-wait", "--quiet"})
    if extra:
        raise SatscopeError(f"{extra[0]} is not used with --worker: the master sends the whole configuration",
                            "give the run's flags to `satscope run --master` instead")
    if wait_s <= 0:
        raise SatscopeError("--master-wait must be > 0", "seconds, e.g. --master-wait 60")
    print(f"waiting up to {wait_s:g} s for the master at {host}:{port}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host, port), timeout=2.0).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SatscopeError(
                    f"no master answered at {host}:{port} within {wait_s:g} s ({exc.strerror or exc})",
                    "start `satscope run --master --workers N ...` there first, or fix --master-host/--master-port",
                ) from None
            time.sleep(0.5)
    print(f"connected to the master at {host}:{port}", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "satscope.loadgen.runner", "--role", "worker", "--master-host", host,
           "--master-port", str(port)]
    proc = subprocess.Popen(cmd, preexec_fn=die_with_parent(signal.SIGTERM))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
