"""The load generator's end of the record writer (``satscope/loadgen/_record_writer.py``), under gevent.

Started by the master or local runner; every batch and shape goes into a queue that one greenlet
writes to the writer's stdin. Locust has monkey-patched ``subprocess``, so the pipe is gevent's
cooperative file object: a writer that reads slowly makes that greenlet wait, never the loop that
times tokens. Imported only inside the Locust process (``satscope/loadgen/runner.py``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import gevent
import gevent.queue

from satscope.loadgen._record_writer import pack_frame
from satscope.loadgen.shapes import Shape

__all__ = ["RecordPipe"]


class RecordPipe:
    """A running record writer and the frames on their way to it."""

    def __init__(self, run_dir: str, interval_s: float) -> None:
        import subprocess  # gevent's, once Locust has patched the standard library

        module = "satscope.loadgen._record_writer"
        cmd = [sys.executable, "-m", module, "--run-dir", run_dir, "--interval-s", str(interval_s)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._frames: gevent.queue.Queue = gevent.queue.Queue()
        self.error: str | None = None
        self._sender = gevent.spawn(self._send)

    def batch(self, worker: str, batch: dict[str, Any]) -> None:
        self._frames.put(pack_frame({"kind": "batch", "worker": worker, "batch": batch}))

    def shape(self, shape: Shape, origin_s: float | None) -> None:
        self._frames.put(pack_frame({"kind": "shape", "shape": shape.to_json(), "origin_s": origin_s}))

    def close(self, shape: Shape, origin_s: float | None) -> int | None:
        """Send the final shape and everything queued, end the writer's input and wait for its last
        files; the number of request records it wrote (None, with ``error`` set, if it failed)."""
        self.shape(shape, origin_s)
        self._frames.put(None)
        self._sender.join()
        assert self._proc.stdout is not None
        out = self._proc.stdout.read()
        code = self._proc.wait()
        try:
            return int(json.loads(out)["records_written"])
        except (ValueError, KeyError, TypeError):
            self.error = self.error or f"the record writer exited with code {code}; see locust.log"
            return None

    def _send(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        while (frame := self._frames.get()) is not None:
            if self.error is not None:
                continue  # the writer is gone: drop the rest, the run itself goes on
            try:
                stdin.write(frame)
                stdin.flush()
            except OSError as exc:
                self.error = f"the record writer stopped reading ({type(exc).__name__}: {exc}); see locust.log"
        with contextlib.suppress(OSError):
            stdin.close()
