"""Loaded tokenizers behind one interface, and the dataclasses that describe them.

The counting contract, for every tokenizer:
- a count is the number of tokens of the raw text: no BOS/EOS, no chat template;
- one special-token policy applies everywhere: ``literal`` (default) treats special-token
  strings such as ``<|endoftext|>`` as ordinary text, the way the OpenAI API treats user
  content; ``parse`` turns each into its single special token, as a raw-prompt server does;
- no text ever raises: lone surrogates are replaced the way tiktoken replaces them.

Library calls used per format (what counts are tested against):
- tiktoken: ``encode_ordinary`` (literal) / ``encode(allowed_special="all")`` (parse);
- HF tokenizers: ``encode_batch(add_special_tokens=False)`` with ``encode_special_tokens``
  True (literal) or False (parse). Added tokens that are not marked special (e.g. Qwen's
  ``<think>``) are vocabulary entries and match under both policies, as in the library.
  The batch call is used even for one text because it releases the GIL.
- Mistral Tekken: what mistral-common's ``Tekkenizer.encode(s, bos=False, eos=False)`` gives
  (literal); parse also recognises its control tokens.

Every call into the Rust libraries (loading, encoding, decoding) runs under a ``PanicGuard``:
a Rust panic becomes the TokenizerError of that tokenizer, so a broken tokenizer fails its own
row or request and never the program.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Sequence

from ..errors import TokenizerError

if TYPE_CHECKING:  # pragma: no cover
    import tiktoken
    import tokenizers

SpecialPolicy = Literal["literal", "parse"]
SPECIAL_POLICIES: tuple[SpecialPolicy, ...] = ("literal", "parse")

SOURCES = ("bundled", "builtin", "hf-cache", "tiktoken-cache", "user")

#: below this many characters in all, a tiktoken batch is encoded in a plain loop
_BATCH_MIN_CHARS = 200_000
#: threads for a big tiktoken batch (its encoder releases the GIL)
_BATCH_THREADS = 2


def first_line(message: object) -> str:
    """The first line of an error message, at most 300 characters (the exception's type if empty)."""
    text = str(message).strip().splitlines()
    return text[0][:300] if text else type(message).__name__


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfaced by pyo3: ``pyo3_runtime.PanicException``, one class per extension
    module (tiktoken and tokenizers each have theirs), deriving from BaseException."""
    return type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"


class PanicGuard:
    """Context manager around calls into tiktoken or tokenizers: a Rust panic leaves as the
    TokenizerError of ``tokenizer_id`` (one line); other exceptions pass through unchanged.

    (A panic would otherwise escape every ``except Exception``: PanicException derives from
    BaseException. Rust also prints the panic message on stderr itself; the loaders validate
    what they can beforehand so that known corruptions never reach Rust.)"""

    __slots__ = ("tokenizer_id",)

    def __init__(self, tokenizer_id: str):
        self.tokenizer_id = tokenizer_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and is_panic(exc):
            raise TokenizerError(f"{self.tokenizer_id}: the tokenizer library failed: {first_line(exc)}") from None


@dataclass(frozen=True)
class TokenizerInfo:
    """What is known about a tokenizer without loading it."""

    id: str
    name: str
    format: str  # tiktoken | hf | tekken | estimate
    source: str  # one of SOURCES
    models: tuple[str, ...] = ()
    license: str | None = None
    license_file: str | None = None
    path: str | None = None
    sha256: str | None = None
    vocab_size: int | None = None
    package: str | None = None
    package_version: str | None = None
    registry: str | None = None
    path_in_package: str | None = None
    note: str | None = None
    approximate: bool = False  # True for the estimate and for claude-legacy
    error: str | None = None  # set when discovery already knows the entry is broken
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def exact(self) -> bool:
        return self.format != "estimate"


@dataclass(frozen=True)
class TokenCount:
    """One tokenizer's count of one text. ``tokens`` is None when ``error`` is set."""

    tokenizer_id: str
    tokens: int | None
    chars: int
    exact: bool = True
    error: str | None = None

    @property
    def chars_per_token(self) -> float | None:
        if not self.tokens:
            return None
        return self.chars / self.tokens


def _check_policy(specials: str) -> None:
    if specials not in SPECIAL_POLICIES:
        raise ValueError(f"special-token policy must be one of {', '.join(SPECIAL_POLICIES)}, not {specials!r}")


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates exactly as tiktoken does before encoding."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Tokenizer:
    """A loaded tokenizer. Thread-safe; load once per process through the Registry."""

    info: TokenizerInfo
    has_vocab = True
    _rust: PanicGuard
    #: which safe-cut rule for incremental counting applies ("cl100k", "o200k", "r50k", "r50k+crlf") or None
    cut_rule: str | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def vocab_size(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def encode(self, text: str, specials: SpecialPolicy = "literal") -> list[int]:
        raise NotImplementedError

    def encode_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[list[int]]:
        return [self.encode(t, specials) for t in texts]

    def count(self, text: str, specials: SpecialPolicy = "literal") -> int:
        return len(self.encode(text, specials))

    def count_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[int]:
        return [len(ids) for ids in self.encode_many(texts, specials)]

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        """The bytes each token stands for (special tokens: their text), for showing boundaries."""
        raise NotImplementedError

    def special_ids(self) -> frozenset[int]:
        return frozenset()

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(ids)).decode("utf-8", "replace")


class TiktokenTokenizer(Tokenizer):
    def __init__(self, info: TokenizerInfo, encoding: "tiktoken.Encoding", cut_rule: str | None):
        self.info = info
        self._rust = PanicGuard(info.id)
        self._enc = encoding
        self.cut_rule = cut_rule
        self._specials = frozenset(encoding._special_tokens.values())

    @property
    def encoding(self) -> "tiktoken.Encoding":
        return self._enc

    @property
    def vocab_size(self) -> int:
        return self._enc.n_vocab

    def encode(self, text: str, specials: SpecialPolicy = "literal") -> list[int]:
        _check_policy(specials)
        # tiktoken releases the GIL and fixes lone surrogates itself.
        with self._rust:
            if specials == "literal":
                return self._enc.encode_ordinary(text)
            return self._enc.encode(text, allowed_special="all")

    def encode_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[list[int]]:
        _check_policy(specials)
        texts = list(texts)
        total = sum(map(len, texts))
        if len(texts) < 2 or total < _BATCH_MIN_CHARS:
            return [self.encode(t, specials) for t in texts]
        # Big batches: a few threads, each encoding a run of texts in a loop. (tiktoken's own batch
        # call hands every text to a thread pool on its own: ~60 us per text, twenty times the
        # encoding of a short one; 100,000 short texts took 6 s instead of 0.3.)
        runs: list[list[str]] = []
        run: list[str] = []
        chars = 0
        for text in texts:
            run.append(text)
            chars += len(text)
            if chars * _BATCH_THREADS >= total and len(runs) < _BATCH_THREADS - 1:
                runs.append(run)
                run, chars = [], 0
        runs.append(run)
        with ThreadPoolExecutor(max_workers=_BATCH_THREADS, thread_name_prefix="tokdeck-encode") as pool:
            parts = list(pool.map(lambda run: [self.encode(t, specials) for t in run], runs))
        return [ids for part in parts for ids in part]

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        with self._rust:
            return [self._enc.decode_single_token_bytes(i) for i in ids]

    def special_ids(self) -> frozenset[int]:
        return self._specials


class TekkenTokenizer(TiktokenTokenizer):
    """Mistral Tekken: a tiktoken BPE whose ids start after the special-token block.

    Built with every rank shifted by the number of special tokens (merge order, and so the
    result, is unchanged), so ids come out exactly as mistral-common numbers them.
    """


class HFTokenizer(Tokenizer):
    def __init__(self, info: TokenizerInfo, tok: "tokenizers.Tokenizer", cut_rule: str | None,
                 byte_level: bool):
        self.info = info
        self._rust = PanicGuard(info.id)
        self._tok = tok
        self.cut_rule = cut_rule
        # encode_special_tokens is state on the object: switch and encode under one lock.
        self._lock = threading.Lock()
        self._byte_level = byte_level
        with self._rust:
            added = tok.get_added_tokens_decoder()
        special = {i: t.content for i, t in added.items() if t.special}
        self._specials = frozenset(special.values())
        self._special_id_set = frozenset(special)

    @property
    def hf(self) -> "tokenizers.Tokenizer":
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, specials: SpecialPolicy = "literal") -> list[int]:
        return self.encode_many([text], specials)[0]

    def encode_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[list[int]]:
        return [e.ids for e in self._encodings(texts, specials)]

    def count_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[int]:
        return [len(e) for e in self._encodings(texts, specials)]

    def count(self, text: str, specials: SpecialPolicy = "literal") -> int:
        return len(self._encodings([text], specials)[0])

    def _encodings(self, texts: Sequence[str], specials: SpecialPolicy) -> list:
        _check_policy(specials)
        literal = specials == "literal"
        texts = list(texts)
        # encode_batch_fast: the same ids without character offsets, about twice as fast, and its
        # result is freed in ~1 ms instead of 13-60 ms with the GIL held on a 1 MB text
        encode = getattr(self._tok, "encode_batch_fast", None) or self._tok.encode_batch
        with self._lock, self._rust:
            if self._tok.encode_special_tokens != literal:
                self._tok.encode_special_tokens = literal
            try:
                return encode(texts, add_special_tokens=False)
            except (UnicodeEncodeError, TypeError, ValueError):
                return encode([fix_surrogates(t) for t in texts], add_special_tokens=False)

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        with self._rust:
            pieces = [self._tok.id_to_token(i) for i in ids]
        out = []
        for piece in pieces:
            if piece is None:
                out.append(b"")
            elif piece in self._specials:
                out.append(piece.encode("utf-8"))
            else:
                out.append(_hf_piece_bytes(piece, self._byte_level))
        return out

    def special_ids(self) -> frozenset[int]:
        return self._special_id_set

    def decode(self, ids: Sequence[int]) -> str:
        with self._rust:
            return self._tok.decode(list(ids), skip_special_tokens=False)


_BYTE_DECODER: dict[str, int] | None = None


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-unicode table used by ByteLevel BPE vocabularies."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
            range(ord("®"), ord("ÿ") + 1)
        )
        chars = printable[:]
        extra = 0
        for b in range(256):
            if b not in printable:
                printable.append(b)
                chars.append(256 + extra)
                extra += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(printable, chars)}
    return _BYTE_DECODER


def _hf_piece_bytes(piece: str, byte_level: bool) -> bytes:
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            pass
    if byte_level:
        table = _byte_decoder()
        try:
            return bytes(table[c] for c in piece)
        except KeyError:
            return piece.encode("utf-8")
    return piece.replace("\u2581", " ").encode("utf-8")


class EstimateTokenizer(Tokenizer):
    """The character heuristic: CJK characters / 1.5 + other characters / 4, rounded.

    Always labelled an estimate; it has no vocabulary, ids or boundaries.
    """

    has_vocab = False

    def __init__(self, info: TokenizerInfo):
        self.info = info
        import re

        # CJK ideographs (incl. extensions and compatibility), kana, Hangul, CJK punctuation
        # and full-width forms: scripts where one character is roughly one token or more.
        self._cjk = re.compile(
            "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
            "\u3200-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef"
            "\U00020000-\U0003134f]"
        )

    @property
    def vocab_size(self) -> int:
        return 0

    def count(self, text: str, specials: SpecialPolicy = "literal") -> int:
        _check_policy(specials)
        if not text:
            return 0
        cjk = len(self._cjk.findall(text))
        other = len(text) - cjk
        return int(cjk / 1.5 + other / 4 + 0.5)

    def count_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[int]:
        return [self.count(t, specials) for t in texts]

    def encode(self, text: str, specials: SpecialPolicy = "literal") -> list[int]:
        raise NotImplementedError("the estimate has no token ids")

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        raise NotImplementedError("the estimate has no token ids")
