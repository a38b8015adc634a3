"""Hostile servers: every request ends completed or failed with an accurate reason, no wrong numbers.

Runs go against a byte-scripted aiohttp server, or a raw TCP server for what a framework will
not send. ``accounted`` checks the invariant every test relies on.
"""

from __future__ import annotations

import asyncio
import gc

import orjson
import pytest

from engine_helpers import RawServer, chat_chunk, sse
from tui.core.bench import sse as sse_module
from tui.core.bench.client import BenchRequest, Outcome, build_body, send_streaming
from tui.core.bench.engine import BenchmarkRun, BenchSpec, TokenCounter, run_benchmark
from tui.core.bench.report import format_summary

DONE = b"data: [DONE]\n\n"
HTTP_200_SSE_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def prompts(n: int = 4) -> list[BenchRequest]:
    return [BenchRequest(prompt=f"hello there {i}", output_len=4, input_len=3) for i in range(n)]


async def bench(url: str, n: int = 4, counter=None, requests=None, **spec) -> object:
    return await run_benchmark(BenchSpec(base_url=url, model="m", **spec), requests or prompts(n), counter)


def accounted(result, n: int) -> None:
    """Every request sent is completed or failed with a reason, and the result can be shown and saved."""
    assert result.setup["dispatched"] == n == result.completed + result.failed
    assert result.internal_errors == ()
    assert sum(result.error_reasons.values()) == result.failed
    assert all(result.error_reasons)
    assert result.summary.total_output_tokens >= 0 and result.summary.output_throughput >= 0
    orjson.dumps(result.to_vllm_json(detailed=True))  # raises on what JSON cannot hold (lone surrogates)
    result.to_csv()
    format_summary(result)


@pytest.fixture
async def raw():
    server = await RawServer().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def loop_errors():
    """``loop_errors()``: what the event loop reported so far (e.g. "Task exception was never
    retrieved", logged when such a task is collected: hence the collection first)."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx["message"]))

    def reported() -> list[str]:
        gc.collect()
        return seen

    yield reported
    loop.set_exception_handler(None)


# ---------------------------------------------------------------------- chunks of the wrong shape
MALFORMED = [
    ({"choices": [{"index": 0, "text": 5}]}, "text is a number"),
    ({"choices": [{"index": 0, "text": ["a"]}]}, "text is an array"),
    ({"choices": [{"delta": {"content": 7}}]}, "delta.content is a number"),
    ({"choices": [{"delta": {"content": ["a", "b"]}}]}, "delta.content is an array"),
    ({"choices": [{"delta": {"content": {"text": "a"}}}]}, "delta.content is an object"),
    ({"choices": [{"delta": "hello"}]}, "delta is a string"),
    ({"choices": [{"delta": ["hello"]}]}, "delta is an array"),
    ({"choices": {"0": {"delta": {"content": "a"}}}}, "choices is an object"),
    ({"choices": "abc"}, "choices is a string"),
    ({"choices": [5]}, "a choice is a number"),
    ({"choices": [{"delta": {"content": "a"}, "finish_reason": 1}]}, "finish_reason is a number"),
    ({"choices": [{"delta": {}, "finish_reason": ["stop"]}]}, "finish_reason is an array"),
    ({"choices": [{"delta": {"reasoning_content": True}}]}, "delta.reasoning_content is a boolean"),
    ({"choices": [{"delta": {"tool_calls": {"a": 1}}}]}, "delta.tool_calls is an object"),
    ({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": {"x": 1}}}]}}]},
     "a tool call's arguments are an object"),
    ("just a string", "not a JSON object"),
    ([1, 2], "not a JSON object"),
]


@pytest.mark.parametrize("chunk,what", MALFORMED, ids=[w for _, w in MALFORMED])
async def test_a_chunk_of_the_wrong_shape_fails_the_request_naming_the_field(scripted, loop_errors, chunk, what):
    scripted.script = [(0, sse(chat_chunk(content="fine"))), (0, sse(chunk)), (0, DONE)]
    result = await bench(scripted.url)
    accounted(result, 4)
    assert result.failed == 4 and result.error_reasons == {f"malformed stream chunk: {what}": 4}
    # the request's own error keeps the chunk's text
    assert all(r.error.startswith(f"malformed stream chunk: {what}: ") for r in result.records())
    assert loop_errors() == []


@pytest.mark.parametrize("payload,what", [
    (b'{"choices":[],"usage":{"completion_tokens":NaN}}', "not JSON"),
    (b'{"choices":[{"delta":{"content":"a"}}],"x":1e400}', "not JSON"),
    (b'{"choices":[{"delta":{"content":"\xff\xfe"}}]}', "not JSON"),
    (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
])
async def test_chunks_json_cannot_hold_fail_as_not_json(scripted, payload, what):
    scripted.script = [(0, sse(chat_chunk(content="fine"))), (0, b"data: " + payload + b"\n\n"), (0, DONE)]
    result = await bench(scripted.url, 2)
    accounted(result, 2)
    assert result.error_reasons == {f"malformed stream chunk: {what}": 2}


@pytest.mark.parametrize("body,what", [
    ({"choices": [{"message": "hello"}]}, "message is a string"),
    ({"choices": [{"message": {"content": 42}}]}, "message.content is a number"),
    ({"choices": "none"}, "choices is a string"),
    ({"choices": [{"message": {"content": "hi"}, "finish_reason": {"a": 1}}]}, "finish_reason is an object"),
])
async def test_a_whole_answer_of_the_wrong_shape_fails_the_request(scripted, loop_errors, body, what):
    scripted.script = [(0, orjson.dumps(body))]
    result = await bench(scripted.url, stream=False)
    accounted(result, 4)
    assert result.error_reasons == {f"malformed response: {what}": 4}
    assert loop_errors() == []


async def test_a_whole_answer_in_html_fails_as_not_json(scripted):
    scripted.script = [(0, b"<html><body>Welcome to nginx!</body></html>")]
    result = await bench(scripted.url, 2, stream=False)
    accounted(result, 2)
    assert result.error_reasons == {"malformed response: not JSON": 2}


# ---------------------------------------------------------------------- usage that cannot be believed
BAD_USAGE = [
    ({"prompt_tokens": 3, "completion_tokens": -100}, "usage.completion_tokens is negative"),
    ({"prompt_tokens": -5, "completion_tokens": 2}, "usage.prompt_tokens is negative"),
    ({"prompt_tokens": True, "completion_tokens": True}, "usage.prompt_tokens is a boolean"),
    ({"prompt_tokens": 3, "completion_tokens": 2.5}, "usage.completion_tokens is not a whole number"),
    ({"prompt_tokens": 3, "completion_tokens": 2.0}, "usage.completion_tokens is not a whole number"),
    ({"prompt_tokens": 2**63, "completion_tokens": 2}, "usage.prompt_tokens is over 1,000,000,000"),
    ({"prompt_tokens": 3, "completion_tokens": 2**64 - 1}, "usage.completion_tokens is over 1,000,000,000"),
    ({"prompt_tokens": 3, "completion_tokens": 10**30}, "usage.completion_tokens is not a whole number"),
    ({"prompt_tokens": 10**12, "completion_tokens": 2}, "usage.prompt_tokens is over 1,000,000,000"),
    ({"prompt_tokens": "3", "completion_tokens": 2}, "usage.prompt_tokens is a string"),
    ("lots", "usage is a string"),
    ([3, 2], "usage is an array"),
    ({"prompt_tokens": 3, "completion_tokens": 0}, "usage.completion_tokens is 0 although output arrived"),
    ({"prompt_tokens": 0, "completion_tokens": 2}, "usage.prompt_tokens is 0 for a non-empty prompt"),
]


@pytest.mark.parametrize("usage,why", BAD_USAGE, ids=[w for _, w in BAD_USAGE])
async def test_usage_that_cannot_be_true_is_ignored_for_local_counts_and_said(scripted, cl100k, usage, why):
    scripted.script = [(0, sse(chat_chunk(content="Hello"))), (0, sse(chat_chunk(content=" there", finish="stop"))),
                       (0, sse(chat_chunk(choices=False, usage=usage))), (0, DONE)]
    reqs = [BenchRequest(prompt="Say hello", output_len=4, input_len=cl100k.count("Say hello")) for _ in range(4)]
    result = await bench(scripted.url, counter=TokenCounter(cl100k), requests=reqs)
    accounted(result, 4)
    assert result.completed == 4
    s = result.summary
    assert s.total_output_tokens == 4 * cl100k.count("Hello there")
    assert s.total_input_tokens == 4 * cl100k.count("Say hello")
    label = "tokenizer:cl100k_base (invalid usage ignored)"
    assert result.token_sources == {"input": {label: 4}, "output": {label: 4}}
    assert result.usage_ignored == {why: 4}
    summary = format_summary(result)
    assert f"Server usage ignored as invalid (counted locally instead): {why} (4)" in summary
    assert f"output tokens from {label} (4)" in summary
    assert result.to_vllm_json()["usage_ignored"] == {why: 4}
    assert all(r.output_source == label for r in result.records())


async def test_believable_usage_is_still_used(scripted):
    scripted.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))),
                       (0, sse(chat_chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 1}))),
                       (0, DONE)]
    result = await bench(scripted.url, 2)
    accounted(result, 2)
    assert result.token_sources == {"input": {"usage": 2}, "output": {"usage": 2}} and result.usage_ignored == {}
    assert (result.summary.total_input_tokens, result.summary.total_output_tokens) == (14, 2)


# ---------------------------------------------------------------------- streams that were cut off
async def test_a_stream_without_done_or_finish_reason_was_cut_off(scripted):
    scripted.script = [(0, sse(chat_chunk(content="Hello"))), (0, sse(chat_chunk(content=" the")))]
    result = await bench(scripted.url)
    accounted(result, 4)
    assert result.error_reasons == {"response cut off: the stream ended without [DONE] or a finish_reason": 4}


async def test_a_connection_close_body_cut_between_events_fails(raw):
    raw.response = HTTP_200_SSE_CLOSE + sse(chat_chunk(content="Hello")) + sse(chat_chunk(content=" the"))
    result = await bench(raw.url)
    accounted(result, 4)
    assert result.error_reasons == {"response cut off: the stream ended without [DONE] or a finish_reason": 4}


async def test_a_connection_close_body_cut_inside_an_event_fails(raw):
    raw.response = HTTP_200_SSE_CLOSE + sse(chat_chunk(content="Hello")) + b'data: {"choices": [{"delta": {"cont'
    result = await bench(raw.url, 2)
    accounted(result, 2)
    assert result.error_reasons == {"malformed stream chunk: not JSON": 2}


async def test_a_server_that_sends_finish_reason_but_never_done_is_fine(raw):
    raw.response = (HTTP_200_SSE_CLOSE + sse({"choices": [{"index": 0, "text": "one"}]})
                    + sse({"choices": [{"index": 0, "text": " two", "finish_reason": "length"}]}))
    result = await bench(raw.url, 2, backend="openai")
    accounted(result, 2)
    assert result.completed == 2


async def test_a_200_html_page_is_not_an_event_stream(raw):
    raw.response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
                    b"<html><body>Please log in</body></html>")
    result = await bench(raw.url, 2)
    accounted(result, 2)
    (reason, n), = result.error_reasons.items()
    assert n == 2 and reason.startswith("not an event stream (Content-Type text/html): ") and "log in" in reason


async def test_a_whole_json_answer_to_a_streamed_request_says_the_server_ignored_stream(raw):
    body = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]})
    raw.response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body)
    result = await bench(raw.url, 2)
    accounted(result, 2)
    (reason, n), = result.error_reasons.items()
    assert reason.startswith("not an event stream: the server answered plain JSON") and "--no-stream" in reason


async def test_gzip_garbage_is_an_undecodable_body(raw):
    raw.response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                    b"Connection: close\r\n\r\n\x1f\x8b\x08\x00garbage-garbage-garbage")
    for stream in (True, False):
        result = await bench(raw.url, 2, stream=stream)
        accounted(result, 2)
        (reason, n), = result.error_reasons.items()
        assert reason.startswith("undecodable response body: ") and "gzip" in reason


async def test_undecodable_header_bytes_still_give_a_result_that_saves(raw):
    raw.response = b"HTTP/1.1 503 \xff\xfeBusy\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnop"
    result = await bench(raw.url, 2)
    accounted(result, 2)  # orjson refuses the lone surrogates undecodable bytes become, so they must be gone
    assert next(iter(result.error_reasons)).startswith("HTTP 503")


async def test_a_10_mb_chunk_arrives_whole(scripted):
    import aiohttp

    big = "word " * 2_000_000
    scripted.script = [(0, sse(chat_chunk(content=big, finish="stop"))), (0, DONE)]
    body = build_body("openai-chat", "m", BenchRequest(prompt="hi"))
    async with aiohttp.ClientSession(read_bufsize=1 << 20) as session:
        out = await send_streaming(session, scripted.url + "/v1/chat/completions", body, {}, Outcome())
    assert out.ok and out.text == big and out.chunks == 1


async def test_an_event_past_the_limit_fails_instead_of_taking_the_memory(scripted, monkeypatch):
    monkeypatch.setattr(sse_module, "MAX_EVENT_BYTES", 1 << 20)
    scripted.script = [(0, b"data: " + b"x" * (1 << 16)) for _ in range(20)]  # a line that never ends
    result = await bench(scripted.url, 2)
    accounted(result, 2)
    assert result.error_reasons == {"malformed stream: an event longer than 1 MiB": 2}
    scripted.script = [(0, b"data:\n" * 200_000)]  # an event of many (empty) data lines that never ends
    result = await bench(scripted.url, 2)
    assert result.error_reasons == {"malformed stream: an event longer than 1 MiB": 2}


# ---------------------------------------------------------------------- faults of tokdeck's own
async def test_an_error_inside_one_requests_handling_fails_only_that_request(scripted, loop_errors):
    scripted.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))), (0, DONE)]
    deep: object = "x"
    for _ in range(300):  # past what orjson writes: building this request's body raises
        deep = [deep]
    reqs = prompts(3) + [BenchRequest(messages=({"role": "user", "content": deep},), output_len=4, input_len=3)]
    result = await bench(scripted.url, requests=reqs)
    accounted(result, 4)
    assert result.completed == 3
    assert result.error_reasons == {"internal error: TypeError: Recursion limit reached": 1}
    assert loop_errors() == []


class FailingCounter:
    source = "tokenizer:broken"

    def count_many(self, texts):
        raise RuntimeError("tokenizer exploded")


async def test_a_local_count_that_fails_fails_those_requests(scripted):
    scripted.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))), (0, DONE)]  # no usage
    result = await bench(scripted.url, counter=FailingCounter())
    accounted(result, 4)
    assert result.error_reasons == {
        "counting output tokens failed: internal error: RuntimeError: tokenizer exploded": 4}


async def test_a_consumer_that_raises_loses_its_view_not_the_run(scripted):
    scripted.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))), (0, DONE)]

    def on_event(event):
        raise ValueError("display broke")

    result = await run_benchmark(BenchSpec(base_url=scripted.url, model="m"), prompts(3), on_event=on_event)
    assert result.completed == 3
    assert result.internal_errors == (
        "delivering events to the caller failed: internal error: ValueError: display broke",)


class LosingRun(BenchmarkRun):
    """A run whose bookkeeping drops request 1: the accounting check must catch it."""

    def _record(self, rec):
        if rec.index != 1:
            super()._record(rec)


class CrashingRun(BenchmarkRun):
    """A run whose request 2 raises past every guard of ``_request``."""

    def _finish(self, i, *args):
        if i == 2:
            raise RuntimeError("lost request")
        super()._finish(i, *args)


async def test_a_request_neither_completed_nor_failed_is_reported_never_silent(scripted, loop_errors):
    scripted.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))), (0, DONE)]
    run = LosingRun(BenchSpec(base_url=scripted.url, model="m"), prompts(4))
    result = await run.run()
    assert result.completed == 3
    assert result.internal_errors == (
        "accounting: 4 request(s) sent but 3 completed, 0 failed and 0 cancelled (3 recorded): 1 unaccounted "
        "for; the figures are incomplete",)
    assert "INTERNAL ERROR: accounting: 4 request(s) sent" in format_summary(result)
    assert result.to_vllm_json()["internal_errors"] == list(result.internal_errors)

    run = CrashingRun(BenchSpec(base_url=scripted.url, model="m"), prompts(4))
    result = await run.run()
    assert result.internal_errors[0] == "a request task crashed: internal error: RuntimeError: lost request"
    assert result.internal_errors[1].startswith("accounting: 4 request(s) sent but 3 completed")
    assert loop_errors() == []  # the task's exception was retrieved, not left to the loop


async def test_a_stop_accounts_for_every_request_sent(scripted):
    scripted.script = [(0, sse(chat_chunk(content="a"))), (5.0, sse(chat_chunk(content="b", finish="stop"))),
                       (0, DONE)]
    run = BenchmarkRun(BenchSpec(base_url=scripted.url, model="m", max_concurrency=3), prompts(6))
    task = asyncio.create_task(run.run())
    await asyncio.sleep(0.5)
    run.stop()
    result = await task
    assert result.partial and result.internal_errors == ()
    assert result.setup["dispatched"] == result.completed + result.failed + result.cancelled


async def test_a_transfer_cut_after_done_loses_nothing(raw):
    events = sse(chat_chunk(content="Hello")) + DONE
    raw.response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % len(events) + events + b"\r\n")  # the closing 0-length chunk never comes
    result = await bench(raw.url, 2)
    accounted(result, 2)
    assert result.completed == 2


async def test_a_stream_opening_with_a_byte_order_mark(raw):
    raw.response = HTTP_200_SSE_CLOSE + b"\xef\xbb\xbf" + sse(chat_chunk(content="Hello", finish="stop")) + DONE
    result = await bench(raw.url, 2)
    accounted(result, 2)
    assert result.completed == 2


async def test_terminal_escape_sequences_in_a_reason_are_neutralised(raw):
    raw.response = (b"HTTP/1.1 500 Oops\r\nContent-Length: 26\r\nConnection: close\r\n\r\n"
                    b"\x1b[2J\x1b]0;pwned\x07 cleared")
    result = await bench(raw.url, 2)
    accounted(result, 2)
    assert result.error_reasons == {"HTTP 500 Oops: ?[2J?]0;pwned? cleared": 2}


async def test_an_event_stream_answering_a_plain_request(raw):
    raw.response = HTTP_200_SSE_CLOSE + sse(chat_chunk(content="Hello", finish="stop")) + DONE
    result = await bench(raw.url, 2, stream=False)
    accounted(result, 2)
    assert result.error_reasons == {'malformed response: an event stream although "stream" was false': 2}
