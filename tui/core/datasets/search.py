"""Find the physical lines of a file that match a text or a field query (for the Data pane's filter).

The file is read in 4 MB chunks; a chunk without the needle costs one ``bytes.find`` and one
newline count (both in C), so a search runs at memory speed when matches are rare. Matches come
back in batches on a time budget as ``array('q')`` line numbers (1-based, as ``LineIndex``
numbers them) and the search stops when ``cancel`` is set.

Queries (``parse_query``):
- ``some words`` — lines containing the text. ASCII letters match in any case; non-ASCII text
  matches as written or as a ``\\uXXXX``-escaped JSON string (what ``json.dumps`` writes).
- ``field:value`` — records with a key ``field`` (at any depth) whose value contains ``value``
  (strings; numbers and booleans by their JSON text), e.g. ``role:tool``, ``custom_id:req-7``.
  Quote the query (``"a:b"``) to search for text that looks like a field query.
"""

from __future__ import annotations

import json
import os
import re
import time
from array import array
from dataclasses import dataclass
from typing import Any, Iterator

from .parsing import JSONDecodeError, loads

CHUNK = 4 << 20
_FIELD = re.compile(r"^([A-Za-z_][\w.-]*):(.+)$")


@dataclass(frozen=True)
class Query:
    text: str  # what a matching line contains (the value, for a field query)
    field: str | None = None

    def describe(self) -> str:
        return f"{self.field} contains {self.text!r}" if self.field else f"text {self.text!r}"


@dataclass(frozen=True)
class SearchBatch:
    lines: array  # new matching line numbers since the last batch, ascending
    bytes_done: int
    bytes_total: int
    matches: int  # matches so far
    done: bool  # the whole file was searched


def parse_query(raw: str) -> Query | None:
    """A Query from what the user typed; None for an empty query."""
    q = raw.strip()
    if len(q) >= 2 and q[0] == q[-1] == '"':
        return Query(q[1:-1]) if q[1:-1] else None
    if not q:
        return None
    m = _FIELD.match(q)
    if m and m.group(2).strip():
        return Query(m.group(2).strip(), m.group(1))
    return Query(q)


def _needles(text: str) -> list[bytes]:
    """The byte forms the text can take in a JSONL file, lowercased (ASCII)."""
    raw = text.encode("utf-8", "surrogatepass").lower()
    escaped = json.dumps(text)[1:-1].encode("ascii").lower()  # ensure_ascii writers; also \" and \\
    return [raw] if escaped == raw else [raw, escaped]


def _lines_with(chunk: bytes, needle: bytes, base_line: int, out: set[int]) -> None:
    """Add the line numbers (base_line = number of chunk's first line) holding ``needle``."""
    find, count = chunk.find, chunk.count
    pos = find(needle)
    counted_to, line = 0, base_line
    while pos >= 0:
        line += count(b"\n", counted_to, pos)
        counted_to = pos
        out.add(line)
        end = find(b"\n", pos)
        if end < 0:
            return
        line += 1
        counted_to = end + 1
        pos = find(needle, end + 1)


def _field_matches(value: Any, field: str, text: str) -> bool:
    """Whether a key ``field`` anywhere in ``value`` holds something containing ``text`` (casefolded)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if k == field:
                    if isinstance(item, str):
                        if text in item.casefold():
                            return True
                    elif isinstance(item, (int, float, bool)) or item is None:
                        if text in json.dumps(item):
                            return True
                if isinstance(item, (dict, list)):
                    stack.append(item)
        elif isinstance(v, list):
            stack.extend(x for x in v if isinstance(x, (dict, list)))
    return False


def search_lines(path: str, query: Query, cancel=None, time_budget: float = 0.1,
                 chunk: int = CHUNK) -> Iterator[SearchBatch]:
    """Yield SearchBatch of matching lines about every ``time_budget`` seconds; the last has done=True
    (when cancelled, nothing more is yielded after the cancel is seen)."""
    from .scanner import cancelled

    size = os.path.getsize(path)
    needles = _needles(query.text)
    folded = query.text.casefold()
    found = array("q")
    total = 0
    line = 1  # number of the first line in the current chunk
    done = 0
    deadline = time.monotonic() + time_budget
    with open(path, "rb", buffering=0) as fh:
        carry = b""
        while True:
            data = fh.read(chunk)
            at_end = not data
            block = carry + data
            if not at_end:
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # one line longer than the chunk: keep reading it
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            else:
                carry = b""
            if block:
                low = block.lower()
                hits: set[int] = set()
                for needle in needles:
                    if needle in low:
                        _lines_with(low, needle, line, hits)
                if hits and query.field is not None:
                    hits = _check_fields(block, line, hits, query.field, folded)
                for n in sorted(hits):
                    found.append(n)
                total += len(hits)
                line += block.count(b"\n")
                done += len(block)
            if at_end:
                break
            if time.monotonic() >= deadline:
                if cancelled(cancel):
                    return
                yield SearchBatch(found, min(done, size), size, total, False)
                found = array("q")
                deadline = time.monotonic() + time_budget
    yield SearchBatch(found, size, size, total, True)


def _check_fields(block: bytes, first_line: int, hits: set[int], field: str, folded: str) -> set[int]:
    """The hits whose parsed record has the field query's match."""
    keep = set()
    ordered = sorted(hits)
    # start offsets of the hit lines: walk the newlines once
    pos, line = 0, first_line
    for n in ordered:
        while line < n:
            pos = block.find(b"\n", pos) + 1
            line += 1
        end = block.find(b"\n", pos)
        raw = block[pos:] if end < 0 else block[pos:end]
        raw = raw.rstrip(b"\r")
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.strip().rstrip(b",")  # a pretty-printed array's element line ends with a comma
        try:
            value = loads(raw)
        except (JSONDecodeError, ValueError):
            continue
        if _field_matches(value, field, folded):
            keep.add(n)
    return keep
