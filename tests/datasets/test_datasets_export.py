"""export(): valid records converted, invalid ones skipped and counted, written atomically."""

from __future__ import annotations

import json

import pytest

from tokdeck_testing import SAMPLE_DATA
from tui.core.datasets import export, scan_file
from tui.core.errors import TokdeckError


@pytest.mark.parametrize("source", ["message-list.jsonl", "sharegpt.json", "sharegpt.jsonl", "alpaca.jsonl",
                                    "prompt-completion.jsonl", "openai-chat.jsonl"])
def test_chat_formats_convert_to_valid_openai_chat(tmp_path, source):
    out = tmp_path / "out.jsonl"
    result = export(str(SAMPLE_DATA / source), str(out), "openai-chat")
    before = scan_file(str(SAMPLE_DATA / source))
    after = scan_file(str(out))
    assert result.converted == before.valid and result.skipped == 0
    assert after.format.format == "openai-chat" and after.errors == () and after.valid == before.valid
    assert after.warnings == ()


def test_message_list_round_trip(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    export(str(SAMPLE_DATA / "message-list.jsonl"), str(a), "openai-chat")
    export(str(a), str(b), "message-list")
    source = (SAMPLE_DATA / "message-list.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in b.read_text(encoding="utf-8").splitlines()] == [json.loads(x) for x in source]
    assert json.loads(a.read_text(encoding="utf-8").splitlines()[3]) == {"messages": json.loads(source[3])}


def test_sharegpt_export_is_one_json_array_vllm_can_load(tmp_path):
    out = tmp_path / "sg.json"
    result = export(str(SAMPLE_DATA / "openai-chat.jsonl"), str(out), "sharegpt")
    data = json.loads(out.read_text())  # what vLLM's loader does: json.load of the whole file
    assert len(data) == result.converted and result.skipped == 2  # the two tool-call conversations
    assert set(result.skipped_reasons) == {"tool calls and tool messages have no ShareGPT form vLLM reads"}
    assert all(t["from"] in ("human", "gpt", "system") for rec in data for t in rec["conversations"])
    back = scan_file(str(out))
    assert (back.format.format, back.format.container, back.errors) == ("sharegpt", "json-array", ())


def test_sharegpt_export_moves_the_system_prompt_out_of_the_turns(tmp_path):
    """vLLM's loader takes turns 0 and 1 as prompt and answer: they must be human and gpt. Leading
    system/developer messages become ShareGPT's ``system`` (joined by the message-text rule's newline)."""
    source = [json.loads(x) for x in (SAMPLE_DATA / "openai-chat.jsonl").read_text(encoding="utf-8").splitlines()]
    source = [r["messages"] for r in source if not any(m.get("tool_calls") or m["role"] == "tool"
                                                       for m in r["messages"])]

    def split(msgs):
        lead = next(i for i, m in enumerate(msgs) if m["role"] not in ("system", "developer"))
        return "\n".join(m["content"] for m in msgs[:lead]) or None, msgs[lead:]

    out, again = tmp_path / "sg.json", tmp_path / "again.jsonl"
    export(str(SAMPLE_DATA / "openai-chat.jsonl"), str(out), "sharegpt")
    data = json.loads(out.read_text())
    assert sum(split(m)[0] is not None for m in source) >= 2, "the sample has system prompts"
    assert all(rec["conversations"][0]["from"] == "human" for rec in data)
    assert [rec.get("system") for rec in data] == [split(m)[0] for m in source]
    assert scan_file(str(out)).warnings == ()
    export(str(out), str(again), "openai-chat")  # and back: the system prompt is the first message again

    def role_content(msgs):  # ShareGPT keeps who spoke and the text (not "name", not content parts)
        return [(m["role"], m["content"] if isinstance(m["content"], str)
                 else "\n".join(p["text"] for p in m["content"] if p["type"] == "text")) for m in msgs]

    assert [role_content(json.loads(x)["messages"]) for x in again.read_text(encoding="utf-8").splitlines()] == [
        role_content(([{"role": "system", "content": sys_}] if sys_ else []) + rest)
        for sys_, rest in map(split, source)]


def test_prompt_export_counts_output_tokens(tmp_path, bundled):
    out = tmp_path / "p.jsonl"
    result = export(str(SAMPLE_DATA / "alpaca.jsonl"), str(out), "prompt", tokenizer="qwen3", registry=bundled)
    tok = bundled.get("qwen3")
    src = [json.loads(x) for x in (SAMPLE_DATA / "alpaca.jsonl").read_text().splitlines()]
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert result.converted == len(src) == len(got) and result.output_tokens_from == "qwen3"
    for s, g in zip(src, got):
        assert g["prompt"] == (f"{s['instruction']}\n{s['input']}" if s["input"] else s["instruction"])
        assert g["output_tokens"] == tok.count(s["output"])
    assert scan_file(str(out)).format.format == "prompt"


def test_prompt_export_without_tokenizer_has_no_output_tokens(tmp_path):
    out = tmp_path / "p.jsonl"
    export(str(SAMPLE_DATA / "sharegpt.jsonl"), str(out), "prompt")
    assert all(set(json.loads(x)) == {"prompt"} for x in out.read_text().splitlines())


def test_invalid_records_are_skipped_and_counted(tmp_path):
    out = tmp_path / "clean.jsonl"
    result = export(str(SAMPLE_DATA / "errors.jsonl"), str(out), "openai-chat")
    assert (result.converted, result.skipped_reasons) == (7, {"invalid record": 14})
    clean = scan_file(str(out))
    assert clean.errors == () and clean.valid == 7


def test_text_records_cannot_become_chats(tmp_path):
    result = export(str(SAMPLE_DATA / "text.jsonl"), str(tmp_path / "o.jsonl"), "openai-chat")
    assert result.converted == 0 and result.skipped == 20


def test_export_refuses_bad_requests_and_leaves_no_partial_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes((SAMPLE_DATA / "message-list.jsonl").read_bytes())
    with pytest.raises(TokdeckError):
        export(str(src), str(src), "openai-chat")
    with pytest.raises(TokdeckError):
        export(str(src), str(tmp_path / "o.jsonl"), "alpaca")
    with pytest.raises(TokdeckError):
        export(str(tmp_path / "missing.jsonl"), str(tmp_path / "o.jsonl"), "openai-chat")
    stop = lambda: True  # noqa: E731 - cancelled at once
    with pytest.raises(TokdeckError):
        export(str(src), str(tmp_path / "o.jsonl"), "openai-chat", cancel=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in.jsonl"]


def test_same_format_export_is_a_cleaned_copy(tmp_path):
    out = tmp_path / "clean.jsonl"
    result = export(str(SAMPLE_DATA / "openai-chat.jsonl"), str(out), "openai-chat")
    assert out.read_text(encoding="utf-8").splitlines() == [
        json.dumps(json.loads(x), ensure_ascii=False, separators=(",", ":"))
        for x in (SAMPLE_DATA / "openai-chat.jsonl").read_text(encoding="utf-8").splitlines()]
    assert result.converted == 22 and result.skipped == 0
    out2 = tmp_path / "p.jsonl"
    export(str(SAMPLE_DATA / "prompt.jsonl"), str(out2), "prompt", tokenizer="qwen3")
    assert [json.loads(x) for x in out2.read_text().splitlines()] == [
        json.loads(x) for x in (SAMPLE_DATA / "prompt.jsonl").read_text().splitlines()]
