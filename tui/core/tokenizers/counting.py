"""Counting one text with several tokenizers, each failure confined to its own row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from ..errors import TokenizerError
from .base import SpecialPolicy, TokenCount, Tokenizer
from .registry import Registry


def load_many(registry: Registry, ids: Sequence[str], workers: int = 2) -> dict[str, Tokenizer | TokenizerError]:
    """Load several tokenizers in parallel (xz and HF parsing release the GIL)."""

    def one(tid: str) -> Tokenizer | TokenizerError:
        try:
            return registry.get(tid)
        except TokenizerError as exc:
            return exc

    todo = [tid for tid in ids if not registry.is_loaded(tid)]
    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, todo))
    return {tid: one(tid) for tid in ids}


def count_texts(registry: Registry, ids: Sequence[str], text: str,
                specials: SpecialPolicy = "literal") -> list[TokenCount]:
    """Count ``text`` with each tokenizer; a tokenizer that fails reports its error in its row."""
    chars = len(text)
    rows = []
    for tid, tok in load_many(registry, ids).items():
        if isinstance(tok, TokenizerError):
            rows.append(TokenCount(tid, None, chars, exact=True, error=str(tok)))
            continue
        try:
            rows.append(TokenCount(tid, tok.count(text, specials), chars, exact=tok.info.exact))
        except TokenizerError as exc:  # the library failed on this text (see PanicGuard)
            rows.append(TokenCount(tid, None, chars, exact=tok.info.exact, error=str(exc)))
    return rows
