"""The record writer: ``python -m satscope.loadgen._record_writer --run-dir DIR``, started by the load generator.

The load generator's master (or local runner) times tokens under gevent; this process does the
rest, so that neither building tables nor writing files ever runs where tokens are timed, and the
timing process holds only the records in flight and the recent ones its live figures read
(``satscope/loadgen/recent.py``). It imports neither locust nor gevent.

**Input.** Length-prefixed msgpack frames on stdin (:func:`pack_frame`): ``batch`` (a
``WorkerBuffer.drain`` batch, as it came) and ``shape`` (the shape as it runs, and its origin; a
search's shape grows as its levels are decided). End of input is the end of the run: the load
generator closes the pipe when it is done, and the kernel closes it when the load generator dies,
even by SIGKILL. Either way the writer writes everything it has received, prints
``{"records_written": N}`` and exits; it ignores SIGINT and SIGTERM (they are the load generator's
to act on, and a signal to the whole group must not lose the last batches), so it never outlives
its parent by more than the last write. It runs at a lower CPU priority (nice 10): on a busy host
the timing process gets the CPU first.

**Append, then publish.** Each batch is appended at once, in its three tables
(``satscope/loadgen/record_tables.py``), to Arrow IPC streams beside the run's files (``.requests.arrows``,
``.tokens.arrows``, ``.loadgen.arrows``): append-only, nothing of it kept in memory. Every
``--interval-s`` the Parquet files are published from those logs (read memory-mapped) with
``write_parquet_atomic``, so ``requests.parquet`` is at every moment a valid file holding every
record of the batches received up to its last publish. Parquet row groups appended to one open
``ParquetWriter`` were the other way: cheaper per batch, but the file has no footer, and so is not
readable, until it is closed, and a writer killed mid-run would leave nothing readable; a copy
published periodically gives both readability at any moment and a valid file after any kill. The
cost of a publish grows with the run (each rewrites the whole file); it is paid here, at a low
priority, and each file's interval stretches to ten times its last write, separately for
``requests.parquet`` (small: one row per request) and for ``tokens.parquet`` with
``loadgen.parquet``, so the requests stay fresh when the tokens are many. Mid-run, the tokens file
may therefore lag the requests; the last publish, at the end of the input, writes all three with
the final shape, tokens first, and removes the logs. The final files are those the in-memory
``RunStore`` would write from the same batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["FrameReader", "RecordWriter", "main", "pack_frame"]

_HEADER = struct.Struct(">I")
_NICE = 10
_STRETCH = 10  # a file's publish interval: at least this many times its last write


def pack_frame(message: dict[str, Any]) -> bytes:
    """One message as the writer reads it: a 4-byte big-endian length, then msgpack."""
    import msgpack

    body = msgpack.packb(message, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Messages from a pipe as whole frames arrive; a frame cut short (the sender died) is dropped."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self._eof = False

    def read(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next message; None if none came within ``timeout_s`` (None: wait); EOFError at the end."""
        import msgpack

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if len(self._buf) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buf)
                if len(self._buf) >= _HEADER.size + size:
                    body = bytes(self._buf[_HEADER.size : _HEADER.size + size])
                    del self._buf[: _HEADER.size + size]
                    return msgpack.unpackb(body, raw=False)
            if self._eof:
                raise EOFError
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not select.select([self.fd], [], [], wait)[0]:
                return None
            chunk = os.read(self.fd, 1 << 20)
            self._eof = not chunk
            self._buf += chunk


class RecordWriter:
    """The logs of one run directory and the Parquet files published from them."""

    def __init__(self, run_dir: Path, interval_s: float) -> None:
        import pyarrow as pa

        from satscope.loadgen.record_tables import raw_schema
        from satscope.run_format import LOADGEN_FILE, REQUESTS_FILE, TOKENS_FILE, samples_schema, tokens_schema

        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir, self.interval_s = run_dir, interval_s
        self.files = (REQUESTS_FILE, TOKENS_FILE, LOADGEN_FILE)
        self.logs = [run_dir / f".{Path(name).stem}.arrows" for name in self.files]
        self.schemas = (raw_schema(), tokens_schema(), samples_schema())
        self._sinks = [pa.OSFile(str(path), "wb") for path in self.logs]
        self._streams = [
            pa.ipc.new_stream(sink, schema) for sink, schema in zip(self._sinks, self.schemas, strict=True)
        ]
        self.rows = [0, 0, 0]  # rows appended to each log
        self._published = [-1, -1, -1]  # rows in each published file (-1: not written yet)
        self._due = [0.0, 0.0]  # monotonic time the requests, and the tokens with loadgen, may publish next
        self.shape: Any = None
        self.origin_s: float | None = None

    def append(self, batch: dict[str, Any]) -> None:
        from satscope.loadgen.record_tables import batch_tables

        for i, table in enumerate(batch_tables(batch)):
            if table.num_rows:
                self._streams[i].write_table(table)
                self.rows[i] += table.num_rows

    def set_shape(self, shape_json: list[dict[str, Any]], origin_s: float | None) -> None:
        from satscope.loadgen.shapes import Shape

        self.shape, self.origin_s = Shape.from_json(shape_json), origin_s

    def wait_s(self) -> float | None:
        """Seconds until a file with rows it does not show may publish; None: none has."""
        if self.shape is None:
            return None
        due = [self._due[0]] if self._stale(0) else []
        due += [self._due[1]] if self._stale(1) or self._stale(2) else []
        return max(min(due) - time.monotonic(), 0.0) if due else None

    def publish_due(self) -> None:
        """Publish the files whose interval is over and that have rows they do not show yet."""
        if self.shape is None:
            return
        now = time.monotonic()
        if now >= self._due[1] and (self._stale(1) or self._stale(2)):
            took = self._publish(1) + self._publish(2)
            self._due[1] = time.monotonic() + max(self.interval_s, _STRETCH * took)
        if now >= self._due[0] and self._stale(0):
            took = self._publish(0)
            self._due[0] = time.monotonic() + max(self.interval_s, _STRETCH * took)

    def finish(self) -> int:
        """The last publish (tokens first: a reader who finds a request finds its tokens), the logs
        removed; the number of request records written."""
        for stream in self._streams:
            stream.close()
        for sink in self._sinks:
            sink.close()
        if self.shape is not None:
            for i in (1, 2, 0):
                self._publish(i)
        for path in self.logs:
            path.unlink(missing_ok=True)
        return max(self._published[0], 0)

    def _stale(self, i: int) -> bool:
        """Whether file ``i`` misses rows of its log (mid-run, a file is first written with its first row)."""
        return self.rows[i] > max(self._published[i], 0)

    def _publish(self, i: int) -> float:
        """Write file ``i`` from its log; seconds it took."""
        import pyarrow as pa

        from satscope.loadgen.record_tables import requests_table
        from satscope.run_format import write_parquet_atomic

        began = time.monotonic()
        rows = self.rows[i]
        if rows:
            table = pa.ipc.open_stream(pa.memory_map(str(self.logs[i]))).read_all()
        else:  # a stream's schema is written with its first batch
            table = self.schemas[i].empty_table()
        if i == 0:
            table = requests_table(table, self.shape, self.origin_s)
        write_parquet_atomic(self.run_dir / self.files[i], table)
        self._published[i] = rows
        return time.monotonic() - began


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m satscope.loadgen._record_writer", description="satscope's record writer"
    )
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--interval-s", type=float, default=2.0, help="publish the Parquet files this often")
    args = ap.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    writer = RecordWriter(Path(args.run_dir), args.interval_s)
    frames = FrameReader(sys.stdin.fileno())
    while True:
        try:
            message = frames.read(writer.wait_s())
        except EOFError:
            break
        if message is None:
            pass  # a publish is due
        elif message["kind"] == "batch":
            writer.append(message["batch"])
        elif message["kind"] == "shape":
            writer.set_shape(message["shape"], message["origin_s"])
        writer.publish_due()
    written = writer.finish()
    sys.stdout.write(json.dumps({"records_written": written}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
