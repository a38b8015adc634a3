"""The one message-text rule (tui.core.messages), and that every part of tokdeck applies it."""

from __future__ import annotations

import orjson
import pytest

from tui.core.messages import content_text, message_text, messages_text

TOOL_CONVERSATION = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "input_text", "text": "Use SI."}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                 {"type": "output_text", "text": "and Bergen"}]},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "4 C, rain"},
    {"role": "user", "content": ""},
    {"role": "user", "content": [{"type": "refusal", "refusal": "no"}]},
]
EXPECTED_PROMPT = ("Be brief.\nUse SI.\nWeather in Oslo?\nand Bergen\nget_weather\n{\"city\": \"Oslo\"}\n"
                   "4 C, rain\nno")


@pytest.mark.parametrize(("content", "text"), [
    ("plain", "plain"),
    (None, ""),
    ([], ""),
    ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "a\nb"),
    ([{"type": "input_text", "text": "a"}, {"type": "output_text", "text": "b"}], "a\nb"),
    ([{"type": "refusal", "refusal": "r"}, {"type": "refusal", "text": "not this key"}], "r"),
    (["bare", {"type": "text", "text": "part"}], "bare\npart"),
    ([{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "after"}], "after"),
    ([{"text": "no type"}, {"type": "text", "text": 5}, {"type": 3, "text": "x"}, 7, None], ""),
    (5, ""), ({"text": "an object"}, ""), (True, ""),
])
def test_content_text(content, text):
    assert content_text(content) == text


def test_message_text_adds_tool_calls_and_skips_empty_pieces():
    msg = {"role": "assistant", "content": "Checking.",
           "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}, {"function": {"name": "", "arguments": ""}},
                          "junk", {"function": "junk"}]}
    assert message_text(msg) == 'Checking.\nf\n{"a": 1}'
    assert message_text({"role": "assistant", "tool_calls": [{"function": {"name": "g", "arguments": "{}"}}]}) == "g\n{}"
    assert message_text("not a message") == ""
    assert messages_text(TOOL_CONVERSATION) == EXPECTED_PROMPT


def test_bench_sends_and_counts_the_same_text():
    from tui.core.bench.client import BenchRequest

    assert BenchRequest(messages=tuple(TOOL_CONVERSATION)).as_prompt() == EXPECTED_PROMPT


def test_custom_bench_dataset_counts_the_same_prompt(tmp_path, bundled):
    from tui.core.bench.datasets import load_custom

    path = tmp_path / "chat.jsonl"
    path.write_bytes(orjson.dumps({"messages": TOOL_CONVERSATION}) + b"\n")
    tok = bundled.get("cl100k_base")
    [req] = load_custom(path, tok, 1)
    assert req.as_prompt() == EXPECTED_PROMPT
    assert req.input_len == tok.count(EXPECTED_PROMPT)


def test_inspect_uses_the_same_prompt():
    from tui.core.datasets.formats import v_message_list

    conv = TOOL_CONVERSATION + [{"role": "assistant", "content": [{"type": "text", "text": "Rain."}]}]
    errs: list = []
    rec = v_message_list(conv, errs, [])
    assert errs == []
    assert rec.prompt == EXPECTED_PROMPT
    assert rec.answer == "Rain."


def test_serve_counts_the_same_message_texts():
    from tui.core.tokenizers.chat import parse_messages

    parsed = parse_messages(TOOL_CONVERSATION)
    assert [m.text for m in parsed] == [message_text(m) for m in TOOL_CONVERSATION]


def test_simulator_prompt_is_the_same_text():
    from tui.core.bench.sim import _chat_prompt

    assert _chat_prompt(TOOL_CONVERSATION) == EXPECTED_PROMPT


def test_export_to_sharegpt_uses_the_rule_for_system_and_turns():
    from tui.core.datasets.export import _sharegpt

    msgs = [TOOL_CONVERSATION[0], {"role": "developer", "content": "Second."},
            {"role": "user", "content": [{"type": "text", "text": "Q"}, {"type": "input_text", "text": "more"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}]
    out, why = _sharegpt(msgs)
    assert why is None
    assert out == {"system": "Be brief.\nUse SI.\nSecond.",
                   "conversations": [{"from": "human", "value": "Q\nmore"}, {"from": "gpt", "value": "No."}]}


def test_the_rule_reads_the_structs_as_it_reads_the_dicts():
    import msgspec

    from tui.core.messages import Message, PlainMessage

    structs = msgspec.json.decode(orjson.dumps(TOOL_CONVERSATION), type=list[Message])
    assert [message_text(m) for m in structs] == [message_text(m) for m in TOOL_CONVERSATION]
    assert messages_text(structs) == EXPECTED_PROMPT
    plain = msgspec.json.decode(b'{"role": "user", "content": "Hi"}', type=PlainMessage)
    assert message_text(plain) == "Hi" == content_text(plain.content)


def test_the_structs_refuse_what_they_do_not_describe():
    import msgspec

    from tui.core.messages import Message

    for raw in (b'{"role": "robot", "content": "x"}', b'{"role": "user", "content": "x", "extra": 1}',
                b'{"role": "user", "content": [{"type": "video", "video": {}}]}', b'{"content": "x"}',
                b'{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=Message)
