"""Discovery from fabricated HF and tiktoken caches, the user store and TOKDECK_TOKENIZER_PATH."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from tui.core.errors import TokenizerError
from tui.core.tokenizers import Registry, add_to_store, count_texts
from tui.core.tokenizers.registry import TIKTOKEN_CACHE_NAMES

SAMPLE = "Discovery works offline: 你好 👍 <|endoftext|>\r\n"


def make_hf_cache(hub, org, name, tokenizer_file, commit="0123abcd", use_ref=True):
    """The hub cache layout: blobs/, snapshots/<commit>/tokenizer.json -> ../../blobs/<hash>, refs/main."""
    repo = hub / f"models--{org}--{name}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / commit).mkdir(parents=True)
    blob = repo / "blobs" / "deadbeef"
    shutil.copyfile(tokenizer_file, blob)
    os.symlink("../../blobs/deadbeef", repo / "snapshots" / commit / "tokenizer.json")
    if use_ref:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    return repo


def test_hf_cache_snapshot_becomes_org_name(isolated_env, raw_files, bundled):
    hub = isolated_env / "hf" / "hub"
    make_hf_cache(hub, "acme", "Tiny-Chat", raw_files["llama2"])
    make_hf_cache(hub, "acme", "NoRef", raw_files["claude-legacy"], use_ref=False)
    (hub / "models--acme--WeightsOnly" / "snapshots" / "c1").mkdir(parents=True)
    reg = Registry()
    info = reg.info("acme/Tiny-Chat")
    assert info.source == "hf-cache" and info.format == "hf"
    assert reg.get("acme/Tiny-Chat").count(SAMPLE) == bundled.get("llama2").count(SAMPLE)
    assert reg.get("acme/NoRef").count(SAMPLE) == bundled.get("claude-legacy").count(SAMPLE)
    assert "acme/WeightsOnly" not in reg.ids()


def test_hf_cache_location_follows_hf_hub_cache(isolated_env, raw_files, monkeypatch, tmp_path):
    hub = tmp_path / "elsewhere"
    make_hf_cache(hub, "org", "m", raw_files["llama2"])
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert "org/m" in Registry().ids()


def test_tiktoken_cache_files_are_found_and_verified(isolated_env, raw_files, bundled):
    cache = isolated_env / "tiktoken"
    names = {enc: sha1 for sha1, enc in TIKTOKEN_CACHE_NAMES.items()}
    shutil.copyfile(raw_files["cl100k_base"], cache / names["cl100k_base"])
    corrupt = raw_files["p50k_base"].read_bytes()[:-100]
    (cache / names["p50k_base"]).write_bytes(corrupt)
    reg = Registry()
    assert reg.info("cl100k_base@tiktoken-cache").source == "tiktoken-cache"
    assert reg.get("cl100k_base@tiktoken-cache").encode(SAMPLE) == bundled.get("cl100k_base").encode(SAMPLE)
    with pytest.raises(TokenizerError, match="sha256 mismatch"):
        reg.get("p50k_base@tiktoken-cache")
    # a broken entry never stops the others
    rows = {r.tokenizer_id: r for r in count_texts(reg, ["p50k_base@tiktoken-cache", "cl100k_base"], SAMPLE)}
    assert rows["p50k_base@tiktoken-cache"].error and rows["cl100k_base"].tokens


def test_tokenizer_path_folder_with_good_and_broken_files(isolated_env, raw_files, monkeypatch, tmp_path, bundled):
    folder = tmp_path / "toks"
    folder.mkdir()
    shutil.copyfile(raw_files["qwen3"], folder / "house-model.json")
    (folder / "truncated.json").write_bytes(raw_files["llama2"].read_bytes()[:50000])
    (folder / "notes.txt").write_text("not a tokenizer")
    snap = folder / "tekken-model"
    snap.mkdir()
    shutil.copyfile(raw_files["mistral-tekken"], snap / "tekken.json")
    monkeypatch.setenv("TOKDECK_TOKENIZER_PATH", str(folder))
    reg = Registry()
    assert reg.get("house-model").count(SAMPLE) == bundled.get("qwen3").count(SAMPLE)
    assert reg.get("tekken-model").count(SAMPLE) == bundled.get("mistral-tekken").count(SAMPLE)
    assert "notes" not in reg.ids()
    with pytest.raises(TokenizerError, match="truncated"):
        reg.get("truncated")
    assert reg.get("cl100k_base").count("ok") == 1


def test_missing_tokenizer_path_folder_is_a_problem_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKDECK_TOKENIZER_PATH", str(tmp_path / "nope"))
    reg = Registry()
    assert "cl100k_base" in reg.ids()
    assert any("does not exist" in p for p in reg.problems)


def test_store_add_sniffs_content_not_names(isolated_env, raw_files, tmp_path, bundled):
    # a tiktoken rank file under the ambiguous name tokenizer.model, like Llama 3's original
    model_dir = tmp_path / "orig"
    model_dir.mkdir()
    shutil.copyfile(raw_files["o200k_base"], model_dir / "tokenizer.model")
    info = add_to_store(model_dir / "tokenizer.model", "my-o200k")
    assert info.format == "tiktoken"
    # an HF tokenizer.json saved with a misleading name
    shutil.copyfile(raw_files["llama2"], tmp_path / "weights.tiktoken")
    assert add_to_store(tmp_path / "weights.tiktoken", "house-llama").format == "hf"
    reg = Registry()
    assert reg.info("my-o200k").source == "user"
    assert reg.get("my-o200k").encode(SAMPLE) == bundled.get("o200k_base").encode(SAMPLE)
    assert reg.get("house-llama").count(SAMPLE) == bundled.get("llama2").count(SAMPLE)


def test_store_add_hf_snapshot_folder_takes_org_name(isolated_env, raw_files, tmp_path, bundled):
    repo = make_hf_cache(tmp_path / "hub", "acme", "Small", raw_files["claude-legacy"])
    info = add_to_store(repo / "snapshots" / "0123abcd")
    assert info.id == "acme/Small"
    assert Registry().get("acme/Small").count(SAMPLE) == bundled.get("claude-legacy").count(SAMPLE)


def test_store_add_refuses_bad_input(isolated_env, raw_files, tmp_path):
    (tmp_path / "broken.json").write_text('{"model": {"type": "BPE", "vocab": ')
    with pytest.raises(TokenizerError, match="not a valid tokenizer.json"):
        add_to_store(tmp_path / "broken.json")
    (tmp_path / "sp.model").write_bytes(b"\x0a\x09\x0a\x05<unk>\x15\x00\x00\x00\x00\x18\x02" * 10)
    with pytest.raises(TokenizerError, match="SentencePiece"):
        add_to_store(tmp_path / "sp.model")
    with pytest.raises(TokenizerError, match="no such file"):
        add_to_store(tmp_path / "missing.json")
    with pytest.raises(TokenizerError, match="exists already"):
        add_to_store(raw_files["llama2"], "qwen3")
    assert not any((isolated_env / "data").rglob("tokdeck.json"))


def test_store_entry_hash_is_verified(isolated_env, raw_files, tmp_path):
    add_to_store(raw_files["llama2"], "stored")
    meta_path = next((isolated_env / "data").rglob("tokdeck.json"))
    stored = meta_path.parent / json.loads(meta_path.read_text())["file"]
    stored.write_bytes(stored.read_bytes().replace(b'"<unk>"', b'"<UNK>"', 1))
    with pytest.raises(TokenizerError, match="sha256 mismatch"):
        Registry().get("stored")


def test_each_tokenizer_loads_once_even_from_many_threads(monkeypatch):
    from tui.core.tokenizers import loaders

    calls = []
    real = loaders.build_tiktoken

    def counting_build(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(loaders, "build_tiktoken", counting_build)
    reg = Registry(discover=False)
    got = []
    threads = [threading.Thread(target=lambda: got.append(reg.get("p50k_base"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(t) for t in got}) == 1


def test_unknown_id_suggests_a_close_one():
    with pytest.raises(TokenizerError, match="did you mean 'cl100k_base'"):
        Registry(discover=False).info("cl100k")
