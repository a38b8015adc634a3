"""One streamed request against a byte-scripted server: what counts as TTFT, ITL, usage, failure."""

from __future__ import annotations

import aiohttp
import pytest

from engine_helpers import chat_chunk, sse
from tui.core.bench.client import BenchRequest, Outcome, build_body, send_plain, send_streaming


async def run_one(server, backend="openai-chat"):
    body = build_body(backend, "m", BenchRequest(prompt="hi", output_len=8))
    path = "/v1/chat/completions" if backend == "openai-chat" else "/v1/completions"
    async with aiohttp.ClientSession() as s:
        return await send_streaming(s, server.url + path, body, {"Content-Type": "application/json"}, Outcome())


async def test_role_only_first_chunk_is_not_the_first_token(scripted):
    scripted.script = [(0, sse(chat_chunk(role="assistant", content=""))),
                       (0.2, sse(chat_chunk(content="Hello"))),
                       (0.05, sse(chat_chunk(content=" there"))),
                       (0, sse(chat_chunk(finish="stop"))),
                       (0, sse(chat_chunk(choices=False, usage={"prompt_tokens": 3, "completion_tokens": 2}))),
                       (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert out.ok and out.error == ""
    assert out.ttft >= 0.2  # the role chunk came at once; the first token 0.2 s later
    # 50 ms apart when sent; a loaded machine may deliver the first of the two late, never the second early
    assert out.chunks == 2 and len(out.itls) == 1 and out.itls[0] >= 0.03
    assert (out.prompt_tokens, out.completion_tokens) == (3, 2)
    assert out.text == "Hello there"
    assert out.e2el == pytest.approx(out.ttft + out.itls[0])


async def test_event_split_across_reads_is_timed_when_complete(scripted):
    event = sse(chat_chunk(content="Hi"))
    scripted.script = [(0, event[:10]), (0.15, event[10:]), (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert out.ok and out.chunks == 1 and out.itls == []
    assert out.ttft >= 0.15


async def test_several_events_in_one_write_share_a_timestamp(scripted):
    three = sse(chat_chunk(content="a")) + sse(chat_chunk(content="b")) + sse(chat_chunk(content="c"))
    scripted.script = [(0, three), (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert out.chunks == 3 and out.itls == [0.0, 0.0]


async def test_keepalives_no_done_and_usage_in_final_chunk(scripted):
    scripted.script = [(0, b": keep-alive\n\n"), (0, sse(chat_chunk(content="x"))), (0, b":\n\n"),
                       (0, sse(chat_chunk(content="y", finish="length",
                                          usage={"prompt_tokens": 4, "completion_tokens": 2})))]
    out = await run_one(scripted)  # the stream just ends: no [DONE]
    assert out.ok and not out.done
    assert (out.chunks, out.completion_tokens, out.prompt_tokens) == (2, 2, 4)


async def test_reasoning_content_counts_as_output(scripted):
    scripted.script = [(0, sse(chat_chunk(role="assistant"))), (0.1, sse(chat_chunk(reasoning="Let me think"))),
                       (0, sse(chat_chunk(content="42"))), (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert out.ok and out.chunks == 2 and out.ttft >= 0.1
    assert out.text == "Let me think42"
    assert out.completion_tokens is None  # no usage sent: the engine counts the text


async def test_error_object_mid_stream_fails_the_request(scripted):
    scripted.script = [(0, sse(chat_chunk(content="a"))),
                       (0, sse({"error": {"message": "out of KV cache", "type": "server_error", "code": 500}})),
                       (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert not out.ok and "out of KV cache" in out.error


async def test_malformed_data_line_fails_the_request_with_a_reason(scripted):
    scripted.script = [(0, sse(chat_chunk(content="a"))), (0, b'data: {"choices": [{"delta": {"cont\n\n'),
                       (0, sse(chat_chunk(content="b")))]
    out = await run_one(scripted)
    assert not out.ok and out.error.startswith("malformed stream chunk")


async def test_http_error_status_and_message(scripted):
    scripted.status = 503
    scripted.body = b'{"error": {"message": "server busy", "type": "overloaded"}}'
    out = await run_one(scripted)
    assert not out.ok and out.error.startswith("HTTP 503") and "server busy" in out.error


async def test_stream_without_any_output_fails(scripted):
    scripted.script = [(0, sse(chat_chunk(role="assistant"))), (0, sse(chat_chunk(finish="stop"))),
                       (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted)
    assert not out.ok and out.error


async def test_completions_backend_and_request_body(scripted):
    scripted.script = [(0, sse({"choices": [{"index": 0, "text": "one"}]})),
                       (0, sse({"choices": [{"index": 0, "text": " two"}]})), (0, b"data: [DONE]\n\n")]
    out = await run_one(scripted, backend="openai")
    assert out.ok and out.text == "one two"
    _, body = scripted.received[-1]
    assert body["prompt"] == "hi" and body["max_tokens"] == 8 and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_chat_request_body():
    import orjson

    req = BenchRequest(messages=({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}),
                       output_len=5)
    body = orjson.loads(build_body("openai-chat", "m", req, ignore_eos=True, temperature=0.0))
    assert body["messages"][1] == {"role": "user", "content": "hi"} and body["max_completion_tokens"] == 5
    assert body["ignore_eos"] is True and body["temperature"] == 0.0
    flat = orjson.loads(build_body("openai", "m", req, stream=False))
    assert flat["prompt"] == "be brief\nhi" and "stream" not in flat


async def test_connection_refused_is_a_failed_request():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with aiohttp.ClientSession() as session:
        out = await send_plain(session, f"http://127.0.0.1:{port}/v1/completions", b"{}", {}, Outcome())
    assert not out.ok and out.error.startswith("cannot connect")


async def test_read_timeout_fails_a_silent_request_and_the_run_goes_on(scripted):
    from tui.core.bench.engine import BenchSpec, run_benchmark

    scripted.script = [(0, sse(chat_chunk(content="a"))), (2.0, sse(chat_chunk(content="b")))]
    spec = BenchSpec(base_url=scripted.url, model="m", read_timeout=0.3, max_concurrency=2)
    result = await run_benchmark(spec, [BenchRequest(prompt="x", output_len=2, input_len=1)] * 2)
    assert result.failed == 2 and result.cancelled == 0 and not result.partial
    assert list(result.error_reasons) == ["timed out (no data for 0.3 s)"]
