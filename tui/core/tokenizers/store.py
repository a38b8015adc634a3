"""The user tokenizer store: ``tokdeck tokenizers add PATH [--id ID]``.

Each entry is a folder ``<store>/<id with / as -->/`` holding a copy of the tokenizer file
and ``tokdeck.json`` (id, format, file, sha256, where it was added from). The file is
loaded, and counts a sample text, before it is stored, so a corrupt file is refused at the door.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from ..errors import TokenizerError
from ..paths import atomic_write_bytes, atomic_write_text, user_tokenizer_store
from .base import SPECIAL_POLICIES, TokenizerInfo
from .loaders import build, find_tokenizer_file, read_tokenizer_file
from .registry import STORE_META, Registry, _manifest, _special_tokens

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/+-]{0,127}$")
_STORED_NAMES = {"hf": "tokenizer.json", "tekken": "tekken.json", "tiktoken": "tokenizer.tiktoken"}
#: counted once with a new tokenizer before it is stored: scripts, digits, a control byte, specials
PROBE_TEXT = "Hello, world! 123 naïve 東京 👩‍💻 \x01\t\n <|endoftext|> <s>"


def _default_id(path: Path) -> str:
    if path.is_dir():
        # an HF snapshot folder: models--ORG--NAME/snapshots/<commit>
        for part in reversed(path.resolve().parts):
            if part.startswith("models--"):
                return "/".join(part.split("--")[1:])
        return path.resolve().name
    stem = path.name.split(".")[0]
    if stem in ("tokenizer", "tekken") and path.resolve().parent.name:
        return path.resolve().parent.name
    return stem


def add_to_store(path: str | Path, tokenizer_id: str | None = None, registry: Registry | None = None,
                 store: Path | None = None) -> TokenizerInfo:
    """Validate and copy a tokenizer into the user store; returns its info."""
    src = Path(path).expanduser()
    if not src.exists():
        raise TokenizerError(f"{src}: no such file or folder")
    file, fmt = find_tokenizer_file(src)
    tid = tokenizer_id or _default_id(src)
    if not _ID.match(tid):
        raise TokenizerError(f"invalid tokenizer id {tid!r}: use letters, digits and . _ @ / + -")
    reg = registry or Registry()
    if tid in reg.ids():
        raise TokenizerError(f"a tokenizer with id {tid!r} exists already ({reg.info(tid).source}); pick another with --id")
    data = read_tokenizer_file(file)
    info = reg._file_info(tid, file, fmt, "user")  # same rules as discovery (known tiktoken files)
    base = _manifest().get(info.extra.get("base") or "")
    tok = build(info, data, pattern=info.extra.get("pattern") or (base or {}).get("pattern"),
                special_tokens=_special_tokens(base) if base else None)  # raises TokenizerError if corrupt
    for specials in SPECIAL_POLICIES:  # and if it fails on text (e.g. a pattern matching the empty string)
        tok.count(PROBE_TEXT, specials)
    dest = (store or user_tokenizer_store()) / tid.replace("/", "--")
    dest.mkdir(parents=True, exist_ok=True)
    name = _STORED_NAMES[fmt]
    atomic_write_bytes(dest / name, data)
    config = file.parent / "tokenizer_config.json"
    if fmt == "hf" and config.is_file():
        shutil.copyfile(config, dest / "tokenizer_config.json")
    meta = {
        "id": tid, "format": fmt, "file": name, "sha256": hashlib.sha256(data).hexdigest(),
        "added_from": str(file.resolve()), "pattern": info.extra.get("pattern"), "base": info.extra.get("base"),
    }
    atomic_write_text(dest / STORE_META, json.dumps(meta, indent=1) + "\n")
    return TokenizerInfo(id=tid, name=tid, format=fmt, source="user", path=str(dest / name),
                         sha256=meta["sha256"], note=info.note)
