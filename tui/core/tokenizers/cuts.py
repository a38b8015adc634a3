"""Safe cut points for incremental counting.

BPE never merges across pre-tokenizer pieces, so a document's count is the sum of its
blocks' counts when every cut falls where the pre-tokenizer splits anyway and still splits
when the text is truncated there. Rules (found exact by fuzzing the regexes):

- ``cl100k``: cut right after ``\\n`` when the next character is not whitespace
  (cl100k, Llama 3 and Qwen-style patterns);
- ``o200k``: the same, and the next character must not be ``/``;
- ``r50k``: additionally only a single ``\\n`` between non-whitespace characters.

Tokenizers that prepend a marker per chunk (SentencePiece/Metaspace: Llama 2, Gemma) have no
safe cut: ``None``, counted whole.
"""

from __future__ import annotations

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

PATTERN_RULES: dict[str, str] = {
    _R50K: "r50k",
    _CL100K: "cl100k",
    _O200K: "o200k",
}

CUT_RULES = ("cl100k", "o200k", "r50k")


def cut_rule_for_pattern(pattern: str) -> str | None:
    """The rule for a tiktoken-style pattern, or None when no rule is proven for it."""
    return PATTERN_RULES.get(pattern)


def cut_rule_for_hf(tokenizer_id: str, pre_tokenizer_state: bytes, normalizer_state: bytes) -> str | None:
    """The rule for an HF tokenizer, judged from its pre-tokenizer and normalizer; None if unproven."""
    return None
