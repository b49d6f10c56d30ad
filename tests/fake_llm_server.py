"""A deterministic OpenAI-style streaming server for load-generator tests and benchmarks.

Every streamed request gets its first content chunk ``--ttft`` seconds after its body was read,
then one chunk every ``--itl`` seconds, ``max_tokens`` chunks in all, then a usage chunk and
``[DONE]``. One timer loop sends every due chunk of every stream (a task per chunk would cost more
than the chunks), and the server keeps its own record of when it wrote each chunk: ``GET
/_records`` returns it, keyed by the client's ``X-Request-Id``, so tests compare what the load
generator measured with what was sent. ``--mode`` (or a per-request ``X-Fake-Mode`` header)
makes it misbehave: ``lie_usage``, ``bad_json``, ``no_done``, ``truncate``, ``http_500``,
``stream_error``, or ``mixed`` (each in turn).

``--close-after-response S`` behaves like llama.cpp's ``llama-server``: it advertises
``Connection: keep-alive`` and ``Keep-Alive: timeout=5, max=100`` but closes the socket ``S``
seconds after every completion, without reading the request the client may have sent meanwhile.
``--prefix-cache`` simulates a prompt cache: ``usage.prompt_tokens_details.cached_tokens`` is the
longest prefix (in words) the prompt shares with any earlier prompt.
``--record-requests`` keeps the method, path, headers and JSON body of every request it gets
(``/_records`` ``seen``), for tests of what the client sent. ``--slow-first S --slow-ttft T`` gives
every load request received in the first ``S`` seconds after the first one a first token after
``T`` seconds instead of ``--ttft``: a server that warms up. ``--slots N`` serves at most N requests at
once, like llama.cpp's parallel slots: the others wait in line for a free one (their first token
comes ``--ttft`` after they get it), and ``GET /metrics`` answers llama.cpp's gauges
(``llamacpp:requests_processing``, ``llamacpp:requests_deferred``). ``--rx-timestamps`` also records when
each request reached the host (``kernel_received``: the kernel's receive time of its last bytes,
``SO_TIMESTAMPNS``, on this process's ``perf_counter``), so a benchmark can tell the client's send
delay from this server's own delay in reading the request (``received``).

Run it: ``python -m tests.fake_llm_server --port 8000 --ttft 0.04 --itl 0.008``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import heapq
import itertools
import json
import socket
import struct
import time
from dataclasses import dataclass, field

__all__ = ["MODES", "FakeServer", "main"]

MODES = ("normal", "lie_usage", "bad_json", "no_done", "truncate", "http_500", "stream_error", "mixed")
# ``mixed`` cycles through every misbehaviour, one request each, then one normal request
_MIXED = ("normal", "lie_usage", "bad_json", "no_done", "truncate", "http_500", "stream_error")
_TEXT_CHUNK = (
    b'data: {"id":"c","object":"text_completion","choices":[{"index":0,"text":" tok","finish_reason":null}]}\n\n'
)
_CHAT_CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"content":" tok"},"finish_reason":null}]}\n\n'
)
_CHAT_ROLE = (
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
)


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not name it


class _RxStamped:
    """The connection's socket, each read keeping the kernel's receive time of the bytes it returned
    (``SO_TIMESTAMPNS`` ancillary data) on this process's ``perf_counter`` clock. The asyncio
    transport is built on it from the accept (:class:`_RxListener`) and reads with ``recv``."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._sock = sock
        self.rx: float | None = None

    def recv(self, n: int) -> bytes:
        data, ancillary, _, _ = self._sock.recvmsg(n, 64)
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, ns = struct.unpack("qq", raw[:16])
                self.rx = sec + ns * 1e-9 - (time.time() - time.perf_counter())
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _RxListener:
    """The listening socket, handing asyncio each accepted connection as an :class:`_RxStamped`."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._sock = sock

    def accept(self) -> tuple[_RxStamped, object]:
        conn, addr = self._sock.accept()
        return _RxStamped(conn), addr

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass(slots=True)
class _Stream:
    writer: asyncio.StreamWriter
    chat: bool
    n_tokens: int
    mode: str
    record: list[float]
    done: asyncio.Future
    prompt_tokens: int
    first_due: float
    cached: int | None = None
    sent: int = 0


@dataclass
class FakeServer:
    """The server state: timing, the send record and the timer heap."""

    ttft_s: float = 0.04
    itl_s: float = 0.008
    mode: str = "normal"
    close_after_s: float | None = None  # None: honour keep-alive
    prefix_cache: bool = False
    record_requests: bool = False
    rx_timestamps: bool = False
    slots: int | None = None  # --slots: requests served at once; the rest wait for a slot
    processing: int = 0
    deferred: int = 0
    tokens_predicted: int = 0
    _gate: asyncio.Semaphore | None = None
    slow_first_s: float = 0.0
    slow_ttft_s: float = 0.0
    served: int = 0
    calibrations: int = 0
    preflights: int = 0  # answered normally whatever the mode; neither `served` nor in `records`
    records: dict[str, dict] = field(default_factory=dict)
    seen: list[dict] = field(default_factory=list)  # --record-requests: every request as received
    _first_load_at: float | None = None
    _heap: list = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _seq: itertools.count = field(default_factory=itertools.count)
    _seen_prefixes: set[int] = field(default_factory=set)

    @property
    def _keep_alive(self) -> bytes:
        if self.close_after_s is None:
            return b""
        return b"connection: keep-alive\r\nkeep-alive: timeout=5, max=100\r\n"

    def _cached_words(self, words: list[str]) -> int:
        """Longest prefix of ``words`` shared with an earlier prompt; remembers this prompt's prefixes."""
        cached, h = 0, 0
        for i, word in enumerate(words):
            h = hash((h, word))
            if h in self._seen_prefixes:
                cached = i + 1
            self._seen_prefixes.add(h)
        return cached

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stamped = getattr(writer.transport, "_sock", None)  # an _RxStamped with --rx-timestamps
        stamped = stamped if isinstance(stamped, _RxStamped) else None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.record_requests and path != "/_records":
                    self.seen.append({"method": method, "path": path, "headers": headers, "body": _json_or_none(body)})
                await self._route(method, path, headers, body, writer, stamped.rx if stamped else None)
                if self.close_after_s is not None and method == "POST":
                    await writer.drain()
                    await asyncio.sleep(self.close_after_s)
                    break  # like llama-server: close despite the keep-alive just advertised
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, headers: dict, body: bytes, w: asyncio.StreamWriter,
                     rx: float | None = None) -> None:  # fmt: skip
        if method == "GET" and path == "/metrics" and self.slots:
            return self._respond(w, 200, self._llamacpp_metrics(), b"text/plain; version=0.0.4")
        if method == "GET" and path == "/health":
            return self._respond(w, 200, b'{"status":"ok"}')
        if method == "GET" and path == "/_records":
            body = {"served": self.served, "preflights": self.preflights, "requests": self.records, "seen": self.seen}
            return self._respond(w, 200, json.dumps(body).encode())
        if method != "POST" or path not in ("/v1/completions", "/v1/chat/completions"):
            return self._respond(w, 404, b'{"error":{"message":"not found"}}')
        received = time.perf_counter()
        req = json.loads(body)
        if headers.get("x-satscope-calibration"):  # `satscope run` measuring tokens per word: not load
            self.calibrations += 1
            words = len(str(req.get("prompt", req.get("messages", ""))).split())
            usage = {"prompt_tokens": words, "completion_tokens": 1, "total_tokens": words + 1}
            answer = {"choices": [{"index": 0, "text": " tok"}], "usage": usage}
            return self._respond(w, 200, json.dumps(answer).encode())
        preflight = bool(headers.get("x-satscope-preflight"))  # `satscope run` checking the target: not load
        self.preflights += preflight
        self.served += not preflight
        mode = "normal" if preflight else headers.get("x-fake-mode", self.mode)
        if mode == "mixed":
            mode = _MIXED[(self.served - 1) % len(_MIXED)]
        rid = headers.get("x-request-id", f"anon-{self.served}")
        record: list[float] = []
        ({} if preflight else self.records)[rid] = {
            "received": received,
            "kernel_received": rx,
            "sent": record,
            "mode": mode,
            "authorization": headers.get("authorization"),
        }
        n = int(req.get("max_tokens") or 16)
        words = str(req.get("prompt", req.get("messages", ""))).split()
        prompt_tokens = len(words)
        cached = self._cached_words(words) if self.prefix_cache else None
        if not preflight:
            self.records[rid]["prompt_sha"] = hashlib.sha256(" ".join(words).encode()).hexdigest()[:16]
            self.records[rid]["cached"] = cached
        chat = path.endswith("chat/completions")
        self.tokens_predicted += 0 if preflight else n
        if mode == "http_500":
            return self._respond(w, 500, b'{"error":{"message":"fake server error"}}')
        if not self.slots or preflight:
            return await self._answer(w, req, rid, n, chat, mode, record, received, prompt_tokens, cached, preflight)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.slots)
        self.deferred += 1
        try:
            await self._gate.acquire()
        finally:
            self.deferred -= 1
        self.processing += 1
        try:  # the first token comes --ttft after the request gets its slot
            await self._answer(w, req, rid, n, chat, mode, record, time.perf_counter(), prompt_tokens, cached, False)
        finally:
            self.processing -= 1
            self._gate.release()

    async def _answer(self, w: asyncio.StreamWriter, req: dict, rid: str, n: int, chat: bool, mode: str,
                      record: list[float], received: float, prompt_tokens: int, cached: int | None,
                      preflight: bool) -> None:  # fmt: skip
        """The answer, its first token ``ttft`` after ``received`` (with --slots: after its slot)."""
        ttft_s = self._ttft(received, preflight)
        if not preflight:
            self.records[rid]["ttft_s"] = ttft_s
        if not req.get("stream"):
            await asyncio.sleep(ttft_s + (n - 1) * self.itl_s)
            usage = _usage(prompt_tokens, n, cached)
            text = " tok" * n
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message} if chat else {"index": 0, "text": text}
            return self._respond(w, 200, json.dumps({"choices": [choice], "usage": usage}).encode())
        w.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n%s\r\n"
            % self._keep_alive
        )
        if chat:
            w.write(_chunk(_CHAT_ROLE))  # like vLLM: a role-only chunk first, not a token
        done = asyncio.get_running_loop().create_future()
        stream = _Stream(w, chat, n, mode, record, done, prompt_tokens, received + ttft_s, cached)
        self._push(stream.first_due, stream)
        await done

    def _ttft(self, received: float, preflight: bool) -> float:
        """``--slow-ttft`` for load requests in the first ``--slow-first`` seconds of load, else ``--ttft``."""
        if preflight or not self.slow_first_s:
            return self.ttft_s
        if self._first_load_at is None:
            self._first_load_at = received
        return self.slow_ttft_s if received - self._first_load_at < self.slow_first_s else self.ttft_s

    def _respond(self, w: asyncio.StreamWriter, status: int, body: bytes, kind: bytes = b"application/json") -> None:
        reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
        w.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s"
            % (status, reason.encode(), kind, len(body), self._keep_alive, body)
        )

    def _llamacpp_metrics(self) -> bytes:
        """llama-server's /metrics, the gauges a slot server has (and its token counter)."""
        rows = (("requests_processing", "gauge", self.processing), ("requests_deferred", "gauge", self.deferred),
                ("tokens_predicted_total", "counter", self.tokens_predicted))  # fmt: skip
        return "".join(f"# TYPE llamacpp:{k} {t}\nllamacpp:{k} {v}\n" for k, t, v in rows).encode()

    def _push(self, due: float, stream: _Stream) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), stream))
        if self._wake is not None:
            self._wake.set()

    async def ticker(self) -> None:
        """Send every chunk that is due, then sleep until the next one."""
        self._wake = asyncio.Event()
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.perf_counter()
            due = self._heap[0][0]
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue
            while self._heap and self._heap[0][0] <= now:
                _, _, stream = heapq.heappop(self._heap)
                self._send(stream)

    def _send(self, s: _Stream) -> None:
        w = s.writer
        if w.is_closing():  # the client went away
            if not s.done.done():
                s.done.set_result(None)
            return
        if s.mode == "bad_json" and s.sent == 2:
            w.write(_chunk(b"data: {not json\n\n"))
            return self._finish(s, done_marker=True)
        if s.mode == "stream_error" and s.sent == 2:
            w.write(_chunk(b'data: {"error":{"message":"fake mid-stream failure"}}\n\n'))
            return self._finish(s, done_marker=True)
        if s.mode == "truncate" and s.sent == 2:
            w.transport.abort()
            return s.done.set_result(None)
        # stamped before the write: the client cannot read a token before this time (a stamp after
        # the write could come late by this thread's own scheduling, making the client look early)
        s.record.append(time.perf_counter())
        w.write(_chunk(_CHAT_CHUNK if s.chat else _TEXT_CHUNK))
        s.sent += 1
        if s.sent < s.n_tokens:
            self._push(s.first_due + s.sent * self.itl_s, s)  # on schedule, whatever the lateness
        else:
            self._finish(s, done_marker=s.mode != "no_done")

    def _finish(self, s: _Stream, done_marker: bool) -> None:
        completion = s.sent + (3 if s.mode == "lie_usage" else 0)
        usage = _usage(s.prompt_tokens, completion, s.cached)
        s.writer.write(_chunk(b"data: " + json.dumps({"id": "c", "choices": [], "usage": usage}).encode() + b"\n\n"))
        if done_marker:
            s.writer.write(_chunk(b"data: [DONE]\n\n"))
        s.writer.write(b"0\r\n\r\n")
        s.done.set_result(None)


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _usage(prompt_tokens: int, completion_tokens: int, cached: int | None) -> dict:
    usage: dict = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


async def _serve(server: FakeServer, host: str, port: int) -> None:
    if server.rx_timestamps:
        listener = _RxListener(socket.create_server((host, port), backlog=2048))
        srv = await asyncio.start_server(server.handle, sock=listener, limit=1 << 20)  # type: ignore[arg-type]
    else:
        srv = await asyncio.start_server(server.handle, host, port, backlog=2048, limit=1 << 20)
    ticker = asyncio.create_task(server.ticker())
    async with srv:
        await srv.serve_forever()
    ticker.cancel()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft", type=float, default=0.04, help="seconds from request to first chunk")
    ap.add_argument("--itl", type=float, default=0.008, help="seconds between chunks")
    ap.add_argument("--mode", choices=MODES, default="normal")
    ap.add_argument(
        "--close-after-response",
        type=float,
        default=None,
        metavar="S",
        help="advertise keep-alive but close S seconds after every response (like llama-server)",
    )
    ap.add_argument("--prefix-cache", action="store_true", help="report cached_tokens of a simulated prefix cache")
    ap.add_argument("--record-requests", action="store_true", help="keep every request's headers and body")
    ap.add_argument(
        "--slow-first",
        type=float,
        default=0.0,
        metavar="S",
        help="load requests in the first S seconds after the first one get --slow-ttft",
    )
    ap.add_argument("--slow-ttft", type=float, default=0.0, metavar="T", help="first-token delay while slow")
    ap.add_argument("--rx-timestamps", action="store_true", help="record when each request reached the host")
    ap.add_argument("--slots", type=int, default=None, help="serve at most N requests at once (llama.cpp slots)")
    args = ap.parse_args(argv)
    server = FakeServer(
        args.ttft,
        args.itl,
        args.mode,
        args.close_after_response,
        args.prefix_cache,
        record_requests=args.record_requests,
        rx_timestamps=args.rx_timestamps,
        slots=args.slots,
        slow_first_s=args.slow_first,
        slow_ttft_s=args.slow_ttft,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, args.host, args.port))


if __name__ == "__main__":
    main()
