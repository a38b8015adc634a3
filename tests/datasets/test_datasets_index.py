"""LineIndex: offsets in an array('q'), exact lines back by pread, windows of any size."""

from __future__ import annotations

import threading
from array import array

import pytest

from tui.core.datasets import LineIndex
from tui.core.datasets.index import IndexProgress


@pytest.mark.parametrize("data", [
    b"", b"one", b"one\n", b"\n\n", b"a\r\nbb\r\n\r\nccc", b"x" * 10_000 + b"\n" + b"y\n",
])
def test_index_matches_splitlines(tmp_path, data):
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    index = LineIndex.build(str(path))
    expected = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected.pop()
    assert len(index) == len(expected)
    assert isinstance(index.offsets, array) and index.offsets.typecode == "q"
    assert [index.read_line(n) for n in range(1, len(index) + 1)] == [e.rstrip(b"\r") for e in expected]
    with pytest.raises(IndexError):
        index.read_line(len(index) + 1)


def test_windows_smaller_than_the_file(tmp_path, monkeypatch):
    import mmap

    monkeypatch.setattr("tui.core.datasets.index.WINDOW", mmap.ALLOCATIONGRANULARITY)
    lines = [b'{"n": %d, "pad": "%s"}' % (i, b"z" * (i * 37 % 300)) for i in range(2000)]
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(LineIndex.building(str(path), time_budget=0))
    index = items[-1]
    assert isinstance(index, LineIndex) and all(isinstance(i, IndexProgress) for i in items[:-1])
    assert len(items) > 2 and index.nbytes == 8 * len(lines)
    assert index.read_lines(1000, 3) == lines[999:1002]
    assert index.read_line(7, limit=5) == lines[6][:5]
    start, _ = index.span(1500)
    assert index.line_at(start) == 1500 and index.line_at(start + 3) == 1500


def test_building_stops_when_cancelled(tmp_path, monkeypatch):
    import mmap

    monkeypatch.setattr("tui.core.datasets.index.WINDOW", mmap.ALLOCATIONGRANULARITY)
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"line\n" * 50_000)
    stop = threading.Event()
    items = []
    for item in LineIndex.building(str(path), cancel=stop, time_budget=0):
        items.append(item)
        stop.set()
    assert items and not any(isinstance(i, LineIndex) for i in items)
