"""The parser policy, line by line: what is an error, what is a warning, what is tolerated."""

from __future__ import annotations

import json

import pytest
from datasets_testing import chat

from tui.core.datasets import scan_file
from tui.core.datasets.parsing import find_lone_surrogate, find_outside_strings
from tui.core.datasets.reader import TooLong, line_blocks


def kinds(report):
    return [(e.line, e.kind) for e in report.errors], [(w.line, w.kind) for w in report.warnings]


GOOD = json.dumps(chat())


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_errors_with_their_column(write_lines, literal):
    line = ('{"messages": [{"role": "user", "content": "NaN Infinity"}, {"role": "assistant", "content": "x"}], '
            '"s": %s}' % literal)
    report = scan_file(write_lines([GOOD, line]))
    (err,) = report.errors
    assert (err.line, err.kind) == (2, "non-finite-number")
    assert line[err.column - 1:].startswith(literal)  # not the words inside the string


@pytest.mark.parametrize("escape,bad", [(r"\ud800", True), (r"\udc00", True), (r"\ud83d\ude00", False),
                                        (r"\ud83d x", True)])
def test_lone_surrogates_are_errors_and_pairs_are_not(write_lines, escape, bad):
    line = '{"messages": [{"role": "user", "content": "a %s b"}, {"role": "assistant", "content": "ok"}]}' % escape
    report = scan_file(write_lines([line]))
    if bad:
        (err,) = report.errors
        assert err.kind == "lone-surrogate" and line[err.column - 1:].startswith("\\ud")
    else:
        assert report.errors == () and report.valid == 1


def test_trailing_garbage_is_an_error(write_lines):
    report = scan_file(write_lines([GOOD, GOOD + " x", GOOD + GOOD]))
    assert kinds(report)[0] == [(2, "trailing-data"), (3, "trailing-data")]
    assert report.errors[0].column == len(GOOD) + 2


def test_invalid_json_gives_json_message_and_column(write_lines):
    report = scan_file(write_lines([GOOD, '{"messages": [1, 2,]}', "{'messages': []}"]))
    assert kinds(report)[0] == [(2, "invalid-json"), (3, "invalid-json")]
    assert report.errors[0].column == 20
    assert "double quotes" in report.errors[1].message


def test_invalid_utf8_is_an_error_for_that_line_only(write_lines):
    report = scan_file(write_lines([GOOD, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', GOOD]))
    assert kinds(report)[0] == [(2, "invalid-utf8")]
    assert report.errors[0].column == 44 and report.valid == 2


def test_bom_on_line_one_and_crlf_are_tolerated(write_lines):
    path = write_lines([b"\xef\xbb\xbf" + GOOD.encode(), GOOD, GOOD], newline=b"\r\n")
    report = scan_file(path)
    assert report.errors == () and report.warnings == () and report.valid == 3
    assert report.format.bom and report.format.crlf


def test_bom_after_line_one_is_an_error(write_lines):
    report = scan_file(write_lines([GOOD, b"\xef\xbb\xbf" + GOOD.encode()]))
    assert kinds(report)[0] == [(2, "invalid-json")] and "BOM" in report.errors[0].message


def test_blank_lines_are_warnings_not_records(write_lines):
    report = scan_file(write_lines([GOOD, "", "   ", GOOD, "\t\r"]))
    assert kinds(report) == ([], [(2, "blank-line"), (3, "blank-line"), (5, "blank-line")])
    assert (report.records, report.valid, report.stats.blank_lines) == (2, 2, 3)


@pytest.mark.parametrize("line", [
    '{"messages": [{"role": "user", "content": "a", "content": "b"}, {"role": "assistant", "content": "c"}]}',
    '{"messages": [{"role" : "user", "content" : "a"}, {"role" : "assistant", "role" : "assistant", "content" : "c"}]}',
    '{"messages": [{"role":"user","content":"time: 12"},{"role":"assistant","content":"c"}],"x":1,"x":2}',
    '{"messages":[{"role":"user","content":"k\\": v"},{"role":"assistant","content":"c"}],"x":{"y":1,"y":1}}',
])
def test_duplicate_keys_are_warnings_in_any_layout(write_lines, line):
    report = scan_file(write_lines([line]))
    assert report.errors == () and report.valid == 1
    assert kinds(report)[1] == [(1, "duplicate-key")]


@pytest.mark.parametrize("line", [
    '{"messages": [{"role": "user", "content": "say \\": twice \\": here"}, {"role": "assistant", "content": "k: v"}]}',
    '{"messages":[{"role":"user","content":"a\\u003ab"},{"role":"assistant","content":"c"}]}',
    '{"messages": [{"role": "user", "content": "1e5"}, {"role": "assistant", "content": "c"}], "n": 1.0e5}',
])
def test_no_false_duplicate_key_warnings(write_lines, line):
    report = scan_file(write_lines([line]))
    assert report.warnings == () and report.valid == 1


def test_lines_of_many_megabytes(write_lines):
    big = chat(user="lorem ipsum " * 800_000)  # ~9.6 MB on one line
    report = scan_file(write_lines([GOOD, big, GOOD, '{"messages": [' + '"x",' * 1_000_000]))
    assert report.valid == 3
    assert kinds(report)[0] == [(4, "invalid-json")]
    assert report.stats.roles["user"].max_chars == len(big["messages"][0]["content"])


def test_overlong_lines_are_skipped_without_buffering(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"a" * 50 + b"\n" + b"b" * 300 + b"\n" + b"c" * 10 + b"\n" + b"d" * 250)
    lines = [x for block, _ in line_blocks(str(path), chunk=64, max_line=100) for x in block]
    assert [x if isinstance(x, bytes) else ("too long", x.size) for x in lines] == [
        b"a" * 50, ("too long", 300), b"c" * 10, ("too long", 250)]
    assert all(not isinstance(x, TooLong) or x.size > 100 for x in lines)


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_line_blocks_reassemble_lines_across_chunks(tmp_path, chunk):
    data = b"".join(b"%d:" % i + b"x" * (i * 13 % 97) + b"\n" for i in range(200)) + b"tail"
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    lines = [x for block, _ in line_blocks(str(path), chunk=chunk) for x in block]
    assert lines == data.split(b"\n")
    assert sum(n for _, n in line_blocks(str(path), chunk=chunk)) == len(data)


def test_find_helpers():
    assert find_outside_strings('{"a": "NaN \\" NaN", "b": NaN}', "NaN") == 25
    assert find_outside_strings('{"a": "NaN"}', "NaN") == -1
    assert find_outside_strings('{"a": "x\\\\", "b": NaN}', "NaN") == 18
    assert find_lone_surrogate(r'"\ud83d\ude00 \ud800"') == 14
    assert find_lone_surrogate(r'"\ude00"') == 1
    assert find_lone_surrogate(r'"\ud83d\ude00"') == -1


def test_scan_reports_overlong_lines_on_their_line(write_lines, monkeypatch):
    monkeypatch.setattr("tui.core.datasets.reader.MAX_LINE", 200)
    monkeypatch.setattr("tui.core.datasets.reader.CHUNK", 64)
    report = scan_file(write_lines([GOOD, chat(user="x" * 500), GOOD]))
    assert [(e.line, e.kind) for e in report.errors] == [(2, "line-too-long")]
    assert (report.records, report.valid, report.invalid) == (3, 2, 1)
