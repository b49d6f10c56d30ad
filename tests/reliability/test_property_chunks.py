"""Property test: stream chunks shaped like OpenAI's, with any JSON value in any field, are classified.

test_property_parsers.py feeds the SSE parser arbitrary bytes and arbitrary JSON; arbitrary JSON
rarely nests a wrong type exactly where the parser looks (``choices[i].delta``, its reasoning and
tool-call fields), which is where a hostile or buggy target breaks it. These chunks keep OpenAI's
skeleton and vary every leaf.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from satscope.loadgen.sse import LineKind, parse_line

KINDS = {LineKind.CONTENT, LineKind.EMPTY, LineKind.DONE, LineKind.SKIP, LineKind.ERROR, LineKind.MALFORMED}

leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
anything = st.recursive(leaf, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c, max_size=2))
function = anything | st.fixed_dictionaries({}, optional={"name": anything, "arguments": anything})
tool_call = anything | st.fixed_dictionaries({}, optional={"index": anything, "id": anything, "function": function})
delta = anything | st.fixed_dictionaries(
    {},
    optional={
        "content": anything,
        "role": anything,
        "reasoning_content": anything,
        "reasoning": anything,
        "tool_calls": anything | st.lists(tool_call, max_size=2),
    },
)
choice = anything | st.fixed_dictionaries(
    {}, optional={"index": anything, "text": anything, "delta": delta, "finish_reason": anything}
)
usage = anything | st.fixed_dictionaries({}, optional={"prompt_tokens": anything, "completion_tokens": anything})
chunk = st.fixed_dictionaries(
    {},
    optional={"choices": anything | st.lists(choice, max_size=3), "usage": usage, "error": anything, "id": anything},
)


@settings(max_examples=500, deadline=None)
@given(chunk, st.booleans())
def test_openai_shaped_chunks_with_any_leaves_are_classified(obj: dict, chat: bool) -> None:
    event = parse_line(b"data: " + json.dumps(obj).encode(), chat)
    assert event.kind in KINDS
    if event.kind in (LineKind.MALFORMED, LineKind.ERROR):
        assert event.error
    if event.kind == LineKind.CONTENT:  # a token chunk has output of at most each kind
        assert event.reasoning_parts in (0, 1) and event.visible_parts in (0, 1, 2)
        assert event.reasoning_parts + event.visible_parts >= 1
    for count in (event.prompt_tokens, event.output_tokens):
        assert count is None or (isinstance(count, int) and not isinstance(count, bool))
