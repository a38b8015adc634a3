"""Properties of the stream parser, the chunk classifier and the request client, on generated input.

- The SSE parser gives the same events whatever the split of the byte stream (its split of whole
  events at C speed included: it agrees with a parse byte by byte).
- ``classify`` never raises and never passes a wrong type on; chunks of the right shape give
  exactly their text (an oracle written here), any other value is an accurate error. Its typed
  (msgspec) decode gives exactly what the precise orjson path gives, for any payload: numbers
  too large for a double and invalid UTF-8 in fields it does not read included.
- The client, against an aiohttp server on loopback serving generated streams, agrees with a
  fold of ``classify`` over the events (its fast path included), and every request ends ok or
  with a one-line reason; whole runs keep ``dispatched == completed + failed``.

Example counts stay small where a server is involved (the suite runs on 2 cores).
"""

from __future__ import annotations

import json

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.bench.client import BenchRequest, Outcome, build_body, send_plain, send_streaming
from tui.core.bench.engine import BenchSpec, run_benchmark
from tui.core.bench.report import format_summary
from tui.core.bench.sse import (CHUNK, DONE, EMPTY, ERROR, MAX_USAGE_TOKENS, OUTPUT, RESPONSE, SSEParser, classify,
                                read_payload, read_precisely)

MANY = settings(max_examples=400, deadline=None, database=None)
SERVED = settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RUNS = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---------------------------------------------------------------------- strategies
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=10))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
text = st.text(max_size=12)
count = st.integers(0, MAX_USAGE_TOKENS)


def either(right, share_wrong: float = 0.2):
    """Mostly values of the right type, sometimes anything at all."""
    return st.one_of(right, anything) if share_wrong else right


def chunk_strategy(wrong: bool):
    """An OpenAI-style chunk; with ``wrong``, any field may hold any JSON value."""
    w = either if wrong else (lambda right: right)
    tool_call = st.fixed_dictionaries({}, optional={"index": st.integers(0, 3), "function": w(
        st.fixed_dictionaries({}, optional={"name": text, "arguments": w(st.none() | text)}))})
    delta = st.fixed_dictionaries({}, optional={
        "role": st.sampled_from(["assistant", ""]), "content": w(st.none() | text),
        "reasoning_content": w(st.none() | text), "reasoning": w(st.none() | text),
        "tool_calls": w(st.none() | st.lists(w(tool_call), max_size=2))})
    choice = st.fixed_dictionaries({"index": st.integers(0, 2)}, optional={
        "delta": w(delta), "text": w(st.none() | text), "message": w(delta),
        "finish_reason": w(st.none() | st.sampled_from(["stop", "length", "tool_calls"]))})
    usage = st.fixed_dictionaries({}, optional={
        "prompt_tokens": w(st.none() | count), "completion_tokens": w(st.none() | count),
        "total_tokens": anything})
    chunk = st.fixed_dictionaries({}, optional={
        "id": text, "object": st.just("chat.completion.chunk"), "choices": w(st.none() | st.lists(w(choice), max_size=2)),
        "usage": w(st.none() | usage), "error": st.none() | (anything if wrong else st.none())})
    return w(chunk)


right_chunks = chunk_strategy(wrong=False)
any_chunks = chunk_strategy(wrong=True)

#: values of another type than a field's, or numbers a count cannot be
confusing = st.one_of(st.integers(-3, 3), st.integers(2**63, 2**64 - 1), st.integers(-2**63, -1),
                      st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(max_size=4),
                      st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2),
                      st.none())
#: every field of a chunk the benchmark reads
PATHS = (("choices",), ("choices", 0), ("choices", 0, "delta"), ("choices", 0, "delta", "content"),
         ("choices", 0, "delta", "reasoning_content"), ("choices", 0, "delta", "tool_calls"),
         ("choices", 0, "delta", "tool_calls", 0), ("choices", 0, "delta", "tool_calls", 0, "function"),
         ("choices", 0, "delta", "tool_calls", 0, "function", "arguments"), ("choices", 0, "text"),
         ("choices", 0, "finish_reason"), ("choices", 0, "message"), ("usage",), ("usage", "prompt_tokens"),
         ("usage", "completion_tokens"), ("error",))


@st.composite
def hostile_chunks(draw):
    """A chunk of the right shape with one field the benchmark reads holding a confusing value."""
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {
        "content": draw(text), "reasoning_content": draw(st.none() | text),
        "tool_calls": [{"index": 0, "function": {"arguments": draw(text)}}]}, "finish_reason": None}],
        "usage": {"prompt_tokens": draw(count), "completion_tokens": draw(count)}}
    *parents, last = draw(st.sampled_from(PATHS))
    node = chunk
    for key in parents:
        node = node[key]
    node[last] = draw(confusing)
    return chunk


def content_chunk(piece: str) -> dict:
    """The common shape (the client's fast path)."""
    return {"id": "c", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}


@st.composite
def hostile_streams(draw):
    """Payloads of one response: content chunks around one hostile chunk, maybe a finish, usage, [DONE]."""
    chunks = [content_chunk(t) for t in draw(st.lists(text, max_size=3))]
    chunks.insert(draw(st.integers(0, len(chunks))), draw(hostile_chunks()))
    if draw(st.booleans()):
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if draw(st.booleans()):
        chunks.append({"choices": [], "usage": {"prompt_tokens": draw(count), "completion_tokens": draw(count)}})
    payloads = [json.dumps(c).encode() for c in chunks]
    return payloads + [b"[DONE]"] if draw(st.booleans()) else payloads


def expected_text(chunk: dict) -> str:
    """The oracle for chunks of the right shape: the first choice's text, else its delta's (or
    message's) reasoning, content and tool-call arguments, joined."""
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if c.get("text"):
        return c["text"]
    d = c.get("delta") if c.get("delta") is not None else c.get("message")
    if not d:
        return ""
    parts = [d.get(k) or "" for k in ("reasoning_content", "reasoning", "content")]
    parts += [(call.get("function") or {}).get("arguments") or "" for call in d.get("tool_calls") or []]
    return "".join(parts)


def check_chunk(c) -> None:
    """What every classified chunk guarantees, whatever came in."""
    assert c.kind in (DONE, OUTPUT, EMPTY, ERROR)
    if c.kind == ERROR:
        assert isinstance(c.error, str) and c.error and "\n" not in c.error and len(c.error) <= 300
        c.error.encode("utf-8")  # no lone surrogates: it can be saved
    if c.kind == OUTPUT:
        assert type(c.text) is str and c.text
    for n in (c.prompt_tokens, c.completion_tokens):
        assert n is None or (type(n) is int and 0 <= n <= MAX_USAGE_TOKENS)
    if c.bad_usage is not None:
        assert c.prompt_tokens is None and c.completion_tokens is None


# ---------------------------------------------------------------------- the parser
events = st.lists(st.one_of(
    st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.just(b"[DONE]"),
    any_chunks.map(lambda c: json.dumps(c).encode()),
    hostile_chunks().map(lambda c: json.dumps(c).encode()),
    text.map(lambda t: json.dumps(content_chunk(t)).encode()),
), min_size=1, max_size=6)


@st.composite
def framed(draw, payload_lists=events):
    """(the payloads the parser must give, the byte stream carrying them among comments and other
    fields, split points)."""
    payloads = draw(payload_lists)
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    stream = b""
    expected = []
    for p in payloads:
        if draw(st.booleans()):
            stream += b": keep-alive" + eol + eol
        if draw(st.booleans()):
            stream += b"event: message" + eol + b"id: 7" + eol
        space = draw(st.sampled_from([b" ", b""]))
        stream += b"data:" + space + p + eol + eol
        expected.append(p if space or p[:1] != b" " else p[1:])  # one leading space is the field's, per the spec
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    return expected, stream, cuts


def pieces(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


@MANY
@given(framed())
def test_any_split_of_the_stream_gives_the_same_events(case):
    payloads, stream, cuts = case
    parser = SSEParser()
    got = []
    for piece in pieces(stream, cuts):
        got += parser.feed(piece)
    got += parser.close()
    whole = SSEParser()
    assert got == payloads == whole.feed(stream) + whole.close()


@MANY
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_the_parser_takes_any_bytes(parts):
    parser = SSEParser()
    for part in parts:
        for payload in parser.feed(part):
            assert isinstance(payload, bytes)
    parser.close()


#: lines of an event stream as servers write them, and as they should not: data with and without
#: the space, line ends inside a data line, comments, other fields, blank lines
stream_lines = st.lists(st.one_of(
    st.binary(max_size=24).map(lambda b: b"data: " + b), st.binary(max_size=8).map(lambda b: b"data:" + b),
    text.map(lambda t: b"data: " + json.dumps(content_chunk(t)).encode()),
    st.sampled_from([b"", b"", b": keep-alive", b"event: message", b"id: 3", b"data: [DONE]"])), max_size=12)


@MANY
@given(stream_lines, st.lists(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"]), min_size=12, max_size=12),
       st.lists(st.integers(0, 400), max_size=8))
def test_reads_of_whole_events_give_what_a_parse_byte_by_byte_gives(lines, eols, cuts):
    stream = b"".join(line + eol for line, eol in zip(lines, eols))
    one_by_one = SSEParser()
    expected = [event for i in range(len(stream)) for event in one_by_one.feed(stream[i:i + 1])]
    expected += one_by_one.close()
    parser = SSEParser()
    got = []
    for piece in pieces(stream, sorted(c for c in cuts if c <= len(stream))):
        got += parser.feed(piece)
    assert got + parser.close() == expected


# ---------------------------------------------------------------------- the classifier
@MANY
@given(right_chunks)
def test_chunks_of_the_right_shape_give_exactly_their_text(chunk):
    c = classify(json.dumps(chunk).encode())
    check_chunk(c)
    assert c.kind != ERROR, c.error
    assert c.text == expected_text(chunk)
    choices = chunk.get("choices") or []
    assert c.finished == bool(choices and choices[0].get("finish_reason"))
    usage = chunk.get("usage")
    if usage is not None:
        assert (c.prompt_tokens, c.completion_tokens) == (usage.get("prompt_tokens"), usage.get("completion_tokens"))


@MANY
@given(any_chunks)
def test_any_json_value_is_classified_never_raising_never_passing_a_wrong_type(chunk):
    for label in ("malformed stream chunk", RESPONSE):
        c = classify(json.dumps(chunk).encode(), label)
        check_chunk(c)
        if c.kind == ERROR and c.error.startswith(label):
            what = c.error[len(label) + 2:].split(": ", 1)[0]
            assert what  # names the field or the problem


@MANY
@given(st.binary(max_size=200))
def test_any_bytes_are_classified(payload):
    check_chunk(classify(payload))
    check_chunk(classify(payload, RESPONSE))


@MANY
@given(st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
                       st.one_of(st.integers(-2**64, 2**65), st.floats(), st.booleans(), st.text(max_size=3),
                                 st.none()), max_size=3))
def test_usage_is_believed_only_as_whole_numbers_in_range(usage):
    c = classify(json.dumps({"choices": [], "usage": usage}).encode())  # NaN, Infinity: not JSON, an error
    check_chunk(c)
    for key, got in (("prompt_tokens", c.prompt_tokens), ("completion_tokens", c.completion_tokens)):
        v = usage.get(key)
        if got is not None:
            assert got == v and type(v) is int and 0 <= v <= MAX_USAGE_TOKENS


#: stands for a raw literal in a dumped chunk (JSON text that json.dumps cannot write)
RAW = "\x00raw\x00"
#: number literals, some too large for a double (orjson refuses them), and strings of invalid UTF-8
raw_literals = st.one_of(
    st.sampled_from([b"1e400", b"-1E+400", b"9e308", b"1" + b"0" * 400, b"1.5e-400", b"1.7976931348623157e308",
                     b"123456789012345678901234567890", b"-0", b'"\xff\xfe"', b'"\xed\xa0\x80"', b'"ok"']),
    st.integers(-2**70, 2**70).map(lambda n: str(n).encode()))
#: keys servers add that the benchmark does not read, by where they go
EXTRA_KEYS = {"chunk": ["id", "object", "created", "model", "system_fingerprint", "service_tier", "obfuscation"],
              "choice": ["index", "logprobs", "stop_reason", "matched_stop"], "delta": ["role", "refusal"],
              "usage": ["total_tokens"], "call": ["index", "id", "type"], "function": ["name"]}


def objects(chunk) -> list[tuple[str, dict]]:
    """(kind, object) of every object of a chunk the typed decode declares."""
    found = [("chunk", chunk)] if isinstance(chunk, dict) else []
    for kind, node in found:  # grows while walked
        children: list[tuple[str, object]] = []
        if kind == "chunk":
            choices = node.get("choices")
            children = [("choice", c) for c in choices] if isinstance(choices, list) else []
            children.append(("usage", node.get("usage")))
        elif kind == "choice":
            children = [("delta", node.get("delta")), ("delta", node.get("message"))]
        elif kind == "delta" and isinstance(node.get("tool_calls"), list):
            children = [("call", c) for c in node["tool_calls"]]
        elif kind == "call":
            children = [("function", node.get("function"))]
        found += [(k, v) for k, v in children if isinstance(v, dict)]
    return found


@st.composite
def payloads(draw):
    """A chunk of any shape with extra keys where servers put them (now and then an undeclared
    one), some holding a raw literal: a number too large for a double, invalid UTF-8."""
    chunk = draw(st.one_of(right_chunks, any_chunks, hostile_chunks()))
    for kind, node in objects(chunk):
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(EXTRA_KEYS[kind]) | st.just("unknown"))
            node[key] = draw(st.just(RAW) | scalars | anything)
    data = json.dumps(chunk).encode()
    raw = json.dumps(RAW).encode()
    while raw in data:
        data = data.replace(raw, draw(raw_literals), 1)
    return data


@MANY
@given(st.one_of(payloads(), st.binary(max_size=80)))
def test_the_typed_decode_gives_exactly_what_the_precise_path_gives(payload):
    for label in (CHUNK, RESPONSE):
        assert read_payload(payload, label) == read_precisely(payload, label)


# ---------------------------------------------------------------------- the client, over loopback
def reference(payloads: list[bytes]) -> tuple[bool, str, str, int | None, int | None]:
    """(ok, reason prefix, text, prompt_tokens, completion_tokens): a fold of classify() over the
    events, as the client must end up, fast path or not."""
    text, chunks, done, finished, pt, ct, bad = "", 0, False, False, None, None, None
    for p in payloads:
        if done:
            continue
        c = classify(p)
        if c.kind == ERROR:
            return False, c.error, text, None, None
        bad = bad or c.bad_usage
        pt = c.prompt_tokens if c.prompt_tokens is not None else pt
        ct = c.completion_tokens if c.completion_tokens is not None else ct
        finished = finished or c.finished
        if c.kind == OUTPUT:
            text += c.text
            chunks += 1
        done = done or c.kind == DONE
    if not payloads:
        return False, "not an event stream", text, pt, ct
    if not done and not finished:
        return False, "response cut off", text, pt, ct
    if not chunks:
        return False, "no output in the response", text, pt, ct
    return True, "", text, pt, ct


def check_outcome(out: Outcome) -> None:
    assert out.ok != bool(out.error)
    if out.error:
        assert "\n" not in out.error and len(out.error) <= 400
        out.error.encode("utf-8")


@SERVED
@given(framed())
async def test_the_client_agrees_with_classify_on_any_stream(scripted, case):
    payloads, stream, cuts = case
    scripted.script = [(0, piece) for piece in pieces(stream, cuts)]
    body = build_body("openai-chat", "m", BenchRequest(prompt="hi"))
    async with aiohttp.ClientSession() as session:
        out = await send_streaming(session, scripted.url + "/v1/chat/completions", body, {}, Outcome())
    check_outcome(out)
    ok, reason, text, pt, ct = reference(payloads)
    assert out.ok == ok and out.error.startswith(reason), (out.error, reason)
    if ok:
        assert out.text == text
        if out.bad_usage is None:
            assert (out.prompt_tokens, out.completion_tokens) == (pt, ct)


@SERVED
@given(st.one_of(any_chunks.map(lambda c: json.dumps(c).encode()), st.binary(max_size=60)))
async def test_a_whole_answer_of_any_shape_ends_ok_or_with_a_reason(scripted, body):
    scripted.script = [(0, body)]
    req = build_body("openai", "m", BenchRequest(prompt="hi"), stream=False)
    async with aiohttp.ClientSession() as session:
        out = await send_plain(session, scripted.url + "/v1/completions", req, {}, Outcome())
    check_outcome(out)
    c = classify(body, RESPONSE)
    assert out.ok == (c.kind == OUTPUT)
    if out.ok:
        assert out.text == c.text


class PerPromptServer:
    """Answers each prompt with its own bytes (``scripts[prompt]``: the pieces, each flushed alone)."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[bytes]] = {}
        self.url = ""

    async def _handle(self, request):
        from aiohttp import web

        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in self.scripts[body["prompt"]]:
            await resp.write(piece)
        await resp.write_eof()
        return resp

    async def __aenter__(self) -> "PerPromptServer":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def per_prompt():
    async with PerPromptServer() as server:
        yield server


@RUNS
@given(st.lists(st.one_of(framed(hostile_streams()), framed()), min_size=8, max_size=8), st.booleans())
async def test_every_request_of_a_run_is_completed_or_failed(per_prompt, cases, stream):
    for i, (payloads, data, cuts) in enumerate(cases):
        per_prompt.scripts[f"q{i}"] = pieces(data, cuts) if stream else payloads[:1]  # a whole answer
    reqs = [BenchRequest(prompt=f"q{i}", output_len=4, input_len=2) for i in range(len(cases))]
    spec = BenchSpec(base_url=per_prompt.url, model="m", backend="openai", stream=stream, keep_texts=True)
    result = await run_benchmark(spec, reqs)
    assert result.setup["dispatched"] == len(cases) == result.completed + result.failed
    assert result.internal_errors == ()
    assert sum(result.error_reasons.values()) == result.failed
    assert result.summary.total_output_tokens >= 0 and result.summary.total_input_tokens >= 0
    orjson.dumps(result.to_vllm_json(detailed=True))
    result.to_csv()
    format_summary(result)
