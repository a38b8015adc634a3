"""The cache of bundled tokenizer files made ready to build ($XDG_CACHE_HOME/tokdeck/tokenizers):
a second load uses it and counts the same; whatever is found in it that is not intact is ignored
(the tokenizer loads from its own file and the entry is written again), never trusted or run."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.tokenizers import registry as registry_module
from tui.core.tokenizers.load_cache import cached_data, cached_ranks
from tui.core.tokenizers.registry import Registry, _manifest

SAMPLE = "Cached or not, the same counts: 你好 👍 <|endoftext|> def f(x):\r\n    return x\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "tokdeck" / "tokenizers"


def _sha(tid: str) -> str:
    return _manifest()[tid]["sha256"]


def _no_file_reads(monkeypatch):
    """From here on a load that reads a bundled file (instead of the cache) fails the test."""
    def refuse(*_):
        raise AssertionError("the bundled file was read: the cache was not used")
    monkeypatch.setattr(Registry, "_read", staticmethod(refuse))


@pytest.mark.parametrize("tid", ["r50k_base", "llama2", "mistral-tekken"])
def test_a_second_load_comes_from_the_cache_and_counts_the_same(cache, monkeypatch, tid):
    first = Registry(discover=False).get(tid)
    suffix = "ranks" if first.info.format == "tiktoken" else "data"
    assert (cache / f"{_sha(tid)}.{suffix}").is_file()
    _no_file_reads(monkeypatch)
    again = Registry(discover=False).get(tid)
    for specials in ("literal", "parse"):
        assert again.count(SAMPLE, specials) == first.count(SAMPLE, specials)


def test_o200k_harmony_shares_o200k_base_s_rank_table(cache):
    reg = Registry(discover=False)
    base, harmony = reg.get("o200k_base"), reg.get("o200k_harmony")
    assert harmony.encoding._mergeable_ranks is base.encoding._mergeable_ranks
    assert harmony.count(SAMPLE) == base.count(SAMPLE)
    assert harmony.count("<|reserved_200020|>", "parse") == 1


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "folder"])
@pytest.mark.parametrize("tid", ["p50k_base", "llama2"])
def test_a_damaged_cache_entry_is_ignored_and_written_again(cache, tid, damage):
    reference = Registry(discover=False).get(tid).count(SAMPLE)
    entry = next(cache.glob(f"{_sha(tid)}.*"))
    good = entry.read_bytes()
    if damage == "folder":
        entry.unlink()
        entry.mkdir()
    else:
        entry.write_bytes({"empty": b"", "truncated": good[: len(good) // 2],
                           "flipped": good[:100] + bytes([good[100] ^ 1]) + good[101:]}[damage])
    assert Registry(discover=False).get(tid).count(SAMPLE) == reference
    if damage != "folder":  # a folder in the way stays: only the cache is lost
        assert entry.read_bytes() == good


def test_a_cache_that_cannot_be_written_only_means_no_cache(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the cache folder would be")
    reg = Registry(discover=False)
    assert reg.get("r50k_base").count("hello world") == 2
    assert reg.get("llama2").count("hello world") == 3


def test_a_forged_rank_entry_that_names_code_is_refused_not_run(cache, tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    payload = pickle.dumps({b"a": Boom()})
    cache.mkdir(parents=True)
    (cache / f"{_sha('r50k_base')}.ranks").write_bytes(hashlib.sha256(payload).digest() + payload)
    tok = Registry(discover=False).get("r50k_base")
    assert tok.count("hello world") == 2 and not (tmp_path / "ran").exists()


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=3) | st.integers(), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200) | PLAIN.map(lambda obj: pickle.dumps(obj, protocol=5)),
       hashed=st.booleans())
def test_a_rank_entry_is_a_rank_table_or_ignored(tmp_path_factory, payload, hashed):
    folder = tmp_path_factory.mktemp("cache")
    blob = (hashlib.sha256(payload).digest() if hashed else b"\0" * 32) + payload
    (folder / "f.ranks").write_bytes(blob)
    fresh = {b"x": 0}
    got = cached_ranks(folder, "f", lambda: fresh)
    if got is not fresh:  # taken from the entry: only a table of bytes -> int that was written intact
        assert hashed and type(got) is dict and got
        assert all(type(k) is bytes and type(v) is int for k, v in got.items())


@settings(max_examples=100, deadline=None)
@given(stored=st.binary(max_size=64))
def test_a_data_entry_is_used_only_when_its_sha256_is_its_name(tmp_path_factory, stored):
    folder = tmp_path_factory.mktemp("cache")
    wanted = b"the real contents"
    name = hashlib.sha256(wanted).hexdigest()
    (folder / f"{name}.data").write_bytes(stored)
    assert cached_data(folder, name, lambda: wanted) == wanted
    assert (folder / f"{name}.data").read_bytes() == wanted


def test_the_counting_process_gets_the_cache_folder():
    settings_ = Registry(env={"XDG_CACHE_HOME": "/somewhere"}).settings()
    assert Registry.from_settings(settings_)._cache_folder() == registry_module.cache_dir(
        {"XDG_CACHE_HOME": "/somewhere"}) / "tokenizers"
