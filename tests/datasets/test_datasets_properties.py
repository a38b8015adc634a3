"""Property-based tests of `inspect`'s scanner on hostile input (Hypothesis): random JSON values and random
bytes per line, through the real scanner on a real temporary file and through a pipe.

For every input: no exception; `records` is the number of non-blank lines; every line the parser
refuses, and every overlong line, is an error on its own line; the error lines are exactly the
invalid records; the physical line count is right; a pipe gives the same report as the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import contextmanager

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.datasets import scan_file
from tui.core.datasets.reader import TooLong

MAX_LINE = 8000  # the scanner's line limit during these tests (64 MB in use): long lines stay cheap
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
content = st.one_of(st.text(max_size=30), st.none(), st.integers(), json_values,
                    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "refusal", 7]),
                                                    "text": st.text(max_size=10)}), max_size=2))
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "robot", 3, None]),
     "content": content},
    optional={"tool_calls": json_values, "tool_call_id": st.text(max_size=5), "name": scalars})
records = st.one_of(
    st.builds(lambda m, extra: {"messages": m, **extra}, st.lists(message, max_size=4),
              st.dictionaries(st.sampled_from(["tools", "parallel_tool_calls"]), json_values, max_size=1)),
    st.lists(message, min_size=1, max_size=3),  # a message-list line
    st.builds(lambda c: {"conversations": c}, st.lists(st.fixed_dictionaries(
        {"from": st.sampled_from(["human", "gpt", "system", "bot"]), "value": scalars}), max_size=3)),
    st.fixed_dictionaries({"prompt": st.one_of(st.text(max_size=30), scalars)},
                          optional={"output_tokens": st.one_of(st.integers(-2, 2**70), scalars),
                                    "completion": st.text(max_size=10)}),
    st.dictionaries(st.sampled_from(["text", "instruction", "output", "input", "custom_id", "body", "method", "url"]),
                    json_values, max_size=4),
    json_values,
)


def _nested(depth: int) -> bytes:
    return b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1)


hostile = st.one_of(
    st.sampled_from([1, 2, 253, 254, 255, 256, 1023, 1024, 1025, 3000]).map(lambda d: b'{"a": ' + _nested(d) + b"}"),
    st.sampled_from([19, 20, 309, 310, 400, 4300, 4301, 5000]).map(lambda n: b'{"n": -' + b"9" * n + b"}"),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1E+999", b"1e-400"]).map(
        lambda t: b'{"text": "x", "n": ' + t + b"}"),
    st.sampled_from([b"\\ud800", b"\\udc00", b"\\ud83d\\ude00", b"\\ud83d x", b"\\u0000"]).map(
        lambda e: b'{"text": "a' + e + b'b"}'),
    st.binary(max_size=80),  # invalid UTF-8, NUL bytes, anything
    st.sampled_from([b"", b" ", b"\t", b"\r", b" \r ", b"\x0b", b"\x0c", b"\x00", b"\xef\xbb\xbf",
                     b'\xef\xbb\xbf{"text": "a BOM past line 1"}', b'{"text": "a"} {"text": "b"}', b"{", b"]"]),
    st.integers(MAX_LINE - 20, MAX_LINE + 20).map(lambda n: b'{"text": "' + b"a" * (n - 12) + b'"}'),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
lines = st.one_of(records.map(lambda v: json.dumps(v).encode()),
                  records.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
                  hostile).map(lambda b: b.replace(b"\n", b" "))
first_lines = st.builds(lambda rec, bom: (b"\xef\xbb\xbf" if bom else b"") + json.dumps(rec).encode(),
                        st.dictionaries(st.sampled_from(["messages", "prompt", "text", "x"]), json_values,
                                        min_size=1, max_size=2), st.booleans())
files = st.builds(lambda first, rest, newline, final: newline.join([first, *rest]) + (newline if final else b""),
                  first_lines, st.lists(lines, max_size=12), st.sampled_from([b"\n", b"\r\n"]), st.booleans())


@contextmanager
def short_line_limit():
    import tui.core.datasets.reader as reader

    saved = reader.MAX_LINE
    reader.MAX_LINE = MAX_LINE
    try:
        yield
    finally:
        reader.MAX_LINE = saved


def physical_lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def refused(raw: bytes) -> bool:
    """What no policy may accept: an overlong line, or bytes orjson cannot read."""
    if len(raw) > MAX_LINE:
        return True
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False


def check_report(data: bytes, report) -> None:
    physical = physical_lines(data)
    non_blank = []
    for n, raw in enumerate(physical, 1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw and not raw.isspace():
            non_blank.append((n, raw))
    assert report.format.container == "jsonl"
    assert report.complete and report.stats.lines == len(physical)
    assert report.stats.bytes == len(data)
    assert report.records == len(non_blank) == report.valid + report.invalid
    error_lines = {e.line for e in report.errors}
    assert len(error_lines) == report.invalid <= sum(report.error_counts.values())  # a record may have several
    assert error_lines <= {n for n, _ in non_blank}
    assert {n for n, raw in non_blank if refused(raw)} <= error_lines
    blank = {w.line for w in report.warnings if w.kind == "blank-line"}
    assert blank == {n for n in range(1, len(physical) + 1)} - {n for n, _ in non_blank}


def comparable(report) -> dict:
    return {k: v for k, v in report.to_dict().items() if k not in ("file", "elapsed")}


@SETTINGS
@given(data=files)
def test_any_file_of_lines_is_reported_line_by_line(data):
    with tempfile.TemporaryDirectory() as folder, short_line_limit():
        path = os.path.join(folder, "data.jsonl")
        with open(path, "wb") as fh:
            fh.write(data)
        check_report(data, scan_file(path))


@settings(SETTINGS, max_examples=30)
@given(data=files, token_pass=st.booleans())
def test_a_pipe_gives_the_report_of_the_file(data, token_pass):
    kwargs = {"tokenizers": ["estimate"]} if token_pass else {}
    with tempfile.TemporaryDirectory() as folder, short_line_limit():
        path = os.path.join(folder, "data.jsonl")
        with open(path, "wb") as fh:
            fh.write(data)
        from_file = scan_file(path, **kwargs)
        r, w = os.pipe()

        def write():
            with os.fdopen(w, "wb") as fh:
                fh.write(data)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            piped = scan_file(f"/dev/fd/{r}", **kwargs)
        finally:
            os.close(r)
        writer.join(10)
    check_report(data, piped)
    assert comparable(piped) == comparable(from_file)


@settings(SETTINGS, max_examples=40)
@given(elements=st.lists(lines, max_size=8), tail=st.binary(max_size=30))
def test_any_json_array_file_never_crashes(elements, tail):
    data = b"[\n" + b",\n".join(elements) + b"\n]" + tail
    with tempfile.TemporaryDirectory() as folder, short_line_limit():
        path = os.path.join(folder, "data.json")
        with open(path, "wb") as fh:
            fh.write(data)
        report = scan_file(path)
    assert report.complete and report.records == report.valid + report.invalid
    assert report.stats.lines == len(physical_lines(data)) and report.stats.bytes == len(data)
    assert all(e.line is None or 1 <= e.line <= report.stats.lines for e in report.errors)


def test_the_line_limit_used_here_is_the_scanners_rule():
    """The tests above shrink the line limit; check the scanner reads it at call time, as they assume."""
    import tui.core.datasets.reader as reader

    with short_line_limit():
        blocks = [x for block, _ in reader.line_blocks(_one_line_file(MAX_LINE + 1)) for x in block]
    assert isinstance(blocks[0], TooLong)


def _one_line_file(size: int) -> str:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "one.jsonl")
    with open(path, "wb") as fh:
        fh.write(b"a" * size)
    return path
