"""A file that changes while it is read: the report says how and is marked incomplete; export writes nothing;
the line index ends where the file now ends."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from dataclasses import replace

import pytest
from datasets_testing import chat

from tui.core.datasets import LineIndex, ScanReport, export, scan, scan_file
from tui.core.errors import TokdeckError

LINES = [json.dumps(chat(user=f"question {i} " + "word " * 30)) for i in range(3000)]  # ~0.6 MB


def _scan_changing(path: str, change, **kwargs) -> ScanReport:
    """Scan ``path`` in small chunks, calling ``change()`` once after the first progress batch."""
    changed = False
    for item in scan(path, time_budget=0, **kwargs):
        if isinstance(item, ScanReport):
            assert changed, "the scan ended before the change"
            return item
        if not changed:
            change()
            changed = True
    raise AssertionError("no report")


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr("tui.core.datasets.reader.CHUNK", 16 << 10)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("how,expected", [
    ("truncate", "the file changed during the scan: "),
    ("append", "the file changed during the scan: "),
    ("replace", "the file was replaced during the scan"),
    ("delete", "the file was deleted during the scan"),
    ("rewrite", "the file was modified during the scan (same size)"),
])
def test_a_change_during_the_scan_marks_the_report_incomplete(tmp_path, small_chunks, how, expected):
    path = tmp_path / "data.jsonl"
    _write(path, LINES)
    size = path.stat().st_size

    def change():
        if how == "truncate":
            os.truncate(path, size // 3)
        elif how == "append":
            with open(path, "a") as fh:
                fh.write(LINES[0] + "\n")
        elif how == "replace":
            other = tmp_path / "other.jsonl"
            _write(other, LINES[:10])
            os.replace(other, path)
        elif how == "delete":
            path.unlink()
        else:
            data = path.read_bytes()
            path.write_bytes(data.replace(b"question 1 ", b"QUESTION 1 "))
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    report = _scan_changing(str(path), change, tokenizers=["estimate"])
    assert not report.complete and report.incomplete_reason.startswith(expected)
    assert report.to_dict()["complete"] is False and report.to_dict()["incomplete_reason"] == report.incomplete_reason
    if how == "truncate":
        assert report.incomplete_reason.endswith(f"{size:,} bytes when it started, {size // 3:,} at the end")


def test_an_unchanged_file_is_complete_with_no_reason(tmp_path):
    path = tmp_path / "data.jsonl"
    _write(path, LINES[:5])
    report = scan_file(str(path), tokenizers=["estimate"])
    assert report.complete and report.incomplete_reason is None
    assert report.to_dict()["incomplete_reason"] is None


def test_a_cancelled_scan_says_cancelled(tmp_path):
    path = tmp_path / "data.jsonl"
    _write(path, LINES)
    report = scan_file(str(path), cancel=lambda: True, time_budget=0)
    assert not report.complete and report.incomplete_reason == "cancelled"


def test_the_text_report_says_why_it_is_incomplete(tmp_path):
    from tui.commands.inspect import print_report

    path = tmp_path / "data.jsonl"
    _write(path, LINES[:5])
    report = replace(scan_file(str(path)), complete=False,
                     incomplete_reason="the file changed during the scan: 1,000 bytes when it started, 10 at the end")
    out = io.StringIO()
    with redirect_stdout(out):
        print_report(report)
    assert ("(INCOMPLETE: the file changed during the scan: 1,000 bytes when it started, 10 at the end)"
            in out.getvalue().splitlines()[1])


def test_export_of_a_file_that_changes_writes_nothing(tmp_path, monkeypatch):
    tmp_path = tmp_path / "export"
    tmp_path.mkdir()
    path = tmp_path / "data.jsonl"
    _write(path, LINES)
    out = tmp_path / "out.jsonl"
    out.write_text("the user's earlier export\n")
    import importlib

    export_module = importlib.import_module("tui.core.datasets.export")

    real = export_module.iter_valid

    def iter_and_append(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 10:
                with open(path, "a") as fh:
                    fh.write(LINES[0] + "\n")
            yield item

    monkeypatch.setattr(export_module, "iter_valid", iter_and_append)
    with pytest.raises(TokdeckError, match="the file changed during the export: .*nothing written"):
        export(str(path), str(out), "openai-chat")
    assert out.read_text() == "the user's earlier export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "out.jsonl"]  # no temporary file left


def test_the_line_index_of_a_file_truncated_while_it_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr("tui.core.datasets.index.WINDOW", 4096)
    path = tmp_path / "data.jsonl"
    _write(path, LINES)
    keep = len("\n".join(LINES[:100])) + 1
    result = None
    for item in LineIndex.building(str(path), time_budget=0):
        if isinstance(item, LineIndex):
            result = item
        elif result is None and path.stat().st_size > keep:
            os.truncate(path, keep)
    assert result is not None and len(result) == 100 and result.size == keep
    assert result.read_line(100) == LINES[99].encode()
