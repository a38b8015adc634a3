"""Broken tokenizer files made from the real bundled ones, for the tests of every entry point
(CLI, service, dashboard). Import as `from corrupt_tokenizers import ...` (tests/ is on sys.path).

Each entry of ``CORRUPT`` is a file name (its stem is the tokenizer id discovery gives it) and a
fragment of the one-line error it must produce. Before the loaders validated their input, the
tiktoken ones made tiktoken's Rust core panic (a PanicException, which ``except Exception``
misses), the prefix one aborted the whole process inside tokenizers, and the empty special
token made every "parse" count loop forever.
"""

from __future__ import annotations

import base64
import json
import lzma
import os
import random
from pathlib import Path

from tui.core.tokenizers.registry import DATA_DIR


def bundled_bytes(file: str) -> bytes:
    return lzma.decompress((DATA_DIR / file).read_bytes())


def _rank_lines() -> list[bytes]:
    return bundled_bytes("r50k_base.tiktoken.xz").splitlines()


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def duplicate_rank() -> bytes:
    """Line 301 takes the rank of line 300: two tokens of rank 299."""
    lines = _rank_lines()
    lines[300] = lines[300].split()[0] + b" " + lines[299].split()[1]
    return _join(lines)


def missing_rank() -> bytes:
    """A line lost in the middle: rank 1000 has no token (a rank gap)."""
    lines = _rank_lines()
    del lines[1000]
    return _join(lines)


def missing_byte() -> bytes:
    """The single byte 0x01 loses its token (another token takes its rank): any text holding
    that byte made tiktoken panic while encoding."""
    lines = _rank_lines()
    i = next(n for n, line in enumerate(lines) if base64.b64decode(line.split()[0]) == b"\x01")
    lines[i] = base64.b64encode(b"\x01\x01\x01 tokdeck") + b" " + lines[i].split()[1]
    return _join(lines)


def token_twice() -> bytes:
    lines = _rank_lines()
    lines[500] = lines[400].split()[0] + b" " + lines[500].split()[1]
    return _join(lines)


def bad_base64() -> bytes:
    lines = _rank_lines()
    lines[10] = b"SGV!bG8= 10"
    return _join(lines)


def truncated_json() -> bytes:
    data = bundled_bytes("llama2.tokenizer.json.xz")
    return data[: len(data) // 2]


def prefix_merges() -> bytes:
    """A byte-level BPE given a continuing_subword_prefix its merges do not carry: tokenizers
    cut "Ġ" in the middle of its UTF-8 bytes and aborted the process (SIGABRT)."""
    doc = json.loads(bundled_bytes("claude-legacy.tokenizer.json.xz"))
    doc["model"]["continuing_subword_prefix"] = "x"
    return json.dumps(doc).encode()


def empty_special_token() -> bytes:
    """A small Tekken file (r50k's first 1,000 tokens) whose special token 1 is the empty string."""
    vocab = [{"rank": i, "token_bytes": line.split()[0].decode(), "token_str": None}
             for i, line in enumerate(_rank_lines()[:1000])]
    specials = [{"rank": 0, "token_str": "<unk>"}, {"rank": 1, "token_str": ""}, {"rank": 2, "token_str": "</s>"}]
    config = {"pattern": r"\s+|\S+", "default_vocab_size": 1003, "default_num_special_tokens": 3}
    return json.dumps({"config": config, "vocab": vocab, "special_tokens": specials}).encode()


#: file name -> (content maker, fragment of its error)
CORRUPT = {
    "duprank.tiktoken": (duplicate_rank, "rank 299 is given to two tokens"),
    "rankgap.tiktoken": (missing_rank, "no token has rank 1000"),
    "nobyte.tiktoken": (missing_byte, "no token for the byte 0x01"),
    "twice.tiktoken": (token_twice, "line 501 is listed twice"),
    "badb64.tiktoken": (bad_base64, "line 11"),
    "truncated.json": (truncated_json, "truncated or corrupt JSON"),
    "prefix.json": (prefix_merges, "does not start with the model's continuing_subword_prefix 'x'"),
    "wrongshape.json": (lambda: b'{"model": [1, 2], "added_tokens": []}', '"model" must be an object, not an array'),
    "emptyspecial.json": (empty_special_token, "a special token must be a non-empty string"),
    "zero.json": (lambda: b"", "empty file"),
    "random.json": (lambda: random.Random(5).randbytes(4096), "not a recognised tokenizer file"),
}


def write_corrupt_tokenizers(folder: Path) -> dict[str, str]:
    """Every corrupt file in ``folder`` (plus a FIFO, which must not block discovery); returns
    tokenizer id -> error fragment."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (make, fragment) in CORRUPT.items():
        (folder / name).write_bytes(make())
        expected[name.split(".")[0]] = fragment
    os.mkfifo(folder / "fifo.json")
    expected["fifo"] = "not a regular file"
    return expected
