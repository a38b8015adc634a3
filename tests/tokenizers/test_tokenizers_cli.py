"""`tokdeck count` and `tokdeck tokenizers ...` as a user runs them (subprocesses, network guarded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tokdeck_testing import REPO, run_cli, subprocess_env

TEXT = "Counting offline: 你好，世界 👩‍💻 <|endoftext|>\r\nnext line\n"


def _env(home):
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
            "HF_HOME": str(home / "hf"), "TIKTOKEN_CACHE_DIR": str(home / "tiktoken")}


def test_count_json_matches_core(isolated_env, bundled, tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(TEXT.encode())
    proc = run_cli("count", "--json", "-t", "cl100k_base", "-t", "qwen3", "-t", "estimate", str(f), env=_env(isolated_env))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"] == {tid: bundled.get(tid).count(TEXT) for tid in ("cl100k_base", "qwen3", "estimate")}
    assert out["chars"] == len(TEXT) and out["estimates"] == ["estimate"] and out["errors"] == {}


def test_count_parse_policy_and_model_names(isolated_env, bundled):
    proc = run_cli("count", "--json", "--specials", "parse", "-t", "gpt-4o", "-", input=TEXT, env=_env(isolated_env))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"] == {"o200k_base": bundled.get("o200k_base").count(TEXT, "parse")}


def test_count_default_table_lists_every_bundled_tokenizer(isolated_env, bundled):
    proc = run_cli("count", "-", input=TEXT, env=_env(isolated_env))
    assert proc.returncode == 0, proc.stderr
    for tid in bundled.ids(include_discovered=False):
        line = next(l for l in proc.stdout.splitlines() if l.split() and l.split()[0] == tid)
        assert int(line.split()[1]) == bundled.get(tid).count(TEXT)
    assert "approximate" in next(l for l in proc.stdout.splitlines() if l.startswith("claude-legacy"))


def test_count_enabled_tokenizers_from_config(isolated_env):
    cfg = isolated_env / "config" / "tokdeck" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[tokens]\nenabled = ["p50k_base", "llama2"]\n')
    proc = run_cli("count", "--json", "-", input="hi", env=_env(isolated_env))
    assert set(json.loads(proc.stdout)["counts"]) == {"p50k_base", "llama2"}


@pytest.mark.parametrize("args,stdin,message", [
    (["count", "/nonexistent/file.txt"], None, "no such file"),
    (["count", "-t", "cl100k", "-"], "x", "unknown tokenizer 'cl100k'"),
    (["count", "BADUTF8"], None, "not valid UTF-8 (byte 0xff at offset 3)"),
    (["count", "-"], None, None),
    (["tokenizers", "add", "/nonexistent"], None, "no such file or folder"),
    (["count", "--specials", "maybe", "-"], "x", "invalid choice"),
    (["count", "/dev/zero"], None, "/dev/zero: is a device, not a file"),  # read forever before
    (["count", "FOLDER"], None, "is a folder, not a file"),
])
def test_bad_input_is_one_line_never_a_traceback(isolated_env, tmp_path, args, stdin, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfe")
    args = [str(bad) if a == "BADUTF8" else str(tmp_path) if a == "FOLDER" else a for a in args]
    proc = run_cli(*args, input=stdin if stdin is not None else b"", env=_env(isolated_env))
    assert "Traceback" not in proc.stderr
    if message is None:  # empty stdin is an empty text: zero tokens, not an error
        assert proc.returncode == 0
        return
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_count_reads_a_pipe_to_its_end_and_stops_at_the_read_limit(tmp_path):
    import os
    import threading

    from tui.core.errors import TokdeckError
    from tui.core.paths import read_file_bytes

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write(data: bytes) -> None:
        with open(fifo, "wb") as fh:
            fh.write(data)

    for data, limit in ((b"hello pipe", 100), (b"x" * 4096, 1000)):
        writer = threading.Thread(target=write, args=(data,))
        writer.start()
        try:
            if len(data) <= limit:
                assert read_file_bytes(fifo, limit=limit) == data
            else:
                with pytest.raises(TokdeckError, match="larger than 1.0 KB"):
                    read_file_bytes(fifo, limit=limit)
        finally:
            writer.join(5)


def test_broken_user_tokenizer_never_stops_the_others(isolated_env, tmp_path):
    folder = tmp_path / "toks"
    folder.mkdir()
    (folder / "broken.json").write_text('{"model": {"type": "BPE"}, "added_tokens": [')
    env = {**_env(isolated_env), "TOKDECK_TOKENIZER_PATH": str(folder)}
    proc = run_cli("count", "--json", "--all", "-", input="hello", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "broken" in out["errors"] and out["counts"]["cl100k_base"] == 1
    named = run_cli("count", "-t", "broken", "-t", "cl100k_base", "-", input="hello", env=env)
    assert named.returncode == 1 and "broken" in named.stderr
    doctor = run_cli("tokenizers", "doctor", env=env)
    assert doctor.returncode == 1
    assert "FAIL  broken:" in doctor.stdout and "1 tokenizer(s) failed" in doctor.stdout


def test_list_json_fields(isolated_env):
    proc = run_cli("tokenizers", "list", "--json", env=_env(isolated_env))
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert {"r50k_base", "o200k_harmony", "mistral-tekken", "gemma3", "estimate"} <= set(rows)
    for row in rows.values():
        assert {"id", "format", "source", "license", "vocab_size", "models"} <= set(row)
    assert rows["qwen3"]["source"] == "bundled" and rows["qwen3"]["license"] == "Apache-2.0"
    assert rows["o200k_base"]["vocab_size"] == 200019
    assert rows["estimate"]["source"] == "builtin"


def test_doctor_passes_on_a_clean_install(isolated_env):
    proc = run_cli("tokenizers", "doctor", env=_env(isolated_env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == 13
    assert not (isolated_env / ".cache" / "tokdeck").exists()  # it read the installed files, not a cache


def test_add_then_count(isolated_env, raw_files):
    env = _env(isolated_env)
    added = run_cli("tokenizers", "add", str(raw_files["llama2"]), "--id", "team/llama-copy", env=env)
    assert added.returncode == 0, added.stderr
    proc = run_cli("count", "--json", "-t", "team/llama-copy", "-t", "llama2", "-", input=TEXT, env=env)
    counts = json.loads(proc.stdout)["counts"]
    assert counts["team/llama-copy"] == counts["llama2"]
    again = run_cli("tokenizers", "add", str(raw_files["llama2"]), "--id", "team/llama-copy", env=env)
    assert again.returncode == 2 and "exists already" in again.stderr


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_count_all_works_with_no_network_at_all(isolated_env, tmp_path):
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    env = {**subprocess_env(_env(isolated_env))}
    env.pop("PYTHONPATH")  # no network guard needed: the namespace has no network
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(["unshare", "--net", sys.executable, "-m", "tui.cli", "count", "--all", "--json", "-"],
                          input=TEXT.encode(), capture_output=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    counts = json.loads(proc.stdout)["counts"]
    assert len(counts) >= 13 and all(isinstance(v, int) for v in counts.values())


def test_help_is_instant_and_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "count" in proc.stdout and "tokenizers" in proc.stdout
