"""F7 "Discover models" against hostile or broken endpoints: always a clear line, never a hang."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from textual.widgets import Select, Static

from bench_pane_testing import ready, wait_for


async def _serve(answer) -> tuple[web.AppRunner, str]:
    """A loopback server whose GET /v1/models is ``answer(request)``."""
    app = web.Application()
    app.router.add_get("/v1/models", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _body(doc):
    async def answer(request):
        return web.Response(body=doc if isinstance(doc, bytes) else json.dumps(doc).encode(),
                            content_type="application/json")
    return answer


async def _discover(make_bench, base_url: str, **profile) -> tuple[str, list]:
    """Select the profile, press F7, wait until the status line stops saying "asking"."""
    from tui.core.config import Config, Profile

    app = make_bench(config=Config(profiles=(Profile(name="ep", base_url=base_url, **profile),)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        app.query_one("#bench-profile", Select).value = "ep"
        await pilot.pause(0.05)
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.bench.status and not app.bench.status.startswith("asking"),
                       timeout=20, what="the answer of Discover models")
        options = [value for _, value in app.query_one("#bench-model", Select)._options if isinstance(value, str)]
        assert str(app.query_one("#bench-status", Static).render()) == app.bench.status
        return app.bench.status, options


@pytest.mark.parametrize("doc, reason", [
    ({"data": {"id": "m"}}, 'no "data" array'),
    ({"data": 5}, 'no "data" array'),
    ({"data": [{"id": 5}, {"id": None}]}, 'no entry of "data" has a string "id"'),
    ([{"id": "m"}], "not a JSON object"),
    (b"<html>gateway</html>", "not JSON"),
])
async def test_an_answer_that_is_not_a_model_list_is_said_so(make_bench, doc, reason):
    runner, url = await _serve(_body(doc))
    try:
        status, options = await _discover(make_bench, url)
    finally:
        await runner.cleanup()
    assert status == f"{url}/v1/models: not an OpenAI model list ({reason})"
    assert options == []


async def test_odd_entries_are_skipped_and_odd_ids_are_shown_as_text(make_bench):
    doc = {"data": [{"id": 7}, "x", {"id": ""}, {"id": "[b]qwen[/b"}, {"id": "llama"}]}
    runner, url = await _serve(_body(doc))
    try:
        status, options = await _discover(make_bench, url)
    finally:
        await runner.cleanup()
    assert options == ["[b]qwen[/b", "llama"]
    assert status == "2 model(s): [b]qwen[/b, llama"


async def test_a_silent_endpoint_fails_within_the_timeout(make_bench):
    async def hang(request):
        await asyncio.sleep(60)

    runner, url = await _serve(hang)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status, _ = await _discover(make_bench, url, timeout_s=1.0)
        elapsed = loop.time() - t0
    finally:
        await runner.cleanup()
    assert status == f"cannot reach {url}: no answer within 1 s"
    assert elapsed < 8


async def test_url_credentials_with_a_key_is_one_clear_line(make_bench):
    status, _ = await _discover(make_bench, "http://user:pw@127.0.0.1:9", api_key="sk-x")
    assert status == ("http://127.0.0.1:9: credentials in the URL (user:password@) and an API key (the profile's "
                      "stored key) would both be the Authorization header: keep one")
    assert "pw" not in status and "sk-x" not in status


async def test_a_control_character_in_the_key_variable_is_one_clear_line(make_bench, monkeypatch):
    monkeypatch.setenv("EP_KEY", "sk-abc\n")
    status, _ = await _discover(make_bench, "http://127.0.0.1:9", api_key_env="EP_KEY")
    assert status == "the API key from $EP_KEY contains a control character (U+000A (a newline)): remove it"


async def test_a_profiles_key_variable_that_is_unset_is_said_as_a_run_would(make_bench, monkeypatch):
    """F7 looks the key up as a run does: it used to ask without a key (and get the server's 401)."""
    asked = []

    async def answer(request):
        asked.append(request.headers.get("Authorization"))
        return web.json_response({"data": [{"id": "m"}]})

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-profile")
    runner, url = await _serve(answer)
    try:
        status, options = await _discover(make_bench, url, api_key_env="EP_MISSING")
    finally:
        await runner.cleanup()
    assert status == "--api-key-env: environment variable EP_MISSING is not set or empty"
    assert asked == [] and options == []
