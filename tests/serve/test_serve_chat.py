"""Chat-message counting (tui.core.tokenizers.chat) and its use through POST /calculate."""

from __future__ import annotations

import json
import lzma

import pytest

from tui.core.tokenizers.chat import (
    ChatFormatError, chat_method, chat_template_for, count_chat, parse_messages, render_chat, tool_call_shape,
)

HELLO = [{"role": "user", "content": "hello"}]
SYSTEM_HELLO = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "hello"}]


def test_qwen3_template_renders_the_known_prompt(bundled):
    tok = bundled.get("qwen3")
    msgs = parse_messages(HELLO)
    prompt = render_chat(chat_template_for(tok.info), msgs)
    assert prompt == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    c = count_chat(tok, msgs)
    # <|im_start|> user \n hello <|im_end|> \n <|im_start|> assistant \n
    assert (c.method, c.total_tokens, c.content_tokens, c.overhead_tokens) == ("chat_template", 9, 1, 8)
    assert c.total_tokens == tok.count(prompt, "parse") and c.template_source == "bundled"


def test_llama3_and_deepseek_templates(bundled):
    msgs = parse_messages(SYSTEM_HELLO)
    llama = render_chat(chat_template_for(bundled.info("llama3")), msgs)
    assert llama == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                     "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n")
    deepseek = render_chat(chat_template_for(bundled.info("deepseek-v3")), msgs)
    assert deepseek == "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>hello<｜Assistant｜>"
    c = count_chat(bundled.get("deepseek-v3"), msgs)
    assert c.total_tokens == bundled.get("deepseek-v3").count(deepseek, "parse")
    assert c.overhead_tokens == 3  # BOS, <｜User｜>, <｜Assistant｜>


def test_template_raise_exception_is_a_chat_error(bundled):
    msgs = parse_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(ChatFormatError, match="roles must alternate"):
        count_chat(bundled.get("gemma3"), msgs)


def _openai_cookbook(enc, messages):
    """OpenAI's published num_tokens_from_messages, written out as the cookbook has it."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n + 3


@pytest.mark.parametrize("tid", ["cl100k_base", "o200k_base"])
def test_openai_rule_matches_the_cookbook(bundled, tid):
    messages = [{"role": "system", "content": "You are a helpful, pattern-following assistant."},
                {"role": "user", "name": "example_user", "content": "New synergies will help drive top-line growth."},
                {"role": "assistant", "content": "Things working well together will increase revenue."}]
    tok = bundled.get(tid)
    c = count_chat(tok, parse_messages(messages))
    assert c.method == "openai_rule"
    assert c.total_tokens == _openai_cookbook(tok.encoding, messages)
    assert c.content_tokens == sum(tok.count(m["content"]) for m in messages)
    assert c.overhead_tokens == c.total_tokens - c.content_tokens


@pytest.mark.parametrize("tid", ["mistral-tekken", "estimate", "llama2", "claude-legacy"])
def test_sum_of_contents_without_a_template(bundled, tid):
    tok = bundled.get(tid)
    c = count_chat(tok, parse_messages(SYSTEM_HELLO), "parse")
    assert c.method == "sum_of_contents" and c.overhead_tokens == 0 and c.specials == "parse"
    assert c.total_tokens == tok.count("You are helpful.", "parse") + tok.count("hello", "parse")
    assert c.exact is (tid != "estimate")


def test_content_parts_and_tool_calls_count_as_text(bundled):
    tok = bundled.get("o200k_base")
    msgs = parse_messages([
        {"role": "user", "content": [{"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {}},
                                     {"type": "text", "text": "this picture"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"city": "Paris"}'}}]},
    ])
    assert msgs[0].text == "look at\nthis picture"
    assert msgs[1].text == 'f\n{"city": "Paris"}'  # the tool call's name and arguments (tui.core.messages)
    c = count_chat(tok, msgs)
    assert c.content_tokens == tok.count("look at\nthis picture") + tok.count('f\n{"city": "Paris"}')
    qwen = bundled.get("qwen3")
    prompt = render_chat(chat_template_for(qwen.info), msgs[:1])
    assert prompt == "<|im_start|>user\nlook at\nthis picture<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("messages, fragment", [
    ([], "non-empty list"), ({"role": "user"}, "non-empty list"), (["hi"], "messages[0] must be an object"),
    ([{"role": "", "content": "x"}], "messages[0].role"), ([{"role": "user"}], "no content"),
    ([{"role": "user", "content": [{"type": "text", "text": 1}]}], "content[0].text"),
    ([{"role": "user", "content": "x", "name": 3}], "name must be a string"),
    ([{"role": "assistant", "tool_calls": "x", "content": None}], "tool_calls must be a list"),
])
def test_malformed_messages(messages, fragment):
    with pytest.raises(ChatFormatError, match=None) as err:
        parse_messages(messages)
    assert fragment in str(err.value)


def _llama2_copy(folder):
    from tui.core.tokenizers.registry import DATA_DIR

    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_bytes(lzma.decompress((DATA_DIR / "llama2.tokenizer.json.xz").read_bytes()))
    return folder


LLAMA2_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] | trim }}"
                   " [/INST]{% else %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}")


def test_discovered_tokenizer_uses_its_tokenizer_config(tmp_path):
    from tui.core.tokenizers import Registry

    with_config = _llama2_copy(tmp_path / "toks" / "my-llama")
    (with_config / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>",
        "chat_template": [{"name": "default", "template": LLAMA2_TEMPLATE}, {"name": "rag", "template": "x"}],
    }))
    _llama2_copy(tmp_path / "toks" / "bare-llama")
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(tmp_path / "toks")})
    tok = reg.get("my-llama")
    msgs = parse_messages(HELLO)
    assert render_chat(chat_template_for(tok.info), msgs) == "<s>[INST] hello [/INST]"
    c = count_chat(tok, msgs)
    assert c.method == "chat_template" and c.template_source.endswith("tokenizer_config.json")
    assert c.total_tokens == tok.count("<s>[INST] hello [/INST]", "parse")
    assert tok.encode("<s>[INST] hello [/INST]", "parse")[0] == 1  # <s> rendered is the BOS token itself
    assert chat_method(reg.info("bare-llama")) == "sum_of_contents"


def test_chat_template_jinja_file_and_helpers(tmp_path):
    from tui.core.tokenizers import Registry

    folder = _llama2_copy(tmp_path / "toks" / "dated")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "ignored", "bos_token": "<s>"}))
    (folder / "chat_template.jinja").write_text(
        "{{ bos_token }}{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}"
        "{% if loop.last %}{% break %}{% endif %}{% endfor %}|{{ strftime_now('%Y') | length }}")
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(tmp_path / "toks")})
    info = reg.info("dated")
    assert render_chat(chat_template_for(info), parse_messages(HELLO)) == "<s>hello|4"


def test_added_store_entry_keeps_its_template(tmp_path):
    from tui.core.tokenizers import Registry, add_to_store

    folder = _llama2_copy(tmp_path / "src" / "llama-chat")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": LLAMA2_TEMPLATE, "bos_token": "<s>",
                                                              "eos_token": "</s>"}))
    add_to_store(folder, "llama-chat")
    reg = Registry()
    c = count_chat(reg.get("llama-chat"), parse_messages(HELLO))
    assert c.method == "chat_template"


async def test_chat_over_http(serve_client, bundled):
    client = await serve_client()
    resp = await client.post("/calculate", json={"messages": HELLO, "model_name": "Qwen/Qwen2.5-7B-Instruct"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {**body, "token_count": 9, "content_tokens": 1, "overhead_tokens": 8, "method": "chat_template",
                    "tokenizer": "qwen3", "messages": 1, "specials": "parse", "template": "bundled"}
    resp = await client.post("/calculate", json={"messages": SYSTEM_HELLO, "model_name": "gpt-4o", "specials": "literal"})
    body = await resp.json()
    assert body["method"] == "openai_rule" and body["specials"] == "literal"
    assert body["token_count"] == _openai_cookbook(bundled.get("o200k_base").encoding, SYSTEM_HELLO)
    resp = await client.post("/calculate", json={"messages": HELLO, "tokenizer": "mistral-tekken"})
    body = await resp.json()
    assert body["method"] == "sum_of_contents" and body["overhead_tokens"] == 0 and "template" not in body
    resp = await client.post("/calculate", json={"messages": HELLO * 2, "model_name": "gemma-3-27b-it"})
    body = await resp.json()
    assert resp.status == 422 and body["error"]["type"] == "chat_template_error"
    assert "alternate" in body["error"]["message"]


def test_hf_cache_snapshot_template_through_symlinks(isolated_env):
    """The hub cache keeps files in blobs/ with symlinks in snapshots/<commit>/, as huggingface_hub does."""
    from tui.core.tokenizers import Registry

    repo = isolated_env / "hf" / "hub" / "models--acme--chat-7b"
    blobs = _llama2_copy(repo / "blobs")
    (blobs / "tokenizer.json").rename(blobs / "b1")
    (blobs / "b2").write_text(json.dumps({"chat_template": LLAMA2_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}))
    snap = repo / "snapshots" / "c0ffee"
    snap.mkdir(parents=True)
    (snap / "tokenizer.json").symlink_to("../../blobs/b1")
    (snap / "tokenizer_config.json").symlink_to("../../blobs/b2")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    reg = Registry()
    c = count_chat(reg.get("acme/chat-7b"), parse_messages(HELLO))
    assert c.method == "chat_template" and c.total_tokens == reg.get("acme/chat-7b").count("<s>[INST] hello [/INST]", "parse")


# ------------------------------------------------------------------ tool-call conversations
TOOL_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}
TOOL_CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees, sunny"},
    {"role": "assistant", "content": "It is 21 degrees and sunny in Paris."},
]
NO_CONTENT = [m if m["role"] != "assistant" or m["content"] else {"role": "assistant", "tool_calls": [TOOL_CALL]}
              for m in TOOL_CONVERSATION]
TEMPLATE_TOKENIZERS = ["qwen3", "deepseek-v3", "llama3", "gemma3"]


@pytest.mark.parametrize("conversation", [TOOL_CONVERSATION, NO_CONTENT], ids=["content-null", "content-absent"])
@pytest.mark.parametrize("tid", TEMPLATE_TOKENIZERS)
def test_a_tool_call_conversation_counts_with_every_bundled_template(bundled, tid, conversation):
    """qwen3's and gemma3's templates refused it (422) before the messages were normalised."""
    tok = bundled.get(tid)
    msgs = parse_messages(conversation)
    prompt = render_chat(chat_template_for(tok.info), msgs)
    for shown in ("get_weather", "Paris", "celsius", "21 degrees, sunny", "It is 21 degrees"):
        assert shown in prompt, (tid, prompt)
    assert "None" not in prompt  # a null content is "", not Python's None
    c = count_chat(tok, msgs)
    assert c.method == "chat_template" and c.total_tokens == tok.count(prompt, "parse")
    assert c.overhead_tokens > 0 and c.content_tokens == sum(tok.count(m.text, "parse") for m in msgs)
    plain = count_chat(tok, parse_messages(TOOL_CONVERSATION[:2]))
    assert c.total_tokens > plain.total_tokens


def test_which_shape_each_bundled_template_is_given(bundled):
    shapes = {tid: tool_call_shape(chat_template_for(bundled.info(tid))) for tid in TEMPLATE_TOKENIZERS}
    assert shapes == {"qwen3": "vllm", "deepseek-v3": "openai", "llama3": "text", "gemma3": "text"}


def test_arguments_are_parsed_for_the_template_as_vllm_does(bundled):
    qwen = chat_template_for(bundled.info("qwen3"))
    prompt = render_chat(qwen, parse_messages(TOOL_CONVERSATION[1:4]))
    assert '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}' in prompt
    not_json = {**TOOL_CALL, "function": {"name": "get_weather", "arguments": "city=Paris"}}
    prompt = render_chat(qwen, parse_messages([{"role": "assistant", "content": None, "tool_calls": [not_json]}]))
    assert '"arguments": {}}' in prompt  # vLLM gives the template {} for arguments that are not JSON
    as_object = {**TOOL_CALL, "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    deepseek = render_chat(chat_template_for(bundled.info("deepseek-v3")),
                           parse_messages([{"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": None, "tool_calls": [as_object]}]))
    assert '```json\n{"city": "Oslo"}\n```' in deepseek  # its template concatenates strings: given JSON text


def test_tool_turns_as_text_keep_gemmas_turns_alternating(bundled):
    second = {**TOOL_CALL, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
    msgs = parse_messages([{"role": "user", "content": "Weather and time?"},
                           {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, second]},
                           {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                           {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}])
    prompt = render_chat(chat_template_for(bundled.info("gemma3")), msgs)
    assert prompt == ("<bos><start_of_turn>user\nWeather and time?<end_of_turn>\n"
                      '<start_of_turn>model\nget_weather\n{"city": "Paris", "unit": "celsius"}\nget_time\n{}'
                      "<end_of_turn>\n<start_of_turn>user\nsunny\nnoon<end_of_turn>\n<start_of_turn>model\n")


def test_a_null_user_content_is_empty_text(bundled):
    tok = bundled.get("qwen3")
    c = count_chat(tok, parse_messages([{"role": "user", "content": None}]))
    assert c.total_tokens == tok.count("<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n", "parse")


def _deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def test_deeply_nested_arguments_are_a_format_error_not_a_recursion():
    call = {"type": "function", "function": {"name": "f", "arguments": _deep(1000)}}
    with pytest.raises(ChatFormatError, match=r"tool_calls\[0\]\.function\.arguments is nested more than 100"):
        parse_messages([{"role": "assistant", "content": None, "tool_calls": [call]}])
    call["function"]["arguments"] = _deep(90)  # deep, but within the limit
    parse_messages([{"role": "assistant", "content": None, "tool_calls": [call]}])


@pytest.mark.parametrize("calls, fragment", [
    ([{"type": "function"}], "tool_calls[0].function must be an object"),
    ([{"function": {"name": 5, "arguments": "{}"}}], "function.name must be a string"),
    ([{"function": {"name": "f", "arguments": 3}}], "function.arguments must be a JSON string or an object"),
])
def test_malformed_tool_calls(calls, fragment):
    with pytest.raises(ChatFormatError) as err:
        parse_messages([{"role": "assistant", "content": None, "tool_calls": calls}])
    assert fragment in str(err.value)


@pytest.mark.parametrize("template, fragment", [
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "did not finish rendering"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
    ("{{ messages[0].content + 5 }}", "TypeError"),
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ("{{ 7 ** 999999999 }}", "too big"),  # C code: no deadline could stop it
    ("{{ 'x' * 10 ** 9 }}", "too big"),
    ("{% for i in range(90000) %}{{ 'x' * 1000 }}{% endfor %}", "rendered more than 50,000,000 characters"),
])
def test_a_template_that_never_ends_or_fails_is_a_chat_error(tmp_path, monkeypatch, template, fragment):
    from tui.core.tokenizers import Registry, chat

    monkeypatch.setattr(chat, "RENDER_LIMIT_S", 1.0)
    folder = _llama2_copy(tmp_path / "toks" / "hostile")
    (folder / "chat_template.jinja").write_text(template)
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(tmp_path / "toks")})
    with pytest.raises(ChatFormatError) as err:
        count_chat(reg.get("hostile"), parse_messages(HELLO))
    assert fragment in str(err.value)


async def test_tool_calls_over_http_for_every_bundled_tokenizer(serve_client, bundled):
    client = await serve_client()
    for tid in bundled.ids(include_discovered=False):
        resp = await client.post("/calculate", json={"messages": TOOL_CONVERSATION, "tokenizer": tid})
        body = await resp.json()
        assert resp.status == 200, (tid, body)
        assert body["token_count"] == count_chat(bundled.get(tid), parse_messages(TOOL_CONVERSATION)).total_tokens


async def test_a_looping_template_answers_422_and_the_service_goes_on(serve_client, tmp_path, monkeypatch):
    from tui.core.tokenizers import Registry, chat

    monkeypatch.setattr(chat, "RENDER_LIMIT_S", 1.0)
    folder = _llama2_copy(tmp_path / "toks" / "looping")
    (folder / "chat_template.jinja").write_text("{% for i in range(99999) %}{% for j in range(99999) %}"
                                                "{{ '' }}{% endfor %}{% endfor %}")
    client = await serve_client(registry=Registry(env={"TOKDECK_TOKENIZER_PATH": str(tmp_path / "toks")}))
    resp = await client.post("/calculate", json={"messages": HELLO, "tokenizer": "looping"})
    body = await resp.json()
    assert resp.status == 422 and "did not finish rendering within 1 s" in body["error"]["message"]
    resp = await client.post("/calculate", json={"messages": HELLO, "tokenizer": "qwen3"})
    assert resp.status == 200
