"""Deep nesting and huge numbers: the one record is flagged on its line, everything else is reported,
on every path that parses or walks records (structure pass, token pass, export, search, detail view)."""

from __future__ import annotations

import json

import pytest
from datasets_testing import chat

from tui.core.datasets import export, scan_file
from tui.core.datasets.parsing import MAX_DEPTH, dumps, loads
from tui.core.datasets.search import parse_query, search_lines

GOOD = json.dumps(chat())


def nested(depth: int) -> str:
    """A value of ``depth`` levels of arrays and objects (an array of ... of an object)."""
    return "[" * (depth - 1) + "{}" + "]" * (depth - 1)


def chat_with_meta(total_depth: int) -> str:
    """A valid chat record whose own depth is ``total_depth`` (the record object is level 1)."""
    return GOOD[:-1] + ', "meta": ' + nested(total_depth - 1) + "}"


def test_max_depth_is_exactly_what_orjson_writes_back():
    dumps(loads(nested(MAX_DEPTH)))
    with pytest.raises(TypeError):
        dumps(loads(nested(MAX_DEPTH + 1)))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1024, 1025, 10_000])
def test_a_record_nested_too_deeply_is_flagged_on_its_line(write_lines, depth):
    report = scan_file(write_lines([GOOD, chat_with_meta(depth), GOOD]))
    assert (report.records, report.valid, report.invalid) == (3, 2, 1)
    (err,) = report.errors
    assert (err.line, err.kind, err.column) == (2, "too-deep", None)
    assert f"more than {MAX_DEPTH} levels" in err.message


def test_a_record_at_the_depth_limit_is_valid(write_lines):
    report = scan_file(write_lines([GOOD, chat_with_meta(MAX_DEPTH), GOOD]))
    assert report.errors == () and report.valid == 3


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 4301, "9" * 400, "1e400", "-2.5E+999"])
def test_a_number_beyond_a_double_is_flagged_with_its_column(write_lines, number):
    line = GOOD[:-1] + ', "n": ' + number + "}"
    report = scan_file(write_lines([GOOD, line]))
    (err,) = report.errors
    assert (err.line, err.kind) == (2, "number-too-large")
    assert line[err.column - 1:].startswith(number[:3])


def test_a_huge_integer_after_a_lone_surrogate_is_the_surrogate_error(write_lines):
    line = '{"text": "\\ud800", "n": ' + "9" * 5000 + "}"
    (err,) = scan_file(write_lines([line]), format="text").errors
    assert err.kind == "lone-surrogate"


def test_the_token_pass_skips_records_the_structure_pass_flags(write_lines):
    deep = '{"prompt": "How big is it?", "output_tokens": ' + nested(MAX_DEPTH + 5) + "}"
    huge = '{"prompt": "How big is it?", "output_tokens": ' + "9" * 5000 + "}"
    good = '{"prompt": "How big is it?", "output_tokens": 12}'
    report = scan_file(write_lines([good, deep, huge, good]), format="prompt", tokenizers=["estimate"])
    assert [(e.line, e.kind) for e in report.errors] == [(2, "too-deep"), (3, "number-too-large")]
    assert report.valid == 2 and report.tokens["estimate"].records == 2 and report.complete


def test_a_json_array_file_with_a_deep_element(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[\n" + GOOD + ",\n" + nested(MAX_DEPTH + 1) + ",\n" + GOOD + "\n]\n")
    report = scan_file(str(path), format="openai-chat")
    assert [(e.line, e.kind) for e in report.errors] == [(3, "too-deep")]
    assert report.valid == 2


def test_export_skips_too_deep_records_and_conversions_that_would_be(write_lines, tmp_path):
    deep_list = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])[:-1]
    at_limit = deep_list + ', {"role": "user", "content": "x", "meta": ' + nested(MAX_DEPTH - 2) + "}]"
    over = deep_list + ', {"role": "user", "content": "x", "meta": ' + nested(MAX_DEPTH) + "}]"
    plain = deep_list + "]"
    path = write_lines([plain, at_limit, over, plain])
    assert scan_file(path).valid == 3  # `at_limit` is exactly MAX_DEPTH deep: valid
    out = tmp_path / "out.jsonl"
    result = export(path, str(out), "openai-chat")
    # {"messages": at_limit} would be one level deeper than the limit: skipped with its reason
    assert (result.converted, result.skipped) == (2, 2)
    assert result.skipped_reasons == {"invalid record": 1,
                                      f"nested more than {MAX_DEPTH} levels deep once converted": 1}
    assert scan_file(str(out)).valid == 2


def test_search_reads_past_deep_and_huge_lines(write_lines):
    path = write_lines([chat_with_meta(MAX_DEPTH + 1), GOOD[:-1] + ', "n": ' + "9" * 5000 + "}",
                        '{"role": ' + nested(2000) + "}", GOOD])
    batches = list(search_lines(path, parse_query("role:assistant")))
    assert [n for b in batches for n in b.lines] == [1, 4]
