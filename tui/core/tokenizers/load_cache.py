"""Bundled tokenizer files made ready to build, cached under $XDG_CACHE_HOME/tokdeck/tokenizers/.

Before a library builds a bundled tokenizer, its file is xz-decompressed (1.4 s for the twelve,
0.3 s for gemma3's alone) and, for tiktoken, its base64 rank lines are parsed (0.18 s for
o200k's). Both are done once per file and kept here, named by the sha256 the manifest gives for
the file's contents:

- ``<sha256>.data``: the decompressed bytes, used only when their sha256 is the name (the check
  the bundled file itself gets);
- ``<sha256>.ranks``: the sha256 of the rest, then a pickle of the rank table (token bytes ->
  rank), read by the counting wire's plain-data unpickler (no class, no code) and used only when
  the hash and the table's shape check out (the loader then validates the ranks as always).

The cache is outside input like any file: an entry missing, truncated, changed or unreadable is
ignored, the tokenizer loads from its own file, and the entry is written again (by rename, so a
reader never sees half of one). A folder that cannot be written only means no cache.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Callable

from ..paths import atomic_write_bytes
from . import wire

_HASH = 32  # bytes of a sha256 digest


def cached_data(folder: Path, sha256: str, produce: Callable[[], bytes]) -> bytes:
    """The bytes whose sha256 is ``sha256``: the cached copy if it is intact, else ``produce()``
    (which must verify them), cached for next time."""
    path = folder / f"{sha256}.data"
    data = _read(path)
    if data is not None and hashlib.sha256(data).hexdigest() == sha256:
        return data
    data = produce()
    _write(path, data)
    return data


def cached_ranks(folder: Path, sha256: str, produce: Callable[[], dict[bytes, int]]) -> dict[bytes, int]:
    """The rank table of the tiktoken file whose contents have the sha256 ``sha256``: the cached
    one if it is intact, else ``produce()``, cached for next time."""
    path = folder / f"{sha256}.ranks"
    blob = _read(path)
    if blob is not None and hashlib.sha256(blob[_HASH:]).digest() == blob[:_HASH]:
        try:
            ranks = wire.decode(blob[_HASH:])
        except wire.ProtocolError:
            ranks = None
        if _is_rank_table(ranks):
            return ranks
    ranks = produce()
    payload = pickle.dumps(ranks, protocol=5)
    _write(path, hashlib.sha256(payload).digest() + payload)
    return ranks


def _is_rank_table(obj) -> bool:
    return (type(obj) is dict and bool(obj) and all(type(k) is bytes for k in obj)
            and all(type(v) is int for v in obj.values()))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # missing, unreadable, a folder: no cache
        return None


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data, sync=False)
    except OSError:  # a read-only or full disk: loads just keep going without a cache
        pass
