"""A compact line-offset index for random access into files of any size (a record browser).

Offsets live in an ``array('q')`` (8 bytes per line, not ~40 for a list of ints). The index is
built by reading 16 MB at a time into one reused buffer and scanning it with ``find`` (as fast
as mmap windows here, measured on 270 MB: 1.3 s against 1.2 s; and a file truncated while it is
indexed ends the index early, where a mapped page past the new end kills the process with
SIGBUS). Lines are read back with ``os.pread``.
"""

from __future__ import annotations

import os
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterator

WINDOW = 16 << 20


@dataclass(frozen=True)
class IndexProgress:
    bytes_done: int
    bytes_total: int
    lines: int


class LineIndex:
    """Start offsets of every physical line of a file (line n is 1-based)."""

    def __init__(self, path: str, offsets: array, size: int):
        self.path = path
        self.offsets = offsets
        self.size = size

    @classmethod
    def building(cls, path: str, cancel=None, time_budget: float = 0.25) -> Iterator["IndexProgress | LineIndex"]:
        """Build the index, yielding IndexProgress on the time budget and last the LineIndex
        (None-terminated early when cancelled: then nothing more is yielded)."""
        from .scanner import cancelled

        size = os.path.getsize(path)
        offsets = array("q")
        if size:
            offsets.append(0)
        deadline = time.monotonic() + time_budget
        buf = bytearray(min(WINDOW, size))
        with open(path, "rb", buffering=0) as fh, memoryview(buf) as view:
            start = 0
            while start < size:
                n = fh.readinto(view[:min(WINDOW, size - start)])
                if not n:  # the file was truncated meanwhile: index what is there
                    size = start
                    break
                find = buf.find
                append = offsets.append
                i = find(b"\n", 0, n)
                while i >= 0:
                    append(start + i + 1)
                    i = find(b"\n", i + 1, n)
                start += n
                if time.monotonic() >= deadline:
                    if cancelled(cancel):
                        return
                    yield IndexProgress(start, size, len(offsets))
                    deadline = time.monotonic() + time_budget
        if offsets and offsets[-1] == size:  # the file ends with a newline: no empty last line
            offsets.pop()
        yield cls(path, offsets, size)

    @classmethod
    def build(cls, path: str) -> "LineIndex":
        result: IndexProgress | LineIndex | None = None
        for result in cls.building(path):
            pass
        assert isinstance(result, LineIndex)
        return result

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        return self.offsets.itemsize * len(self.offsets)

    def span(self, n: int) -> tuple[int, int]:
        """(start, end) byte offsets of line n, without its line break."""
        if not 1 <= n <= len(self.offsets):
            raise IndexError(f"line {n} is outside 1..{len(self.offsets)}")
        start = self.offsets[n - 1]
        end = self.offsets[n] - 1 if n < len(self.offsets) else self.size
        return start, end

    def read_line(self, n: int, limit: int | None = None) -> bytes:
        """The bytes of line n (1-based) without ``\\n``/``\\r\\n``; at most ``limit`` bytes."""
        start, end = self.span(n)
        length = end - start if limit is None else min(limit, end - start)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        if limit is None or length == end - start:
            if data.endswith(b"\n"):
                data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
        return data

    def read_lines(self, first: int, count: int, limit: int | None = None) -> list[bytes]:
        last = min(len(self.offsets), first + count - 1)
        return [self.read_line(n, limit) for n in range(first, last + 1)]

    def line_at(self, offset: int) -> int:
        """The 1-based line holding byte ``offset``."""
        return bisect_right(self.offsets, offset)
