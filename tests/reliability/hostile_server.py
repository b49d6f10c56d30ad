"""An OpenAI-shaped target that misbehaves on purpose, one way per request, for fault-injection tests.

Each POST to /v1/completions or /v1/chat/completions gets the next mode of ``--modes`` in turn
(HTTP 200, chunked SSE unless said otherwise):

- ``normal``: 4 content chunks, a usage chunk, ``[DONE]``;
- ``garbage``: lines that are not SSE at all;
- ``truncated_json``: a chunk whose JSON is cut off, then ``[DONE]``;
- ``bad_delta``: a chunk whose ``delta`` / choice is a string, not an object;
- ``no_done``: good chunks, then the body ends without ``[DONE]``;
- ``stall``: one chunk, then nothing until the client gives up;
- ``huge_line``: one data line of ``--huge-mib`` MiB without a newline, then the connection closes;
- ``flood``: 20 000 content chunks whatever ``max_tokens`` asked for;
- ``reset``: headers, one chunk, then the TCP connection is reset;
- ``json``: a normal non-streamed JSON completion (for ``--no-stream`` runs);
- ``huge_body``: a non-streamed JSON body of ``--huge-mib`` MiB.

Chunks carry both ``text`` and ``delta.content`` so one server answers either endpoint. It
records each request's mode and Authorization header under the client's ``X-Request-Id``:
``GET /_records``. Run: ``python -m tests.reliability.hostile_server --port P --modes garbage,stall``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json

__all__ = ["MODES", "main"]

MODES = (
    "normal",
    "garbage",
    "truncated_json",
    "bad_delta",
    "no_done",
    "stall",
    "huge_line",
    "flood",
    "reset",
    "json",
    "huge_body",
)
_JSON_BODY = (
    b'{"choices":[{"index":0,"text":"tttt","message":{"role":"assistant","content":"tttt"},"finish_reason":"length"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
)
_TOKEN = b'data: {"choices":[{"index":0,"text":"t","delta":{"content":"t"},"finish_reason":null}]}\n\n'


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class HostileServer:
    def __init__(self, modes: list[str], huge_mib: int) -> None:
        self._modes = itertools.cycle(modes)
        self._huge_bytes = huge_mib << 20
        self.records: dict[str, dict[str, str | None]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in head[1:] if ":" in ln)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._route(method, path, headers, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, headers: dict[str, str], w: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if method == "GET" and path in ("/health", "/v1/models", "/_records"):
            body = {
                "/health": {"status": "ok"},
                "/v1/models": {"object": "list", "data": [{"id": "hostile", "object": "model"}]},
                "/_records": self.records,
            }[path]
            payload = json.dumps(body).encode()
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload))
            w.write(payload)
            return True
        if method != "POST":
            w.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            return True
        mode = next(self._modes)
        rid = headers.get("x-request-id", f"anon-{len(self.records)}")
        self.records[rid] = {"mode": mode, "authorization": headers.get("authorization"), "host": headers.get("host")}
        kind = b"application/json" if mode in ("json", "huge_body") else b"text/event-stream"
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n" % kind)
        await self._stream(mode, w)
        await w.drain()
        return mode in ("normal", "garbage", "truncated_json", "bad_delta", "no_done", "flood", "json")

    async def _stream(self, mode: str, w: asyncio.StreamWriter) -> None:
        usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
        if mode == "normal":
            w.write(b"".join(_chunk(_TOKEN) for _ in range(4)) + _chunk(usage) + _chunk(b"data: [DONE]\n\n"))
        elif mode == "garbage":
            w.write(_chunk(b"hello, I am not a stream\n") + _chunk(b"\x00\xff\xfe garbage\n\n"))
            w.write(_chunk(b"data: [DONE]\n\n"))
        elif mode == "truncated_json":
            w.write(_chunk(_TOKEN) + _chunk(b'data: {"choices":[{"index":0,"te\n\n') + _chunk(b"data: [DONE]\n\n"))
        elif mode == "bad_delta":
            w.write(_chunk(_TOKEN) + _chunk(b'data: {"choices":[{"index":0,"delta":"t","text":["t"]}]}\n\n'))
            w.write(_chunk(b"data: [DONE]\n\n"))
        elif mode == "no_done":
            w.write(_chunk(_TOKEN) + _chunk(_TOKEN))
        elif mode == "stall":
            w.write(_chunk(_TOKEN))
            await w.drain()
            await asyncio.sleep(3600)  # cancelled when the client closes (or the server stops)
            return
        elif mode == "huge_line":
            piece = b"x" * (1 << 20)
            w.write(_chunk(b'data: {"choices":[{"index":0,"text":"'))
            for _ in range(self._huge_bytes >> 20):
                w.write(_chunk(piece))
                await w.drain()
            w.transport.abort()
            return
        elif mode == "flood":
            for _ in range(20):
                w.write(b"".join(_chunk(_TOKEN) for _ in range(1000)))
                await w.drain()
            w.write(_chunk(usage) + _chunk(b"data: [DONE]\n\n"))
        elif mode == "json":
            w.write(_chunk(_JSON_BODY))
        elif mode == "huge_body":
            w.write(_chunk(b'{"choices":[{"index":0,"text":"'))
            piece = _chunk(b"x" * (1 << 20))
            for _ in range(self._huge_bytes >> 20):
                w.write(piece)
                await w.drain()
            w.write(_chunk(b'"}]}'))
        elif mode == "reset":
            w.write(_chunk(_TOKEN))
            await w.drain()
            w.transport.abort()
            return
        w.write(b"0\r\n\r\n")


async def _serve(server: HostileServer, port: int) -> None:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=512)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated modes, used in turn")
    ap.add_argument("--huge-mib", type=int, default=64, help="size of the huge_line mode's line")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        ap.error(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(HostileServer(modes, args.huge_mib), args.port))


if __name__ == "__main__":
    main()
