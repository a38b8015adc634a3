"""GET /metrics: Prometheus text with vLLM's names, read back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sim_testing import chat_body

MODEL = 'odd "model" \\ name'  # the label value must come back intact


def _scrape(text: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family.samples for family in text_string_to_metric_families(text)}


async def _metrics(http, url: str) -> dict[str, list]:
    async with http.get(url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return _scrape(await r.text())


def _value(samples, **labels) -> float:
    (sample,) = [s for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert sample.labels["model_name"] == MODEL and sample.labels["engine"] == "0"
    return sample.value


async def test_metrics_show_the_batch_and_the_queue_then_the_totals(start_sim, http):
    # a TTFT long enough that the first 32 are still running when the 40th arrives on a loaded machine
    srv = await start_sim(model=MODEL, ttft_ms=1500, itl_ms=1, output_tokens=3, max_batch=32)
    prompt = "Count these words, simulator."
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one():
            async with session.post(srv.url + "/v1/chat/completions",
                                    json=chat_body(prompt, model=MODEL, stream=True)) as r:
                await r.read()

        tasks = [asyncio.create_task(one()) for _ in range(40)]
        for _ in range(400):  # until all 40 are in: 32 in the batch, 8 queued behind it
            metrics = await _metrics(http, srv.url)
            if _value(metrics["vllm:num_requests_running"]) + _value(metrics["vllm:num_requests_waiting"]) == 40:
                break
            await asyncio.sleep(0.01)
        assert _value(metrics["vllm:num_requests_running"]) == 32
        assert _value(metrics["vllm:num_requests_waiting"]) == 8
        assert _value(metrics["vllm:kv_cache_usage_perc"]) == 1.0
        assert _value(metrics["vllm:request_success"], finished_reason="stop") == 0
        await asyncio.gather(*tasks)
    metrics = await _metrics(http, srv.url)
    assert _value(metrics["vllm:num_requests_running"]) == 0
    assert _value(metrics["vllm:num_requests_waiting"]) == 0
    assert _value(metrics["vllm:kv_cache_usage_perc"]) == 0.0
    assert _value(metrics["vllm:request_success"], finished_reason="stop") == 40
    assert _value(metrics["vllm:request_success"], finished_reason="length") == 0
    prompt_tokens = srv.records[0].prompt_tokens
    assert prompt_tokens > 1 and all(r.prompt_tokens == prompt_tokens for r in srv.records)
    assert _value(metrics["vllm:prompt_tokens"]) == 40 * prompt_tokens
    assert _value(metrics["vllm:generation_tokens"]) == 40 * 3


async def test_metrics_need_no_api_key_and_count_cut_requests(start_sim, http):
    srv = await start_sim(model=MODEL, ttft_ms=1, itl_ms=0, output_tokens=8, api_key="k-secret", cut_rate=1.0)
    async with http.post(srv.url + "/v1/completions", json={"prompt": "x", "max_tokens": 8, "stream": True},
                         headers={"Authorization": "Bearer k-secret"}) as r:
        with pytest.raises(aiohttp.ClientPayloadError):  # the connection is dropped mid-stream
            await r.read()
    metrics = await _metrics(http, srv.url)  # no key, like vLLM's
    assert _value(metrics["vllm:request_success"], finished_reason="length") == 0  # cut: not a success
    cut = srv.records[-1]
    assert cut.fault == "cut" and 0 < cut.completion_tokens < 8
    assert _value(metrics["vllm:generation_tokens"]) == cut.completion_tokens  # what was sent
