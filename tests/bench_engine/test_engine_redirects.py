"""A benchmark measures the URL it was given: redirects are not followed, for POSTs nor GETs."""

from __future__ import annotations

import pytest

from engine_helpers import ScriptedServer, chat_chunk, sse
from tui.core.bench.client import BenchRequest, redirect_reason
from tui.core.bench.engine import BenchSpec, run_benchmark
from tui.core.bench.models import fetch_models, list_models
from tui.core.errors import TokdeckError


@pytest.fixture
async def target():
    server = await ScriptedServer().start()
    server.script = [(0, sse(chat_chunk(content="Hello", finish="stop"))), (0, b"data: [DONE]\n\n")]
    try:
        yield server
    finally:
        await server.close()


def prompts(n: int) -> list[BenchRequest]:
    return [BenchRequest(prompt="hi", output_len=2, input_len=1) for _ in range(n)]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_redirect_fails_the_request_and_nothing_reaches_the_other_host(scripted, target, status, stream):
    scripted.status = status
    scripted.headers = {"Location": target.url + "/v1/chat/completions"}
    spec = BenchSpec(base_url=scripted.url, model="m", stream=stream, api_key="sk-team-secret-123456",
                     headers=(("X-Team-Token", "team-token-abcdef"),))
    result = await run_benchmark(spec, prompts(3))
    assert result.completed == 0 and result.failed == 3
    assert result.error_reasons == {f"redirected to {target.url}; pass that URL as --base-url": 3}
    # the key and the team header went nowhere else, and a 302/303 did not become a GET there
    assert target.received == [] and target.gets == []
    assert len(scripted.received) == 3


async def test_a_relative_redirect_names_the_base_url_on_the_same_host(scripted):
    scripted.status = 307
    scripted.headers = {"Location": "/gateway/v1/chat/completions"}
    result = await run_benchmark(BenchSpec(base_url=scripted.url, model="m"), prompts(1))
    assert result.error_reasons == {f"redirected to {scripted.url}/gateway; pass that URL as --base-url": 1}


def test_redirect_reasons():
    url = "http://gpu1:8000/v1/chat/completions"
    assert redirect_reason(url, 307, "https://gpu2/v1/chat/completions") == (
        "redirected to https://gpu2; pass that URL as --base-url")
    assert redirect_reason(url, 302, "https://sso.corp/login?next=/v1") == (
        "redirected to https://sso.corp/login?next=/v1; pass that URL as --base-url")
    assert redirect_reason(url, 302, "https://user:pw@gpu2/v1/chat/completions") == (
        "redirected to https://gpu2; pass that URL as --base-url")  # credentials never shown
    assert redirect_reason(url, 301, None) == "HTTP 301 redirect without a Location header"
    assert redirect_reason(url, 301, "http://[broken/v1/chat/completions").startswith("HTTP 301 redirect to an invalid URL")
    assert redirect_reason("http://gw/llm/v1/completions", 308, "http://gw2/other/v1/completions") == (
        "redirected to http://gw2/other; pass that URL as --base-url")


async def test_the_models_preflight_does_not_follow_a_redirect(scripted, target):
    scripted.status = 302
    scripted.headers = {"Location": target.url + "/v1/models"}
    with pytest.raises(TokdeckError, match=r"/v1/models: redirected to http://127\.0\.0\.1:\d+; pass that URL"):
        await fetch_models(scripted.url, {"Authorization": "Bearer sk-secret-123456"})
    with pytest.raises(TokdeckError, match="redirected to"):
        await list_models(scripted.url)
    assert target.gets == []
