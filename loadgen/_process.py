"""One load-generator process's work under gevent: send a request and time it, dispatch open-loop
arrivals, and watch itself (CPU, loop lag, in-flight, late dispatches).

Imported only inside the Locust process (``loadgen/runner.py``), after gevent's monkey-patching.
Locust is not imported here: ``loadgen/_user.py`` wires these methods into Locust users and turns
each :class:`Outcome` into Locust request events.
"""

from __future__ import annotations

import json
import os
import random
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent.pool import Group
from geventhttpclient.response import HTTPParseError

from loadgen._raw_stream import RawConnection, StaleConnectionError, TooLargeError
from loadgen.arrivals import arrival_times
from loadgen.config import LoadgenConfig
from loadgen.records import WorkerBuffer
from loadgen.sse import LineKind, parse_line, request_body, usage_counts
from loadgen.workload import Workload
from satscope.run_format import labels_to_str

__all__ = ["LoadgenProcess", "Outcome"]


class _RequestTimeout(Exception):
    """The whole request took longer than ``--timeout``."""


@dataclass(slots=True)
class Outcome:
    """What Locust's request events need about one finished request (times in seconds)."""

    status: str
    error: str | None
    ttft_s: float | None
    itl_mean_s: float | None
    e2e_s: float
    chunks: int


class LoadgenProcess:
    """State of one load-generator process (the local runner, or one Locust worker)."""

    def __init__(self, config: LoadgenConfig, worker: str, stream_id: int, share: float = 1.0) -> None:
        self.config = config
        self.worker = worker
        self.share = share
        self.stream_id = stream_id
        self.buffer = WorkerBuffer()
        self.workload = Workload(config.workload_obj(), stream_id=stream_id)
        self.labels = labels_to_str({"worker": worker})
        self._api_key = os.environ.get("SATSCOPE_API_KEY") or None
        self._chat = config.endpoint == "chat"
        self._seq = 0
        self.in_flight = 0
        self.dispatched = 0
        self.late_dispatches = 0
        self.dropped_dispatches = 0
        self._late_max_s = 0.0
        self.connection_retries = 0
        self._free: list[RawConnection] = []
        # open-loop request greenlets, counted from the moment they are spawned (``in_flight`` only
        # counts once a greenlet runs): the cap and the end-of-run drain both need them all
        self._requests = Group()
        self.stopping = False  # set when the run stops early: the dispatcher leaves its loop

    def new_connection(self) -> RawConnection:
        return RawConnection(self.config.target_url, min(self.config.timeout_s, 30.0), self.config.timeout_s)

    def send(self, conn: RawConnection, intended_start: float | None = None) -> Outcome:
        """Send one request on ``conn``, time every chunk, append the record; never raises for the
        target's faults (they become the record's status)."""
        cfg = self.config
        spec = self.workload.next_request()
        self._seq += 1
        request_id = f"{self.worker}-{self._seq:06d}"
        body = json.dumps(
            request_body(
                chat=self._chat,
                model=cfg.model,
                prompt=spec.prompt,
                max_tokens=spec.max_tokens,
                stream=cfg.stream,
                ignore_eos=cfg.workload["ignore_eos"],
            )
        ).encode()
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", "X-Request-Id": request_id}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        times = array("d")
        status, error, http_status = "ok", None, None
        usage: tuple[int | None, int | None, int | None] = (None, None, None)
        broken = retried = False
        self.in_flight += 1
        start = time.perf_counter()
        try:
            with gevent.Timeout(cfg.timeout_s, _RequestTimeout):
                try:
                    response = conn.post(cfg.path, body, headers)
                except StaleConnectionError:
                    # the server closed this kept-alive connection before answering (llama-server
                    # does after every response): send once more on a new one, timed from that send
                    retried = True
                    self.connection_retries += 1
                    start = time.perf_counter()
                    response = conn.post(cfg.path, body, headers)
                http_status = response.status_code
                if http_status != 200:
                    status, error = "http_error", _text(conn.read_rest(response)) or f"HTTP {http_status}"
                elif cfg.stream:
                    status, error, usage, broken = self._read_stream(conn, response, times)
                else:
                    usage, error = _parse_whole(conn.read_rest(response))
                    status = "ok" if error is None else "malformed"
        except _RequestTimeout:
            status, error, broken = "timeout", f"no complete response within {cfg.timeout_s} s", True
        except TooLargeError as exc:
            status, error, broken = "malformed", str(exc), True
        except TimeoutError as exc:  # a socket-level timeout (connect or read), before --timeout
            status, error, broken = "timeout", f"{type(exc).__name__}: {exc}", True
        except gevent.GreenletExit:
            status, error, broken = "disconnected", "cut off: the load generator stopped mid-request", True
            raise
        except (HTTPParseError, OSError) as exc:
            broken = True
            status = "connection_error" if http_status is None else "disconnected"
            error = f"{type(exc).__name__}: {exc}"
        finally:
            end = time.perf_counter()
            self.in_flight -= 1
            if broken:
                conn.discard()
            first = times[0] if times else None
            self.buffer.add(
                (
                    request_id,
                    self.worker,
                    cfg.endpoint,
                    cfg.stream,
                    start if intended_start is None else intended_start,
                    start,
                    first,
                    end,
                    status,
                    http_status,
                    error,
                    usage[0],
                    usage[1],
                    len(times),
                    spec.input_tokens,
                    spec.max_tokens,
                    usage[2],
                    retried,
                ),
                times,
            )
        itl = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
        return Outcome(status, error, None if first is None else first - start, itl, end - start, len(times))

    def _read_stream(
        self, conn: RawConnection, response: object, times: array
    ) -> tuple[str, str | None, tuple[int | None, int | None, int | None], bool]:
        usage: tuple[int | None, int | None, int | None] = (None, None, None)
        done = False
        while True:
            line = conn.read_line(response)
            t = time.perf_counter()  # before any parsing: the arrival of this line
            if not line:
                break
            if line == b"\n":  # the blank line after every event: half of all lines
                continue
            event = parse_line(line, self._chat)
            kind = event.kind
            if kind == LineKind.CONTENT:
                times.append(t)
            elif kind == LineKind.DONE:
                done = True
            elif kind == LineKind.ERROR:
                return "http_error", f"error in stream: {event.error}", usage, True
            elif kind == LineKind.MALFORMED:
                return "malformed", event.error, usage, True
            if event.output_tokens is not None or event.prompt_tokens is not None:
                usage = (event.prompt_tokens, event.output_tokens, event.cached_tokens)
        if not done:
            return "malformed", "stream ended without data: [DONE]", usage, False
        return "ok", None, usage, False

    def dispatch(self, origin_s: float, send_result: Callable[[Outcome], None]) -> None:
        """Open loop: send requests at this process's share of the shape's arrival schedule."""
        cfg = self.config
        cap = max(1, round(cfg.max_in_flight * self.share))
        rng = random.Random(f"{cfg.workload['seed']}/arrivals/{self.stream_id}")
        phase = (self.stream_id * self.share) % 1.0
        for t in arrival_times(cfg.shape_obj(), rng, share=self.share, phase=phase):
            if self.stopping:
                return
            intended = origin_s + t
            delay = intended - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            late = time.perf_counter() - intended
            self.dispatched += 1
            if late > cfg.late_threshold_s:
                self.late_dispatches += 1
            self._late_max_s = max(self._late_max_s, late)
            if len(self._requests) >= cap:
                self._drop(intended)
                continue
            self._requests.spawn(self._send_pooled, intended, send_result)

    def drain(self, timeout_s: float) -> None:
        """Wait for open-loop requests in flight (their records must make the final flush)."""
        self._requests.join(timeout=timeout_s)

    def abandon(self) -> None:
        """Cut the open-loop requests in flight (a second Ctrl-C)."""
        self._requests.kill(block=False)

    def _send_pooled(self, intended: float, send_result: Callable[[Outcome], None]) -> None:
        conn = self._free.pop() if self._free else self.new_connection()
        try:
            send_result(self.send(conn, intended))
        finally:
            self._free.append(conn)

    def _drop(self, intended: float) -> None:
        self.dropped_dispatches += 1
        self._seq += 1
        now = time.perf_counter()
        self.buffer.add(
            (
                f"{self.worker}-{self._seq:06d}",
                self.worker,
                self.config.endpoint,
                self.config.stream,
                intended,
                now,
                None,
                now,
                "dropped",
                None,
                f"in-flight cap {self.config.max_in_flight} reached",
                None,
                None,
                0,
                None,
                None,
                None,
                False,
            ),
            array("d"),
        )

    def monitor(self) -> None:
        """Sample CPU, loop lag, in-flight and dispatch lateness until killed."""
        interval = self.config.monitor_interval_s
        last_wall, last_cpu = time.perf_counter(), time.process_time()
        while True:
            before = time.perf_counter()
            gevent.sleep(interval)
            now = time.perf_counter()
            cpu = time.process_time()
            add = self.buffer.add_sample
            add(now, "loadgen_loop_lag_s", max(0.0, now - before - interval), self.labels)
            add(now, "loadgen_cpu", (cpu - last_cpu) / max(now - last_wall, 1e-9), self.labels)
            add(now, "loadgen_in_flight", float(self.in_flight), self.labels)
            if self.dispatched:
                add(now, "loadgen_late_dispatch_s", max(self._late_max_s, 0.0), self.labels)
            self._late_max_s = 0.0
            last_wall, last_cpu = now, cpu

    def figures(self) -> dict[str, int]:
        return {
            "requests_sent": self.buffer.total_requests - self.dropped_dispatches,
            "late_dispatches": self.late_dispatches,
            "dropped_dispatches": self.dropped_dispatches,
            "dispatched": self.dispatched,
            "connection_retries": self.connection_retries,
        }


def _text(data: bytes) -> str:
    return data[:500].decode("utf-8", "replace").strip()


def _parse_whole(data: bytes) -> tuple[tuple[int | None, int | None, int | None], str | None]:
    try:
        usage = json.loads(data).get("usage")
    except (json.JSONDecodeError, AttributeError):
        return (None, None, None), f"response is not a JSON object: {_text(data)[:80]!r}"
    return (usage_counts(usage) if isinstance(usage, dict) else (None, None, None)), None
