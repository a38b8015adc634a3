"""How one line (or one array element) becomes a value: tokdeck's parser policy.

- A line its format's typed decoders accept (``records``, msgspec: they agree with orjson on
  every point below) needs none of this. orjson parses every other record (fast, and strict: it
  rejects NaN/Infinity, lone surrogates, invalid UTF-8 and trailing data, which are not JSON or
  break later when re-encoded).
- When orjson fails, Python's ``json`` re-reads that one line only to classify the problem and
  give a precise character column: ``invalid-json``, ``trailing-data``, ``non-finite-number``
  (NaN/Infinity: ``json`` accepts them, most parsers and servers do not), ``lone-surrogate``,
  ``invalid-utf8``, ``number-too-large`` (beyond a 64-bit float, e.g. ``1e400`` or an
  integer of 400 digits: orjson refuses it; ``json`` reads it, but refuses integers of more
  than 4,300 digits).
- Nesting: a record is read only when its arrays and objects nest at most ``MAX_DEPTH`` (254)
  levels deep, which is what orjson can write back (it reads 1,024); a deeper one is
  ``too-deep``. Every later step (duplicate-key check, validators, export, the detail view)
  re-encodes or walks records, so none of them ever sees a value it cannot handle.
- Duplicate keys are a warning (every parser silently keeps the last value). A cheap pre-check
  runs on every record: the number of ``:`` bytes in the line against the number in orjson's
  re-serialisation of the parsed value (equal unless a key was dropped, or the line escapes a
  colon as ``\\u003a``). Lines where they differ, and lines that may escape a colon (a
  ``\\u003`` in them: an escaped colon could hide a repeated key's), are re-parsed with ``json``
  and an ``object_pairs_hook`` to name the key; lines identical to their compact
  re-serialisation skip the counting. On lines written with spaces (Python's ``json.dumps``
  defaults) the counts cost about as much as the parse; on compact lines (orjson,
  ``separators=(",", ":")``) almost nothing.
- A UTF-8 BOM is tolerated on line 1 only (the scanner strips it); CR before LF is JSON
  whitespace and is tolerated everywhere.
"""

from __future__ import annotations

import json
import re

import orjson

loads = orjson.loads
dumps = orjson.dumps
JSONDecodeError = orjson.JSONDecodeError
JSONEncodeError = orjson.JSONEncodeError

#: levels of arrays and objects a record may nest: orjson.dumps refuses a 255th (a test checks it)
MAX_DEPTH = 254
TOO_DEEP = "too-deep", f"arrays and objects nested more than {MAX_DEPTH} levels deep (over the limit; not read)"

BOM = b"\xef\xbb\xbf"


class _Constant(Exception):
    def __init__(self, name: str):
        self.name = name


def _reject_constant(name: str):
    raise _Constant(name)


class TooDeep(ValueError):
    """A record nested more than MAX_DEPTH levels deep (``diagnose`` names it)."""


def parse(raw: bytes) -> tuple[object, bytes]:
    """One record: (its value, its compact re-encoding). Raises JSONDecodeError or TooDeep;
    ``diagnose`` says why."""
    obj = loads(raw)
    try:
        return obj, dumps(obj)
    except JSONEncodeError:  # a value orjson just read fails to write only when nested too deeply
        raise TooDeep from None


#: control characters -> a visible character of the same length (U+2400 pictures; C1: U+FFFD)
_PICTURES = {c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421} | dict.fromkeys(range(0x80, 0xA0), 0xFFFD)
_PICTURES_KEEP_LINES = {c: p for c, p in _PICTURES.items() if c not in (0x09, 0x0A)}


def visible(text: str, keep_lines: bool = False) -> str:
    """``text`` with its control characters replaced one for one by visible ones (``\\x1b`` -> ␛):
    text from a dataset reaches terminals, where an ESC would be a command. ``keep_lines``
    keeps newlines and tabs."""
    return text.translate(_PICTURES_KEEP_LINES if keep_lines else _PICTURES)


def find_outside_strings(text: str, needle: str) -> int:
    """Index of the first ``needle`` outside JSON strings, or -1. Linear; no regex."""
    pos = 0
    n = len(text)
    while pos <= n:
        q = text.find('"', pos)
        stop = n if q < 0 else q
        i = text.find(needle, pos, stop)
        if i >= 0:
            return i
        if q < 0:
            return -1
        j = q + 1
        while True:  # skip the string: the next quote not escaped by an odd run of backslashes
            k = text.find('"', j)
            if k < 0:
                return -1
            b = k - 1
            while b > q and text[b] == "\\":
                b -= 1
            if (k - 1 - b) % 2 == 0:
                break
            j = k + 1
        pos = k + 1
    return -1


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # fixed-width: linear


def find_lone_surrogate(text: str) -> int:
    """Index of the first ``\\uD800``-``\\uDFFF`` escape that is not part of a valid pair, or -1."""
    pending_high = -1
    last_end = -1
    for m in _SURROGATE_ESCAPE.finditer(text):
        code = int(m.group()[2:], 16)
        if code < 0xDC00:  # high surrogate
            if pending_high >= 0:
                return pending_high
            pending_high, last_end = m.start(), m.end()
        else:
            if pending_high >= 0 and m.start() == last_end:
                pending_high = -1
                continue
            return m.start()
    return pending_high


def _where(text: str, index: int) -> tuple[int, int]:
    """(lines before, 1-based column) of a character index (records can span lines in array files)."""
    lines = text.count("\n", 0, index)
    return lines, index - (text.rfind("\n", 0, index) + 1) + 1


def diagnose(raw: bytes) -> tuple[str, str, int | None, int]:
    """Why ``parse`` rejected ``raw``: (kind, message, 1-based column or None, lines into ``raw``)."""
    kind, message, index = _diagnose(raw)
    if index is None:
        return kind, message, None, 0
    if isinstance(index, tuple):  # a parser's (lineno, colno)
        return kind, message, index[1], index[0] - 1
    text = raw.decode("utf-8", "replace")
    lines, col = _where(text, index)
    return kind, message, col, lines


def _diagnose(raw: bytes) -> tuple[str, str, int | tuple | None]:
    """(kind, message, 0-based character index, or a parser's (lineno, colno), or None)."""
    try:
        loads(raw)
    except JSONDecodeError as exc:  # orjson names the first problem from the left
        reason, where = str(exc).split(": line ")[0], (exc.lineno, exc.colno)
    else:
        return (*TOO_DEEP, None)  # read, but too deep to write back
    if reason.startswith("depth limit"):
        return (*TOO_DEEP, None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        index = len(raw[:exc.start].decode("utf-8", "replace"))
        return "invalid-utf8", f"invalid UTF-8 byte 0x{raw[exc.start]:02x}", index
    if text.startswith("\ufeff"):
        return "invalid-json", "a UTF-8 byte order mark (BOM) in the middle of the file", 0
    if reason.startswith("number is infinity"):
        return ("number-too-large", "a number beyond the range of a 64-bit float (about 1.8e308): "
                "most parsers cannot read it", where)
    try:
        json.loads(text, parse_constant=_reject_constant)
    except _Constant as c:
        at = find_outside_strings(text, "Infinity" if "Infinity" in c.name else "NaN")
        if at > 0 and c.name.startswith("-") and text[at - 1] == "-":
            at -= 1
        return ("non-finite-number", f"{c.name} is not valid JSON (Python's json accepts it; orjson, "
                "JavaScript and most servers do not)", at if at >= 0 else None)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return "trailing-data", "unexpected data after the JSON value", (exc.lineno, exc.colno)
        return "invalid-json", exc.msg, (exc.lineno, exc.colno)
    except RecursionError:
        return (*TOO_DEEP, None)
    except ValueError:  # json's own limit (an integer of over 4,300 digits) past what orjson refused
        pass
    # json accepted what orjson refused
    if "surrogate" in reason:
        at = find_lone_surrogate(text)
        return ("lone-surrogate", "a lone UTF-16 surrogate escape (not a character; it breaks "
                "when the text is encoded)", at if at >= 0 else None)
    return "invalid-json", reason, where


def maybe_duplicate_keys(raw: bytes, encoded: bytes, same_order: bool = True) -> bool:
    """The cheap pre-check: could a key have been dropped while parsing ``raw``? (``encoded``: the
    compact re-encoding from ``parse``; or, not ``same_order``, a typed record's, whose keys come
    in its fields' order: then a line of the same length may differ only in its keys' order.)"""
    if len(encoded) == len(raw) and same_order:
        return encoded != raw
    return encoded != raw and (raw.count(b":") != encoded.count(b":") or b"\\u003" in raw)


def duplicate_keys(raw: bytes) -> list[str]:
    """The keys that occur more than once in one object of ``raw`` (exact; slow: json + hook)."""
    found: list[str] = []

    def hook(pairs):
        if len(pairs) > 1:
            seen = set()
            for k, _ in pairs:
                if k in seen and k not in found:
                    found.append(k)
                seen.add(k)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return []
    return found
