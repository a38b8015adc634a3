"""Build tokenizers from local bytes: tiktoken rank files, HF tokenizer.json, Mistral tekken.json.

Pure local loads only. tiktoken's ``get_encoding`` and ``load_tiktoken_bpe`` are never used
(the first downloads on a cache miss, the second writes a cache copy); HF's
``from_pretrained`` is never used.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path

from ..errors import TokenizerError
from .base import HFTokenizer, TekkenTokenizer, TiktokenTokenizer, Tokenizer, TokenizerInfo
from .cuts import cut_rule_for_hf, cut_rule_for_pattern

FORMATS = ("tiktoken", "hf", "tekken")

# The pattern assumed for a tiktoken-format file whose origin is unknown (cl100k's, which
# Llama 3's original tokenizer.model and most tiktoken-format files use).
DEFAULT_TIKTOKEN_PATTERN_ID = "cl100k_base"

_RANK_LINE = re.compile(rb"^[A-Za-z0-9+/]+={0,2}[ \t]+\d+\s*$")
_HEAD = 64 * 1024


def first_line(message: object) -> str:
    text = str(message).strip().splitlines()
    return text[0][:300] if text else type(message).__name__


def sniff_bytes(head: bytes) -> str:
    """Tell a tokenizer file's format from its first bytes; raise TokenizerError if none fits."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        if b'"default_vocab_size"' in head or (b'"config"' in head and b'"token_bytes"' in head):
            return "tekken"
        if any(k in head for k in (b'"added_tokens"', b'"pre_tokenizer"', b'"normalizer"', b'"model"')):
            return "hf"
        raise TokenizerError("a JSON file that is neither an HF tokenizer.json nor a Mistral tekken.json")
    first = stripped.split(b"\n", 1)[0]
    if _RANK_LINE.match(first):
        return "tiktoken"
    if head[:1] == b"\x0a" and (b"<unk>" in head[:64] or b"<s>" in head[:64]):
        raise TokenizerError(
            "a SentencePiece .model file: tokdeck reads tokenizer.json, tiktoken and tekken formats; "
            "convert it to tokenizer.json first (transformers' convert_slow_tokenizer)"
        )
    raise TokenizerError("not a recognised tokenizer file (expected tokenizer.json, a tiktoken rank file or tekken.json)")


def find_tokenizer_file(path: Path) -> tuple[Path, str]:
    """The tokenizer file at ``path`` (a file or a model folder) and its sniffed format."""
    if path.is_dir():
        candidates = [path / "tokenizer.json", path / "tekken.json", *sorted(path.glob("*.tiktoken")),
                      path / "tokenizer.model"]
        for cand in candidates:
            if cand.is_file():
                try:
                    return cand, sniff_file(cand)
                except TokenizerError:
                    continue
        raise TokenizerError(f"{path}: no tokenizer.json, tekken.json or tiktoken-format file in this folder")
    return path, sniff_file(path)


def sniff_file(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        raise TokenizerError(f"{path}: {exc.strerror or exc}") from None
    if not head:
        raise TokenizerError(f"{path}: empty file")
    try:
        return sniff_bytes(head)
    except TokenizerError as exc:
        raise TokenizerError(f"{path}: {exc}") from None


def parse_rank_file(data: bytes, origin: str) -> dict[bytes, int]:
    """Parse tiktoken's ``base64(token) rank`` lines into mergeable ranks."""
    ranks: dict[bytes, int] = {}
    b64 = base64.b64decode
    try:
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[b64(token)] = int(rank)
    except (ValueError, binascii.Error):
        raise TokenizerError(f"{origin}: corrupt tiktoken rank file near {line[:60]!r}") from None
    if not ranks:
        raise TokenizerError(f"{origin}: empty tiktoken rank file")
    return ranks


def build_tiktoken(info: TokenizerInfo, data: bytes, pattern: str, special_tokens: dict[str, int]) -> Tokenizer:
    import tiktoken

    ranks = parse_rank_file(data, info.id)
    try:
        enc = tiktoken.Encoding(info.id, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)
    except Exception as exc:  # tiktoken raises ValueError or pyo3 errors for inconsistent input
        raise TokenizerError(f"{info.id}: cannot build the encoding: {first_line(exc)}") from None
    return TiktokenTokenizer(info, enc, cut_rule_for_pattern(pattern))


def build_hf(info: TokenizerInfo, data: bytes) -> Tokenizer:
    from tokenizers import Tokenizer as HFRaw

    try:
        tok = HFRaw.from_buffer(data)
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON
        raise TokenizerError(f"{info.id}: not a valid tokenizer.json: {first_line(exc)}") from None
    # Some tokenizer.json files ship truncation or padding settings: they would change counts.
    tok.no_truncation()
    tok.no_padding()
    byte_level = b'"ByteLevel"' in _component_state(tok.decoder)
    pre = _component_state(tok.pre_tokenizer)
    return HFTokenizer(info, tok, cut_rule_for_hf(info.id, pre, _component_state(tok.normalizer)), byte_level)


def _component_state(component) -> bytes:
    if component is None:
        return b""
    try:
        state = component.__getstate__()
    except Exception:
        return b""
    return state if isinstance(state, bytes) else str(state).encode()


def build_tekken(info: TokenizerInfo, data: bytes, default_specials: list[str]) -> Tokenizer:
    import tiktoken

    try:
        model = json.loads(data)
        config = model["config"]
        num_special = int(config["default_num_special_tokens"])
        vocab_size = int(config["default_vocab_size"])
        pattern = config["pattern"]
        inner = model["vocab"][: vocab_size - num_special]
        b64 = base64.b64decode
        # Shift every rank past the special block: merge order is unchanged, ids match mistral-common.
        ranks = {b64(entry["token_bytes"]): int(entry["rank"]) + num_special for entry in inner}
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise TokenizerError(f"{info.id}: not a valid tekken.json: {first_line(exc)}") from None
    if len(ranks) != vocab_size - num_special:
        raise TokenizerError(f"{info.id}: tekken vocabulary is shorter than its config says")
    listed = model.get("special_tokens")
    if listed:
        names = {int(t["rank"]): t["token_str"] for t in listed}
    else:
        names = dict(enumerate(default_specials))
    specials = {names.get(rank, f"<SPECIAL_{rank}>"): rank for rank in range(num_special)}
    try:
        enc = tiktoken.Encoding(info.id, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except Exception as exc:
        raise TokenizerError(f"{info.id}: cannot build the encoding: {first_line(exc)}") from None
    return TekkenTokenizer(info, enc, cut_rule_for_pattern(pattern))


def build(info: TokenizerInfo, data: bytes, *, pattern: str | None = None,
          special_tokens: dict[str, int] | None = None, default_specials: list[str] | None = None) -> Tokenizer:
    if info.format == "tiktoken":
        if pattern is None:
            raise TokenizerError(f"{info.id}: no pre-tokenizer pattern known for this tiktoken file")
        return build_tiktoken(info, data, pattern, special_tokens or {})
    if info.format == "hf":
        return build_hf(info, data)
    if info.format == "tekken":
        return build_tekken(info, data, default_specials or [])
    raise TokenizerError(f"{info.id}: unknown tokenizer format {info.format!r}")
