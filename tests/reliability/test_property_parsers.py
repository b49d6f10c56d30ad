"""Property tests (Hypothesis) for the parsers that read what other programs write.

Arbitrary input to the SSE line parser, the stages TOML reader and the Prometheus-name mapping
gives a result or a clear error (SatscopeError / ValueError with a message), never an unhandled
exception, and the mapping never turns counters into negative or non-finite rates.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satscope.errors import SatscopeError
from satscope.loadgen.shapes import load_stages_toml
from satscope.loadgen.sse import LineKind, parse_line
from satscope.probes import ENGINES, CanonicalMapper, parse_exposition

KINDS = {LineKind.CONTENT, LineKind.EMPTY, LineKind.DONE, LineKind.SKIP, LineKind.ERROR, LineKind.MALFORMED}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
        ["choices", "text", "delta", "content", "usage", "prompt_tokens", "completion_tokens", "error", "x"]
    ), c, max_size=4),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_sse_parser_classifies_any_bytes(line: bytes, chat: bool) -> None:
    event = parse_line(line, chat)
    assert event.kind in KINDS
    if event.kind == LineKind.MALFORMED:
        assert event.error


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_sse_parser_classifies_any_json_chunk(obj: object, chat: bool) -> None:
    import json

    event = parse_line(b"data: " + json.dumps(obj).encode(), chat)
    assert event.kind in KINDS
    for count in (event.prompt_tokens, event.output_tokens):
        assert count is None or isinstance(count, int)


toml_scalars = st.one_of(
    st.integers(-5, 10**4).map(str),
    st.floats(-10, 1e4, allow_nan=False).map(lambda f: repr(float(f))),
    st.text(alphabet="abc xyz-_", max_size=8).map(lambda s: f'"{s}"'),
    st.just("true"),
    st.just("{from = 1, to = 4}"),
    st.just("{from = 1}"),
    st.just("[1, 2]"),
    st.just("nan"),
    st.just("inf"),
)
stage_keys = st.sampled_from(
    ["name", "duration_s", "users", "rate", "spawn_rate", "arrival", "cv", "amplitude", "period_s", "bogus"]
)
stage_tables = st.lists(st.dictionaries(stage_keys, toml_scalars, max_size=6), max_size=4)


def _toml(tables: list[dict[str, str]]) -> str:
    return "\n".join("[[stage]]\n" + "".join(f"{k} = {v}\n" for k, v in t.items()) for t in tables)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stage_tables)
def test_stages_toml_gives_stages_or_a_clear_error(tmp_path: Path, tables: list[dict[str, str]]) -> None:
    path = tmp_path / "stages.toml"
    path.write_text(_toml(tables))
    try:
        stages = load_stages_toml(path)
    except SatscopeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert stages
    for stage in stages:
        assert stage.duration_s > 0 and math.isfinite(stage.load) and stage.load >= 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_exposition_parser_parses_or_raises_value_error(text: str) -> None:
    try:
        expo = parse_exposition(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(expo.names(), set)


def _names() -> list[str]:
    out: set[str] = set()
    for specs in ENGINES.values():
        for spec in specs:
            for attr in ("picks", "names", "bases", "numerator", "denominator", "minuend", "subtrahend"):
                value = getattr(spec, attr, None)
                for item in value if isinstance(value, list | tuple) else [value]:
                    name = getattr(item, "name", item)
                    if isinstance(name, str):
                        out.add(name)
    return sorted(out)


NAMES = _names()
values = st.floats(min_value=-1e12, max_value=1e12) | st.just(float("nan"))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(ENGINES)), st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=12),
                                                   min_size=1, max_size=6))
def test_mapping_never_yields_negative_or_non_finite_rates(engine: str, scrapes: list[dict[str, float]]) -> None:
    mapper = CanonicalMapper(engine)
    for i, scrape in enumerate(scrapes):
        text = "".join(
            f"{name}_sum {v}\n{name}_count {abs(v)}\n" if name.endswith("_seconds") else f"{name} {v}\n"
            for name, v in scrape.items()
        )
        try:
            expo = parse_exposition(text)
        except ValueError:
            continue
        for row in mapper.rows(float(i), expo):
            assert math.isfinite(row.value), row
            if row.metric.endswith("_per_s"):
                assert row.value >= 0, row
