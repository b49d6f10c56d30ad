"""Reading one streamed response: when each token arrived, and what else the stream carried.

Every line's arrival is timed right after the read returns, before it is parsed; a token chunk
(``satscope/loadgen/sse.py``) appends that time to the request's ``array('d')`` once for each kind of output
it carries (reasoning, content, tool-call output; nearly always one). Beside the times the
:class:`StreamTally` keeps the first reasoning and the first visible (content or tool-call) token,
the chunks that carried reasoning, the server's usage and, for a session's turn only, the answer's
text (the next turn sends it back). No gevent here: the connection only has
to offer ``read_line(response)``, so the loop runs under a plain fake connection in tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from satscope.loadgen.sse import LineKind, Usage, chunk_text, parse_line

if TYPE_CHECKING:
    from array import array

__all__ = ["LineReader", "StreamTally", "read_stream"]

_NO_USAGE = Usage()


class LineReader(Protocol):
    """What :func:`read_stream` needs of a connection (``satscope/loadgen/_raw_stream.RawConnection``)."""

    def read_line(self, response: object) -> bytes: ...


@dataclass(slots=True)
class StreamTally:
    """What a stream carried besides its token times."""

    first_reasoning: float | None = None
    first_visible: float | None = None
    reasoning_chunks: int = 0
    usage: Usage = _NO_USAGE
    text: list[str] | None = None  # a list to keep the visible text in (sessions); None: not kept


def read_stream(
    conn: LineReader, response: object, chat: bool, times: array, tally: StreamTally
) -> tuple[str, str | None, bool]:
    """Read the stream to its end: ``(status, error, broken)``. Token times go into ``times``, the
    rest into ``tally``, also when a timeout or a dropped connection cuts the read short (raised)."""
    done = False
    first_reasoning = first_visible = None
    reasoning = 0
    text = tally.text
    try:
        while True:
            line = conn.read_line(response)
            t = time.perf_counter()  # before any parsing: the arrival of this line
            if not line:
                break
            if line == b"\n":  # the blank line after every event: half of all lines
                continue
            event = parse_line(line, chat)
            kind = event.kind
            if kind == LineKind.CONTENT:
                times.append(t)
                if event.reasoning_parts:
                    reasoning += 1
                    if first_reasoning is None:
                        first_reasoning = t
                if event.visible_parts and first_visible is None:
                    first_visible = t
                if text is not None and event.visible_parts:
                    text.append(chunk_text(line, chat))
                parts = event.reasoning_parts + event.visible_parts
                if parts > 1:  # a chunk with several kinds of output: one token for each
                    times.extend([t] * (parts - 1))
            elif kind == LineKind.DONE:
                done = True
            elif kind == LineKind.ERROR:
                return "http_error", f"error in stream: {event.error}", True
            elif kind == LineKind.MALFORMED:
                return "malformed", event.error, True
            if event.output_tokens is not None or event.prompt_tokens is not None:
                tally.usage = Usage(
                    event.prompt_tokens, event.output_tokens, event.cached_tokens, event.reasoning_tokens
                )
    finally:
        tally.first_reasoning, tally.first_visible, tally.reasoning_chunks = first_reasoning, first_visible, reasoning
    if not done:
        return "malformed", "stream ended without data: [DONE]", False
    return "ok", None, False
