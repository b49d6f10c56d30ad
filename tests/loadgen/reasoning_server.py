"""A loopback chat server that thinks, answers, then calls a tool, and records when it wrote what.

Every streamed chat completion is, in order: a role-only chunk; :data:`REASONING_CHUNKS` reasoning
deltas; a pause of :data:`PHASE_GAP_S`; :data:`CONTENT_CHUNKS` content deltas; another pause; a
tool call (a chunk with its name, then :data:`TOOL_ARGUMENT_CHUNKS` pieces of its arguments); a
finish chunk with an empty delta; a usage chunk shaped like OpenAI's (``completion_tokens_details.
reasoning_tokens``); ``[DONE]``. Successive requests alternate the reasoning field between vLLM's
and SGLang's ``reasoning_content`` and OpenRouter's ``reasoning``. Like vLLM's reasoning parsers,
it generates ``<think>`` and ``</think>`` (counted in the usage) but sends no chunk for them.

``server.sent[request_id]`` holds, per load request (``X-Request-Id``), each chunk's kind and the
``time.perf_counter()`` right after it was flushed: the truth the load generator's times are
checked against (one monotonic clock for every process of the machine). Non-streamed requests
(the run's calibration) get ``usage.prompt_tokens`` = words of the prompt.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field

from tests.helpers import JsonHandler

__all__ = [
    "CHUNK_GAP_S",
    "CONTENT_CHUNKS",
    "PHASE_GAP_S",
    "REASONING_CHUNKS",
    "THINK_DELIMITERS",
    "TOOL_ARGUMENT_CHUNKS",
    "ReasoningServer",
    "Sent",
]

REASONING_CHUNKS = 6
CONTENT_CHUNKS = 5
TOOL_ARGUMENT_CHUNKS = 4
CHUNK_GAP_S = 0.005
PHASE_GAP_S = 0.15
THINK_DELIMITERS = 2  # <think> and </think>: in completion_tokens, never a chunk
_ARGUMENT_PIECES = ('{"city": ', '"Par', 'is"', "}")


@dataclass
class Sent:
    """What the server sent for one request: the reasoning field it used, each chunk's kind and
    flush time, and its usage object."""

    reasoning_field: str
    writes: list[tuple[str, float]] = field(default_factory=list)
    usage: dict = field(default_factory=dict)

    def first(self, kind: str) -> float:
        return next(t for k, t in self.writes if k == kind)

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.writes if k == kind)


class _Handler(JsonHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        if self.path == "/health":
            return self.send_json(200, {"status": "ok"})
        if self.path == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [{"id": "thinker", "object": "model"}]})
        return self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": "not found"}})
        words = len(" ".join(m.get("content", "") for m in req.get("messages", [])).split())
        if not req.get("stream"):
            usage = {"prompt_tokens": words, "completion_tokens": 1, "total_tokens": words + 1}
            message = {"role": "assistant", "content": "ok"}
            return self.send_json(200, {"choices": [{"index": 0, "message": message}], "usage": usage})
        state = self.server
        with state.lock:
            state.streams += 1
            reasoning_field = ("reasoning_content", "reasoning")[state.streams % 2]
        sent = Sent(reasoning_field)
        if not self.headers.get("X-Satscope-Preflight"):
            with state.lock:
                state.sent[self.headers.get("X-Request-Id", f"anon-{state.streams}")] = sent
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream(sent, words)

    def _stream(self, sent: Sent, prompt_tokens: int) -> None:
        self._delta({"role": "assistant", "content": ""}, sent, None)
        for i in range(REASONING_CHUNKS):
            self._delta({sent.reasoning_field: f"think{i} ", "content": None}, sent, "reasoning", CHUNK_GAP_S)
        time.sleep(PHASE_GAP_S)
        for i in range(CONTENT_CHUNKS):
            self._delta({"content": f"word{i} "}, sent, "content", CHUNK_GAP_S)
        time.sleep(PHASE_GAP_S)
        call = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        self._delta({"tool_calls": [call]}, sent, "tool")
        for piece in _ARGUMENT_PIECES[:TOOL_ARGUMENT_CHUNKS]:
            self._delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, sent, "tool", CHUNK_GAP_S)
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        reasoning = sent.count("reasoning") + THINK_DELIMITERS
        completion = len(sent.writes) + THINK_DELIMITERS
        sent.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        self._event({"choices": [], "usage": sent.usage})
        self._write(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _delta(self, delta: dict, sent: Sent, kind: str | None, gap_s: float = 0.0) -> None:
        if gap_s:
            time.sleep(gap_s)
        self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        if kind is not None:
            sent.writes.append((kind, time.perf_counter()))

    def _event(self, obj: dict) -> None:
        self._write(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _write(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.streams = 0
        self.sent: dict[str, Sent] = {}


class ReasoningServer:
    """The server in a thread of this process, on a free loopback port, for a ``with`` block."""

    def __init__(self) -> None:
        self._httpd = _HttpServer()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def sent(self) -> dict[str, Sent]:
        with self._httpd.lock:
            return dict(self._httpd.sent)

    def __enter__(self) -> ReasoningServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
