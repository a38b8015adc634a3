"""The typed path (msgspec Structs, ``records``) against the slow path (orjson + the dict validators):
on any line, the same verdict, the same errors and warnings in the same order, the same statistics.

Lines are written by a small JSON writer that can repeat keys, space or not its separators,
escape non-ASCII, colons and slashes: what real writers do, and what the duplicate-key count
must see through.
"""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokdeck_testing import SAMPLE_DATA
from tui.core.datasets import FORMATS, detect_format, scan_file
from tui.core.datasets.records import DECODERS, ShareGPTTag
from tui.core.datasets.formats import BATCH_URLS, SHAREGPT_TAGS
from tui.core.datasets.scanner import Structure

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Obj(list):
    """A JSON object as its (key, value) pairs in order: a key may repeat."""


def dump(value, style: dict) -> str:
    comma, colon = (", ", ": ") if style["spaced"] else (",", ":")
    if isinstance(value, Obj):
        return "{" + comma.join(dump(k, style) + colon + dump(v, style) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + comma.join(dump(v, style) for v in value) + "]"
    if isinstance(value, str):
        out = json.dumps(value, ensure_ascii=style["ascii"])
        if style["colons"]:
            out = out.replace(":", "\\u003a")
        if style["slashes"]:
            out = out.replace("/", "\\/")
        return out
    return json.dumps(value)


styles = st.fixed_dictionaries({"spaced": st.booleans(), "ascii": st.booleans(), "colons": st.booleans(),
                                "slashes": st.booleans()})
texts = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "a: b", 'say ": this', "x\ny", "café", "😀 ok",
                                                         "http://x/y", "{}", "Ticket 7: when?"]))


def rarely(n: int):
    """True about once in ``n`` draws (Hypothesis draws the bounds of a range more often than the rest)."""
    return st.integers(0, n - 1).map(lambda i: i == n // 2)


def record_strategies(hostile: bool) -> dict:
    """format -> its records. Every record may warn (repeated keys, bad tool-call arguments, ids
    that answer no call, empty texts, turn order...); ``hostile`` ones may also break a rule (a
    wrong type, an unknown role, key or part, a missing field) once in a while."""

    def mostly(good, bad):
        return rarely(16).flatmap(lambda b: bad if b else good) if hostile else good

    @st.composite
    def obj(draw, required: list, optional: list):
        pairs = [(k, draw(s)) for k, s in required]
        pairs += [(k, draw(s)) for k, s in optional if draw(st.booleans())]
        if draw(rarely(5)):
            pairs = draw(st.permutations(pairs))
        if pairs and draw(rarely(20)):  # a repeated key, with the same or another value
            k, v = draw(st.sampled_from(pairs))
            pairs.insert(draw(st.integers(0, len(pairs))), (k, draw(st.sampled_from([v, "", 0, None]))))
        if hostile and draw(rarely(40)):
            pairs.append(("meta", draw(texts)))
        if hostile and pairs and draw(rarely(40)):
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        return Obj(pairs)

    text_part = obj([("type", st.sampled_from(["text", "input_text", "output_text"])), ("text", texts)], [])
    part = mostly(st.one_of(text_part, text_part, obj([("type", st.just("refusal")), ("refusal", texts)], []),
                            obj([("type", st.just("image_url")),
                                 ("image_url", obj([("url", texts)], [("detail", st.just("low"))]))], [])),
                  st.one_of(obj([("type", st.sampled_from(["video", "image", 3])), ("text", texts)], []), texts,
                            st.integers(0, 2)))
    arguments = st.sampled_from(['{"city": "Oslo"}', "{}", '{"a": [1, 2]}', "not json", "", "[1e400]"])
    tool_call = obj([("id", st.sampled_from(["c1", "c2"])),
                     ("function", obj([("name", st.sampled_from(["f", "g", ""])), ("arguments", arguments)], []))],
                    [("type", mostly(st.just("function"), st.just("custom")))])
    message = obj(
        [("role", mostly(st.sampled_from(["system", "developer", "user", "assistant", "assistant", "tool", "function"]),
                         st.sampled_from(["robot", 3])))],
        [("content", mostly(st.one_of(texts, texts, st.lists(part, max_size=3)), st.one_of(st.none(), st.integers(0, 3)))),
         ("name", mostly(texts, st.one_of(st.none(), st.just(3)))),
         ("tool_calls", mostly(st.lists(tool_call, max_size=2), st.none())),
         ("tool_call_id", mostly(st.sampled_from(["c1", "c2", "c9"]), st.none())),
         ("weight", mostly(st.sampled_from([0, 1]), st.sampled_from([2, True]))), ("refusal", st.none()),
         ("function_call", obj([("name", texts), ("arguments", arguments)], []))])
    plain_message = obj([("role", st.sampled_from(["system", "user", "assistant", "assistant"])), ("content", texts)], [])
    messages = mostly(st.one_of(st.lists(plain_message, min_size=1, max_size=4), st.lists(message, min_size=1, max_size=4),
                                st.lists(st.one_of(message, plain_message), min_size=1, max_size=4)), st.just([]))
    text_or_messages = mostly(st.one_of(texts, messages), st.one_of(st.none(), st.integers(0, 2)))
    integers = mostly(st.sampled_from([1, 3, 250, 2**63 - 1]),
                      st.sampled_from([0, -1, 2**63, 2**64 - 1, 2**64, 2**70, True, "12", None]))
    turn = obj([("from", mostly(st.sampled_from(sorted(SHAREGPT_TAGS)), st.just("bot"))),
                ("value", mostly(texts, st.none()))], [])
    chat_url = st.sampled_from(("/v1/chat/completions",) * 3 + BATCH_URLS + ("/v1/x",))
    return {
        "openai-chat": obj([("messages", messages)], [("parallel_tool_calls", mostly(st.booleans(), st.just("yes")))]),
        "message-list": messages,
        "sharegpt": obj([("conversations", mostly(st.lists(turn, min_size=1, max_size=4), st.just([])))],
                        [("system", mostly(texts, st.one_of(st.none(), st.just(1)))), ("id", texts)]),
        "alpaca": obj([("instruction", texts), ("output", texts)],
                      [("input", mostly(texts, st.one_of(st.none(), st.just(2))))]),
        "prompt-completion": obj([("prompt", text_or_messages)],
                                 [("completion", text_or_messages), ("chosen", text_or_messages),
                                  ("rejected", text_or_messages)]),
        "prompt": obj([("prompt", mostly(texts, st.none()))], [("output_tokens", integers)]),
        "text": obj([("text", mostly(texts, st.integers(0, 2)))], []),
        "openai-batch": obj([("custom_id", st.sampled_from(["a", "b", "c"])),
                             ("method", mostly(st.just("POST"), st.just("GET"))), ("url", chat_url),
                             ("body", obj([("model", texts), ("messages", messages)],
                                          [("max_tokens", integers), ("max_completion_tokens", integers),
                                           ("prompt", texts), ("input", texts),
                                           ("temperature", mostly(st.nothing(), st.just(0.5)))]))], []),
    }


HOSTILE = record_strategies(hostile=True)
VALID = record_strategies(hostile=False)


@st.composite
def files(draw, records: dict):
    """(format, lines): mostly records of that format, some of others, a blank or broken line."""
    fmt = draw(st.sampled_from(FORMATS))
    own = records[fmt]
    other = st.sampled_from(list(records.values())).flatmap(lambda s: s)
    line = st.tuples(st.one_of(own, own, own, other), styles)
    lines = [dump(r, style).encode() for r, style in draw(st.lists(line, min_size=1, max_size=6))]
    lines += draw(st.lists(st.sampled_from([b"", b"  ", b"{", b"[1, 2]", b'{"messages": []}', b"\xff"]), max_size=2))
    return fmt, draw(st.permutations(lines))


@st.composite
def tool_conversation(draw) -> list:
    """Messages with tool calls, tool answers (to those calls or not) and every kind of content."""
    part = st.sampled_from([Obj([("type", "text"), ("text", "t")]), Obj([("type", "refusal"), ("refusal", "r")]),
                            Obj([("type", "image_url"), ("image_url", Obj([("url", "u")]))])])
    content = st.one_of(texts, st.lists(part, max_size=3))
    ids = st.sampled_from(["c1", "c2", "c3"])
    msgs = [Obj([("role", draw(st.sampled_from(["system", "developer", "user"]))), ("content", draw(content))])]
    for _ in range(draw(st.integers(1, 2))):
        calls = [Obj([("id", draw(ids)), ("type", "function"),
                      ("function", Obj([("name", draw(st.sampled_from(["f", ""]))),
                                        ("arguments", draw(st.sampled_from(['{"a": 1}', "not json", "", "{}"])))]))])
                 for _ in range(draw(st.integers(0, 2)))]
        fields = [("role", "assistant")] + ([("content", draw(st.one_of(st.none(), content)))]
                                            if draw(st.booleans()) else [])
        if calls or draw(st.booleans()):
            fields.append(("tool_calls", calls))
        if draw(st.booleans()):
            fields.append(("function_call", Obj([("name", "f"), ("arguments", "{}")])))
        msgs.append(Obj(fields + ([("weight", draw(st.sampled_from([0, 1])))] if draw(st.booleans()) else [])))
        for tid in draw(st.lists(ids, max_size=2)):
            msgs.append(Obj([("role", "tool"), ("tool_call_id", tid), ("content", draw(content))]))
        if draw(st.booleans()):
            msgs.append(Obj([("role", "function"), ("name", draw(st.sampled_from(["f", None]))),
                             ("content", draw(content))]))
    return msgs


conversations = {
    "openai-chat": tool_conversation().map(lambda m: Obj([("messages", m)])),
    "message-list": tool_conversation(),
    "prompt-completion": st.tuples(tool_conversation(), tool_conversation(), st.booleans()).map(
        lambda t: Obj([("prompt", t[0]), ("chosen" if t[2] else "completion", t[1])]
                      + ([("rejected", t[0])] if t[2] else []))),
    "openai-batch": st.tuples(tool_conversation(), st.sampled_from([None, 10, 2**63])).map(
        lambda t: Obj([("custom_id", "a"), ("method", "POST"), ("url", "/v1/chat/completions"),
                       ("body", Obj([("model", "m"), ("messages", t[0])]
                                    + ([("max_completion_tokens", t[1])] if t[1] is not None else [])
                                    + [("max_tokens", 5)]))])),
}


def state(s: Structure) -> dict:
    out = {k: v for k, v in vars(s).items()
           if k not in ("validate", "decoders", "read", "compact", "prompts", "ids", "checks")}
    out["prompts"] = [list(s.prompts.bucket(i)) for i in range(64)]
    out["ids"] = [list(s.ids.bucket(i)) for i in range(64)] if s.ids is not None else None
    out["checks"] = vars(s.checks)
    return out


def both(fmt: str, lines: list[bytes], **kwargs) -> tuple[Structure, Structure]:
    typed = Structure(fmt, **kwargs)
    slow = Structure(fmt, **kwargs)
    slow.decoders = ()  # every line by orjson and the dict validators
    typed.feed_lines(list(lines))
    slow.feed_lines(list(lines))
    return typed, slow


@SETTINGS
@given(case=st.one_of(files(HOSTILE), files(VALID)), context_length=st.sampled_from([None, 3, 60]))
def test_the_typed_path_counts_every_line_as_the_slow_path_does(case, context_length):
    fmt, lines = case
    typed, slow = both(fmt, lines, context_length=context_length)
    assert state(typed) == state(slow)


@SETTINGS
@given(fmt=st.sampled_from(sorted(conversations)), data=st.data())
def test_tool_conversations_warn_alike_on_both_paths(fmt, data):
    lines = [dump(r, data.draw(styles)).encode() for r in data.draw(st.lists(conversations[fmt], min_size=1, max_size=4))]
    typed, slow = both(fmt, lines)
    assert state(typed) == state(slow)


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLE_DATA.glob("*.jsonl") if p.name != "errors.jsonl"))
def test_the_sample_records_take_the_typed_path(name):
    """Every clean sample record decodes typed but those the schemas leave to the slow path on
    purpose (records with ``tools``: their JSON schemas are free-form)."""
    fmt = detect_format(str(SAMPLE_DATA / name)).format
    lines = (SAMPLE_DATA / name).read_bytes().splitlines()
    slow = [n for n, raw in enumerate(lines, 1) if not any(_decodes(d, raw) for d in DECODERS[fmt])]
    assert slow == [n for n, raw in enumerate(lines, 1) if b'"tools"' in raw]


def _decodes(decode, raw: bytes) -> bool:
    try:
        decode(raw)
    except ValueError:
        return False
    return True


def test_sharegpt_tags_are_the_validators():
    from typing import get_args

    assert set(get_args(ShareGPTTag)) == SHAREGPT_TAGS


CHAT = '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s"}]}'


@pytest.mark.parametrize("line,warned", [
    # a line the typed decoders accept whole, which must still warn
    ('{"messages": [{"role": "user", "content": "a", "content": "b"}, {"role": "assistant", "content": "c"}]}', True),
    ('{"messages": [{"role": "user", "role": "user", "content": "a"}, {"role": "assistant", "content": "c"}]}', True),
    ('{"messages": [{"role": "user", "content": "a"}], "messages": [{"role": "user", "content": "a"}, '
     '{"role": "assistant", "content": "c"}]}', True),
    ('{"messages": [{"role": "user", "content": "t: 1", "content": "b"}, {"role": "assistant", "content": "c"}]}', True),
    # colons in the texts, escaped or not, are no repeated key
    (CHAT % ("t: 1 : 2", "k: v"), False),
    (CHAT % ("a\\u003ab", "c\\u003A"), False),
    (CHAT % ("say \\\": twice", "x"), False),
])
def test_repeated_keys_on_typed_lines(write_lines, line, warned):
    report = scan_file(write_lines([line]))
    assert report.valid == 1 and report.errors == ()
    assert [w.kind for w in report.warnings] == (["duplicate-key"] if warned else [])



def _report(path: str, **kwargs) -> dict:
    return {k: v for k, v in scan_file(path, **kwargs).to_dict().items() if k != "elapsed"}


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLE_DATA.glob("*.json*")) + ["hostile.jsonl", "typed.jsonl"])
def test_whole_reports_are_the_slow_paths(name, monkeypatch):
    """Every sample and golden file, JSON arrays included, end to end: the same report with the
    typed decoders as with none (every line through orjson and the dict validators)."""
    from pathlib import Path

    import tui.core.datasets.scanner as scanner

    path = SAMPLE_DATA / name if (SAMPLE_DATA / name).exists() else Path(__file__).parent / "golden" / name
    typed = _report(str(path), context_length=64)
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path), context_length=64) == typed


def test_a_json_array_of_chat_records_counts_as_the_slow_path(tmp_path, monkeypatch):
    import tui.core.datasets.scanner as scanner

    records = [{"messages": [{"role": "user", "content": f"q{i}: why?"}, {"role": "assistant", "content": "because"}]}
               for i in range(5)]
    records.insert(2, {"messages": [{"role": "user", "content": "w?"},
                                    {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                                          "function": {"name": "f", "arguments": "x"}}]},
                                    {"role": "tool", "tool_call_id": "d", "content": "r"}]})
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(records, indent=2))
    typed = _report(str(path))
    assert typed["detected"]["container"] == "json-array" and typed["valid"] == 6
    assert [w["kind"] for w in typed["warnings"]] == ["bad-arguments", "unmatched-tool-call"]
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path)) == typed


def test_runs_of_long_lines_take_orjsons_path_with_the_same_report(tmp_path, monkeypatch):
    """Lines of more than LONG_LINES bytes on average over a run of RUN_LINES skip the typed
    decoders (orjson is the faster on long texts); the report is the slow path's all the same."""
    import tui.core.datasets.scanner as scanner

    def chat(i: int, size: int) -> str:
        return CHAT % (f"q{i}: " + "why " * size, "because")

    lines = [chat(i, 2) for i in range(scanner.RUN_LINES)]
    lines += [chat(i, 1000) for i in range(scanner.RUN_LINES)]
    lines[300] = lines[300].replace('"content"', '"content": "x", "content"', 1)  # a repeated key
    lines[301] = '{"messages": [{"role": "user", "content": "%s"}]}' % ("why " * 1000)  # no reply
    lines[302] = lines[303]  # a repeated prompt
    lines += [chat(i, 2) for i in range(scanner.RUN_LINES, 2 * scanner.RUN_LINES)]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines) + "\n")

    decoded: list[int] = []
    decoders = dict(scanner.DECODERS)
    plain = decoders["openai-chat"][0]

    def counting(raw):
        decoded.append(len(raw))
        return plain(raw)

    monkeypatch.setattr(scanner, "DECODERS", decoders | {"openai-chat": (counting, *decoders["openai-chat"][1:])})
    typed = _report(str(path), context_length=64)
    assert len(decoded) == 2 * scanner.RUN_LINES and max(decoded) < scanner.LONG_LINES
    assert [w["kind"] for w in typed["warnings"]] == ["duplicate-key", "no-assistant-reply"]
    assert typed["checks"]["duplicate_prompts"] == 1
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path), context_length=64) == typed


# ------------------------------------------------------------------ the block path
# Chat lines are decoded by sub-blocks of SUB_BLOCK bytes, as one JSON array; a sub-block it refuses
# goes line by line. A tiny SUB_BLOCK puts sub-block boundaries next to every kind of line.

ESCAPED_COLON_HIDES_A_KEY = ('{"messages": [{"role": "user", "content": "x", "content": "a\\u003ab"}, '
                             '{"role": "assistant", "content": "c"}]}')


def _counting_array_decoders(monkeypatch) -> list[int]:
    """Count the records the block path decodes (a check that it was taken)."""
    import tui.core.datasets.scanner as scanner

    decoded: list[int] = []

    def counting(decode):
        def decode_array(raw):
            records = decode(raw)
            decoded.append(len(records))
            return records
        return decode_array

    monkeypatch.setattr(scanner, "ARRAY_DECODERS", {k: counting(v) for k, v in scanner.ARRAY_DECODERS.items()})
    return decoded


def _fed_by_chunks(fmt: str, data: bytes, **kwargs) -> Structure:
    from tui.core.datasets.reader import line_chunks

    st = Structure(fmt, **kwargs)
    for piece, _ in line_chunks(BytesIO(data), chunk=97):
        st.feed_chunk(piece)
    return st


@SETTINGS
@given(case=st.one_of(files(HOSTILE), files(VALID)), plain=st.lists(st.tuples(texts, texts), max_size=8),
       sub_block=st.sampled_from([1, 40, 200, 1 << 18]), final_newline=st.booleans(), data=st.data())
def test_the_block_path_counts_every_line_as_the_slow_path_does(case, plain, sub_block, final_newline, data):
    import tui.core.datasets.scanner as scanner

    fmt, lines = case
    fmt = fmt if fmt in ("openai-chat", "message-list") else "openai-chat"
    for user, answer in plain:  # runs of plain records between the odd lines
        msgs = [Obj([("role", "user"), ("content", user)]), Obj([("role", "assistant"), ("content", answer)])]
        record = Obj([("messages", msgs)]) if fmt == "openai-chat" else msgs
        lines.insert(data.draw(st.integers(0, len(lines))), dump(record, data.draw(styles)).encode())
    if data.draw(rarely(4)):
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    raw = b"\n".join(lines) + (b"\n" if final_newline or lines[-1] == b"" else b"")  # (an empty last line: its newline)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scanner, "SUB_BLOCK", sub_block)
        typed = _fed_by_chunks(fmt, raw)
    _, slow = both(fmt, lines)
    assert _counts(typed) == _counts(slow)


def _counts(s: Structure) -> dict:
    """``state`` but the block path's own (how it backs off)."""
    return {k: v for k, v in state(s).items() if k not in ("block_refusals", "skip_bytes")}


@pytest.mark.parametrize("sub_block", [1, 150, 1 << 18])
def test_block_boundaries_next_to_odd_lines_give_the_slow_paths_report(tmp_path, monkeypatch, sub_block):
    """Sub-block boundaries next to a bad line, a blank line, a BOM, an escaped colon with a repeated key
    and records of other shapes: the report of the slow path, and the block path taken for the rest."""
    import tui.core.datasets.scanner as scanner

    def plain(i: int) -> str:
        return CHAT % (f"q{i}: why?", "because")

    odd = ["", "  ", "{", '{"messages": []}', ESCAPED_COLON_HIDES_A_KEY,
           '{"messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "tool_calls": '
           '[{"id": "c", "type": "function", "function": {"name": "f", "arguments": "x"}}]}]}',
           '{"messages": [{"role": "user", "content": "no reply"}]}', plain(3), '{"text": "another format"}']
    lines = ["\ufeff" + plain(0)]
    for i, line in enumerate(odd):  # each after 12 plain lines: line 13 * (i + 1) + 1
        lines += [plain(100 * i + k) for k in range(1, 13)] + [line]
    lines += [plain(1000 + k) for k in range(12)]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(scanner, "SUB_BLOCK", sub_block)
    decoded = _counting_array_decoders(monkeypatch)
    typed = _report(str(path), context_length=64)
    assert sum(decoded) > len(lines) // 2 or sub_block > len(lines)  # most went by the block path (one block: none)
    assert [(w["line"], w["kind"]) for w in typed["warnings"]] == [
        (14, "blank-line"), (27, "blank-line"), (66, "duplicate-key"), (79, "bad-arguments"),
        (92, "no-assistant-reply")]
    assert [(e["line"], e["kind"]) for e in typed["errors"]] == [(40, "invalid-json"), (53, "empty"),
                                                                  (118, "missing-field")]
    assert typed["checks"]["duplicate_prompts"] == 1
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path), context_length=64) == typed


def test_an_escaped_colon_hides_no_repeated_key_on_any_path(write_lines, monkeypatch):
    """A repeated key whose colon an escaped one (\\u003a) in a kept text balances: the colon counts
    agree, so the lines that escape a colon are searched for repeated keys all the same."""
    import tui.core.datasets.scanner as scanner

    path = write_lines([ESCAPED_COLON_HIDES_A_KEY] * 2)
    block = scan_file(path)
    monkeypatch.setattr(scanner, "ARRAY_DECODERS", {})
    line_by_line = scan_file(path)
    monkeypatch.setattr(scanner, "DECODERS", {})
    slow = scan_file(path)
    for report in (block, line_by_line, slow):
        assert [(w.line, w.kind) for w in report.warnings] == [(1, "duplicate-key"), (2, "duplicate-key")]


def test_mixed_shapes_back_off_from_the_block_path_and_come_back(tmp_path, monkeypatch):
    """Blocks refused in a row are tried less and less often (a file of mixed shapes); a run of
    plain records is back on the block path after the backing off, with the same report."""
    import tui.core.datasets.scanner as scanner

    tool = ('{"messages": [{"role": "user", "content": "w?"}, {"role": "assistant", "content": null, "tool_calls": '
            '[{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}')
    lines = [tool] * 400 + [CHAT % (f"q{i}", "because") for i in range(400)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(scanner, "SUB_BLOCK", 100)  # about a line per sub-block
    decoded = _counting_array_decoders(monkeypatch)
    typed = _report(str(path))
    assert 0 < sum(decoded) < 400  # tried on few of the refused, then on the plain ones again
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path)) == typed


COMPACT = '{"messages":[{"role":"user","content":"%s"},{"role":"assistant","content":"%s"}]}'


@pytest.mark.parametrize("odd, warned", [
    ('{"messages":[{"role":"user","content":"x","content":"y"},{"role":"assistant","content":"z"}]}', True),
    ('{"messages":[{"role":"user","content":"x","content":"a\\u003ab"},{"role":"assistant","content":"z"}]}', True),
    ('{"messages":[{"role":"user","role":"user","content":"x"},{"role":"assistant","content":"z"}]}', True),
    ('{"messages":[{"role":"user","content":"\\u0078"},{"role":"assistant","content":"z"}]}', False),  # longer escape
    ('{"messages": [{"role":"user","content":"x"},{"role":"assistant","content":"z"}]}', False),  # a space
])
def test_a_compact_sub_block_is_cleared_of_repeated_keys_by_its_length(tmp_path, monkeypatch, odd, warned):
    """In a file written compact, a sub-block whose records' compact encoding is exactly as long as
    its lines holds no repeated key (a line is never shorter than its record's compact encoding);
    one line longer than its record, repeated key or not, is found and judged by itself, and the
    file is still read as compact afterwards."""
    import tui.core.datasets.scanner as scanner

    lines = [COMPACT % (f"q{i}: why?", r'because \"so\"\n') for i in range(300)]
    lines[137] = odd
    path = tmp_path / "compact.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(scanner, "SUB_BLOCK", 4096)
    decoded = _counting_array_decoders(monkeypatch)
    typed = _report(str(path))
    assert sum(decoded) == len(lines)  # every line by the block path
    assert [(w["line"], w["kind"]) for w in typed["warnings"]] == ([(138, "duplicate-key")] if warned else [])
    st = Structure("openai-chat")
    st.feed_chunk((path.read_bytes(), 0, path.stat().st_size))
    assert st.compact
    monkeypatch.setattr(scanner, "DECODERS", {})
    assert _report(str(path)) == typed


def test_plain_records_leave_nothing_for_the_garbage_collector_to_traverse():
    """The scan holds a sub-block of decoded records at a time: plain ones must not be objects the
    collector traverses at each collection (a list of messages is; a tuple of untracked Structs
    stops being tracked at its first collection). About 10% of the pass on very short records."""
    import gc

    from tui.core.datasets.records import ARRAY_DECODERS

    line = (COMPACT % ("q", "a")).encode()
    for fmt, raw in (("openai-chat", line), ("message-list", line[len('{"messages":'):-1])):
        records = ARRAY_DECODERS[DECODERS[fmt][0]](b"[%s,%s]" % (raw, raw))  # as the block path decodes them
        assert len(records) == 2
        gc.collect()
        for record in records:
            msgs = record.messages if fmt == "openai-chat" else record
            assert not gc.is_tracked(msgs) and not any(map(gc.is_tracked, msgs)), fmt
