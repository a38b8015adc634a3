"""Property: any custom JSONL line either becomes requests that can be sent, or is refused with its line."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.bench.client import build_body
from tui.core.bench.datasets import DatasetError, load_custom

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                           max_size=3), max_leaves=12)


@st.composite
def nested(draw):
    """A value wrapped in 0-300 arrays: around the depth a request body can hold."""
    depth = draw(st.integers(0, 300))
    text = json.dumps(draw(values))
    return "[" * depth + text + "]" * depth


message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]) | values,
                                 "content": values}, optional={"tool_calls": values})
lines = st.one_of(
    values.map(json.dumps),
    st.lists(message, max_size=3).map(json.dumps),
    st.builds(lambda p, o: json.dumps({"prompt": p, "output_tokens": o}), values, values),
    st.builds(lambda d: '[{"role": "user", "content": ' + d + "}]", nested()),
    st.builds(lambda d: '{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": ' + d + "}]}",
              nested()),
    st.text(st.characters(blacklist_characters="\n"), max_size=40),  # one line: a newline would start line 3
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=lines)
def test_every_custom_line_loads_to_sendable_requests_or_is_refused_with_its_line(tmp_path, bundled, line):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a fine first line"}\n' + line + "\n", "utf-8")
    try:
        requests = load_custom(path, bundled.get("estimate"), 4)
    except DatasetError as exc:
        assert str(exc).startswith((f"{path}:2: ", f"{path}: ")) and "\n" not in str(exc)
        return
    for req in requests:
        for backend in ("openai-chat", "openai"):
            json.loads(build_body(backend, "m", req))
