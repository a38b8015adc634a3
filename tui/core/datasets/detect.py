"""Which format and container a file holds, from its first records (never its name)."""

from __future__ import annotations

import os
from collections import Counter

from ..errors import TokdeckError
from .formats import FORMATS, SIGNATURE, classify
from .model import FormatGuess
from .parsing import BOM, JSONDecodeError, loads
from .reader import ArrayError, array_elements, line_blocks

SAMPLE = 50
HEAD = 1 << 20


def check_readable(path: str) -> int:
    """The file's size; TokdeckError (one line) when it cannot be read as a file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TokdeckError(f"{path}: no such file") from None
    except OSError as exc:
        raise TokdeckError(f"{path}: {exc.strerror or exc}") from None
    if os.path.isdir(path):
        raise TokdeckError(f"{path}: is a folder, not a file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise TokdeckError(f"{path}: {exc.strerror or exc}") from None
    return st.st_size


def _container(path: str) -> tuple[str, bool, bool]:
    """("jsonl" | "json-array", bom, crlf) from the first non-blank line."""
    bom = crlf = False
    for lines, _ in line_blocks(path, chunk=HEAD):
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


def _sample(path: str, container: str, n: int, budget: int = 64 << 20) -> tuple[list, int]:
    """(the format each of the first ``n`` parseable records looks like, records parsed),
    reading at most about ``budget`` bytes (a file of huge lines is judged on fewer records)."""
    kinds = []
    parsed = 0
    if container == "json-array":
        try:
            for _, _, raw, done in array_elements(path):
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
    for lines, nbytes in line_blocks(path, chunk=HEAD):
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


def detect_format(path: str, format: str | None = None, sample: int = SAMPLE) -> FormatGuess:
    """Guess the format from the keys of the first ``sample`` parseable records.

    ``format`` given: it is used as is (the container is still detected). Raises TokdeckError
    when the file cannot be read or ``format`` is not known.
    """
    check_readable(path)
    if format is not None and format not in FORMATS:
        raise TokdeckError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    container, bom, crlf = _container(path)
    if format is not None:
        return FormatGuess(format, container, "given with --format", bom=bom, crlf=crlf)
    kinds, parsed = _sample(path, container, sample)
    votes = Counter(k for k in kinds if k)
    where = "a JSON array" if container == "json-array" else "JSONL"
    if not votes:
        how = (f"no record looked like a known format in the first {parsed} parsed records of {where}"
               if parsed else "no parseable record found")
        return FormatGuess("unknown", container, how, 0, parsed, bom, crlf)
    fmt, matched = votes.most_common(1)[0]
    how = f"{where}; {matched} of the first {parsed} records have {SIGNATURE[fmt]}"
    return FormatGuess(fmt, container, how, matched, parsed, bom, crlf)
