"""SSE framing of the simulator: role chunk, content, finish, usage modes, [DONE], reasoning."""

from __future__ import annotations

from sim_testing import chat_body, parse_sse


def _content(events, key="content"):
    return "".join(e["choices"][0]["delta"].get(key) or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


async def test_health_and_models(start_sim, http):
    srv = await start_sim(model="my-model")
    async with http.get(srv.url + "/health") as r:
        assert r.status == 200
    async with http.get(srv.url + "/v1/models") as r:
        assert r.status == 200
        data = await r.json()
    assert [m["id"] for m in data["data"]] == ["my-model"]
    assert data["object"] == "list"


async def test_chat_stream_shape_with_separate_usage(start_sim, http):
    srv = await start_sim(output_tokens=7)
    body = chat_body(stream=True, stream_options={"include_usage": True})
    async with http.post(srv.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events, done = parse_sse(await r.read())
    assert done
    role, *content, finish, usage = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(content) == 7
    assert all(e["object"] == "chat.completion.chunk" and e["choices"][0]["delta"]["content"] for e in content)
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["choices"][0]["delta"] == {}
    assert "usage" not in finish
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 7
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 7
    assert len({e["id"] for e in events}) == 1


async def test_separate_usage_only_when_asked(start_sim, http):
    srv = await start_sim(output_tokens=3)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True)) as r:
        events, done = parse_sse(await r.read())
    assert done and not any("usage" in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


async def test_final_usage_no_done_no_role_chunk(start_sim, http):
    srv = await start_sim(output_tokens=4, usage="final", send_done=False, role_chunk=False)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True)) as r:
        events, done = parse_sse(await r.read())
    assert not done
    assert len(events) == 5
    assert all(e["choices"][0]["delta"].get("content") for e in events[:4])
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["usage"]["completion_tokens"] == 4


async def test_usage_none(start_sim, http):
    srv = await start_sim(output_tokens=3, usage="none")
    body = chat_body(stream=True, stream_options={"include_usage": True})
    async with http.post(srv.url + "/v1/chat/completions", json=body) as r:
        events, _ = parse_sse(await r.read())
    assert not any("usage" in e for e in events)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
        assert "usage" not in await r.json()


async def test_max_tokens_limits_and_finish_reasons(start_sim, http):
    srv = await start_sim(output_tokens=10)
    for extra, n, reason in (({"max_tokens": 4}, 4, "length"), ({"max_completion_tokens": 3}, 3, "length"),
                             ({"max_tokens": 50}, 10, "stop"), ({"max_tokens": 50, "ignore_eos": True}, 50, "length"),
                             ({}, 10, "stop")):
        async with http.post(srv.url + "/v1/chat/completions", json=chat_body(**extra)) as r:
            out = await r.json()
        assert out["usage"]["completion_tokens"] == n, extra
        assert out["choices"][0]["finish_reason"] == reason, extra
    free = await start_sim()  # output_tokens None: run to max_tokens, else 64
    for extra, n in (({"max_tokens": 5}, 5), ({}, 64)):
        async with http.post(free.url + "/v1/completions", json={"prompt": "x", **extra}) as r:
            assert (await r.json())["usage"]["completion_tokens"] == n


async def test_tokens_per_chunk(start_sim, http, bundled):
    srv = await start_sim(output_tokens=7, tokens_per_chunk=3)
    async with http.post(srv.url + "/v1/chat/completions",
                         json=chat_body(stream=True, stream_options={"include_usage": True})) as r:
        events, _ = parse_sse(await r.read())
    content = [e for e in events[1:] if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert len(content) == 3  # 3 + 3 + 1
    assert bundled.get("cl100k_base").count(_content(events)) == 7
    assert events[-1]["usage"]["completion_tokens"] == 7
    assert len(srv.records[-1].itls_s) == 2


async def test_reasoning_content(start_sim, http, bundled):
    srv = await start_sim(output_tokens=9, reasoning_tokens=4)
    async with http.post(srv.url + "/v1/chat/completions",
                         json=chat_body(stream=True, stream_options={"include_usage": True})) as r:
        events, _ = parse_sse(await r.read())
    deltas = [e["choices"][0]["delta"] for e in events[1:] if e["choices"] and e["choices"][0]["delta"]]
    assert [("reasoning_content" in d) for d in deltas] == [True] * 4 + [False] * 5
    tok = bundled.get("cl100k_base")
    assert tok.count(_content(events, "reasoning_content")) == 4
    assert tok.count(_content(events)) == 5
    assert events[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
        msg = (await r.json())["choices"][0]["message"]
    assert tok.count(msg["reasoning_content"]) == 4 and tok.count(msg["content"]) == 5


async def test_completions_stream_and_json(start_sim, http):
    srv = await start_sim(output_tokens=5)
    body = {"model": "anything", "prompt": "Once upon a time", "stream": True,
            "stream_options": {"include_usage": True}}
    async with http.post(srv.url + "/v1/completions", json=body) as r:
        events, done = parse_sse(await r.read())
    assert done
    *content, finish, usage = events
    assert len(content) == 5 and all(e["object"] == "text_completion" and e["choices"][0]["text"] for e in content)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert all(e["model"] == "anything" for e in events)  # any model accepted and echoed
    async with http.post(srv.url + "/v1/completions", json={**body, "stream": False}) as r:
        out = await r.json()
    assert out["object"] == "text_completion" and out["usage"]["completion_tokens"] == 5
    assert out["choices"][0]["text"]


async def test_non_streaming_chat(start_sim, http):
    srv = await start_sim(output_tokens=6)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
        assert r.status == 200
        out = await r.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["role"] == "assistant"
    assert out["usage"]["completion_tokens"] == 6
    rec = srv.records[-1]
    assert not rec.stream and rec.completion_tokens == 6 and rec.status == 200 and rec.fault is None


async def test_max_records_keeps_the_newest(start_sim, http):
    srv = await start_sim(output_tokens=1, max_records=3)
    for _ in range(8):
        async with http.post(srv.url + "/v1/completions", json={"prompt": "x"}) as r:
            assert r.status == 200
    assert 3 <= len(srv.records) <= 6
    assert srv.records[-1].index == 7
    assert srv.counts == {"ok": 8}
