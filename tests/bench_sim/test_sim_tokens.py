"""Token exactness: usage numbers against the bundled tokenizers, and re-tokenizing the output."""

from __future__ import annotations

import random

import pytest
from sim_testing import chat_body, parse_sse

PROMPT = "Ein kurzer Text — with unicode, <|endoftext|> as literal text, and numbers 12345.\n"


async def test_prompt_tokens_exact(start_sim, http, bundled):
    srv = await start_sim(output_tokens=2)
    tok = bundled.get("cl100k_base")
    async with http.post(srv.url + "/v1/completions", json={"prompt": PROMPT}) as r:
        assert (await r.json())["usage"]["prompt_tokens"] == tok.count(PROMPT)
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {}}]}]
    async with http.post(srv.url + "/v1/chat/completions", json={"messages": msgs}) as r:
        # no chat template: the message contents joined with "\n"
        assert (await r.json())["usage"]["prompt_tokens"] == tok.count("Be brief.\n" + PROMPT)
    async with http.post(srv.url + "/v1/completions", json={"prompt": [1, 2, 3, 4, 5]}) as r:
        assert (await r.json())["usage"]["prompt_tokens"] == 5
    assert srv.records[0].prompt_tokens == tok.count(PROMPT)


async def test_streamed_text_retokenizes_to_completion_tokens(start_sim, http, bundled):
    srv = await start_sim(output_tokens=40, output_tokens_jitter=30, seed=7)
    tok = bundled.get("cl100k_base")
    seen = set()
    for _ in range(6):
        body = chat_body(stream=True, stream_options={"include_usage": True})
        async with http.post(srv.url + "/v1/chat/completions", json=body) as r:
            events, _ = parse_sse(await r.read())
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
        n = events[-1]["usage"]["completion_tokens"]
        assert tok.count(text) == n
        seen.add(n)
    assert len(seen) > 1  # the jitter does vary lengths


@pytest.mark.parametrize("tid", ["o200k_base", "qwen3", "llama3", "llama2", "gemma3", "mistral-tekken"])
def test_text_source_roundtrips_for_bundled_tokenizers(tid, bundled):
    from tui.core.bench.sim import TextSource

    tok = bundled.get(tid)
    src = TextSource(tok)
    rng = random.Random(1)
    for _ in range(20):
        offset, n = rng.randrange(10_000), rng.randrange(1, 400)
        assert tok.count(src.text(offset, n)) == n


async def test_other_tokenizer_by_model_name(start_sim, http, bundled):
    srv = await start_sim(tokenizer="Qwen/Qwen3-8B", output_tokens=25)
    assert srv.tokenizer_id == "qwen3"
    async with http.post(srv.url + "/v1/completions", json={"prompt": PROMPT}) as r:
        out = await r.json()
    tok = bundled.get("qwen3")
    assert out["usage"]["prompt_tokens"] == tok.count(PROMPT)
    assert tok.count(out["choices"][0]["text"]) == 25


async def test_unknown_tokenizer_is_one_line_error():
    from tui.core.bench.sim import SimConfig, start_simulator
    from tui.core.errors import TokdeckError

    with pytest.raises(TokdeckError, match="unknown tokenizer"):
        await start_simulator(SimConfig(tokenizer="no-such-tokenizer"))
