"""The sample files: each is detected as its format and is clean; errors.jsonl matches its README."""

from __future__ import annotations

import json
import re

import pytest

from tokdeck_testing import SAMPLE_DATA
from tui.core.datasets import FORMATS, detect_format, scan_file

EXPECTED = {
    "openai-chat.jsonl": ("openai-chat", "jsonl"),
    "message-list.jsonl": ("message-list", "jsonl"),
    "sharegpt.jsonl": ("sharegpt", "jsonl"),
    "sharegpt.json": ("sharegpt", "json-array"),
    "alpaca.jsonl": ("alpaca", "jsonl"),
    "prompt-completion.jsonl": ("prompt-completion", "jsonl"),
    "prompt.jsonl": ("prompt", "jsonl"),
    "text.jsonl": ("text", "jsonl"),
    "openai-batch.jsonl": ("openai-batch", "jsonl"),
}


def _records(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_format_has_a_sample():
    assert {f for f, _ in EXPECTED.values()} == set(FORMATS)
    assert {c for f, c in EXPECTED.values() if f == "sharegpt"} == {"jsonl", "json-array"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_is_detected_and_clean(name):
    path = SAMPLE_DATA / name
    fmt, container = EXPECTED[name]
    guess = detect_format(str(path))
    assert (guess.format, guess.container) == (fmt, container)
    report = scan_file(str(path))
    assert report.complete
    assert report.errors == () and report.error_counts == {}
    assert report.warnings == ()
    assert report.records == report.valid == len(_records(path))


def test_sample_folder_is_small():
    assert sum(p.stat().st_size for p in SAMPLE_DATA.rglob("*") if p.is_file()) < 200_000


def _readme_table():
    """(line, severity, kind) rows of the errors.jsonl table in sample_data/README.md."""
    text = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    section = text.split("## `errors.jsonl`, line by line", 1)[1]
    row = re.compile(r"^\| (\d+) \| (error|warning) \| ([a-z0-9-]+) \|", re.M)
    return [(int(m[1]), m[2], m[3]) for m in row.finditer(section)]


def test_errors_sample_reports_exactly_what_its_readme_lists():
    rows = _readme_table()
    assert len(rows) >= 15
    report = scan_file(str(SAMPLE_DATA / "errors.jsonl"))
    found = [(e.line, "error", e.kind) for e in report.errors] + [(w.line, "warning", w.kind) for w in report.warnings]
    assert sorted(found) == sorted(rows)
    assert (report.records, report.valid, report.invalid) == (21, 7, 14)
    assert report.format.format == "openai-chat" and report.format.bom
    assert report.checks.duplicate_examples == ((21, 1),)
    assert report.checks.vllm_lines == (16,)


def test_errors_sample_columns_point_at_the_problem():
    lines = (SAMPLE_DATA / "errors.jsonl").read_bytes().split(b"\n")
    report = scan_file(str(SAMPLE_DATA / "errors.jsonl"))
    by_kind = {e.kind: e for e in report.errors}
    nan = by_kind["non-finite-number"]
    assert lines[nan.line - 1].decode()[nan.column - 1:].startswith("NaN")
    sur = by_kind["lone-surrogate"]
    assert lines[sur.line - 1].decode()[sur.column - 1:].startswith("\\ud800")
    bad = by_kind["invalid-json"]
    assert bad.column == 31 and lines[bad.line - 1].decode()[bad.column - 1:].startswith('"content"')
    utf = by_kind["invalid-utf8"]
    assert lines[utf.line - 1].decode("latin-1")[utf.column - 1] == "é"
    trail = by_kind["trailing-data"]
    assert lines[trail.line - 1].decode()[trail.column - 1:].startswith('{"extra"')
