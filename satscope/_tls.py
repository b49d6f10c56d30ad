"""One TLS context per process for the httpx clients satscope makes.

httpx builds a new ``SSLContext`` for every client, and ``httpx.get`` makes a client per call:
loading certifi's bundle took 65 ms each time, 0.5 s of a short `satscope run`'s checks of its
target (health, preflight, model, calibration). The context is built once, the way httpx would
(``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), and handed to each client as ``verify``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

__all__ = ["tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS context for verifying servers (built on first use)."""
    import httpx

    return httpx.create_ssl_context()
