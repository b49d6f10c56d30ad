"""One kept-alive geventhttpclient connection, read a raw line at a time.

Locust's ``FastHttpSession.iter_lines()`` batches several SSE events per read (+40 ms TTFT, most
gaps read as 0), and its connection pool puts a half-read socket back into the pool when a
timeout interrupts a stream. So the LLM user reads the geventhttpclient response directly, line
by line, and a stream that ends badly throws its whole connection away.

Servers that advertise keep-alive and then close the socket after a response (llama.cpp's
``llama-server``: ``Keep-Alive: timeout=5, max=100``, then a close) leave a dead connection that is
only found out by the next request; geventhttpclient rightly does not resend a POST. ``post`` tells
that case apart (:class:`StaleConnectionError`: a reused connection closed before any response
byte), so the caller can resend once on a fresh connection. This is the only module
that touches geventhttpclient; ``tests/loadgen/test_raw_stream.py`` checks that lines still arrive
one at a time, so a library upgrade that changes this is caught.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed

__all__ = ["MAX_BODY_BYTES", "MAX_LINE_BYTES", "RawConnection", "StaleConnectionError", "TooLargeError"]

# An SSE event is a few hundred bytes and a whole completion a few MB at most: beyond these the
# target is broken or hostile, and reading on would only fill the load generator's memory.
MAX_LINE_BYTES = 1 << 20
MAX_BODY_BYTES = 64 << 20


class TooLargeError(ValueError):
    """The target sent a line longer than MAX_LINE_BYTES or a body larger than MAX_BODY_BYTES."""


class StaleConnectionError(HTTPConnectionClosed):
    """A reused keep-alive connection was closed by the server before any byte of the response."""


class RawConnection:
    """A single HTTP/1.1 connection to the target, reopened after any broken response."""

    def __init__(self, base_url: str, connection_timeout_s: float, network_timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = parts.scheme == "https"
        self._prefix = parts.path.rstrip("/")
        self._timeouts = (connection_timeout_s, network_timeout_s)
        self._client: HTTPClient | None = None
        self._answered = False  # a response began on the current socket: the next post reuses it

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        """Send the request; return the response once its headers are in (body not read).

        Raises :class:`StaleConnectionError` (and discards the connection) when a reused
        connection was closed before any response byte: the server never answered this request.
        """
        if self._client is None:
            self._client = HTTPClient(
                self._host,
                self._port,
                ssl=self._ssl,
                concurrency=1,
                insecure=True,
                connection_timeout=self._timeouts[0],
                network_timeout=self._timeouts[1],
            )
        reused = self._answered
        try:
            response = self._client.request("POST", self._prefix + path, body=body, headers=headers)
        except HTTPConnectionClosed as exc:
            # geventhttpclient raises exactly this type (not a parse error) only when the socket
            # closed or reset before the first response byte
            if reused and type(exc) is HTTPConnectionClosed:
                self.discard()
                raise StaleConnectionError(str(exc)) from exc
            raise
        self._answered = True
        return response

    @staticmethod
    def read_line(response: Any) -> bytes:
        """The next raw line of the body including its ``\\n``; ``b""`` once the body is complete.

        Raises geventhttpclient's ``HTTPParseError`` (a subclass of ``OSError`` is not promised)
        when the connection drops mid-body, and TooLargeError past MAX_LINE_BYTES.

        geventhttpclient's own ``readline`` has no limit and rescans its whole buffer after every
        read: one endless line (a hostile target) took minutes of CPU inside a single greenlet, so
        no timeout could fire and the process stopped writing records. This is the same loop over
        the same buffer, scanning only the new bytes and bounded.
        """
        buf = response._body_buffer
        scanned = 0
        while True:
            end = buf.find(b"\n", scanned)
            if end >= 0:
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                return line
            scanned = len(buf)
            if scanned > MAX_LINE_BYTES:
                raise TooLargeError(f"a line longer than {MAX_LINE_BYTES} bytes without a newline")
            if response.message_complete:
                return b""
            sock = response._sock
            if sock is None:
                raise HTTPConnectionClosed("connection closed.")
            try:
                response.feed(sock.recv(response.block_size))
            except BaseException:
                response.release()
                raise

    @staticmethod
    def read_rest(response: Any) -> bytes:
        """The rest of the body; TooLargeError past MAX_BODY_BYTES."""
        parts, size = [], 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise TooLargeError(f"a response body larger than {MAX_BODY_BYTES} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def discard(self) -> None:
        """Close the connection after a broken or abandoned response; the next post reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._answered = False
