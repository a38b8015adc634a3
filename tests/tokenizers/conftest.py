"""Fixtures for tokenizer tests: the bundled files uncompressed, and the libraries' own loaders."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from tui.core.tokenizers.registry import DATA_DIR, TIKTOKEN_CACHE_NAMES, _manifest


@pytest.fixture(scope="session")
def raw_files(tmp_path_factory) -> dict[str, Path]:
    """Every bundled tokenizer file, uncompressed, by tokenizer id."""
    out = tmp_path_factory.mktemp("raw")
    files = {}
    for tid, entry in _manifest().items():
        name = entry["file"].removesuffix(".xz")
        dest = out / name
        if not dest.exists():
            dest.write_bytes(lzma.decompress((DATA_DIR / entry["file"]).read_bytes()))
        files[tid] = dest
    return files


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory, raw_files) -> Path:
    """A tiktoken download cache holding the bundled rank files under tiktoken's own names."""
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for sha1, enc in TIKTOKEN_CACHE_NAMES.items():
        shutil.copyfile(raw_files[enc], cache / sha1)
    return cache


@pytest.fixture
def tiktoken_reference(tiktoken_cache, monkeypatch):
    """tiktoken.get_encoding, served from the prepared cache (a cache miss would hit the blocked network)."""
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    return tiktoken.get_encoding
