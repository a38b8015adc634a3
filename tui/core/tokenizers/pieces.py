"""A text split into its tokens, each made legible for display.

``token_pieces(tokenizer, text, specials, limit)`` -> TokenPieces: the first ``limit``
tokens with their ids and a display string. Tokens whose bytes are not valid UTF-8 on their
own (byte-fallback tokens such as ``<0xE2>``, or a multi-byte character split across
tokens) are shown as their bytes in hex: ``⟨E2 80⟩``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import SpecialPolicy, Tokenizer


@dataclass(frozen=True)
class TokenPiece:
    id: int
    text: str  # the token's text, or its bytes in hex for partial UTF-8
    kind: str  # "text" | "special" | "bytes"


@dataclass(frozen=True)
class TokenPieces:
    tokenizer_id: str
    pieces: tuple[TokenPiece, ...]
    total: int  # tokens in the text (pieces may hold fewer)
    chars: int  # characters of the text tokenized

    @property
    def truncated(self) -> bool:
        return len(self.pieces) < self.total


def hex_bytes(data: bytes) -> str:
    return "⟨" + " ".join(f"{b:02X}" for b in data) + "⟩"


def token_pieces(tokenizer: Tokenizer, text: str, specials: SpecialPolicy = "literal",
                 limit: int = 5000) -> TokenPieces:
    """The tokens of ``text``; raises NotImplementedError for a tokenizer without a vocabulary."""
    if not tokenizer.has_vocab:
        raise NotImplementedError(f"{tokenizer.id} has no tokens to show")
    ids = tokenizer.encode(text, specials)
    shown = ids[:limit]
    special = tokenizer.special_ids()
    pieces = []
    for tid, data in zip(shown, tokenizer.token_bytes(shown)):
        if tid in special:
            pieces.append(TokenPiece(tid, data.decode("utf-8", "replace"), "special"))
            continue
        try:
            pieces.append(TokenPiece(tid, data.decode("utf-8"), "text"))
        except UnicodeDecodeError:
            pieces.append(TokenPiece(tid, hex_bytes(data), "bytes"))
    return TokenPieces(tokenizer.id, tuple(pieces), len(ids), len(text))
