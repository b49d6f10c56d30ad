"""The pure parts of the request-realism flags: header parsing and redaction, how header values reach
a load generator, the split of --max-requests between processes, the body merge, percentile levels."""

from __future__ import annotations

import json

import pytest

from satscope._manifest import redact_command
from satscope.errors import SatscopeError
from satscope.loadgen.config import request_quota
from satscope.loadgen.request_extras import HEADERS_ENV, headers_from_env, parse_headers, redacted_headers
from satscope.loadgen.sse import request_body
from satscope.reports._percentiles import parse_percentiles, percentile_key


def test_headers_are_parsed_trimmed_and_written_without_values() -> None:
    headers = parse_headers(["X-Tenant:  team-a ", "X-Empty:", "X-Url: http://a/b:c"], api_key=None)
    assert headers == {"X-Tenant": "team-a", "X-Empty": "", "X-Url": "http://a/b:c"}
    assert redacted_headers(headers) == ["X-Tenant: ***", "X-Empty: ***", "X-Url: ***"]


def test_redact_command_hides_every_header_value_and_the_key() -> None:
    argv = ["satscope", "run", "--header", "X-A: v1", "--header=X-B:v2", "--api-key", "k9", "--users", "2"]
    assert redact_command(argv, "k9") == [
        "satscope",
        "run",
        "--header",
        "X-A: ***",
        "--header=X-B: ***",
        "--api-key",
        "***",
        "--users",
        "2",
    ]


def test_header_values_come_from_the_environment_or_the_process_refuses() -> None:
    env = {HEADERS_ENV: json.dumps({"X-A": "v1", "X-B": "v2", "X-Unused": "v3"})}
    assert headers_from_env(["X-A", "X-B"], env) == {"X-A": "v1", "X-B": "v2"}
    assert headers_from_env([], {}) == {}
    with pytest.raises(SatscopeError, match="SATSCOPE_HEADERS does not hold their values"):
        headers_from_env(["X-A", "X-C"], env)


@pytest.mark.parametrize("processes", [1, 2, 3, 7])
@pytest.mark.parametrize("total", [1, 5, 17, 1000])
def test_max_requests_shares_add_up_and_differ_by_at_most_one(total: int, processes: int) -> None:
    shares = [request_quota(total, i, processes) for i in range(processes)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1
    assert request_quota(None, 0, processes) is None


def test_extra_body_is_merged_at_the_top_level_over_the_default_temperature() -> None:
    body = request_body(
        chat=True,
        model="m",
        prompt="hi",
        max_tokens=8,
        stream=True,
        ignore_eos=True,
        extra={"temperature": 0.7, "seed": 3, "chat_template_kwargs": {"enable_thinking": False}},
    )
    assert body["temperature"] == 0.7 and body["seed"] == 3
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["max_tokens"] == 8


def test_percentile_levels_always_hold_p50_p90_p99_and_name_decimals() -> None:
    assert parse_percentiles(None) == (50.0, 90.0, 95.0, 99.0)
    assert parse_percentiles("99.9, 75") == (50.0, 75.0, 90.0, 99.0, 99.9)
    assert parse_percentiles([99, 50]) == (50.0, 90.0, 99.0)
    assert [percentile_key(p) for p in (50.0, 99.9, 99.99, 0.5)] == ["p50", "p99_9", "p99_99", "p0_5"]
