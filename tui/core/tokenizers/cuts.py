"""Safe cut points for incremental counting.

BPE never merges across pre-tokenizer pieces, so a document's count is the sum of its
blocks' counts when every cut falls where the pre-tokenizer splits anyway and still splits
when the text is truncated there. Rules ("whitespace" is Python's ``str.isspace``, a superset
of the regexes' ``\\s``, so doubt means "no cut"):

- ``cl100k``: cut right after ``\\n`` when the next character is not whitespace;
- ``o200k``: the same, and the next character must not be ``/`` (o200k lets ``[\\r\\n/]*``
  follow punctuation);
- ``r50k``: only a single ``\\n`` between two non-whitespace characters;
- ``r50k+crlf``: the same, and also between the ``\\r`` and ``\\n`` of a single CRLF between two
  non-whitespace characters (GPT-2's regex splits ``\\r`` from ``\\n`` there, and the pieces on
  each side are the same when the text is cut between them; cut after the CRLF, a block would
  end in a ``\\r\\n`` piece instead). Without it a CRLF document has no cut at all.

Never inside an atomic string: a cut that would fall inside an added/special token containing
a newline, or right before an added token that strips whitespace on its left, is dropped
(see :func:`cut_positions`). No bundled tokenizer has such a token today.

What was proved, by fuzzing ``count(a + b) == count(a) + count(b)`` at every candidate cut of
random strings (1-40 pieces from an alphabet of ``\\n``, CRLF, lone ``\\r``, spaces, tabs,
``/``, punctuation, contractions, ASCII and accented letters, combining marks, digits, CJK, kana,
Hangul, Arabic, emoji with modifiers, NBSP, U+3000, U+2028, U+0085, U+001C, NFKC-sensitive
characters such as ``¨ ﬁ ① Ｆ ㍿``, BOM, ZWSP and special-token strings), under both
special-token policies, about 30,000 cuts per pair, 0 failures (a smaller sweep runs in
``tests/tokenizers_incremental/test_incremental_cuts.py``):

- tiktoken ``cl100k_base`` -> cl100k; ``o200k_base``/``o200k_harmony`` -> o200k;
  ``r50k_base``/``p50k_base`` -> r50k+crlf (the regexes below; the CRLF cut fuzzed with an
  alphabet heavy in CRLF, about 30,000 cuts, 0 failures);
- ``mistral-tekken`` (o200k's pattern without contractions, single digits) -> o200k; the
  cl100k rule FAILS for it (``/`` after a newline);
- ``qwen3`` (NFC normalizer; NFC never composes across a newline, which is a starter),
  ``llama3``, ``deepseek-v3`` (split digits, then CJK runs, then a cl100k-like regex) -> cl100k;
- ``claude-legacy`` (GPT-2 ByteLevel regex, NFKC normalizer) -> r50k; cl100k FAILS for it
  (about a third of candidate cuts), and so does the CRLF cut of r50k+crlf (about 2 %): NFKC
  turns a character such as ``¨`` after the newline into a space and a combining mark;
- ``gemma3``: its pre-tokenizer is a no-op (spaces become ``▁`` first), but every run of
  newlines is a non-special added token, extracted before BPE under both policies, so a cut
  right after a newline run is exact -> cl100k. Only the bundled file (id ``gemma3``) gets
  it: the rule rests on its added tokens, not on its pre-tokenizer;
- ``llama2`` (Prepend ``▁`` normalizer) has no safe cut (fails for about 40 % of cuts): None,
  counted whole. Any tokenizer not listed here is counted whole too.
"""

from __future__ import annotations

import re
from typing import Sequence

_R50K = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_CL100K = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PARTS = (
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
)
_O200K = "|".join(_O200K_PARTS)

_TEKKEN = "|".join([*_O200K_PARTS[:2]]).replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)?", "") + "|" + "|".join(
    [r"""\p{N}""", *_O200K_PARTS[3:]])

PATTERN_RULES: dict[str, str] = {
    _R50K: "r50k+crlf",
    _CL100K: "cl100k",
    _O200K: "o200k",
    _TEKKEN: "o200k",
}


def cut_rule_for_pattern(pattern: str) -> str | None:
    """The rule for a tiktoken-style pattern, or None when no rule is proven for it."""
    return PATTERN_RULES.get(pattern)


# HF pre-tokenizer regexes proven for the cl100k rule (Qwen2/3, Llama 3, DeepSeek-V3 splits).
_HF_CL100K_REGEXES = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
)
_DEEPSEEK_SPLITS = (
    r"""\p{N}{1,3}""",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
)
# Normalizers that keep block additivity at a newline cut (a newline is an NFC/NFKC starter
# with no composition or compatibility mapping).
_SAFE_NORMALIZERS = (None, {"type": "Sequence", "normalizers": []}, {"type": "NFC"}, {"type": "NFKC"})
# The bundled Gemma 3 file (the id "gemma3" always names it: bundled ids come first).
_GEMMA3_PRE = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
_GEMMA3_NORM = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}


def _json(state: bytes):
    import json

    if not state:
        return None
    try:
        return json.loads(state)
    except ValueError:
        return "unreadable"


def _split_regexes(pre) -> list[str] | None:
    """The regexes of a Sequence of Isolated Splits ending in a regex-free ByteLevel, else None."""
    if not isinstance(pre, dict) or pre.get("type") != "Sequence":
        return None
    steps = pre.get("pretokenizers") or []
    if not steps or steps[-1] != {**steps[-1], "type": "ByteLevel", "use_regex": False}:
        return None
    out = []
    for step in steps[:-1]:
        if step.get("type") != "Split" or step.get("behavior") != "Isolated" or step.get("invert"):
            return None
        regex = (step.get("pattern") or {}).get("Regex")
        if regex is None:
            return None
        out.append(regex)
    return out


def cut_rule_for_hf(tokenizer_id: str, pre_tokenizer_state: bytes, normalizer_state: bytes) -> str | None:
    """The rule for an HF tokenizer, judged from its pre-tokenizer and normalizer; None if unproven.

    Only configurations fuzzed exact (see the module docstring) get a rule; anything else,
    including a known pre-tokenizer with an unknown normalizer, is counted whole.
    """
    pre, norm = _json(pre_tokenizer_state), _json(normalizer_state)
    if tokenizer_id == "gemma3" and pre == _GEMMA3_PRE and norm == _GEMMA3_NORM:
        return "cl100k"
    if norm not in _SAFE_NORMALIZERS:
        return None
    regexes = _split_regexes(pre)
    if regexes is not None and (
        (len(regexes) == 1 and regexes[0] in _HF_CL100K_REGEXES) or tuple(regexes) == _DEEPSEEK_SPLITS
    ):
        return "cl100k"
    if isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "r50k"  # GPT-2's regex
    return None


_CUT_REGEXES = {
    "cl100k": re.compile(r"\n(?=\S)"),
    "o200k": re.compile(r"\n(?=[^\s/])"),
    "r50k": re.compile(r"(?<=\S)\n(?=\S)"),
    # also between the \r and \n of a CRLF between two non-whitespace characters (the regex
    # splits "\r" and "\n" there, but keeps "\r\n" whole at the end of a block)
    "r50k+crlf": re.compile(r"(?<=\S)\n(?=\S)|(?<=\S)\r(?=\n\S)"),
}


def cut_positions(text: str, rule: str, atomic: Sequence[str] = (), lstrip: Sequence[str] = ()) -> list[int]:
    """Offsets (0 < i < len(text)) where ``text`` may be cut under ``rule``.

    ``atomic``: strings no cut may fall strictly inside (added/special tokens containing a
    newline); ``lstrip``: added tokens that absorb whitespace on their left, before which no
    cut may fall.
    """
    n = len(text)
    cuts = [m.end() for m in _CUT_REGEXES[rule].finditer(text) if m.end() < n]
    if cuts and (atomic or lstrip):
        banned: set[int] = set()
        for tok in atomic:
            start = text.find(tok)
            while start >= 0:
                banned.update(range(start + 1, start + len(tok)))
                start = text.find(tok, start + 1)
        for tok in lstrip:
            start = text.find(tok)
            while start >= 0:
                banned.add(start)
                start = text.find(tok, start + 1)
        cuts = [c for c in cuts if c not in banned]
    return cuts


def context_radius(atomic: Sequence[str] = (), lstrip: Sequence[str] = ()) -> int:
    """How far either side of a position the text decides whether it is a cut.

    The rules look at most two characters back and two ahead (``\\S\\r|\\n\\S``); a guard token
    bans cuts inside it or at its start, so its length widens that. Text more than this far
    from an edit keeps its cuts.
    """
    return max([2, *map(len, atomic), *map(len, lstrip)]) + 2


def cuts_between(text: str, rule: str, lo: int, hi: int, atomic: Sequence[str] = (),
                 lstrip: Sequence[str] = ()) -> list[int]:
    """The cut points ``c`` of the whole ``text`` with ``lo < c < hi``, looking only near that span.

    Equal to ``[c for c in cut_positions(text, rule, atomic, lstrip) if lo < c < hi]`` at a cost
    proportional to ``hi - lo``.
    """
    n = len(text)
    lo, hi = max(lo, 0), min(hi, n)
    if hi - lo < 2:
        return []
    if not (atomic or lstrip):
        # a match ends at a cut; lookbehinds see before ``pos``, lookaheads stop at ``endpos``
        found = _CUT_REGEXES[rule].finditer(text, max(0, lo - 2), min(n, hi + 2))
        return [c for c in (m.end() for m in found) if lo < c < hi]
    pad = context_radius(atomic, lstrip)
    start = max(0, lo - pad)
    piece = text[start:min(n, hi + pad)]
    return [start + c for c in cut_positions(piece, rule, atomic, lstrip) if lo < start + c < hi]


def split_blocks(text: str, rule: str, atomic: Sequence[str] = (), lstrip: Sequence[str] = ()) -> list[str]:
    """``text`` cut at every safe cut point: ``"".join(blocks) == text``."""
    if not (atomic or lstrip):
        # the fast path: the cut regexes only ever match a single newline, so a lookbehind
        # split keeps the newline with the block before it
        return _SPLIT_REGEXES[rule].split(text) if text else []
    blocks, prev = [], 0
    for cut in cut_positions(text, rule, atomic, lstrip):
        blocks.append(text[prev:cut])
        prev = cut
    if prev < len(text):
        blocks.append(text[prev:])
    return blocks


_SPLIT_REGEXES = {
    "cl100k": re.compile(r"(?<=\n)(?=\S)"),
    "o200k": re.compile(r"(?<=\n)(?=[^\s/])"),
    "r50k": re.compile(r"(?<=\S\n)(?=\S)"),
    "r50k+crlf": re.compile(r"(?<=\S\n)(?=\S)|(?<=\S\r)(?=\n\S)"),
}
