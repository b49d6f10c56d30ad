"""Property tests: any rules document or metric path gives a result or a GateInputError, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from satscope.reports.gates import GateInputError, parse_rules
from satscope.reports.gates._paths import resolve

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True), st.text(max_size=20)
)
keys = st.sampled_from(["name", "metric", "min", "max", "max_regression", "better", "bogus"])
rule = st.dictionaries(keys, scalars | st.sampled_from(["saturation.x", "stages[*].y", "a.b[0].c"]), max_size=6)
documents = st.fixed_dictionaries(
    {},
    optional={
        "rule": st.one_of(st.lists(rule, max_size=4), rule, scalars),
        "gate": st.one_of(st.dictionaries(st.sampled_from(["confidence", "seed", "x"]), scalars, max_size=3), scalars),
        "extra": scalars,
    },
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_rules_document_parses_or_fails_cleanly(doc: dict) -> None:
    try:
        config = parse_rules(doc)
    except GateInputError as exc:
        assert "\n" not in str(exc)
        return
    assert config.rules and all(r.min is not None or r.max is not None or r.is_regression for r in config.rules)


summaries = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(summaries, st.text(max_size=30))
def test_any_path_on_any_summary_resolves_or_fails_cleanly(summary: object, path: str) -> None:
    try:
        found = resolve(summary if isinstance(summary, dict) else {"x": summary}, path)
    except GateInputError:
        return
    assert isinstance(found, list)
