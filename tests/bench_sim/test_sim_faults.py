"""Fault injection and request errors."""

from __future__ import annotations

import aiohttp
import pytest
from sim_testing import chat_body, parse_sse


async def _stream(http, srv, **extra):
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True, **extra)) as r:
        return r.status, await r.read()


async def test_http_error_fault(start_sim, http):
    srv = await start_sim(error_rate=1.0, error_status=503)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True)) as r:
        assert r.status == 503
        err = (await r.json())["error"]
    assert set(err) >= {"message", "type", "code"}
    assert srv.records[-1].fault == "error" and srv.records[-1].status == 503


async def test_cut_connection(start_sim, http):
    srv = await start_sim(cut_rate=1.0, output_tokens=10)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True)) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    rec = srv.records[-1]
    assert rec.fault == "cut" and 1 <= rec.completion_tokens < 10
    with pytest.raises(aiohttp.ClientError):  # non-streaming: dropped before any response
        async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
            await r.read()
    assert srv.records[-1].fault == "cut" and not srv.records[-1].stream
    async with http.get(srv.url + "/health") as r:  # the server lives on
        assert r.status == 200


async def test_malformed_chunk(start_sim, http):
    srv = await start_sim(malformed_rate=1.0, output_tokens=10)
    status, raw = await _stream(http, srv, stream_options={"include_usage": True})
    events, done = parse_sse(raw)
    bad = [e for e in events if isinstance(e, str)]
    assert status == 200 and done and len(bad) == 1
    good = [e for e in events if isinstance(e, dict)]
    assert sum(1 for e in good if e["choices"] and e["choices"][0]["delta"].get("content")) == 10
    assert good[-1]["usage"]["completion_tokens"] == 10
    assert srv.records[-1].fault == "malformed"


async def test_midstream_error(start_sim, http):
    srv = await start_sim(midstream_error_rate=1.0, output_tokens=10)
    status, raw = await _stream(http, srv)
    events, done = parse_sse(raw)
    assert status == 200 and done
    assert "error" in events[-1] and events[-1]["error"]["message"]
    sent = sum(1 for e in events if e.get("choices") and e["choices"][0]["delta"].get("content"))
    assert 1 <= sent < 10
    assert srv.records[-1].fault == "midstream_error" and srv.records[-1].completion_tokens == sent


async def test_fault_rates_mix_is_seeded(start_sim, http):
    from tui.core.bench.sim import SimConfig

    async def run(seed):
        srv = await start_sim(output_tokens=3, error_rate=0.3, cut_rate=0.2, seed=seed)
        for _ in range(40):
            try:
                await _stream(http, srv)
            except aiohttp.ClientError:
                pass
        return [r.fault for r in sorted(srv.records, key=lambda r: r.index)]

    a, b = await run(3), await run(3)
    assert a == b
    assert {"error", "cut", None} <= set(a)
    assert SimConfig(error_rate=0.5, cut_rate=0.5).validate()


async def test_slow_headers(start_sim, http):
    import time

    srv = await start_sim(slow_headers_ms=80, ttft_ms=1)
    t0 = time.monotonic()
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(stream=True)) as r:
        t_headers = time.monotonic() - t0
        await r.read()
    assert t_headers >= 0.08
    assert srv.records[-1].ttft_s >= 0.08


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b'{"model": "m"}', 400, "missing_required_parameter"),
    (b'{"messages": []}', 400, "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', 400, "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', 400, "invalid_value"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "invalid_value"),
])
async def test_bad_requests(start_sim, http, body, status, code):
    srv = await start_sim()
    async with http.post(srv.url + "/v1/chat/completions", data=body,
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == status
        err = (await r.json())["error"]
    assert err["code"] == code and err["type"] == "invalid_request_error" and err["message"]
    assert srv.records[-1].fault == "bad_request"


async def test_completions_bad_prompt(start_sim, http):
    srv = await start_sim()
    for prompt in (None, ["a", "b"], 5):
        body = {"prompt": prompt} if prompt is not None else {}
        async with http.post(srv.url + "/v1/completions", json=body) as r:
            assert r.status == 400


async def test_api_key(start_sim, http):
    srv = await start_sim(api_key="s3cret")
    assert "s3cret" not in repr(srv.cfg)
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                            ({"Authorization": "Bearer s3cret"}, 200)):
        async with http.post(srv.url + "/v1/chat/completions", json=chat_body(), headers=headers) as r:
            assert r.status == status
            if status == 401:
                assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with http.get(srv.url + "/v1/models", headers=headers) as r:
            assert r.status == status
    async with http.get(srv.url + "/health") as r:
        assert r.status == 200


async def test_strict_model(start_sim, http):
    srv = await start_sim(model="real", strict_model=True)
    async with http.post(srv.url + "/v1/chat/completions", json={**chat_body(), "model": "other"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "model_not_found"
    async with http.post(srv.url + "/v1/chat/completions", json={**chat_body(), "model": "real"}) as r:
        assert r.status == 200


def test_config_validation():
    from tui.core.bench.sim import SimConfig
    from tui.core.errors import TokdeckError

    for bad in (dict(usage="sometimes"), dict(error_rate=0.7, cut_rate=0.5), dict(ttft_ms=-1),
                dict(tokens_per_chunk=0), dict(error_status=200), dict(jitter="pareto"), dict(output_tokens=0)):
        with pytest.raises(TokdeckError):
            SimConfig(**bad).validate()


async def test_non_streaming_faults(start_sim, http):
    import json

    srv = await start_sim(malformed_rate=1.0, output_tokens=5)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
        assert r.status == 200
        with pytest.raises(ValueError):
            json.loads(await r.read())
    srv = await start_sim(midstream_error_rate=1.0, output_tokens=5)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body()) as r:
        assert r.status == 500 and "error" in await r.json()
    assert srv.records[-1].fault == "midstream_error"


async def test_midstream_error_without_done(start_sim, http):
    srv = await start_sim(midstream_error_rate=1.0, output_tokens=4, send_done=False)
    events, done = parse_sse((await _stream(http, srv))[1])
    assert not done and "error" in events[-1]
