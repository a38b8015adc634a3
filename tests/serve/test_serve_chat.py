"""Chat-message counting (tui.core.tokenizers.chat) and its use through POST /calculate."""

from __future__ import annotations

import json
import lzma

import pytest

from tui.core.tokenizers.chat import (
    ChatFormatError, chat_method, chat_template_for, count_chat, parse_messages, render_chat,
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
