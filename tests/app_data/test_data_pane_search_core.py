"""tui.core.datasets.search: the Data pane's filter, checked against a plain line-by-line search."""

from __future__ import annotations

import json
import threading

import pytest

from tui.core.datasets.search import Query, parse_query, search_lines


def _all(path, query, **kw) -> list[int]:
    out = []
    for batch in search_lines(str(path), query, **kw):
        out.extend(batch.lines)
    return out


@pytest.mark.parametrize("raw,want", [
    ("hello", Query("hello")),
    ("  role:tool ", Query("tool", "role")),
    ("custom_id:req-7", Query("req-7", "custom_id")),
    ('"a:b"', Query("a:b")),
    ("two words", Query("two words")),
    ("", None), ("   ", None), ('""', None),
])
def test_parse_query(raw, want):
    assert parse_query(raw) == want


def test_a_colon_after_a_word_is_a_field_query_unless_quoted():
    assert parse_query("http://x") == Query("//x", "http")
    assert parse_query('"http://x"') == Query("http://x")


def test_text_search_matches_a_naive_search_across_chunk_boundaries(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": ("Needle " if i % 7 == 0 else "hay ") * (i % 13 + 1), "n": i}) for i in range(500)]
    lines[10] = ""  # a blank line keeps its number
    path.write_text("\n".join(lines))  # no newline at the end: the last line still counts
    want = [n for n, line in enumerate(lines, 1) if "needle" in line.lower()]
    assert want and want[-1] <= 500
    for chunk in (64, 100, 4096, 1 << 20):
        assert _all(path, parse_query("NEEDLE"), chunk=chunk) == want


def test_non_ascii_text_matches_raw_and_escaped_json(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps({"text": "café"}) + "\n"  # \u00e9 (json.dumps' ensure_ascii)
                    + json.dumps({"text": "café"}, ensure_ascii=False) + "\n"
                    + json.dumps({"text": "cafe"}) + "\n", "utf-8")
    assert _all(path, parse_query("café")) == [1, 2]


def test_field_query_checks_the_parsed_record(tmp_path):
    path = tmp_path / "f.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "call the tool"}]},  # "tool" in text, not in a role
        {"messages": [{"role": "tool", "content": "x", "tool_call_id": "c1"}]},
        {"messages": [{"role": "assistant", "content": "ok"}], "weight": 0},
        "not json at all tool",
        {"role": "TOOL"},  # values match in any case
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    assert _all(path, parse_query("role:tool")) == [2, 5]
    assert _all(path, parse_query("weight:0")) == [3]
    assert _all(path, parse_query("tool")) == [1, 2, 4, 5]


def test_cancel_stops_the_search(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("needle\n" * 200_000)
    cancel = threading.Event()
    batches = []
    for batch in search_lines(str(path), parse_query("needle"), cancel=cancel, time_budget=0.0, chunk=4096):
        batches.append(batch)
        cancel.set()
    assert len(batches) == 1 and not batches[0].done
    assert 0 < batches[0].matches < 200_000
