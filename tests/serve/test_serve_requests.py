"""The service's request bodies: the typed decode (msgspec) and the precise path agree on every body.

``decode_count``/``decode_batch`` decode a body in C and hand whatever they refuse to
``parse_json`` + ``parse_count``/``parse_batch``; a body must give the same request, or the same
error (status, type, message), whichever path takes it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.server.requests import ApiError, decode_batch, decode_count, parse_batch, parse_count, parse_json


def _outcome(fn, body: bytes):
    try:
        return "ok", fn(body)
    except ApiError as exc:
        return "error", exc.status, exc.type, exc.message


def _precise_count(body: bytes):
    return parse_count(parse_json(body))


def _precise_batch(body: bytes):
    return parse_batch(parse_json(body))


def _nested(depth: int, inner) -> object:
    for _ in range(depth):
        inner = [inner]
    return inner


# numbers the two parsers could read differently: beyond 64 bits (orjson makes them floats)
_numbers = st.one_of(st.integers(), st.sampled_from([2 ** 64, 2 ** 70, 123456789012345678901234567890, -2 ** 63 - 1]),
                     st.floats(allow_nan=True, allow_infinity=True))
_strings = st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "gpt-4o", "qwen3", "literal", "parse", "all",
                                                          "\ud800", "a\udc00b", "\x00", "<|endoftext|>"]))
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _strings)
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_strings, inner, max_size=3)), max_leaves=8)
_arguments = st.one_of(_json, _json.map(lambda v: json.dumps(v)), st.just('{"a": [1, 2'))
_part = st.one_of(_strings, st.fixed_dictionaries({"type": st.sampled_from(["text", "refusal", "image_url", 3]),
                                                   "text": _scalars, "refusal": _scalars}), _json)
_message = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["user", "assistant", "tool", ""]), _scalars)},
    optional={"content": st.one_of(_scalars, st.lists(_part, max_size=3),
                                   st.integers(95, 101).map(lambda d: _nested(d, "deep"))),
              "name": _scalars,
              "tool_calls": st.one_of(_json, st.lists(st.fixed_dictionaries(
                  {"type": st.just("function"),
                   "function": st.fixed_dictionaries({"name": _scalars, "arguments": _arguments})}), max_size=2))})
_messages = st.one_of(st.lists(_message, max_size=3), _json)
_texts = st.one_of(st.lists(_strings, max_size=4), st.lists(_scalars, max_size=3), _json)


def _fields(**value_strategies):
    keys = {"model_name": st.one_of(st.sampled_from(["gpt-4o", "Qwen/Qwen3-8B"]), _scalars),
            "model": st.one_of(st.just("gpt-4o"), _scalars),
            "tokenizer": st.one_of(st.sampled_from(["qwen3", "o200k_base"]), _scalars),
            "specials": st.one_of(st.sampled_from(["literal", "parse"]), _scalars),
            "unknown": _json, **value_strategies}
    return st.fixed_dictionaries({}, optional=keys)


def _serialised(fields: st.SearchStrategy) -> st.SearchStrategy:
    """JSON text of the fields (NaN, Infinity and lone surrogates as Python's json writes them), or
    that text broken: a key given twice, a prefix, a value that is not an object."""
    text = st.tuples(fields, st.booleans()).map(lambda fa: json.dumps(fa[0], ensure_ascii=fa[1]).encode(
        "utf-8", "surrogatepass"))
    return st.one_of(
        text,
        st.tuples(text, fields).map(lambda tf: tf[0][:-1] + b", " + json.dumps(tf[1])[1:].encode()
                                    if tf[0] != b"{}" and tf[1] else tf[0]),  # keys given twice
        st.tuples(text, st.integers(0, 40)).map(lambda ti: ti[0][:ti[1]]),
        _json.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=20),
    )


@settings(max_examples=800, deadline=None)
@given(_serialised(_fields(text=st.one_of(_strings, _scalars), messages=_messages)))
def test_calculate_bodies_decode_as_the_precise_path_parses_them(body):
    assert _outcome(decode_count, body) == _outcome(_precise_count, body)


@settings(max_examples=400, deadline=None)
@given(_serialised(_fields(texts=_texts)))
def test_batch_bodies_decode_as_the_precise_path_parses_them(body):
    assert _outcome(decode_batch, body) == _outcome(_precise_batch, body)


def _chat(extra: bytes) -> bytes:
    return b'{"tokenizer": "qwen3", "messages": [{"role": "user", "content": "hi", "meta": ' + extra + b"}]}"


@pytest.mark.parametrize("body", [
    # beyond 64 bits: orjson reads a float (its text in the count); a typed decode to int would not
    b'{"tokenizer": "qwen3", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function",'
    b' "function": {"name": "f", "arguments": {"n": 123456789012345678901234567890}}}]}]}',
    # a key given twice: the last one counts, and the one it replaces must be valid JSON too
    b'{"tokenizer": "qwen3", "text": "x", "text": 5}',
    b'{"tokenizer": "qwen3", "text": 5, "text": "x"}',
    b'{"tokenizer": "qwen3", "messages": ["\xed\xa0\x80"], "messages": [{"role": "user", "content": "hi"}]}',
    b'{"tokenizer": "qwen3", "messages": [1e999], "messages": [{"role": "user", "content": "hi"}]}',
    b'{"tokenizer": "qwen3", "text": "\\ud800"}',
    b'{"tokenizer": "qwen3", "text": "x", "stream": false}',
    b'{"tokenizer": "qwen3", "text": "x", "messages": null}',
])
def test_edges_of_the_typed_decode(body):
    assert _outcome(decode_count, body) == _outcome(_precise_count, body)


def test_the_limit_of_nesting_counts_the_body_itself():
    at_limit = _chat(b"[" * 97 + b"]" * 97)  # the body, messages, the message: 100 levels
    assert decode_count(at_limit).messages[0].text == "hi"
    with pytest.raises(ApiError, match="^the body is nested more than 100 levels deep$"):
        decode_count(_chat(b"[" * 98 + b"]" * 98))
