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

A request's clock starts right before its send, and nothing may yield to the gevent loop between
the two: at 64 streams one trip round the loop costs milliseconds. geventhttpclient checks a pooled
socket's liveness with gevent's ``select(..., 0)``, which yields on purpose (``sleep(0)``); the
pools here check it with the original ``poll`` instead (:func:`_alive_now`, same test, no yield).
A new connection made inside that window costs its name lookup (geventhttpclient asks gevent's
resolver, a thread pool, on every connect: 30 ms median for the first requests of 64 users spawned
at once, measured against the server's kernel receive time in ``benchmarks/loadgen_accuracy.py``)
and its connect's trip round the gevent loop. So the target's address is looked up once per
process (:func:`resolve_target`, before the load) and a closed-loop user opens its connection
before its first request (:meth:`RawConnection.open`).
"""

from __future__ import annotations

import contextlib
import select
from typing import Any
from urllib.parse import urlsplit

import gevent.socket
from gevent.monkey import get_original
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed

__all__ = ["MAX_BODY_BYTES", "MAX_LINE_BYTES", "RawConnection", "StaleConnectionError", "TooLargeError",
           "resolve_target"]  # fmt: skip

_ADDRESSES: dict[tuple[str, int], list[Any]] = {}  # (host, port) -> getaddrinfo's answer, this process
# the unpatched poll: with a 0 timeout it never yields, and unlike select() it takes any fd (a run of
# thousands of connections has descriptors past select's 1024)
_poll = get_original("select", "poll")
_GONE = select.POLLIN | select.POLLERR | select.POLLHUP | select.POLLNVAL


def _alive_now(sock: Any) -> bool:
    """geventhttpclient's ``_is_socket_alive``: a kept-alive idle socket that is readable has a FIN
    or stray bytes waiting, so it is not reused; polled without yielding to the loop."""
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return False
        poller = _poll()
        poller.register(sock.fileno(), _GONE)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _host_port(base_url: str) -> tuple[str, int, bool]:
    parts = urlsplit(base_url)
    https = parts.scheme == "https"
    return parts.hostname or "127.0.0.1", parts.port or (443 if https else 80), https


def resolve_target(base_url: str) -> None:
    """Look the target's address up now, once for this process, as geventhttpclient would (a
    failure is left to the first request, which reports it as a connection error)."""
    host, port, _ = _host_port(base_url)
    with contextlib.suppress(OSError):
        _ADDRESSES[(host, port)] = gevent.socket.getaddrinfo(host, port, 0, gevent.socket.SOCK_STREAM,
                                                             gevent.socket.SOL_TCP)  # fmt: skip


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
        self._host, self._port, self._ssl = _host_port(base_url)
        self._prefix = urlsplit(base_url).path.rstrip("/")
        self._timeouts = (connection_timeout_s, network_timeout_s)
        self._client: HTTPClient | None = None
        self._answered = False  # a response began on the current socket: the next post reuses it

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        """Send the request; return the response once its headers are in (body not read).

        Raises :class:`StaleConnectionError` (and discards the connection) when a reused
        connection was closed before any response byte: the server never answered this request.
        """
        self._ensure_client()
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

    def _ensure_client(self) -> HTTPClient:
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
            pool = self._client._connection_pool
            pool._is_socket_alive = _alive_now  # its own check yields between the clock and the send
            known = _ADDRESSES.get((self._host, self._port))
            if known is not None:  # the pool would look the name up again on every connect
                pool._resolve = lambda: known
        return self._client

    def open(self) -> None:
        """Connect now, before any request is timed; the first post uses this socket, and resends
        once on a fresh one should the server have closed it meanwhile. OSError: not reachable."""
        pool = self._ensure_client()._connection_pool
        pool.return_socket(pool.get_socket())
        self._answered = True  # an idle socket may be stale, like a kept-alive one

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
