"""The SSE parser and chunk classification, byte by byte."""

from __future__ import annotations

import json

import msgspec
import pytest

from tui.core.bench import sse as sse_module
from tui.core.bench.sse import DONE, EMPTY, ERROR, OUTPUT, RESPONSE, Chunk, SSEParser, classify, read_payload


def feed_all(parts: list[bytes]) -> list[bytes]:
    p = SSEParser()
    out = []
    for part in parts:
        out += p.feed(part)
    return out + p.close()


def test_one_event_per_read():
    assert feed_all([b"data: {\"a\":1}\n\n", b"data: [DONE]\n\n"]) == [b'{"a":1}', b"[DONE]"]


def test_event_split_across_reads_completes_only_at_its_blank_line():
    p = SSEParser()
    assert p.feed(b"da") == []
    assert p.feed(b"ta: {\"x\"") == []
    assert p.feed(b": 2}\n") == []  # the line is complete, the event is not
    assert p.feed(b"\n") == [b'{"x": 2}']


@pytest.mark.parametrize("cut", range(1, 40))
def test_every_split_point_gives_the_same_events(cut):
    stream = b'data: {"a": 1}\n\n: keep-alive\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    assert feed_all([stream[:cut], stream[cut:]]) == [b'{"a": 1}', b'{"b": 2}', b"[DONE]"]


def test_several_events_in_one_read():
    data = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: {"a":3}\n\n'
    assert SSEParser().feed(data) == [b'{"a":1}', b'{"a":2}', b'{"a":3}']


def test_whole_events_after_the_first_read_are_split_the_same_way():
    p = SSEParser()
    assert p.feed(b": hello\n\n") == []
    assert p.feed(b'data: {"a":1}\n\n') == [b'{"a":1}']
    assert p.feed(b'data: {"a":1}\n\ndata:  2\r\n\r\ndata: [DONE]\n\n') == [b'{"a":1}', b" 2", b"[DONE]"]
    # a line end inside a data line ends it there, whatever the read holds
    assert p.feed(b'data: {"a":\r1}\n\n') == [b'{"a":']
    assert p.feed(b"data: x\ndata: y\n\n") == [b"x\ny"]
    assert p.feed(b"data: x\n") == [] and p.feed(b"data: y\n\n") == [b"x\ny"]


def test_comments_and_other_fields_are_ignored():
    data = b": ping\n\nevent: message\nid: 7\nretry: 100\ndata: {\"a\":1}\n\n:\n\n"
    assert feed_all([data]) == [b'{"a":1}']


@pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"])
def test_line_endings(eol):
    data = b"data: {\"a\":1}" + eol + eol + b"data: [DONE]" + eol + eol
    # split inside the line ending as well
    assert feed_all([data[:14], data[14:]]) == [b'{"a":1}', b"[DONE]"]


def test_data_without_space_and_multi_line_data():
    assert feed_all([b"data:{\"a\":1}\n\n"]) == [b'{"a":1}']
    assert feed_all([b"data: first\ndata: second\n\n"]) == [b"first\nsecond"]


def test_stream_ending_without_blank_line_still_yields_the_event():
    p = SSEParser()
    assert p.feed(b'data: {"a":1}') == []
    assert p.close() == [b'{"a":1}']


def test_classify_content_role_usage_and_done():
    assert classify(b"[DONE]").kind == DONE
    role = classify(b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')
    assert role.kind == EMPTY  # a role-only chunk is not a token
    c = classify(b'{"choices":[{"index":0,"delta":{"content":"Hi"}}]}')
    assert (c.kind, c.text) == (OUTPUT, "Hi")
    u = classify(b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}')
    assert (u.kind, u.prompt_tokens, u.completion_tokens) == (EMPTY, 5, 7)
    fin = classify(b'{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}')
    assert (fin.kind, fin.completion_tokens) == (EMPTY, 2)
    both = classify(b'{"choices":[{"delta":{"content":"end"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":3}}')
    assert (both.kind, both.text, both.completion_tokens) == (OUTPUT, "end", 3)
    nulls = classify(b'{"choices":[{"delta":{"content":"a"}}],"usage":null}')
    assert (nulls.kind, nulls.completion_tokens) == (OUTPUT, None)


def test_classify_reasoning_tool_calls_and_completions_text():
    r = classify(b'{"choices":[{"delta":{"reasoning_content":"think"}}]}')
    assert (r.kind, r.text) == (OUTPUT, "think")
    r2 = classify(b'{"choices":[{"delta":{"reasoning":"hmm","content":null}}]}')
    assert (r2.kind, r2.text) == (OUTPUT, "hmm")
    t = classify(b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\""}}]}}]}')
    assert (t.kind, t.text) == (OUTPUT, '{"a"')
    tc_name_only = classify(b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}')
    assert tc_name_only.kind == EMPTY
    comp = classify(b'{"choices":[{"index":0,"text":" world","finish_reason":null}]}')
    assert (comp.kind, comp.text) == (OUTPUT, " world")


def test_classify_errors():
    e = classify(b'{"error":{"message":"model overloaded","type":"server_error","code":503}}')
    assert e.kind == ERROR and "model overloaded" in e.error and "503" in e.error
    m = classify(b'{"choices":[{"delta":{"content":"x"')
    assert m.kind == ERROR and m.error.startswith("malformed stream chunk")
    assert classify(b"[1, 2]").kind == ERROR


def test_data_lines_without_blank_lines_between_them_are_split_back():
    joined = SSEParser().feed(b'data: {"choices":[{"delta":{"content":"a"}}]}\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n')
    assert len(joined) == 1
    c = classify(joined[0])
    assert (c.kind, c.text) == (OUTPUT, "ab")


def test_a_10_mb_line_in_small_reads_is_parsed_in_linear_time():
    import time

    payload = b'{"choices":[{"delta":{"content":"' + b"word " * 2_000_000 + b'"}}]}'
    data = b"data: " + payload + b"\n\n"
    p = SSEParser()
    t0 = time.process_time()
    out = []
    for i in range(0, len(data), 4096):
        out += p.feed(data[i:i + 4096])
    took = time.process_time() - t0
    assert out == [payload]
    assert took < 2.0  # ~0.05 s; joining the line again at every read took ~12 s (2,500 copies of up to 10 MB)


def test_an_event_may_not_grow_without_end(monkeypatch):
    from tui.core.bench import sse

    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1000)
    p = SSEParser()
    assert p.feed(b"data: " + b"x" * 900) == []
    with pytest.raises(sse.StreamError, match="an event longer than"):
        p.feed(b"x" * 200)
    p = SSEParser()
    p.feed(b'data: {"a": 1}\n\n' * 1000)  # many complete events in one read are fine
    with pytest.raises(sse.StreamError):
        p.feed(b"data:\n" * 200)  # but not one event of endless (empty) data lines


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_a_byte_order_mark_opening_the_stream_is_ignored(cut):
    stream = b"\xef\xbb\xbfdata: {\"a\":1}\n\ndata: [DONE]\n\n"
    assert feed_all([stream[:1], stream[1:cut + 1], stream[cut + 1:]]) == [b'{"a":1}', b"[DONE]"]
    assert feed_all([b"data: \xef\xbb\xbfx\n\n"]) == [b"\xef\xbb\xbfx"]  # only at the very start


def test_an_event_stream_answering_a_plain_request_says_so():
    c = classify(b'data: {"choices": []}\n\ndata: [DONE]\n\n', RESPONSE)
    assert c.kind == ERROR and c.error.startswith('malformed response: an event stream although "stream" was false: ')


#: a chunk holding every field the typed decode declares, read or not
FULL_CHUNK = {
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1767225600, "model": "m",
    "system_fingerprint": "fp", "service_tier": "default", "obfuscation": "xYz",
    "choices": [{"index": 0, "delta": {
        "role": "assistant", "refusal": None, "reasoning_content": "b", "reasoning": None, "content": "a",
        "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        "logprobs": None, "finish_reason": None, "stop_reason": None, "matched_stop": None}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, "error": None}


def leaves(node, path=()):
    """The path of every value of a JSON tree that is not an object or array."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield path
        return
    for key, value in items:
        yield from leaves(value, (*path, key))


def with_raw(chunk: dict, path: tuple, literal: bytes) -> bytes:
    """The chunk as JSON with the value at ``path`` replaced by a raw literal."""
    copy = json.loads(json.dumps(chunk))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "\x00raw\x00"
    return json.dumps(copy).encode().replace(b'"\\u0000raw\\u0000"', literal)


def test_the_fields_servers_send_are_all_declared_to_the_typed_decode():
    full = json.dumps(FULL_CHUNK).encode()
    other = full.replace(b'"model"', b'"other"')
    # which path reads a payload shows only in its speed: ask the typed decode itself
    sse_module._decode(full)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        sse_module._decode(other)
    assert classify(full) == classify(other) == Chunk(OUTPUT, "ba{}", 1, 2)
    assert read_payload(json.dumps(dict(FULL_CHUNK, usage=None)).encode()) == "ba{}"  # no Chunk built


@pytest.mark.parametrize("literal", [b"1e400", b"-1E+400", b"1" + b"0" * 400, b'"\xff"', b'"\xed\xa0\x80"'],
                         ids=["1e400", "-1E+400", "10^400", "invalid UTF-8", "UTF-8 surrogate"])
def test_a_value_json_cannot_hold_fails_the_chunk_in_any_field_read_or_not(literal):
    for path in leaves(FULL_CHUNK):
        c = classify(with_raw(FULL_CHUNK, path, literal))
        assert c.kind == ERROR and c.error.startswith("malformed stream chunk: not JSON: "), path
