"""One load-generator process's work under gevent: send a request and time it, dispatch open-loop
arrivals, run multi-turn sessions (``--turns``), and watch itself (CPU, loop lag, in-flight, late
dispatches).

Imported only inside the Locust process (``satscope/loadgen/runner.py``), after gevent's monkey-patching.
Locust is not imported here: ``satscope/loadgen/_user.py`` wires these methods into Locust users and turns
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

from satscope.loadgen._level_feed import DispatchLog, LevelFeed
from satscope.loadgen._raw_stream import RawConnection, StaleConnectionError, TooLargeError, resolve_target
from satscope.loadgen._token_stream import StreamTally, read_stream
from satscope.loadgen.arrivals import arrival_times, next_arrival
from satscope.loadgen.config import LoadgenConfig
from satscope.loadgen.conversation import Session, SessionSlot
from satscope.loadgen.records import RequestRecord, WorkerBuffer
from satscope.loadgen.request_extras import headers_from_env
from satscope.loadgen.sse import Usage, answer_text, request_body, usage_counts
from satscope.loadgen.workload import RequestSpec, Workload
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

    def __init__(
        self, config: LoadgenConfig, worker: str, stream_id: int, share: float = 1.0, quota: int | None = None
    ) -> None:
        self.config = config
        self.worker = worker
        self.share = share
        self.stream_id = stream_id
        self.buffer = WorkerBuffer()
        workload = config.workload_obj()
        self.workload = Workload(workload, stream_id=stream_id)
        self.turns = workload.turns
        self.sessions = workload.sessions
        self._think_time = workload.think_time
        self._think_rng = random.Random(f"{workload.seed}/think/{stream_id}")
        self._sessions = 0
        self._schedule_over = False  # open loop: the arrival schedule ended; sessions send no later turns
        self.labels = labels_to_str({"worker": worker})
        self._api_key = os.environ.get("SATSCOPE_API_KEY") or None
        self._headers = headers_from_env(config.header_names)  # --header values: never in a file
        self._quota = quota  # requests this process may still send (its share of --max-requests); None: no limit
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
        # an open-loop search: its levels, as the search decides them (satscope/loadgen/_level_feed.py)
        search = config.search
        self.levels = LevelFeed(search["start_load"]) if search and search["kind"] == "open" else None
        self.dispatch_log = DispatchLog() if self.levels is not None else None
        resolve_target(config.target_url)  # once, before the load: not inside a timed request

    def new_connection(self) -> RawConnection:
        return RawConnection(self.config.target_url, min(self.config.timeout_s, 30.0), self.config.timeout_s)

    def send(
        self,
        conn: RawConnection,
        intended_start: float | None = None,
        session: Session | None = None,
        spec: RequestSpec | None = None,
    ) -> Outcome:
        """Send one request on ``conn``, time every chunk, append the record; never raises for the
        target's faults (they become the record's status). With a ``session`` the request is its next
        turn: the history goes with it, and the answer's text is kept for the turn after. ``spec``
        (a trace's request) replaces the workload's next request."""
        cfg = self.config
        if session is not None and session.script is not None:  # a conversation from a file: its next user turn
            spec = session.script[session.sent]
        elif spec is None:
            spec = self.workload.next_request()
        self._seq += 1
        request_id = f"{self.worker}-{self._seq:06d}"
        turn = None if session is None else session.next_turn
        prompt = spec.prompt if session is None or self._chat else session.text(spec.prompt)
        body = json.dumps(
            request_body(
                chat=self._chat,
                model=cfg.model,
                prompt=prompt,
                max_tokens=spec.max_tokens,
                stream=cfg.stream,
                ignore_eos=cfg.workload["ignore_eos"],
                extra=cfg.extra_body,
                messages=session.messages(spec.prompt) if session is not None and self._chat else None,
            )
        ).encode()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
            "X-Request-Id": request_id,
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        times = array("d")
        tally = StreamTally(text=None if session is None else [])
        status, error, http_status = "ok", None, None
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
                    status, error, broken = read_stream(conn, response, self._chat, times, tally)
                else:
                    tally.usage, error, answer = _parse_whole(conn.read_rest(response), self._chat)
                    if tally.text is not None:
                        tally.text.append(answer)
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
            usage = tally.usage
            self.buffer.add(
                RequestRecord(
                    request_id=request_id,
                    worker=self.worker,
                    endpoint=cfg.endpoint,
                    stream=cfg.stream,
                    intended_start=start if intended_start is None else intended_start,
                    start=start,
                    first_token=first,
                    end=end,
                    status=status,
                    http_status=http_status,
                    error=error,
                    prompt_tokens=usage.prompt_tokens,
                    output_tokens=usage.completion_tokens,
                    output_chunks=len(times),
                    input_tokens_requested=spec.input_tokens,
                    max_tokens=spec.max_tokens,
                    prompt_tokens_cached=usage.cached_tokens,
                    retried=retried,
                    first_reasoning_token=tally.first_reasoning,
                    first_visible_token=tally.first_visible,
                    reasoning_chunks=tally.reasoning_chunks,
                    reasoning_tokens=usage.reasoning_tokens,
                    session_id=None if session is None else session.session_id,
                    turn=turn,
                ),
                times,
            )
            if session is not None and tally.text is not None:
                if status == "ok":
                    session.answered(spec.prompt, "".join(tally.text), end + self._think_time.sample(self._think_rng))
                else:
                    session.failed()
        itl = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
        return Outcome(status, error, None if first is None else first - start, itl, end - start, len(times))

    def send_closed(self, conn: RawConnection, slot: SessionSlot, stopping: Callable[[], bool]) -> Outcome | None:
        """Closed loop: a user's next request. With sessions, the next turn of the user's session once
        its think time is over (intended start: the last answer's end + the think time), or the first
        turn of a new session; None when ``stopping()`` came true during the think time."""
        if not self.sessions:
            return self.send(conn)
        session = slot.session
        if session is None or session.done:
            slot.session = session = self.new_session()
            return self.send(conn, None, session)
        assert session.next_at is not None
        if not self._wait_until(session.next_at, stopping):
            return None
        return self.send(conn, session.next_at, session)

    def new_session(self) -> Session:
        self._sessions += 1
        session_id = f"{self.worker}-s{self._sessions:05d}"
        conversation = self.workload.next_conversation()
        if conversation is None:
            return Session(session_id, self.turns)
        system, script = conversation
        return Session(session_id, len(script), system, script)

    def claim(self) -> bool:
        """Take one request of this process's share of ``--max-requests``; False once it is used up."""
        if self._quota is None:
            return True
        if self._quota <= 0:
            return False
        self._quota -= 1
        return True

    def dispatch(self, origin_s: float, send_result: Callable[[Outcome], None]) -> None:
        """Open loop: send requests at this process's share of the shape's arrival schedule, at the
        times of the trace being replayed (its every N-th line over N processes), or at the
        rate of a search's level in force (``--shape search --rate``)."""
        cfg = self.config
        cap = max(1, round(cfg.max_in_flight * self.share))
        rng = random.Random(f"{cfg.workload['seed']}/arrivals/{self.stream_id}")
        phase = (self.stream_id * self.share) % 1.0
        trace = self.workload.trace_requests(self.worker, round(1 / self.share))  # every N-th of N processes
        if trace is None and self.levels is not None:
            self._follow_levels(origin_s, self.levels, rng, phase, cap, send_result)
            self._schedule_over = True
            return
        schedule = trace if trace is not None else ((t, None) for t in arrival_times(
            cfg.shape_obj(), rng, share=self.share, phase=phase))  # fmt: skip
        for t, spec in schedule:
            if self.stopping or self._quota == 0:  # stopped, or this process's share of --max-requests is sent
                return
            self._dispatch_one(origin_s + t, cap, send_result, spec)
        if trace is not None:  # a replay's sessions send later turns to its end, whenever this process's
            # part of the trace (every N-th line over --workers N) ran out
            self._wait_until(origin_s + cfg.shape_obj().duration_s, lambda: self.stopping)
        self._schedule_over = True

    def _follow_levels(self, origin_s: float, feed: LevelFeed, rng: random.Random, phase: float, cap: int,
                       send_result: Callable[[Outcome], None]) -> None:  # fmt: skip
        """A search's open loop: each gap drawn at the rate of the level in force; a level announced
        while the dispatcher sleeps towards its next arrival replaces that arrival when it starts
        first (the next one is drawn from the level's start, at its rate: the draw said none came
        before). Intended times stay exact."""
        stage = self.config.shape_obj().stages[0]  # the envelope: its arrival process
        feed.begin_at(origin_s)
        t, first = origin_s, True
        while not self.stopping and self._quota != 0:
            seen = feed.version
            nxt = next_arrival(t, feed.levels, stage.arrival, rng, self.share, stage.arrival_cv,
                               phase if first else None)  # fmt: skip
            if feed.end is not None and nxt >= feed.end:
                return
            while not self.stopping and (delay := nxt - time.perf_counter()) > 0 and not feed.wait(delay, seen):
                pass
            if feed.version != seen:  # a level or the end was announced: this draw stands only if it comes first
                if feed.end is not None and feed.end <= nxt:
                    return
                if feed.levels[-1][0] <= nxt:  # no arrival before the level's start: draw again from it
                    t = max(t, feed.levels[-1][0])
                    continue
            if self.stopping:
                return
            t, first = nxt, False
            self._dispatch_one(nxt, cap, send_result, None)
            if self.dispatch_log is not None:
                self.dispatch_log.add(nxt)

    def _dispatch_one(self, intended: float, cap: int, send_result: Callable[[Outcome], None],
                      spec: RequestSpec | None) -> None:  # fmt: skip
        """Sleep until ``intended``, then send (or drop at the in-flight cap), counting lateness."""
        delay = intended - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        late = time.perf_counter() - intended
        self.dispatched += 1
        if late > self.config.late_threshold_s:
            self.late_dispatches += 1
        self._late_max_s = max(self._late_max_s, late)
        if len(self._requests) >= cap:
            self._drop(intended)
            return
        self.claim()
        if self.sessions:
            self._requests.spawn(self._session_pooled, intended, send_result)
        else:
            self._requests.spawn(self._send_pooled, intended, send_result, spec)

    def drain(self, timeout_s: float) -> None:
        """Wait for open-loop requests in flight (their records must make the final flush)."""
        self._requests.join(timeout=timeout_s)

    def abandon(self) -> None:
        """Cut the open-loop requests in flight (a second Ctrl-C)."""
        self._requests.kill(block=False)

    def _send_pooled(
        self, intended: float, send_result: Callable[[Outcome], None], spec: RequestSpec | None = None
    ) -> None:
        conn = self._free.pop() if self._free else self.new_connection()
        try:
            send_result(self.send(conn, intended, spec=spec))
        finally:
            self._free.append(conn)

    def _session_pooled(self, intended: float, send_result: Callable[[Outcome], None]) -> None:
        """Open loop: one session from its arrival, each later turn due at the last answer's end plus
        the think time; it ends early when the schedule is over, the run stops or the quota is sent."""
        conn = self._free.pop() if self._free else self.new_connection()
        session = self.new_session()

        def over() -> bool:
            return self.stopping or self._schedule_over

        try:
            send_result(self.send(conn, intended, session))
            while not session.done and session.next_at is not None and not over():
                if not self._wait_until(session.next_at, over) or not self.claim():
                    return
                send_result(self.send(conn, session.next_at, session))
        finally:
            self._free.append(conn)

    @staticmethod
    def _wait_until(t: float, stopping: Callable[[], bool]) -> bool:
        """Sleep until monotonic time ``t``, looking at ``stopping()`` every 0.1 s; False if it came true."""
        while (delay := t - time.perf_counter()) > 0:
            if stopping():
                return False
            gevent.sleep(min(delay, 0.1))
        return not stopping()

    def _drop(self, intended: float) -> None:
        self.dropped_dispatches += 1
        self._seq += 1
        now = time.perf_counter()
        self.buffer.add(
            RequestRecord(
                request_id=f"{self.worker}-{self._seq:06d}",
                worker=self.worker,
                endpoint=self.config.endpoint,
                stream=self.config.stream,
                intended_start=intended,
                start=now,
                first_token=None,
                end=now,
                status="dropped",
                http_status=None,
                error=f"in-flight cap {self.config.max_in_flight} reached",
                prompt_tokens=None,
                output_tokens=None,
                output_chunks=0,
                input_tokens_requested=None,
                max_tokens=None,
                prompt_tokens_cached=None,
                retried=False,
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


def _parse_whole(data: bytes, chat: bool) -> tuple[Usage, str | None, str]:
    """A non-streamed response's usage, error (None: fine) and answer text."""
    try:
        whole = json.loads(data)
        usage = whole.get("usage")
    except (json.JSONDecodeError, AttributeError):
        return Usage(), f"response is not a JSON object: {_text(data)[:80]!r}", ""
    return (usage_counts(usage) if isinstance(usage, dict) else Usage()), None, answer_text(whole, chat)
