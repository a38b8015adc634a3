"""`tokdeck inspect` as a user runs it: exit codes, the JSON object, the readable report, export."""

from __future__ import annotations

import json

import pytest

from tokdeck_testing import SAMPLE_DATA, run_cli


def test_json_report_of_the_errors_sample():
    proc = run_cli("inspect", str(SAMPLE_DATA / "errors.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr  # invalid lines are findings, not a failure
    out = json.loads(proc.stdout)
    assert {"format", "records", "valid", "invalid", "errors", "warnings", "stats", "tokens"} <= set(out)
    assert (out["format"], out["records"], out["valid"], out["invalid"]) == ("openai-chat", 21, 7, 14)
    assert all(set(e) >= {"line", "kind", "message"} for e in out["errors"])
    assert [e["line"] for e in out["errors"]] == [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19]
    assert out["tokens"] == {} and out["checks"]["tokenizer"] == "estimate"


def test_readable_report_lists_errors_with_line_numbers():
    proc = run_cli("inspect", str(SAMPLE_DATA / "errors.jsonl"), "--max-errors", "3")
    assert proc.returncode == 0, proc.stderr
    assert "21 records: 7 valid, 14 invalid" in proc.stdout
    assert "line 3:31" in proc.stdout and "Errors: 14 (first 3 shown)" in proc.stdout
    assert "line 9" not in proc.stdout.split("Warnings")[0]
    assert "no-assistant-reply" in proc.stdout and "line 21 = line 1" in proc.stdout


def test_tokenizers_by_id_and_model_name():
    proc = run_cli("inspect", str(SAMPLE_DATA / "sharegpt.json"), "--json", "-t", "gpt-4o", "--tokenizer", "qwen3",
                   "--context-length", "64")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out["tokens"]) == ["o200k_base", "qwen3"]
    t = out["tokens"]["qwen3"]
    assert t["records"] == out["valid"] and t["total"] == t["prompt_total"] + t["answer_total"]
    assert set(t["prompt"]) >= {"min", "mean", "p50", "p90", "p99", "max", "histogram"}
    assert out["checks"]["tokenizer"] == "o200k_base" and out["checks"]["over_context"] >= 1
    text = run_cli("inspect", str(SAMPLE_DATA / "sharegpt.json"), "-t", "qwen3").stdout
    assert "Tokens: qwen3" in text and "│" in text and "records by prompt tokens" in text


@pytest.mark.parametrize("args,message", [
    (["inspect", "/nonexistent/data.jsonl"], "no such file"),
    (["inspect", str(SAMPLE_DATA)], "is a folder"),
    (["inspect", str(SAMPLE_DATA / "alpaca.jsonl"), "--export", "/tmp/x.jsonl"], "go together"),
    (["inspect", str(SAMPLE_DATA / "alpaca.jsonl"), "-t", "no-such-tokenizer-zz"], "tokenizer"),
])
def test_unreadable_files_and_bad_flags_exit_2_with_one_line(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("tokdeck: error:") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_flag_values_are_argparse_errors():
    for args in (["--context-length", "0"], ["--format", "csv"], ["--to", "parquet", "--export", "x"]):
        proc = run_cli("inspect", str(SAMPLE_DATA / "alpaca.jsonl"), *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_export_from_the_cli(tmp_path):
    out = tmp_path / "bench.jsonl"
    proc = run_cli("inspect", str(SAMPLE_DATA / "errors.jsonl"), "--export", str(out), "--to", "prompt", "-t", "llama3")
    assert proc.returncode == 0, proc.stderr
    assert "7 records written" in proc.stdout and "14 skipped: invalid record" in proc.stdout
    assert "output_tokens counted with llama3" in proc.stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 7 and all(isinstance(r["prompt"], str) for r in rows)
    assert sum("output_tokens" in r for r in rows) == 6  # line 16 has no assistant reply
    proc = run_cli("inspect", str(out), "--json")
    assert json.loads(proc.stdout)["format"] == "prompt"


def test_deep_nesting_and_huge_numbers_are_findings_not_crashes(tmp_path):
    good = json.dumps({"text": "fine"})
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join([good, '{"text": "x", "a": ' + "[" * 254 + "]" * 254 + "}",
                               '{"text": "x", "n": ' + "9" * 5000 + "}", "[" * 10_000 + "]" * 10_000, good]) + "\n")
    proc = run_cli("inspect", str(path), "--json", "-t", "estimate")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [(e["line"], e["kind"]) for e in out["errors"]] == [
        (2, "too-deep"), (3, "number-too-large"), (4, "too-deep")]
    assert (out["records"], out["valid"], out["tokens"]["estimate"]["records"]) == (5, 2, 2)
    text = run_cli("inspect", str(path))
    assert text.returncode == 0 and "line 3:20" in text.stdout and "too-deep" in text.stdout


@pytest.mark.parametrize("content", [b"", b"\n \n\r\n", bytes(range(256)) * 40, b'{"id": 1}\n{"id": 2}\n'],
                         ids=["empty", "blank-lines", "binary", "no-known-keys"])
def test_an_unknown_format_exits_0_with_or_without_a_tokenizer(tmp_path, content):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    plain = run_cli("inspect", str(path), "--json")
    asked = run_cli("inspect", str(path), "--json", "-t", "estimate")
    assert plain.returncode == asked.returncode == 0, asked.stderr
    a, b = json.loads(plain.stdout), json.loads(asked.stdout)
    assert a["format"] == b["format"] == "unknown" and b["tokens"] == {}
    assert (a["records"], a["errors"]) == (b["records"], b["errors"])
    text = run_cli("inspect", str(path), "-t", "estimate")
    assert text.returncode == 0 and "Tokens: not counted (the format is unknown" in text.stdout


def test_workers_flag_reports_the_processes_that_ran():
    proc = run_cli("inspect", str(SAMPLE_DATA / "openai-chat.jsonl"), "--workers", "100000")
    assert proc.returncode == 0, proc.stderr
    assert "100000" not in proc.stdout and "100,000" not in proc.stdout
    out = json.loads(run_cli("inspect", str(SAMPLE_DATA / "openai-chat.jsonl"), "--workers", "100000", "--json").stdout)
    assert 1 <= out["workers"] <= 2


def test_text_from_the_data_never_reaches_the_terminal_as_control_characters(tmp_path):
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    path = tmp_path / "evil.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": evil, "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": evil, "text": "x"}]}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user" + "x" * 100_000, "content": "x"}]},
    ]) + '\n{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}], '
                    '"\\u001b[2J": 1, "\\u001b[2J": 2}\n')
    proc = run_cli("inspect", str(path), "--max-errors", "50")
    assert proc.returncode == 0, proc.stderr
    assert not any(c in proc.stdout for c in "\x1b\x07\x9b")
    assert "␛]0;owned" in proc.stdout  # shown, harmless
    assert max(len(line) for line in proc.stdout.splitlines()) < 400  # a 100,000-character role is clipped
    out = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert all(len(i["message"]) <= 300 for i in out["errors"] + out["warnings"])
    assert {(i["line"], i["kind"]) for i in out["errors"] + out["warnings"]} >= {
        (1, "unknown-role"), (2, "unknown-part-type"), (3, "unknown-role"), (4, "duplicate-key")}
