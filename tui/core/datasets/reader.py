"""Reading records from a file in bounded memory: JSONL lines or the elements of one JSON array.

Nothing here loads a whole file: reads are chunked (4 MB), lines longer than ``max_line``
bytes are skipped (reported, never buffered), and the JSON-array splitter keeps at most one
element plus one chunk in memory.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Protocol, cast

from .parsing import BOM

CHUNK = 4 << 20
MAX_LINE = 64 << 20


class Readable(Protocol):
    """What the readers need of a file or stream: ``read(n)``."""

    def read(self, n: int, /) -> bytes: ...


class TooLong:
    """Stands in for a line longer than the limit (its length in bytes)."""

    __slots__ = ("size",)

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


def line_blocks(src: str | Readable, start: int = 0, end: int | None = None, chunk: int | None = None,
                max_line: int | None = None) -> Iterator[tuple[list, int]]:
    """Yield (lines, bytes consumed): the lines of ``line_chunks`` (the same arguments), split.

    Lines come without their ``\\n`` (a ``\\r`` stays: it is JSON whitespace). A line longer than
    ``max_line`` comes as a ``TooLong``.
    """
    for piece, nbytes in line_chunks(src, start, end, chunk, max_line):
        yield split_lines(piece), nbytes


#: whole lines ``data[start:stop]``, each with its newline but maybe the last (the input's last line,
#: or one line completed from several reads); ``data[:start]`` holds no newline but at ``start - 1``,
#: ``data[stop:]`` none: the lines of a read, without copying it
Lines = tuple[bytes, int, int]


def split_lines(piece: Lines | TooLong) -> list:
    """A piece of ``line_chunks`` as its lines (without their ``\\n``): one split of the whole read."""
    if type(piece) is TooLong:
        return [piece]
    data, start, stop = cast(Lines, piece)
    if start == stop:
        return []
    lines = data.split(b"\n")
    if start:
        del lines[0]  # the end of a line begun in an earlier read
    if stop < len(data) or data[-1] == 10:
        lines.pop()  # what follows the last newline: the start of a line read later
    return lines


def line_chunks(src: str | Readable, start: int = 0, end: int | None = None, chunk: int | None = None,
                max_line: int | None = None) -> Iterator[tuple[Lines | TooLong, int]]:
    """Yield (piece, bytes consumed) per chunk read: of the byte range [start, end) of the file
    ``src`` (a path), or of an open binary file or stream ``src`` up to its end.

    A piece is whole lines (``Lines``: a read and where its whole lines are, never a copy of
    it), or a ``TooLong`` standing for one line longer than ``max_line`` (skipped, never
    buffered). Lines come in order; the bytes consumed add up to the bytes read. ``start`` must
    be at a line start.
    """
    if not isinstance(src, str):
        yield from _line_chunks(src.read, None, chunk or CHUNK, max_line or MAX_LINE)
        return
    with open(src, "rb", buffering=0) as fh:
        if end is None:
            end = os.fstat(fh.fileno()).st_size
        fh.seek(start)
        yield from _line_chunks(fh.read, end - start, chunk or CHUNK, max_line or MAX_LINE)


def _line_chunks(read, remaining: int | None, chunk: int, max_line: int) -> Iterator[tuple[Lines | TooLong, int]]:
    """line_chunks() over ``read(n)``: ``remaining`` bytes, or (None) up to the end."""
    pieces: list[bytes] = []  # the unfinished line
    held = 0
    skipping = 0  # bytes of an overlong line being skipped
    while remaining is None or remaining > 0:
        block = read(chunk if remaining is None else min(chunk, remaining))
        if not block:
            break
        if remaining is not None:
            remaining -= len(block)
        first = block.find(b"\n")
        if first < 0:  # no line ends in this block
            if skipping:
                skipping += len(block)
            else:
                pieces.append(block)
                held += len(block)
                if held > max_line:
                    skipping, pieces, held = held, [], 0
            yield (block, 0, 0), len(block)
            continue
        done = 0  # bytes of ``block`` accounted for
        if skipping or pieces:  # the line begun in earlier blocks ends here
            if skipping:
                yield TooLong(skipping + first), first + 1
                skipping = 0
            else:
                pieces.append(block[:first])
                line = b"".join(pieces)
                pieces, held = [], 0
                yield (TooLong(len(line)) if len(line) > max_line else (line, 0, len(line))), first + 1
            done = first + 1
        last = block.rfind(b"\n") + 1
        if last < len(block):
            pieces.append(block[last:])
            held = len(block) - last
            if held > max_line:
                skipping, pieces, held = held, [], 0
        consumed = len(block) - done  # (the tail's bytes too)
        if last - done > max_line:  # a block larger than a line may be: look for overlong ones
            yield from _overlong_apart(block[done:last], max_line)
            done = last
        yield (block, done, last), consumed
    if skipping:
        yield TooLong(skipping), 0
    elif pieces:
        last_line = b"".join(pieces)
        yield TooLong(len(last_line)) if len(last_line) > max_line else (last_line, 0, len(last_line)), 0


def _overlong_apart(whole: bytes, max_line: int) -> Iterator[tuple[Lines | TooLong, int]]:
    """The whole lines of ``whole`` as pieces, each overlong one as a TooLong (no bytes counted)."""
    lines = whole.split(b"\n")
    lines.pop()  # ``whole`` ends with a newline
    kept: list[bytes] = []
    for line in lines:
        if len(line) > max_line:
            if kept:
                joined = b"\n".join(kept) + b"\n"
                yield (joined, 0, len(joined)), 0
                kept = []
            yield TooLong(len(line)), 0
        else:
            kept.append(line)
    if kept:
        joined = b"\n".join(kept) + b"\n"
        yield (joined, 0, len(joined)), 0


def split_points(path: str, parts: int) -> list[int]:
    """Byte offsets cutting the file into ``parts`` ranges at line starts: [0, c1, ..., size]."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            target = max(cuts[-1], size * i // parts)
            fh.seek(target)
            while True:
                buf = fh.read(1 << 16)
                if not buf:
                    target = size
                    break
                nl = buf.find(b"\n")
                if nl >= 0:
                    target += nl + 1
                    break
                target += len(buf)
            cuts.append(min(target, size))
    cuts.append(size)
    return cuts


_STRUCT = re.compile(rb'[\[\]{}",]')  # one character class: linear on any input
_WS = b" \t\r\n"


class ArrayError(Exception):
    def __init__(self, line: int, message: str):
        self.line = line
        self.message = message


def array_elements(src: str | Readable, chunk: int | None = None,
                   max_element: int = MAX_LINE) -> Iterator[tuple[int, int, bytes, int]]:
    """Yield (line, column offset, raw element, bytes consumed so far) per element of a top-level
    JSON array (the column offset: characters before the element on its first line). ``src``: a
    path, or an open binary file or stream (read from where it is; left open).

    Raises ArrayError(line, message) when the array itself is broken (then nothing after that
    point can be trusted). Elements are cut by tracking brackets outside strings, and parsed
    by the caller, so an invalid element is reported on its own line and the scan goes on.
    """
    chunk = chunk or CHUNK
    fh: Readable
    if isinstance(src, str):
        fh = opened = open(src, "rb", buffering=0)
    else:
        fh, opened = src, None
    try:
        buf = bytearray()
        base = 0  # file offset of buf[0]
        line = 1  # line number at buf[counted]
        counted = 0
        eof = False

        def more() -> bool:
            nonlocal eof
            if eof:
                return False
            data = fh.read(chunk)
            if not data:
                eof = True
                return False
            buf.extend(data)
            return True

        def line_at(i: int) -> int:
            nonlocal line, counted
            line += buf.count(b"\n", counted, i)
            counted = i
            return line

        def skip_ws(i: int) -> int:
            while True:
                while i < len(buf) and buf[i] in _WS:
                    i += 1
                if i < len(buf) or not more():
                    return i

        more()
        pos = 3 if buf[:3] == BOM else 0
        pos = skip_ws(pos)
        if pos >= len(buf) or buf[pos] != 0x5B:  # [
            raise ArrayError(line_at(min(pos, len(buf))), "the file does not start with a JSON array")
        pos += 1
        first = True
        while True:
            pos = skip_ws(pos)
            if pos >= len(buf):
                raise ArrayError(line_at(pos), "the JSON array is not closed with ]")
            c = buf[pos]
            if c == 0x5D:  # ]
                end = skip_ws(pos + 1)
                if end < len(buf):
                    raise ArrayError(line_at(end), "unexpected data after the closing ] of the array")
                return
            if not first:
                if c != 0x2C:  # ,
                    raise ArrayError(line_at(pos), f"expected , or ] between array elements, found {chr(c)!r}")
                pos = skip_ws(pos + 1)
                if pos >= len(buf):
                    raise ArrayError(line_at(pos), "the JSON array is not closed with ]")
            first = False
            start = pos
            depth = 0
            i = pos
            while True:  # find the end of the element
                if i - start > max_element:
                    raise ArrayError(line_at(start), f"an array element longer than {max_element >> 20} MB")
                m = _STRUCT.search(buf, i)
                if m is None:
                    if depth == 0 and buf[start] not in b'{["':
                        i = len(buf)
                        if more():
                            continue
                        break
                    if not more():
                        raise ArrayError(line_at(start), "the file ends inside an array element")
                    continue
                j = m.start()
                ch = buf[j]
                if ch == 0x22:  # a string: skip to its unescaped closing quote
                    k = j + 1
                    while True:
                        q = buf.find(b'"', k)
                        if q < 0:
                            if not more():
                                raise ArrayError(line_at(start), "the file ends inside a string")
                            continue
                        b = q - 1
                        while buf[b] == 0x5C:
                            b -= 1
                        if (q - 1 - b) % 2 == 0:
                            break
                        k = q + 1
                    i = q + 1
                    if depth == 0:
                        break
                    continue
                if ch in b"[{":
                    depth += 1
                    i = j + 1
                    continue
                if depth == 0:  # , or ] ends a scalar element
                    i = j
                    break
                if ch in b"]}":
                    depth -= 1
                    i = j + 1
                    if depth == 0:
                        break
                    continue
                i = j + 1  # a comma inside the element
            raw = bytes(buf[start:i]).rstrip()
            line_start = buf.rfind(b"\n", 0, start) + 1
            col0 = len(buf[line_start:start].decode("utf-8", "replace"))
            yield line_at(start), col0, raw, base + i
            pos = i
            if pos > chunk:  # drop what is done, keeping the line count
                line_at(pos)
                del buf[:pos]
                base += pos
                counted -= pos
                pos = 0
    finally:
        if opened is not None:
            opened.close()
