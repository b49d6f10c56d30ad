"""What ``--header`` and ``--extra-body`` add to every request, checked at the command line.

Headers are sent on every request to the target: the load, the preflight and the calibration
probes. Their values may be secrets (a tenant token, a gateway key), so they are treated like
``--api-key``: the load generator gets them through its environment (:data:`HEADERS_ENV`, a JSON
object), never through a file, and ``run.json`` shows only ``Name: ***``. The extra body is a JSON
object merged into every request body (sampling settings, vendor fields); the keys satscope sets
itself are refused, with the flag that sets them. Pure: no gevent, no HTTP.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from satscope.errors import SatscopeError

__all__ = [
    "HEADERS_ENV",
    "RESERVED_BODY_KEYS",
    "check_extra_body",
    "headers_from_env",
    "parse_extra_body",
    "parse_headers",
    "redacted_headers",
]

HEADERS_ENV = "SATSCOPE_HEADERS"
# body keys satscope controls, and the flag that controls each
RESERVED_BODY_KEYS = {
    "model": "--model",
    "prompt": "--input-len or --dataset",
    "messages": "--input-len or --dataset",
    "stream": "--no-stream",
    "stream_options": "--no-stream (satscope asks for usage to audit the tokens)",
    "max_tokens": "--output-len",
    "max_completion_tokens": "--output-len",
    "ignore_eos": "--no-ignore-eos",
}
# headers satscope sets itself: the body's framing, identity encoding (timing reads raw lines), the record's id
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "connection", "accept-encoding", "x-request-id"}
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 token)
_EXAMPLE = 'e.g. --header "X-Tenant: team-a"'


def parse_headers(values: list[str], api_key: str | None) -> dict[str, str]:
    """``["Name: value", ...]`` to ``{Name: value}``; SatscopeError (never quoting a value) when bad."""
    headers: dict[str, str] = {}
    for number, raw in enumerate(values, 1):
        name, colon, value = raw.partition(":")
        name, value = name.strip(), value.strip()
        where = f"--header #{number}"
        if not colon:
            raise SatscopeError(f"{where} has no colon: a header is NAME:VALUE", _EXAMPLE)
        if not name:
            raise SatscopeError(f"{where} has an empty name: a header is NAME:VALUE", _EXAMPLE)
        if not _TOKEN.match(name):
            raise SatscopeError(f"{where}: {name[:40]!r} is not an HTTP header name", "letters, digits and -")
        if any(c in value for c in "\r\n\0"):
            raise SatscopeError(f"--header {name}: the value holds a line break or NUL", "one line per header")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("x-satscope-"):
            raise SatscopeError(f"--header {name}: satscope sets this header itself", "drop this --header")
        if lowered == "authorization" and api_key:
            raise SatscopeError(
                "--header Authorization and --api-key both set the Authorization header", "give one of them"
            )
        if lowered in (n.lower() for n in headers):
            raise SatscopeError(f"--header {name} is given twice", "give each header once")
        headers[name] = value
    return headers


def redacted_headers(headers: Mapping[str, str]) -> list[str]:
    """The headers as they may be written: ``["X-Tenant: ***"]``."""
    return [f"{name}: ***" for name in headers]


def headers_from_env(names: list[str], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The values of the configured headers ``names`` from :data:`HEADERS_ENV`; SatscopeError when
    any is missing (a remote worker started without it would otherwise send requests without it)."""
    if not names:
        return {}
    try:
        given = json.loads(environ.get(HEADERS_ENV) or "{}")
    except ValueError:
        given = None
    if not isinstance(given, dict) or any(not isinstance(given.get(n), str) for n in names):
        raise SatscopeError(
            f"the run sends headers {', '.join(names)} but {HEADERS_ENV} does not hold their values",
            f"set {HEADERS_ENV} to a JSON object of them where this load generator runs",
        )
    return {n: given[n] for n in names}


def parse_extra_body(text: str) -> dict[str, Any]:
    """``--extra-body`` JSON to a dict; SatscopeError for invalid JSON, a non-object or a reserved key."""
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SatscopeError(
            f"--extra-body is not valid JSON ({exc.msg} at character {exc.pos})",
            """e.g. --extra-body '{"temperature": 0.7}'""",
        ) from None
    except ValueError as exc:
        raise SatscopeError(f"--extra-body is not valid JSON ({exc})", "numbers must be finite") from None
    return check_extra_body(obj)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def check_extra_body(obj: object) -> dict[str, Any]:
    """``obj`` when it is a JSON object without a key satscope sets; SatscopeError otherwise."""
    if not isinstance(obj, dict):
        raise SatscopeError(
            f"--extra-body must be a JSON object, not {type(obj).__name__}",
            """e.g. --extra-body '{"temperature": 0.7, "top_p": 0.9}'""",
        )
    for key in obj:
        if key in RESERVED_BODY_KEYS:
            raise SatscopeError(
                f"--extra-body sets {key!r}, which satscope controls", f"use {RESERVED_BODY_KEYS[key]} instead"
            )
    return obj
