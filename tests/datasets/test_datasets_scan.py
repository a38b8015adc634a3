"""The scan: OpenAI-spec records, warnings vs errors, parallel = serial, cancel, progress, checks, tokens."""

from __future__ import annotations

import json
import threading

import pytest
from datasets_testing import chat

from tui.core.datasets import ScanProgress, ScanReport, scan, scan_file
from tui.core.datasets.scanner import HashLines, find_repeats


def test_openai_spec_records_are_never_flagged(write_lines):
    records = [
        {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Weather?", "name": "ann"},
                      {"role": "assistant", "content": None, "tool_calls": [
                          {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\": \"Oslo\"}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "rain"},
                      {"role": "assistant", "content": [{"type": "text", "text": "Rain in Oslo."}], "weight": 0}],
         "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}},
                   {"type": "custom", "custom": {"name": "grammar_tool"}}],
         "parallel_tool_calls": True},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                                                   {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]},
                      {"role": "assistant", "content": "A cat.", "weight": 1}]},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                      {"role": "assistant", "tool_calls": [{"id": "c2", "type": "function",
                                                            "function": {"name": "f", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "{}"}]},
                      {"role": "assistant", "content": "", "refusal": None}]},
    ]
    report = scan_file(write_lines(records))
    assert report.errors == () and report.warnings == ()
    assert report.valid == 3
    assert set(report.stats.roles) == {"developer", "user", "assistant", "tool", "system"}


def test_no_assistant_reply_is_a_warning_not_an_error(write_lines):
    report = scan_file(write_lines([{"messages": [{"role": "user", "content": "Benchmark prompt only."}]}]))
    assert report.valid == 1 and report.errors == ()
    assert [w.kind for w in report.warnings] == ["no-assistant-reply"]
    assert "benchmarking" in report.warnings[0].message


@pytest.mark.parametrize("fmt,record,kind", [
    ("sharegpt", {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]}, "unknown-role"),
    ("sharegpt", {"conversations": [{"from": "human"}]}, "missing-field"),
    ("sharegpt", {"conversations": "hello"}, "wrong-type"),
    ("alpaca", {"instruction": "Do it"}, "missing-field"),
    ("alpaca", {"instruction": "Do it", "output": 3}, "wrong-type"),
    ("prompt", {"prompt": "p", "output_tokens": 0}, "bad-value"),
    ("prompt", {"prompt": "p", "output_tokens": "12"}, "bad-value"),
    ("prompt", {"prompt": None}, "missing-field"),
    ("text", {"text": ["a"]}, "wrong-type"),
    ("prompt-completion", {"prompt": "p"}, "missing-field"),
    ("message-list", {"role": "user", "content": "x"}, "wrong-type"),
    ("openai-chat", chat(tools=[{"type": "function", "function": {"description": "no name"}}]), "missing-field"),
    ("openai-chat", chat(parallel_tool_calls="yes"), "wrong-type"),
    ("openai-batch", {"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}, "bad-value"),
    ("openai-batch", {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"messages": [{"role": "user", "content": "x"}]}}, "missing-field"),
])
def test_format_rules(write_lines, fmt, record, kind):
    report = scan_file(write_lines([record]), format=fmt)
    assert [e.kind for e in report.errors] == [kind]
    assert report.format.how == "given with --format"


def test_sharegpt_turn_order_is_a_warning(write_lines):
    report = scan_file(write_lines([{"conversations": [{"from": "gpt", "value": "Hello there"},
                                                       {"from": "human", "value": "Hi"}]}]))
    assert report.errors == () and [w.kind for w in report.warnings] == ["turn-order"]


def test_batch_custom_ids_must_be_unique(write_lines):
    def req(cid):
        return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]}}

    report = scan_file(write_lines([req("a"), req("b"), req("a"), req("c"), req("b")]))
    assert [(e.line, e.kind) for e in report.errors] == [(3, "duplicate-id"), (5, "duplicate-id")]
    assert "line 1" in report.errors[0].message
    assert (report.valid, report.invalid) == (3, 2)


def test_json_array_file_reports_physical_lines(write_lines):
    good = {"conversations": [{"from": "human", "value": "Hi there, how are you?"}, {"from": "gpt", "value": "Fine, thank you!"}]}
    text = "[\n" + json.dumps(good, indent=2) + ",\n" + '  {"conversations": [{"from": "human", "value": NaN}]},\n' \
           + '  {"conversations": [{"from": "human", "value": "x"},\n   {"from": "bot", "value": "y"}]},\n' \
           + json.dumps(good) + "\n]\n"
    path = write_lines([text], name="d.json", final_newline=False)
    report = scan_file(path)
    assert report.format.container == "json-array" and report.format.format == "sharegpt"
    nan_line = text.splitlines().index('  {"conversations": [{"from": "human", "value": NaN}]},') + 1
    assert [(e.line, e.kind) for e in report.errors] == [(nan_line, "non-finite-number"), (nan_line + 1, "unknown-role")]
    assert text.splitlines()[nan_line - 1][report.errors[0].column - 1:].startswith("NaN")
    assert (report.records, report.valid) == (4, 2)
    assert report.stats.lines == len(text.splitlines())


def test_broken_json_array_stops_with_an_error(write_lines):
    path = write_lines(['[{"text": "a"},', '{"text": "b"}', '{"text": "c"}]'], name="d.json")
    report = scan_file(path)
    assert report.valid == 2
    assert [(e.line, e.kind) for e in report.errors] == [(3, "invalid-json")]


def _mixed_file(write_lines, n=6000):
    lines = []
    for i in range(n):
        if i % 97 == 5:
            lines.append('{"messages": [}')
        elif i % 89 == 3:
            lines.append("")
        elif i % 101 == 7:
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"q{i % 13} only"}]}))
        else:
            lines.append(json.dumps(chat(user=f"question {i % 1500} " + "word " * (i % 50), answer="answer " * (i % 40))))
    return write_lines(lines)


@pytest.mark.parametrize("one_set", [None, 100])
def test_two_workers_give_the_same_report_as_one(write_lines, monkeypatch, one_set):
    """Also when the workers hand their prompt hashes over by buckets (more than ONE_SET in all)."""
    import tui.core.datasets.scanner as scanner

    path = _mixed_file(write_lines)
    one = scan_file(path, workers=1)
    seen: list[list[bool]] = []
    find_repeats = scanner.find_repeats

    def watched(sources, *args, **kwargs):
        seen.append([src.spilled for src, _ in sources])
        return find_repeats(sources, *args, **kwargs)

    monkeypatch.setattr(scanner, "find_repeats", watched)
    if one_set is not None:
        monkeypatch.setattr(scanner, "ONE_SET", one_set)
    two = scan_file(path, workers=2, max_issues=1000)
    assert two.workers == 2
    assert seen[0] == [one_set is not None] * 2  # by buckets only when there are more than ONE_SET
    a, b = one.to_dict(), two.to_dict()
    for d in (a, b):
        d.pop("elapsed"), d.pop("workers")
    assert a == b
    assert one.checks.duplicate_prompts > 0 and one.error_total > 0 and one.warning_total > 0


def test_workers_are_capped_at_the_cpus_and_the_report_says_how_many_ran(write_lines):
    from tui.core.datasets.scanner import usable_cpus

    path = _mixed_file(write_lines)
    many = scan_file(path, workers=100_000)
    assert many.workers == usable_cpus()  # thousands of lines: a range for every CPU
    one = scan_file(path, workers=1)
    assert (many.records, many.valid, many.errors) == (one.records, one.valid, one.errors)
    tiny = scan_file(write_lines([chat()]), workers=100_000)  # one line: one range, one process
    assert tiny.workers == 1 and tiny.valid == 1


def test_duplicate_hashes_spill_to_disk_with_the_same_result(tmp_path):
    pairs = [((i * 7919) % 500 - 250, i + 1) for i in range(3000)]
    mem, disk = HashLines(), HashLines(limit=100, spill_dir=str(tmp_path))
    for h, line in pairs:
        mem.add(h, line)
        disk.add(h, line)
    assert disk.spilled and not mem.spilled and len(list(tmp_path.glob("*.bin"))) == HashLines.NB
    assert find_repeats([(mem, 0)], keep=50) == find_repeats([(disk, 0)], keep=50)
    count, examples = find_repeats([(mem, 0)], keep=5)
    assert count == 2500 and examples[0] == (501, 1)


def test_progress_then_report_and_cancel(write_lines, monkeypatch):
    monkeypatch.setattr("tui.core.datasets.reader.CHUNK", 8192)
    path = _mixed_file(write_lines, 3000)
    items = list(scan(path, time_budget=0))
    assert isinstance(items[-1], ScanReport) and items[-1].complete
    assert all(isinstance(i, ScanProgress) for i in items[:-1]) and items[:-1]
    done = [i.bytes_done for i in items[:-1]]
    assert done == sorted(done)

    stop = threading.Event()
    out = None
    for item in scan(path, time_budget=0, cancel=stop):
        stop.set()
        out = item
    assert isinstance(out, ScanReport) and not out.complete


def _words(tok, n):
    text = "word" + " word" * (n - 1) if n else ""
    assert tok.count(text) == n
    return text


def test_vllm_and_context_checks_with_a_tokenizer(write_lines, bundled):
    tok = bundled.get("cl100k_base")
    w = lambda n: _words(tok, n)  # noqa: E731
    def conv(p, a):
        turns = [{"from": "human", "value": p}] + ([{"from": "gpt", "value": a}] if a is not None else [])
        return {"conversations": turns}

    rows = [conv(w(10), w(10)), conv(w(3), w(10)), conv(w(10), w(3)), conv(w(1025), w(10)),
            conv(w(1000), w(1049)), conv(w(1000), w(1048)), conv(w(10), None), conv(w(4), w(4))]
    report = scan_file(write_lines(rows), tokenizers=[tok], context_length=2000)
    c = report.checks
    assert (c.tokenizer_id, c.estimated) == ("cl100k_base", False)
    assert c.vllm_reasons == {"prompt < 4 tokens": 1, "output < 4 tokens": 1, "prompt > 1024 tokens": 1,
                              "prompt + output > 2048 tokens": 1, "fewer than 2 turns": 1}
    assert c.vllm_lines == (2, 3, 4, 5, 7)
    assert (c.over_context, c.over_context_lines) == (2, (5, 6))


def test_token_stats_match_the_tokenizer(bundled):
    from tokdeck_testing import SAMPLE_DATA

    path = SAMPLE_DATA / "message-list.jsonl"
    report = scan_file(str(path), tokenizers=["qwen3", "gpt-4o"], registry=bundled)
    assert set(report.tokens) == {"qwen3", "o200k_base"}
    for tid, stats in report.tokens.items():
        tok = bundled.get(tid)
        prompts, answers = [], []
        for line in path.read_text().splitlines():
            msgs = json.loads(line)
            last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            prompts.append(tok.count("\n".join(m["content"] for m in msgs[:last])))
            answers.append(tok.count(msgs[last]["content"]))
        assert stats.prompt_total == sum(prompts) and stats.answer_total == sum(answers)
        s = sorted(prompts)
        assert (stats.prompt.min, stats.prompt.max, stats.prompt.p50) == (s[0], s[-1], s[(len(s) + 1) // 2 - 1])
        assert stats.prompt.p90 == s[-(-9 * len(s) // 10) - 1]
        assert sum(stats.prompt.histogram.counts) == len(s)
        assert sum(map(sum, stats.joint.counts)) == len(s)


def test_prompt_format_uses_declared_output_tokens(bundled):
    from tokdeck_testing import SAMPLE_DATA

    path = SAMPLE_DATA / "prompt.jsonl"
    declared = [json.loads(x).get("output_tokens") for x in path.read_text().splitlines()]
    report = scan_file(str(path), tokenizers=["llama3"], registry=bundled, context_length=200)
    t = report.tokens["llama3"]
    assert t.answer_source == "output_tokens"
    assert t.answer_total == sum(d for d in declared if d) == report.stats.output_tokens.total
    assert report.checks.vllm_dropped is None
    assert report.checks.over_context == sum(1 for d in declared if d and d > 180)  # prompts are short


def test_unknown_tokenizer_is_a_user_error(write_lines):
    from tui.core.errors import TokdeckError

    with pytest.raises(TokdeckError):
        scan_file(write_lines([chat()]), tokenizers=["no-such-tokenizer-xyz"])


def test_cancelled_parallel_scan_still_reports(write_lines):
    rec = json.dumps(chat(user="lorem ipsum " * 400))
    lines = [rec] * 4000  # ~20 MB: several 4 MB blocks per worker
    lines[1990:2010] = ["{broken"] * 20  # where the second worker starts
    path = write_lines(lines)
    stop = threading.Event()
    stop.set()
    report = scan_file(path, workers=2, cancel=stop, time_budget=0)
    assert report.workers == 2 and not report.complete
    assert 0 < report.records < 4000 and report.valid == report.records
    # only the first range's prefix counts: the second range's line numbers are unknown
    assert report.errors == () and report.stats.lines == report.records < 1990


def test_empty_and_undetectable_files(write_lines):
    empty = scan_file(write_lines([], name="empty.jsonl"))
    assert (empty.format.format, empty.records, empty.errors) == ("unknown", 0, ())
    odd = scan_file(write_lines([{"a": 1}, "not json", {"b": 2}], name="odd.jsonl"))
    assert odd.format.format == "unknown" and "no record looked like" in odd.format.how
    assert [(e.line, e.kind) for e in odd.errors] == [(2, "invalid-json")] and odd.valid == 2


def test_token_pass_on_demand_equals_one_scan(bundled):
    from tokdeck_testing import SAMPLE_DATA
    from tui.core.datasets import TokenReport, scan_tokens

    path = str(SAMPLE_DATA / "openai-chat.jsonl")
    both = scan_file(path, tokenizers=["qwen3"], registry=bundled, context_length=64)
    first = scan_file(path)
    items = list(scan_tokens(path, ["qwen3"], registry=bundled, context_length=64, time_budget=0,
                             expected_records=first.valid))
    assert isinstance(items[-1], TokenReport) and items[-1].complete
    merged = first.with_tokens(items[-1])
    a, b = both.to_dict(), merged.to_dict()
    for d in (a, b):
        d.pop("elapsed")
    assert a == b and merged.checks.over_context > 0


def test_scans_leave_no_temporary_files(write_lines, monkeypatch, tmp_path):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr("tui.core.datasets.scanner.HashLines.__init__.__defaults__", (50, None, "h"))
    path = _mixed_file(write_lines, 2000)
    for workers in (1, 2):
        report = scan_file(path, workers=workers)
        assert report.checks.duplicate_prompts > 0
    assert list(scratch.iterdir()) == []


def test_the_token_pass_alone_needs_a_known_format(write_lines):
    from tui.core.datasets import scan_tokens
    from tui.core.errors import TokdeckError

    path = write_lines([{"id": 1}])
    for fmt in (None, "unknown"):
        with pytest.raises(TokdeckError, match="token statistics need a known format"):
            list(scan_tokens(path, ["estimate"], format=fmt))
