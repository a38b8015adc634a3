"""A server that echoes the API key or a header: nothing shown or saved carries it."""

from __future__ import annotations

import orjson
import pytest

from engine_helpers import chat_chunk, sse
from tui.core.bench.client import BenchRequest
from tui.core.bench.engine import BenchmarkRun, BenchSpec
from tui.core.bench.live import LiveRun
from tui.core.bench.redact import MASK, Redactor, clip
from tui.core.bench.report import format_summary
from tui.core.bench.results import RequestRecord

KEY = "sk-live-7f3a9c2e5b8d1f4a6c0e"
TEAM = "ml-team-42"  # a --header value: short, masked as a whole word
AUTH = "tok-abcdef0123456789"  # an Authorization given with --header


def spec(url: str, **kw) -> BenchSpec:
    return BenchSpec(base_url=url, model="m", api_key=KEY, keep_texts=True,
                     headers=(("X-Team", TEAM), ("Authorization", f"Bearer {AUTH}")), **kw)


def prompts(n: int) -> list[BenchRequest]:
    return [BenchRequest(prompt="hi", output_len=2, input_len=1) for _ in range(n)]


async def run_collecting(s: BenchSpec, n: int):
    """The result, and every record the engine emitted (what the Bench pane's errors panel shows)."""
    run = BenchmarkRun(s, prompts(n))
    records = [e async for e in run.events() if isinstance(e, RequestRecord)]
    return run.result, records


def everything_shown_or_saved(result, records) -> str:
    live = LiveRun(planned=len(records))
    for r in records:
        live.add(r)
    return "\n".join([
        format_summary(result), orjson.dumps(result.to_vllm_json(detailed=True)).decode(), result.to_csv(),
        "\n".join(r.error + (r.text or "") for r in records), repr(dict(live.errors)), repr(list(live.latest_errors)),
    ])


def assert_no_secret(text: str) -> None:
    for secret in (KEY, TEAM, AUTH):
        assert secret not in text
        assert secret[:8] not in text  # nor the start of one an excerpt cut in two


async def test_an_error_body_echoing_the_key_and_headers(scripted):
    scripted.status = 401
    scripted.body = orjson.dumps({"error": {"message": f"invalid key Bearer {KEY} for team {TEAM}; got {AUTH}"}})
    result, records = await run_collecting(spec(scripted.url), 3)
    assert result.failed == 3
    (reason,) = result.error_reasons
    assert reason == f"HTTP 401 Unauthorized: invalid key Bearer {MASK} for team {MASK}; got {MASK}"
    assert_no_secret(everything_shown_or_saved(result, records))


async def test_a_stream_error_and_a_malformed_chunk_echoing_the_key(scripted):
    scripted.script = [(0, sse(chat_chunk(content="a"))), (0, sse({"error": {"message": f"quota of {KEY} used up"}}))]
    result, records = await run_collecting(spec(scripted.url), 2)
    assert result.error_reasons == {f"error in stream: quota of {MASK} used up": 2}
    assert_no_secret(everything_shown_or_saved(result, records))
    # the excerpt of a malformed chunk is cut at 80 characters: here inside the key
    junk = b'{"echo": "' + b"x" * 60 + KEY.encode() + b'", '
    scripted.script = [(0, sse(chat_chunk(content="a"))), (0, b"data: " + junk + b"\n\n")]
    result, records = await run_collecting(spec(scripted.url), 2)
    assert result.failed == 2
    assert all(r.error.endswith(MASK + "…") for r in records)
    assert_no_secret(everything_shown_or_saved(result, records))


async def test_generated_text_echoing_the_key_is_not_saved(scripted):
    scripted.script = [(0, sse(chat_chunk(content=f"your key is {KEY}", finish="stop"))), (0, b"data: [DONE]\n\n")]
    result, records = await run_collecting(spec(scripted.url), 2)
    assert result.completed == 2
    assert result.to_vllm_json(detailed=True)["generated_texts"] == [f"your key is {MASK}"] * 2
    assert_no_secret(everything_shown_or_saved(result, records))


def test_redactor_rules():
    r = Redactor([KEY, "Bearer " + AUTH, "ml", None, "", "team-a"])
    assert r.redact(f"key={KEY}.") == f"key={MASK}."
    assert r.redact(f"prefix{KEY}suffix") == f"prefix{MASK}suffix"  # a long secret anywhere
    assert r.redact(f"Authorization: Bearer {AUTH}") == f"Authorization: {MASK}"
    assert r.redact(f"token {AUTH} expired") == f"token {MASK} expired"  # the credentials alone too
    assert r.redact("team-a and team-ab and steam-a") == f"{MASK} and team-ab and steam-a"  # short: whole words
    assert r.redact("html ml") == "html ml"  # values under 4 characters are not secrets
    assert r.redact(clip(f"{'x' * 70} {KEY}", 80)) == f"{'x' * 70} sk-li…".replace("sk-li…", MASK + "…")
    assert not Redactor([None, "", "ab"]) and Redactor([KEY])


def test_clip_is_one_bounded_line_of_valid_utf8():
    assert clip("a\n\tb   c", 80) == "a b c"
    assert clip("x" * 100, 10) == "x" * 9 + "…"
    assert clip(" " * 1000 + "y", 10) == "…"  # cut before the collapse: says so
    assert clip("bad \udcff byte", 80) == "bad ? byte"
    orjson.dumps(clip("\udcfe" * 5, 80))


@pytest.mark.parametrize("url,expected", [
    ("http://user:pw@host:8000/v1", "http://host:8000/v1"),
    ("http://host:8000", "http://host:8000"),
    ("http://[bad", "(an invalid URL)"),
    ("http://u:p@[::1]:8000/v1", "http://[::1]:8000/v1"),  # the brackets stay (was http://::1:8000/v1)
    ("https://u:p@w@host", "https://host"),
    ("http://host:99999", "(an invalid URL)"),
])
def test_redact_url(url, expected):
    from tui.core.bench.redact import redact_url

    assert redact_url(url) == expected


def test_a_given_header_replaces_the_key_whatever_its_case():
    from tui.core.bench.engine import BenchSpec, request_headers

    spec = BenchSpec(base_url="http://h", model="m", api_key="sk-1", headers=(("authorization", "Basic eA=="),))
    headers = request_headers(spec)
    assert [k for k in headers if k.lower() == "authorization"] == ["authorization"]
    assert headers["authorization"] == "Basic eA=="


async def test_the_url_password_is_a_secret_too(scripted):
    host = scripted.url.removeprefix("http://")
    scripted.status = 500
    scripted.body = b'{"error": {"message": "auth failed for admin:hunter2-pass"}}'
    result, records = await run_collecting(BenchSpec(base_url=f"http://admin:hunter2-pass@{host}", model="m"), 1)
    assert result.error_reasons == {f"HTTP 500 Internal Server Error: auth failed for admin:{MASK}": 1}
