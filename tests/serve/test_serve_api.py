"""The service's endpoints over loopback: counts equal the core's, errors are JSON, it keeps serving."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

TEXT = "Hello, world! <|endoftext|> naïve 東京 <|im_start|> def f(x):\n    return x  # ok\n"


async def post(client, path, body, **kw):
    resp = await client.post(path, data=body if isinstance(body, (bytes, str)) else json.dumps(body), **kw)
    return resp.status, await resp.json()


@pytest.mark.parametrize("specials", ["literal", "parse"])
@pytest.mark.parametrize("model, tid", [
    ("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base"), ("Qwen/Qwen3-8B", "qwen3"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3"), ("mistral-nemo", "mistral-tekken"), ("gemma-3-4b-it", "gemma3"),
])
async def test_calculate_equals_core_count(serve_client, bundled, model, tid, specials):
    client = await serve_client()
    status, body = await post(client, "/calculate", {"text": TEXT, "model_name": model, "specials": specials})
    assert status == 200, body
    assert body["token_count"] == bundled.get(tid).count(TEXT, specials)
    assert body["tokenizer"] == tid and body["model_name"] == model and body["specials"] == specials
    assert body["char_count"] == len(TEXT)
    assert body["approximate"] is False and body["estimate"] is False


async def test_specials_policy_changes_the_count(serve_client):
    client = await serve_client()
    _, lit = await post(client, "/calculate", {"text": "<|endoftext|>", "tokenizer": "cl100k_base"})
    _, par = await post(client, "/calculate", {"text": "<|endoftext|>", "tokenizer": "cl100k_base", "specials": "parse"})
    assert par["token_count"] == 1 < lit["token_count"]
    assert lit["specials"] == "literal"  # the default


async def test_tokenizer_id_and_flags(serve_client, bundled):
    client = await serve_client()
    _, body = await post(client, "/calculate", {"text": TEXT, "tokenizer": "llama2"})
    assert (body["tokenizer"], body["model_name"], body["resolved_via"]) == ("llama2", None, "tokenizer")
    assert body["token_count"] == bundled.get("llama2").count(TEXT)
    _, body = await post(client, "/calculate", {"text": TEXT, "model_name": "claude-3-5-sonnet"})
    assert body["tokenizer"] == "claude-legacy" and body["approximate"] is True and body["estimate"] is False
    _, body = await post(client, "/calculate", {"text": "東京 abcdefgh", "tokenizer": "estimate"})
    assert body["approximate"] is True and body["estimate"] is True
    assert body["token_count"] == bundled.get("estimate").count("東京 abcdefgh")
    _, body = await post(client, "/calculate", {"text": "hi", "model": "gpt-4o-mini"})  # OpenAI's field name
    assert body["tokenizer"] == "o200k_base"


async def test_lone_surrogate_in_json_is_counted(serve_client, bundled):
    client = await serve_client()
    status, body = await post(client, "/calculate", '{"text": "a\\ud800b", "tokenizer": "qwen3"}')
    assert status == 200, body
    assert body["token_count"] == bundled.get("qwen3").count("a\ud800b")
    status, body = await post(client, "/calculate", '{"text": "a", "model_name": "qwen-\\udc00"}')
    assert status == 200 and body["model_name"] == "qwen-\udc00" and body["tokenizer"] == "qwen3"


async def test_batch_calculate(serve_client, bundled):
    client = await serve_client()
    texts = [TEXT, "", "hello", "東京タワー"]
    status, body = await post(client, "/batch-calculate", {"texts": texts, "model_name": "deepseek-chat",
                                                          "specials": "parse"})
    assert status == 200, body
    expected = [bundled.get("deepseek-v3").count(t, "parse") for t in texts]
    assert [r["token_count"] for r in body["results"]] == expected
    assert [r["char_count"] for r in body["results"]] == [len(t) for t in texts]
    assert body["total_tokens"] == sum(expected) and body["tokenizer"] == "deepseek-v3"
    status, body = await post(client, "/batch-calculate", {"texts": [], "tokenizer": "o200k_base"})
    assert status == 200 and body["results"] == [] and body["total_tokens"] == 0
    many = [f"{TEXT} {i}" * (i % 3) for i in range(40)]  # enough for tiktoken's batch call
    status, body = await post(client, "/batch-calculate", {"texts": many, "tokenizer": "o200k_base"})
    assert [r["token_count"] for r in body["results"]] == [bundled.get("o200k_base").count(t) for t in many]


async def test_models_lists_tokenizers_and_patterns(serve_client, bundled):
    client = await serve_client()
    resp = await client.get("/models")
    assert resp.status == 200
    rows = {r["id"]: r for r in (await resp.json())["tokenizers"]}
    assert set(bundled.ids()) <= set(rows)
    assert "qwen*" in rows["qwen3"]["patterns"] and "gpt-4o" in rows["o200k_base"]["patterns"]
    assert rows["qwen3"]["chat_method"] == "chat_template"
    assert rows["o200k_base"]["chat_method"] == "openai_rule"
    assert rows["mistral-tekken"]["chat_method"] == "sum_of_contents"
    assert rows["estimate"]["estimate"] is True and rows["claude-legacy"]["approximate"] is True


async def test_health_reports_loaded_tokenizers(serve_client):
    client = await serve_client()
    body = await (await client.get("/health")).json()
    assert body["status"] == "ok" and body["busy"] == 0 and body["loaded"] == []
    await post(client, "/calculate", {"text": "x", "tokenizer": "cl100k_base"})
    assert (await (await client.get("/health")).json())["loaded"] == ["cl100k_base"]


async def test_aliases_from_the_user_config(serve_client, isolated_env):
    (isolated_env / "config" / "tokdeck").mkdir()
    (isolated_env / "config" / "tokdeck" / "config.toml").write_text(
        '[tokenizers]\naliases = { "acme-chat-*" = "qwen3" }\n')
    client = await serve_client(registry=None)  # the process-wide registry, built from the config
    status, body = await post(client, "/calculate", {"text": "hello", "model_name": "acme-chat-7b"})
    assert status == 200, body
    assert (body["tokenizer"], body["resolved_via"]) == ("qwen3", "alias")
    rows = {r["id"]: r for r in (await (await client.get("/models")).json())["tokenizers"]}
    assert "acme-chat-*" in rows["qwen3"]["patterns"]


@pytest.mark.parametrize("body, status, type_, fragment", [
    (b"{not json", 400, "invalid_json", "not valid JSON"),
    (b"\xff\xfe", 400, "invalid_json", ""),
    (b"[1, 2]", 400, "invalid_json", "JSON object"),
    ({"model_name": "gpt-4o"}, 400, "invalid_request", "either text"),
    ({"text": "x"}, 400, "invalid_request", "model_name"),
    ({"text": 5, "model_name": "gpt-4o"}, 400, "invalid_request", "text must be a string"),
    ({"text": "x", "model_name": ["gpt-4o"]}, 400, "invalid_request", "model_name must be"),
    ({"text": "x", "model_name": "gpt-4o", "tokenizer": "qwen3"}, 400, "invalid_request", "not both"),
    ({"text": "x", "messages": [], "model_name": "gpt-4o"}, 400, "invalid_request", "either text"),
    ({"text": "x", "model_name": "gpt-4o", "specials": "all"}, 400, "invalid_request", "specials"),
    ({"text": "x", "model_name": "no-such-model"}, 404, "unknown_model", "no-such-model"),
    ({"text": "x", "tokenizer": "qwen4"}, 404, "unknown_tokenizer", "did you mean 'qwen3'"),
    ({"messages": "hello", "model_name": "gpt-4o"}, 400, "invalid_request", "messages must be"),
    ({"messages": [{"content": "hi"}], "model_name": "gpt-4o"}, 400, "invalid_request", "messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}], "model_name": "gpt-4o"}, 400, "invalid_request", "content"),
])
async def test_bad_calculate_requests(serve_client, body, status, type_, fragment):
    client = await serve_client()
    got_status, got = await post(client, "/calculate", body)
    assert got_status == status, got
    assert got["error"]["type"] == type_ and fragment in got["error"]["message"]
    assert "\n" not in got["error"]["message"]
    ok_status, _ = await post(client, "/calculate", {"text": "still here", "tokenizer": "cl100k_base"})
    assert ok_status == 200


@pytest.mark.parametrize("body, fragment", [
    ({"texts": "abc", "tokenizer": "qwen3"}, "texts must be a list"),
    ({"texts": ["a", 1], "tokenizer": "qwen3"}, "texts[1]"),
    ({"tokenizer": "qwen3"}, "texts must be a list"),
])
async def test_bad_batch_requests(serve_client, body, fragment):
    client = await serve_client()
    status, got = await post(client, "/batch-calculate", body)
    assert status == 400 and fragment in got["error"]["message"]


async def test_unknown_route_and_method_are_json(serve_client):
    client = await serve_client()
    resp = await client.get("/nowhere")
    assert resp.status == 404 and (await resp.json())["error"]["type"] == "not_found"
    resp = await client.get("/calculate")
    assert resp.status == 405 and (await resp.json())["error"]["type"] == "method_not_allowed"


async def test_broken_tokenizer_is_a_server_error(serve_client, tmp_path):
    from tui.core.tokenizers import Registry

    folder = tmp_path / "toks"
    folder.mkdir()
    (folder / "broken.json").write_text('{"model": {"type": "BPE", "vocab": 7}}')
    client = await serve_client(registry=Registry(env={"TOKDECK_TOKENIZER_PATH": str(folder)}))
    status, body = await post(client, "/calculate", {"text": "x", "tokenizer": "broken"})
    assert status == 500 and body["error"]["type"] == "tokenizer_error" and "broken" in body["error"]["message"]
    status, _ = await post(client, "/calculate", {"text": "x", "tokenizer": "cl100k_base"})
    assert status == 200


async def test_body_over_the_limit_is_413(serve_client):
    client = await serve_client(max_body_bytes=1000)
    big = {"text": "x" * 2000, "tokenizer": "cl100k_base"}
    status, body = await post(client, "/calculate", big)  # announced by Content-Length
    assert status == 413 and body["error"]["type"] == "payload_too_large" and "1,000" in body["error"]["message"]

    async def chunks():
        data = json.dumps(big).encode()
        for i in range(0, len(data), 256):
            yield data[i:i + 256]

    resp = await client.post("/batch-calculate", data=chunks())  # chunked: no Content-Length
    assert resp.status == 413 and (await resp.json())["error"]["type"] == "payload_too_large"
    status, body = await post(client, "/calculate", {"text": "x" * 900, "tokenizer": "cl100k_base"})
    assert status == 200 and body["char_count"] == 900


async def test_bearer_auth(serve_client):
    client = await serve_client(auth_token="s3cret-token")
    body = {"text": "hello", "tokenizer": "cl100k_base"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        status, got = await post(client, "/calculate", body, headers=headers)
        assert status == 401 and got["error"]["type"] == "unauthorized"
        assert "s3cret-token" not in json.dumps(got)
    resp = await client.get("/models")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/health")).status == 200  # liveness probes need no token
    status, got = await post(client, "/calculate", body, headers={"Authorization": "Bearer s3cret-token"})
    assert status == 200 and got["token_count"] == 1


async def test_a_huge_text_does_not_stall_other_requests(serve_client, bundled):
    """While a multi-MB text is being counted, /health and a short /calculate are answered."""
    tok = bundled.get("cl100k_base")
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "東京", "naïve", "x=1;", "(f)", "\n", "0.25"]
    big_text = " ".join(rng.choice(words) for _ in range(1_200_000))  # ~7 MB
    client = await serve_client(max_body_bytes=64 << 20)
    big = asyncio.create_task(post(client, "/calculate", {"text": big_text, "tokenizer": "cl100k_base"}))
    while True:  # wait until the server is counting the big text
        health = await (await client.get("/health")).json()
        if health["busy"]:
            break
        assert not big.done(), "the big request ended before it was seen counting"
        await asyncio.sleep(0.005)
    status, short = await post(client, "/calculate", {"text": "hello world", "tokenizer": "cl100k_base"})
    health = await client.get("/health")
    assert status == 200 and short["token_count"] == 2 and health.status == 200
    assert not big.done(), "the short requests should be answered before the big one completes"
    status, body = await big
    assert status == 200 and body["token_count"] == tok.count(big_text)


async def test_concurrent_short_requests_each_get_their_own_count(serve_client, bundled):
    """Short texts arriving together are counted in shared worker calls: no mix-ups between them."""
    client = await serve_client()
    rng = random.Random(3)
    pieces = ["hello", " <|endoftext|>", " 東京", "\n\n", " naïve", "<|im_start|>", " x", "<s>", " 42"]
    cases = [("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))),
              rng.choice(["cl100k_base", "qwen3", "llama2", "estimate", "mistral-tekken"]),
              rng.choice(["literal", "parse"])) for _ in range(200)]
    cases.append(("word " * 5000, "qwen3", "literal"))  # a long text among them takes its own job
    results = await asyncio.gather(*(post(client, "/calculate", {"text": t, "tokenizer": tid, "specials": sp})
                                     for t, tid, sp in cases))
    for (text, tid, specials), (status, body) in zip(cases, results):
        assert status == 200, body
        assert (body["tokenizer"], body["specials"]) == (tid, specials)
        assert body["token_count"] == bundled.get(tid).count(text, specials), (text, tid, specials)


async def test_a_long_hf_count_parks_no_worker_of_short_texts(serve_client, bundled):
    """An HF tokenizer counts one call at a time; short texts for it wait without holding a
    worker, so other tokenizers' short texts are still answered with a single worker per pool."""
    qwen = bundled.get("qwen3")
    rng = random.Random(11)
    long_text = " ".join(rng.choice(["tokens", "東京", "naïve", "x+1", "\n", "Ω"]) for _ in range(250_000))
    client = await serve_client(workers=1)
    big = asyncio.create_task(post(client, "/calculate", {"text": long_text, "tokenizer": "qwen3"}))
    while not (await (await client.get("/health")).json())["busy"]:
        assert not big.done()
        await asyncio.sleep(0.005)
    same = [asyncio.create_task(post(client, "/calculate", {"text": f"short {i}", "tokenizer": "qwen3"}))
            for i in range(5)]
    await asyncio.sleep(0.05)  # let them reach the batcher
    status, other = await post(client, "/calculate", {"text": "hello world", "tokenizer": "cl100k_base"})
    assert status == 200 and other["token_count"] == 2
    assert not big.done(), "cl100k should be answered while qwen3 counts the long text"
    for i, task in enumerate(same):
        status, body = await task
        assert status == 200 and body["token_count"] == qwen.count(f"short {i}")
    status, body = await big
    assert status == 200 and body["token_count"] == qwen.count(long_text)


async def test_deeply_nested_json_is_a_400(serve_client):
    client = await serve_client()
    status, body = await post(client, "/calculate", "[" * 100_000 + "]" * 100_000)
    assert status == 400 and body["error"]["type"] == "invalid_json"


# ------------------------------------------------------------------ hostile input
async def test_a_null_field_is_a_field_not_given(serve_client, bundled):
    client = await serve_client()
    status, body = await post(client, "/calculate", {"text": "hi", "model_name": None, "model": "gpt-4o"})
    assert status == 200 and body["tokenizer"] == "o200k_base", body
    status, body = await post(client, "/calculate", {"text": "hi", "tokenizer": "llama3", "model": None,
                                                     "specials": None, "messages": None})
    assert status == 200 and body["specials"] == "literal" and body["token_count"] == bundled.get("llama3").count("hi")
    status, body = await post(client, "/batch-calculate", {"texts": ["a"], "model_name": None, "tokenizer": "qwen3"})
    assert status == 200


async def test_an_alias_to_a_missing_tokenizer_names_the_alias_and_its_target(serve_client):
    from tui.core.tokenizers import Registry

    client = await serve_client(registry=Registry(discover=False, env={}, aliases={"acme-*": "acme-tok"}))
    status, body = await post(client, "/calculate", {"text": "x", "model_name": "acme-7b"})
    assert status == 404 and body["error"]["type"] == "unknown_model"
    message = body["error"]["message"]
    assert "'acme-7b'" in message and "'acme-*' -> 'acme-tok'" in message and "[tokenizers.aliases]" in message


def _deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


@pytest.mark.parametrize("body, fragment", [
    (b"null", "must be a JSON object"),
    (b'{"text": "x", "tokenizer": "qwen3", "extra": NaN}', "NaN is not a JSON number"),
    (b'{"text": "x", "tokenizer": "qwen3", "extra": 1e999}', "out of range"),
    (b'{"text": "x", "tokenizer": "qwen3", "extra": ' + _deep(1000).encode() + b"}", "nested more than 100 levels"),
    (('{"tokenizer": "qwen3", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function",'
      ' "function": {"name": "f", "arguments": %s}}]}]}' % _deep(1000)).encode(), "nested more than 100 levels"),
    (('{"tokenizer": "qwen3", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function",'
      ' "function": {"name": "f", "arguments": %s}}]}]}' % json.dumps(_deep(1000))).encode(), "arguments is nested"),
    (b'{"tokenizer": "qwen3", "messages": [{"role": "user", "content": ' + b"[" * 1000 + b"]" * 1000 + b"}]}",
     "nested more than 100 levels"),
    (b"\xfe\xff{}", "not UTF-8"),
])
async def test_hostile_bodies_are_400_never_500(serve_client, body, fragment):
    """Tool-call arguments nested 1,000 deep were a 500 with a RecursionError in the log."""
    client = await serve_client()
    status, got = await post(client, "/calculate", body)
    assert status == 400 and fragment in got["error"]["message"], got
    assert "\n" not in got["error"]["message"]


async def test_a_batch_of_100000_texts(serve_client, bundled):
    client = await serve_client()
    texts = [f"text number {i}" for i in range(100_000)]
    status, body = await post(client, "/batch-calculate", {"texts": texts, "tokenizer": "cl100k_base"})
    assert status == 200
    tok = bundled.get("cl100k_base")
    assert [r["token_count"] for r in body["results"][:3]] == [tok.count(t) for t in texts[:3]]
    assert body["total_tokens"] == sum(tok.count_many(texts))
    status, body = await post(client, "/batch-calculate", {"texts": ["ok", None, 3], "tokenizer": "cl100k_base"})
    assert status == 400 and "texts[1] must be a string" in body["error"]["message"]


async def test_broken_tokenizers_answer_their_error_and_the_others_keep_serving(serve_client, tmp_path):
    """A tokenizer whose Rust core panicked dropped the connection with no reply."""
    from corrupt_tokenizers import write_corrupt_tokenizers
    from tui.core.tokenizers import Registry

    folder = tmp_path / "toks"
    expected = write_corrupt_tokenizers(folder)
    (folder / "emptymatch.json").write_bytes(_tekken_with_pattern(r"\s*"))  # loads, then panics on any text
    client = await serve_client(registry=Registry(env={"TOKDECK_TOKENIZER_PATH": str(folder)}))
    for tid, fragment in expected.items():
        status, body = await post(client, "/calculate", {"text": "hello", "tokenizer": tid})
        assert status == 500 and body["error"]["type"] == "tokenizer_error" and fragment in body["error"]["message"]
    for path, payload in [("/calculate", {"text": "hello"}), ("/batch-calculate", {"texts": ["a", "b"]}),
                          ("/calculate", {"messages": [{"role": "user", "content": "hi"}]})]:
        status, body = await post(client, path, {**payload, "tokenizer": "emptymatch"})
        assert status == 500 and body["error"]["type"] == "tokenizer_error", body
        assert body["error"]["message"].startswith("emptymatch: the tokenizer library failed: ")
    status, body = await post(client, "/calculate", {"text": "hello", "tokenizer": "cl100k_base"})
    assert status == 200 and body["token_count"] == 1
    resp = await client.get("/models")
    rows = {r["id"]: r for r in (await resp.json())["tokenizers"]}
    assert resp.status == 200
    for tid, fragment in expected.items():
        assert fragment in rows[tid]["error"] and rows[tid]["loaded"] is False
    assert "error" not in rows["cl100k_base"] and rows["cl100k_base"]["loaded"] is True


def _tekken_with_pattern(pattern: str) -> bytes:
    from corrupt_tokenizers import empty_special_token

    doc = json.loads(empty_special_token())
    doc["special_tokens"][1]["token_str"] = "<s>"
    doc["config"]["pattern"] = pattern
    return json.dumps(doc).encode()


async def _raw_post(client, head: bytes, body: bytes, pause: float) -> tuple[int, dict]:
    """POST with ``Connection: close``: all in one write, or the body's start, ``pause`` s, the rest."""
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    request = b"POST /calculate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n"
    if pause:
        writer.write(request + body[:10])
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(body[10:])
    else:
        writer.write(request + body)
    got = await reader.read()
    writer.close()
    head_part, _, payload = got.partition(b"\r\n\r\n")
    return int(head_part.split()[1]), json.loads(payload)


@pytest.mark.parametrize("pause", [0, 0.3], ids=["whole-with-the-headers", "arriving-in-pieces"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_is_held_to_the_limit_however_it_arrives(serve_client, pause, framing):
    """A body that came whole with its headers is taken in one read; one still arriving is read
    chunk by chunk: both give the same answer, and both hold the limit."""
    client = await serve_client(max_body_bytes=1000)
    for text, status in (("x" * 900, 200), ("x" * 1100, 413)):
        body = json.dumps({"text": text, "tokenizer": "cl100k_base"}).encode()
        if framing == "chunked":
            head, body = b"Transfer-Encoding: chunked\r\n", b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            head = b"Content-Length: %d\r\n" % len(body)
        got_status, got = await _raw_post(client, head, body, pause)
        assert got_status == status, got
        assert got.get("char_count") == 900 if status == 200 else got["error"]["type"] == "payload_too_large"


async def test_wrong_methods_unknown_paths_and_the_token_are_answered_in_json(serve_client):
    client = await serve_client(auth_token="s3cret")
    token = {"Authorization": "Bearer s3cret"}
    for method, path, headers, status, type_, message, allow in [
        ("GET", "/calculate", token, 405, "method_not_allowed", "Method Not Allowed: GET /calculate", "POST"),
        ("DELETE", "/models", token, 405, "method_not_allowed", "Method Not Allowed: DELETE /models", "GET,HEAD"),
        ("POST", "/health", {}, 405, "method_not_allowed", "Method Not Allowed: POST /health", "GET,HEAD"),
        ("GET", "/nowhere", token, 404, "not_found", "Not Found: GET /nowhere", None),
        ("GET", "/nowhere", {}, 401, "unauthorized", "missing or wrong bearer token", None),
        ("GET", "/calculate", {}, 401, "unauthorized", "missing or wrong bearer token", None),
    ]:
        resp = await client.request(method, path, headers=headers)
        assert (resp.status, await resp.json()) == (status, {"error": {"message": message, "type": type_}})
        assert resp.headers.get("Allow") == allow and resp.content_type == "application/json"
    assert (await client.head("/health")).status == 200
    assert (await client.head("/models", headers=token)).status == 200
