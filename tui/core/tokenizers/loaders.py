"""Build tokenizers from local bytes: tiktoken rank files, HF tokenizer.json, Mistral tekken.json.

Pure local loads only. tiktoken's ``get_encoding`` and ``load_tiktoken_bpe`` are never used
(the first downloads on a cache miss, the second writes a cache copy); HF's
``from_pretrained`` is never used.

A tokenizer file is outside input. What the Rust libraries would panic on (or abort the whole
process on) is checked here first, with a one-line TokenizerError: a tiktoken vocabulary with
two tokens of one rank, a rank missing, a byte without a token, an empty special token; a
tokenizer.json that is not a JSON object with a ``model`` object, or whose BPE merges do not
carry its ``continuing_subword_prefix``. Whatever still panics is turned into a TokenizerError
by ``PanicGuard``.
"""

from __future__ import annotations

import binascii
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import TokenizerError
from .base import HFTokenizer, PanicGuard, TekkenTokenizer, TiktokenTokenizer, Tokenizer, TokenizerInfo, first_line
from .cuts import cut_rule_for_hf, cut_rule_for_pattern

FORMATS = ("tiktoken", "hf", "tekken")

# The pattern assumed for a tiktoken-format file whose origin is unknown (cl100k's, which
# Llama 3's original tokenizer.model and most tiktoken-format files use).
DEFAULT_TIKTOKEN_PATTERN_ID = "cl100k_base"

#: the largest tokenizer file read (the biggest known, Gemma 3's tokenizer.json, is 33 MB)
MAX_FILE_BYTES = 256 << 20
#: special tokens a Tekken file may declare (Mistral's have 1,000)
MAX_TEKKEN_SPECIALS = 1 << 16

_RANK_LINE = re.compile(rb"^[A-Za-z0-9+/]+={0,2}[ \t]+\d+\s*$")
_HEAD = 64 * 1024


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


def _regular_file_size(path: Path) -> int:
    """The size of ``path``, refusing what is not a regular file (a folder, a FIFO that would block
    the read forever, a device) and files too big to be a tokenizer."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TokenizerError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TokenizerError(f"{path}: not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise TokenizerError(f"{path}: {st.st_size / (1 << 20):,.0f} MB is too big for a tokenizer file "
                             f"(limit {MAX_FILE_BYTES >> 20} MB)")
    return st.st_size


def read_tokenizer_file(path: Path) -> bytes:
    """A tokenizer file's bytes; TokenizerError (one line) if it cannot be one."""
    _regular_file_size(path)
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenizerError(f"{path}: {exc.strerror or exc}") from None


def sniff_file(path: Path) -> str:
    if not _regular_file_size(path):
        raise TokenizerError(f"{path}: empty file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        raise TokenizerError(f"{path}: {exc.strerror or exc}") from None
    try:
        return sniff_bytes(head)
    except TokenizerError as exc:
        raise TokenizerError(f"{path}: {exc}") from None


def parse_rank_file(data: bytes, origin: str) -> dict[bytes, int]:
    """Parse tiktoken's ``base64(token) rank`` lines into mergeable ranks (strict base64; each
    token listed once)."""
    ranks: dict[bytes, int] = {}
    b64 = binascii.a2b_base64
    entries = 0
    for n, line in enumerate(data.splitlines(), 1):
        if not line:
            continue
        try:
            encoded, rank = line.split()
            ranks[b64(encoded, strict_mode=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise TokenizerError(f"{origin}: corrupt tiktoken rank file at line {n}: {line[:60]!r}") from None
        entries += 1
    if not ranks:
        raise TokenizerError(f"{origin}: empty tiktoken rank file")
    if len(ranks) != entries:  # a token listed twice: find it for the message
        seen: set[bytes] = set()
        for n, line in enumerate(data.splitlines(), 1):
            if not line:  # skipped above too; not a token
                continue
            token = b64(line.split()[0], strict_mode=True)
            if token in seen:
                raise TokenizerError(f"{origin}: corrupt tiktoken rank file: the token of line {n} is listed twice")
            seen.add(token)
    return ranks


def check_ranks(ranks: Mapping[bytes, int], origin: str, special_ids: Iterable[int] = ()) -> None:
    """Refuse a tiktoken vocabulary tiktoken cannot use: two tokens of one rank (its Rust core
    panics), an empty token, a negative rank, a rank missing below the highest one and not taken
    by a special token (a line lost), or a byte without a token of its own (encoding any text
    holding that byte panics)."""
    taken = set(ranks.values())
    if len(taken) != len(ranks):
        seen: set[int] = set()
        for rank in ranks.values():
            if rank in seen:
                raise TokenizerError(f"{origin}: corrupt tiktoken vocabulary: rank {rank} is given to two tokens")
            seen.add(rank)
    if b"" in ranks:
        raise TokenizerError(f"{origin}: corrupt tiktoken vocabulary: an empty token (rank {ranks[b'']})")
    lowest, highest = min(taken), max(taken)
    if lowest < 0:
        raise TokenizerError(f"{origin}: corrupt tiktoken vocabulary: negative rank {lowest}")
    if highest >= len(taken):  # some ranks below the highest are missing: each must be a special token's
        ids = taken | {i for i in special_ids if 0 <= i < highest}
        if len(ids) <= highest:
            missing = next(i for i, have in enumerate(sorted(ids)) if i != have)
            raise TokenizerError(f"{origin}: corrupt tiktoken vocabulary: no token has rank {missing} "
                                 f"(ranks go up to {highest})")
    byte = next((b for b in range(256) if bytes((b,)) not in ranks), None)
    if byte is not None:
        raise TokenizerError(f"{origin}: incomplete tiktoken vocabulary: no token for the byte 0x{byte:02x} "
                             "(a byte-level BPE needs one for each of the 256)")


def check_special_tokens(specials: Mapping[str, int], origin: str) -> None:
    """Special tokens must be non-empty strings with ids >= 0 (tiktoken loops forever on an
    empty one)."""
    for text, rank in specials.items():
        if not isinstance(text, str) or not text:
            raise TokenizerError(f"{origin}: a special token must be a non-empty string, not {text!r}")
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise TokenizerError(f"{origin}: special token {text!r} has an invalid id {rank!r}")


def build_tiktoken(info: TokenizerInfo, ranks: dict[bytes, int], pattern: str,
                   special_tokens: dict[str, int]) -> Tokenizer:
    import tiktoken

    check_special_tokens(special_tokens, info.id)
    check_ranks(ranks, info.id, special_tokens.values())
    try:
        enc = tiktoken.Encoding(info.id, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)
    except Exception as exc:  # tiktoken raises ValueError or pyo3 errors for inconsistent input
        raise TokenizerError(f"{info.id}: cannot build the encoding: {first_line(exc)}") from None
    return TiktokenTokenizer(info, enc, cut_rule_for_pattern(pattern))


#: tokenizer.json components, and the key of the list a Sequence of each holds
_COMPONENTS = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers", "post_processor": "processors",
               "decoder": "decoders"}


def check_hf_json(data: bytes, origin: str) -> None:
    """What tokenizers cannot survive in a tokenizer.json, checked in Python first: it must be a
    JSON object with a ``model`` object; each component (normalizer, pre_tokenizer, ...) null or
    an object with a ``type`` (tokenizers would take an array for some other component: ``[""]``
    becomes a Prepend that panics while encoding); and a BPE model with a
    ``continuing_subword_prefix`` must have that prefix on the second part of every merge
    (tokenizers slices it off without looking: a panic, or an abort of the whole process when the
    cut falls inside a character). The rest (types, vocabulary) tokenizers checks itself."""
    import orjson

    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TokenizerError(f"{origin}: not a valid tokenizer.json (truncated or corrupt JSON): "
                             f"{first_line(exc)}") from None
    if not isinstance(doc, dict):
        raise TokenizerError(f"{origin}: not a valid tokenizer.json: the top level must be an object, "
                             f"not {_json_type(doc)}")
    model = doc.get("model")
    if not isinstance(model, dict):
        raise TokenizerError(f"{origin}: not a valid tokenizer.json: \"model\" must be an object, "
                             f"not {_json_type(model)}")
    for key, sequence_key in _COMPONENTS.items():
        _check_component(doc.get(key), key, sequence_key, origin)
    prefix = model.get("continuing_subword_prefix")
    merges = model.get("merges")
    if model.get("type", "BPE") != "BPE" or not isinstance(prefix, str) or not prefix or not isinstance(merges, list):
        return
    for i, merge in enumerate(merges):
        parts = merge.split(" ") if isinstance(merge, str) else merge
        if isinstance(parts, list) and len(parts) == 2 and isinstance(parts[1], str) and not parts[1].startswith(prefix):
            raise TokenizerError(f"{origin}: not a valid tokenizer.json: merge {i} ({parts[1]!r}) does not start "
                                 f"with the model's continuing_subword_prefix {prefix!r}")


def _check_component(value: Any, where: str, sequence_key: str, origin: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise TokenizerError(f"{origin}: not a valid tokenizer.json: {where} must be null or an object with a "
                             f"\"type\", not {_json_type(value)}")
    if value["type"] == "Sequence":
        parts = value.get(sequence_key)
        if not isinstance(parts, list):
            raise TokenizerError(f"{origin}: not a valid tokenizer.json: {where}.{sequence_key} must be an array")
        for i, part in enumerate(parts):
            _check_component(part, f"{where}.{sequence_key}[{i}]", sequence_key, origin)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def build_hf(info: TokenizerInfo, data: bytes, verified: bool = False) -> Tokenizer:
    from tokenizers import Tokenizer as HFRaw

    if not verified:  # a bundled or stored file whose sha256 matched was checked when it was made
        check_hf_json(data, info.id)
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
        if not isinstance(pattern, str):
            raise TypeError("config.pattern must be a string")
        if not 0 <= num_special <= min(vocab_size, MAX_TEKKEN_SPECIALS):
            raise ValueError(f"{num_special} special tokens for a vocabulary of {vocab_size}")
        inner = model["vocab"][: vocab_size - num_special]
        b64 = binascii.a2b_base64
        ranks = {b64(entry["token_bytes"], strict_mode=True): int(entry["rank"]) for entry in inner}
        listed = model.get("special_tokens") or []
        names = {int(t["rank"]): t["token_str"] for t in listed} if listed else dict(enumerate(default_specials))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error) as exc:
        raise TokenizerError(f"{info.id}: not a valid tekken.json: {first_line(exc)}") from None
    if len(ranks) != vocab_size - num_special:
        raise TokenizerError(f"{info.id}: tekken vocabulary is shorter than its config says")
    check_ranks(ranks, info.id)
    # Shift every rank past the special block: merge order is unchanged, ids match mistral-common.
    ranks = {token: rank + num_special for token, rank in ranks.items()}
    specials = {names.get(rank, f"<SPECIAL_{rank}>"): rank for rank in range(num_special)}
    check_special_tokens(specials, info.id)
    try:
        enc = tiktoken.Encoding(info.id, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    except Exception as exc:
        raise TokenizerError(f"{info.id}: cannot build the encoding: {first_line(exc)}") from None
    return TekkenTokenizer(info, enc, cut_rule_for_pattern(pattern))


def build(info: TokenizerInfo, data: bytes, *, pattern: str | None = None,
          special_tokens: dict[str, int] | None = None, default_specials: list[str] | None = None,
          verified: bool = False, ranks: dict[bytes, int] | None = None) -> Tokenizer:
    """The tokenizer from a file's bytes; TokenizerError (one line) if they are not a usable one.
    ``verified``: the bytes matched a known sha256 (the JSON pre-check of tokenizer.json is skipped).
    ``ranks``: a tiktoken file's ranks parsed already (``data`` is then not read)."""
    with PanicGuard(info.id):
        if info.format == "tiktoken":
            if not isinstance(pattern, str):
                raise TokenizerError(f"{info.id}: no pre-tokenizer pattern known for this tiktoken file")
            if ranks is None:
                ranks = parse_rank_file(data, info.id)
            return build_tiktoken(info, ranks, pattern, special_tokens or {})
        if info.format == "hf":
            return build_hf(info, data, verified)
        if info.format == "tekken":
            return build_tekken(info, data, default_specials or [])
    raise TokenizerError(f"{info.id}: unknown tokenizer format {info.format!r}")
