"""Fuzz the bundled server's generation routes from its own OpenAPI schema (schemathesis).

A real `satscope serve` subprocess on loopback, with `--max-tokens-limit 8` so each case is quick.
For both routes, schema-valid (positive) and schema-violating (negative) bodies: no 5xx, every
4xx in OpenAI's error shape, every 200 conforming to the published response schema. The number of
cases run is printed (`pytest -s`) and asserted to be a real number, not a handful.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import ServerProcess, bundled_server

schemathesis = pytest.importorskip("schemathesis")

ROUTES = ("/v1/completions", "/v1/chat/completions")
MAX_EXAMPLES = 150  # per route and mode: 600 cases, about a minute on a busy 2-core machine


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with bundled_server("--max-tokens-limit", "8", "--max-waiting", "64", "--log-level", "warning") as s:
        yield s


def _check_error_shape(response: Any) -> None:
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)


def test_openapi_publishes_the_request_schemas(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for route in ROUTES:
        body = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["type"] == "object"
        required = "messages" if "chat" in route else "prompt"
        assert body["required"] == [required]
        assert body["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 8  # the server's own limit
        responses = spec["paths"][route]["post"]["responses"]
        assert {"200", "400", "404", "413", "429"} <= set(responses)


def _fuzz(operation: Any, mode: Any, url: str, statuses: Counter[int]) -> None:
    """Run MAX_EXAMPLES cases of one generation mode against the server, counting statuses."""
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        positive_data_acceptance,
        response_schema_conformance,
    )

    # Schema-valid bodies must be served, schema-invalid ones refused: the schema is the contract.
    positive = mode == schemathesis.GenerationMode.POSITIVE
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    checks.append(positive_data_acceptance if positive else negative_data_rejection)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run_case(case: Any) -> None:
        response = case.call(base_url=url, timeout=60)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, case.body, response.text[:300])
        case.validate_response(response, checks=checks)
        if 400 <= response.status_code < 500:
            _check_error_shape(response)

    run_case()


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES)
def test_fuzzed_bodies_never_5xx_and_errors_are_openai_shaped(server: ServerProcess, route: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operation = schema.find_operation_by_path("POST", route)
    statuses: Counter[int] = Counter()
    for mode in schemathesis.GenerationMode:
        _fuzz(operation, mode, server.url, statuses)

    total = sum(statuses.values())
    print(f"\n{route}: {total} fuzzed cases, statuses {dict(sorted(statuses.items()))}")
    assert total >= MAX_EXAMPLES  # both modes ran, and not just a few cases
    assert statuses[200] > 0 and statuses[400] > 0  # valid bodies were served, invalid ones refused
    # The server is still healthy and idle afterwards.
    health = httpx.get(f"{server.url}/health").json()
    assert health["num_requests_running"] == 0 and health["kv_cache_usage"] == 0.0
