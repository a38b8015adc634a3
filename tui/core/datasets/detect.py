"""Which format and container a file holds, from its first records (never its name)."""

from __future__ import annotations

import contextlib
from collections import Counter

from ..errors import TokdeckError
from .formats import FORMATS, SIGNATURE, classify
from .model import FormatGuess
from .parsing import BOM, JSONDecodeError, loads
from .reader import ArrayError, array_elements, line_blocks
from .source import Replay, check_readable

SAMPLE = 50
HEAD = 1 << 20


def _reading(src: "str | Replay"):
    """A binary reader from the start of ``src``: the file opened, or the stream's kept head replayed."""
    return open(src, "rb", buffering=0) if isinstance(src, str) else contextlib.nullcontext(src.rewind())


def _container(fh) -> tuple[str, bool, bool]:
    """("jsonl" | "json-array", bom, crlf) from the first non-blank line."""
    bom = crlf = False
    for lines, _ in line_blocks(fh, chunk=HEAD):
        for i, line in enumerate(lines):
            if not isinstance(line, bytes):
                return "jsonl", bom, crlf
            if i == 0 and line.startswith(BOM):
                bom, line = True, line[3:]
            if line.endswith(b"\r"):
                crlf = True
            if not line.strip():
                continue
            if line.lstrip()[:1] != b"[":
                return "jsonl", bom, crlf
            try:
                value = loads(line)
            except JSONDecodeError:
                return "json-array", bom, crlf  # an array that spans lines: one JSON document
            # one line holding an array: a message-list record, or a whole array file on one line
            is_messages = classify(value) == "message-list"
            return ("jsonl" if is_messages else "json-array"), bom, crlf
    return "jsonl", bom, crlf


def _sample(fh, container: str, n: int, budget: int = 64 << 20) -> tuple[list, int]:
    """(the format each of the first ``n`` parseable records looks like, records parsed),
    reading at most about ``budget`` bytes (a file of huge lines is judged on fewer records)."""
    kinds = []
    parsed = 0
    if container == "json-array":
        try:
            for _, _, raw, done in array_elements(fh):
                try:
                    kinds.append(classify(loads(raw)))
                    parsed += 1
                except JSONDecodeError:
                    pass
                if parsed >= n or done > budget:
                    break
        except ArrayError:
            pass
        return kinds, parsed
    first = True
    read = 0
    for lines, nbytes in line_blocks(fh, chunk=HEAD):
        read += nbytes
        for line in lines:
            if not isinstance(line, bytes):
                continue
            if first and line.startswith(BOM):
                line = line[3:]
            first = False
            if not line.strip():
                continue
            try:
                kinds.append(classify(loads(line)))
                parsed += 1
            except JSONDecodeError:
                pass
            if parsed >= n:
                return kinds, parsed
        if read > budget:
            break
    return kinds, parsed


def detect_format(src: "str | Replay", format: str | None = None, sample: int = SAMPLE) -> FormatGuess:
    """Guess the format from the keys of the first ``sample`` parseable records of the file
    ``src`` (a path) or of a stream's head (a ``Replay``: what is read is kept for the scan).

    ``format`` given: it is used as is (the container is still detected). Raises TokdeckError
    when the file cannot be read or ``format`` is not known.
    """
    if isinstance(src, str):
        check_readable(src)
    if format is not None and format not in FORMATS:
        raise TokdeckError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    with _reading(src) as fh:
        container, bom, crlf = _container(fh)
    if format is not None:
        return FormatGuess(format, container, "given with --format", bom=bom, crlf=crlf)
    with _reading(src) as fh:
        kinds, parsed = _sample(fh, container, sample)
    votes = Counter(k for k in kinds if k)
    where = "a JSON array" if container == "json-array" else "JSONL"
    if not votes:
        how = (f"no record looked like a known format in the first {parsed} parsed records of {where}"
               if parsed else "no parseable record found")
        return FormatGuess("unknown", container, how, 0, parsed, bom, crlf)
    fmt, matched = votes.most_common(1)[0]
    how = f"{where}; {matched} of the first {parsed} records have {SIGNATURE[fmt]}"
    return FormatGuess(fmt, container, how, matched, parsed, bom, crlf)
