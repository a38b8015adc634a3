"""Broken tokenizer files, made from the bundled ones: each shows its one-line error, at every
entry point that loads or uses tokenizers, and never stops the others.

Before the loaders validated their input, the tiktoken files made tiktoken's Rust core panic
(PanicException derives from BaseException, so every `except Exception` missed it and the CLI
printed a 90-line backtrace), the prefix file aborted the whole process inside tokenizers, and
the empty special token made "parse" counts loop forever.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corrupt_tokenizers import CORRUPT, bundled_bytes, empty_special_token, write_corrupt_tokenizers
from tokdeck_testing import run_cli
from tui.core.errors import TokenizerError
from tui.core.tokenizers import Registry, add_to_store, count_texts
from tui.core.tokenizers.base import TokenizerInfo
from tui.core.tokenizers.loaders import build, parse_rank_file

TEXT = "Counting offline: 你好 \x01 <|endoftext|>\n"


@pytest.fixture(scope="module")
def corrupt_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrupt") / "toks"
    return folder, write_corrupt_tokenizers(folder)


def _env(home, folder=None):
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
           "HF_HOME": str(home / "hf"), "TIKTOKEN_CACHE_DIR": str(home / "tiktoken")}
    if folder is not None:
        env["TOKDECK_TOKENIZER_PATH"] = str(folder)
    return env


def _no_crash_output(stderr: str) -> None:
    assert "Traceback" not in stderr and "panicked" not in stderr and "PanicException" not in stderr


def test_each_corrupt_file_is_its_own_one_line_error(corrupt_folder, capfd):
    folder, expected = corrupt_folder
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(folder)})
    for tid, fragment in expected.items():
        with pytest.raises(TokenizerError) as err:
            reg.get(tid)
        message = str(err.value)
        assert fragment in message and message.startswith(f"{tid}: ") and "\n" not in message, message
        assert reg.failure(tid) == message
    rows = {r.tokenizer_id: r for r in count_texts(reg, ["cl100k_base", *expected], TEXT)}
    assert rows["cl100k_base"].tokens == reg.get("cl100k_base").count(TEXT)
    assert all(rows[tid].error and rows[tid].tokens is None for tid in expected)
    _no_crash_output(capfd.readouterr().err)  # nothing reached Rust: no panic message on fd 2


def test_a_valid_rank_file_with_a_special_token_in_its_rank_gap_loads(tmp_path, bundled):
    """p50k_base's ranks skip 50256, the id of <|endoftext|>: a gap a special token fills is no corruption."""
    copy = tmp_path / "toks" / "p50k-copy.tiktoken"
    copy.parent.mkdir()
    copy.write_bytes(bundled_bytes("p50k_base.tiktoken.xz"))
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(copy.parent)})
    assert reg.get("p50k-copy").count(TEXT) == bundled.get("p50k_base").count(TEXT)


def _tekken(pattern: str) -> bytes:
    doc = json.loads(empty_special_token())
    doc["special_tokens"][1]["token_str"] = "<s>"
    doc["config"]["pattern"] = pattern
    return json.dumps(doc).encode()


def test_a_panic_while_encoding_is_the_tokenizers_error(tmp_path, bundled):
    """A pattern that matches the empty string loads, then makes tiktoken panic on any text."""
    folder = tmp_path / "toks"
    folder.mkdir()
    (folder / "emptymatch.json").write_bytes(_tekken(r"\s*"))
    (folder / "fine.json").write_bytes(_tekken(r"\S+|\s+"))
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(folder)})
    tok = reg.get("emptymatch")
    for call in (lambda: tok.count("hello"), lambda: tok.encode_many(["a", "b"], "parse"),
                 lambda: tok.count_many(["x" * 300_000, "y" * 300_000])):
        with pytest.raises(TokenizerError, match=r"^emptymatch: the tokenizer library failed: "):
            call()
    rows = count_texts(reg, ["emptymatch", "fine", "cl100k_base"], "hello world")
    assert [r.tokens is None for r in rows] == [True, False, False]
    assert rows[0].error.startswith("emptymatch: the tokenizer library failed")


def test_add_refuses_a_tokenizer_that_fails_on_text(tmp_path, isolated_env):
    (tmp_path / "emptymatch.json").write_bytes(_tekken(r"\s*"))
    with pytest.raises(TokenizerError, match=r"^emptymatch: the tokenizer library failed: "):
        add_to_store(tmp_path / "emptymatch.json")
    assert not any((isolated_env / "data").rglob("tokdeck.json"))
    (tmp_path / "fine.json").write_bytes(_tekken(r"\S+|\s+"))
    assert add_to_store(tmp_path / "fine.json").id == "fine"


def test_a_tokenizer_config_nested_too_deeply_is_no_template(tmp_path):
    from tui.core.tokenizers.chat import chat_method

    folder = tmp_path / "toks" / "deepconfig"
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_bytes(bundled_bytes("llama2.tokenizer.json.xz"))
    (folder / "tokenizer_config.json").write_text("[" * 100_000 + "]" * 100_000)
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": str(folder.parent)})
    assert chat_method(reg.info("deepconfig")) == "sum_of_contents"


def test_tokenizer_path_entries_that_are_not_files(tmp_path, bundled):
    folder = tmp_path / "toks"
    (folder / "adir.json").mkdir(parents=True)  # a folder with a tokenizer's name: no tokenizer inside
    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("x")
    reg = Registry(env={"TOKDECK_TOKENIZER_PATH": f"{folder}:{not_a_folder}"})
    assert "no tokenizer.json" in reg.info("adir.json").error
    assert any("plain-file: TOKDECK_TOKENIZER_PATH folder is not a folder" in p for p in reg.problems)
    assert reg.get("cl100k_base").count("hi") == 1


@pytest.mark.parametrize("meta, fragment", [
    ({"id": 5, "format": "hf", "file": "tokenizer.json"}, "'id' must be a non-empty string"),
    ({"id": "x", "format": "sentencepiece", "file": "tokenizer.json"}, "unknown format"),
    ({"id": "x", "format": "hf", "file": "../../elsewhere.json"}, "must name a file in the entry's folder"),
    ({"id": "x", "format": "tiktoken", "file": "t.tiktoken", "pattern": 7}, "'pattern' must be a string"),
    ({"id": "x", "format": "tiktoken", "file": "t.tiktoken", "base": "gpt9"}, "names no bundled tokenizer"),
    ([1, 2], "not a JSON object"),
])
def test_hand_edited_store_entries_are_skipped_with_a_reason(isolated_env, meta, fragment):
    entry = isolated_env / "data" / "tokdeck" / "tokenizers" / "x"
    entry.mkdir(parents=True)
    (entry / "tokdeck.json").write_text(json.dumps(meta))
    reg = Registry()
    assert "x" not in reg.ids()
    assert any("unreadable store entry" in p and fragment in p for p in reg.problems), reg.problems


def test_add_refuses_every_corrupt_file_and_stores_nothing(corrupt_folder, isolated_env, capfd):
    folder, expected = corrupt_folder
    for name in CORRUPT:
        tid = name.split(".")[0]
        with pytest.raises(TokenizerError) as err:
            add_to_store(folder / name, f"copy-{tid}")
        assert expected[tid] in str(err.value)
    assert not any((isolated_env / "data").rglob("tokdeck.json"))
    _no_crash_output(capfd.readouterr().err)


# ------------------------------------------------------------------ the CLI, as a user runs it
def test_list_shows_each_broken_tokenizer_in_its_row(corrupt_folder, isolated_env):
    folder, expected = corrupt_folder
    proc = run_cli("tokenizers", "list", env=_env(isolated_env, folder))
    assert proc.returncode == 0, proc.stderr
    _no_crash_output(proc.stderr)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.split()}
    for tid, fragment in expected.items():
        assert "ERROR: " in rows[tid] and fragment in rows[tid], rows.get(tid)
    assert "ERROR" not in rows["cl100k_base"] and "ERROR" not in rows["qwen3"]


def test_doctor_and_count_all_report_every_broken_one_and_count_the_rest(corrupt_folder, isolated_env, bundled):
    folder, expected = corrupt_folder
    env = _env(isolated_env, folder)
    doctor = run_cli("tokenizers", "doctor", env=env, timeout=300)
    assert doctor.returncode == 1
    _no_crash_output(doctor.stderr)
    for tid, fragment in expected.items():
        line = next(line for line in doctor.stdout.splitlines() if line.startswith(f"FAIL  {tid}: "))
        assert fragment in line
    assert f"{len(expected)} tokenizer(s) failed" in doctor.stdout
    assert "ok    qwen3 " in doctor.stdout
    count = run_cli("count", "--all", "--json", "-", input=TEXT, env=env, timeout=300)
    assert count.returncode == 0, count.stderr
    _no_crash_output(count.stderr)
    out = json.loads(count.stdout)
    assert set(out["errors"]) == set(expected)
    assert out["counts"]["qwen3"] == bundled.get("qwen3").count(TEXT)
    assert count.stderr.count("tokdeck: warning: ") == len(expected)


def test_count_with_a_broken_tokenizer_named(corrupt_folder, isolated_env, bundled):
    folder, _ = corrupt_folder
    proc = run_cli("count", "-t", "duprank", "-t", "cl100k_base", "-", input=TEXT, env=_env(isolated_env, folder))
    assert proc.returncode == 1
    _no_crash_output(proc.stderr)
    assert proc.stderr.strip() == "tokdeck: warning: duprank: corrupt tiktoken vocabulary: rank 299 is given to two tokens"
    assert str(bundled.get("cl100k_base").count(TEXT)) in proc.stdout


def test_count_survives_a_panic_while_encoding(tmp_path, isolated_env):
    folder = tmp_path / "toks"
    folder.mkdir()
    (folder / "emptymatch.json").write_bytes(_tekken(r"\s*"))
    proc = run_cli("count", "--json", "-t", "emptymatch", "-t", "cl100k_base", "-", input="hello",
                   env=_env(isolated_env, folder))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"] == {"cl100k_base": 1}
    assert out["errors"]["emptymatch"].startswith("emptymatch: the tokenizer library failed: ")


@pytest.mark.parametrize("name", ["prefix.json", "duprank.tiktoken", "emptyspecial.json"])
def test_add_is_a_one_line_error(corrupt_folder, isolated_env, name):
    """prefix.json aborted the process (SIGABRT) inside tokenizers before it was checked."""
    folder, expected = corrupt_folder
    proc = run_cli("tokenizers", "add", str(folder / name), env=_env(isolated_env))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and expected[name.split(".")[0]] in proc.stderr
    _no_crash_output(proc.stderr)


# ------------------------------------------------------------------ properties of the loaders
def _rank_file(tokens: list[bytes]) -> bytes:
    return b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(tokens))


BYTES = [bytes((b,)) for b in range(256)]
INFO = TokenizerInfo(id="prop", name="prop", format="tiktoken", source="user")
PATTERN = r"""'s|'t| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def test_a_token_listed_twice_is_named_by_its_line_past_blank_lines():
    """Blank lines are skipped; the search for the repeated token once took the second blank line for it."""
    first, second, third = (base64.b64encode(t) for t in (b"a", b"b", b"c"))
    data = b"\n".join([first + b" 0", b"", second + b" 1", b"", third + b" 2", first + b" 3"])
    with pytest.raises(TokenizerError) as err:
        parse_rank_file(data, "ranks")
    assert str(err.value) == "ranks: corrupt tiktoken rank file: the token of line 6 is listed twice"


@st.composite
def damaged_rank_files(draw):
    extra = draw(st.lists(st.binary(min_size=2, max_size=4), max_size=30, unique=True))
    lines = _rank_file(BYTES + [t for t in extra if t not in BYTES]).splitlines()
    for _ in range(draw(st.integers(0, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "rerank", "garble", "swap"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif action == "rerank":
            # a line garbled before may have no token left to rerank
            lines[i] = (lines[i].split() or [b""])[0] + b" " + str(draw(st.integers(-3, len(lines) + 3))).encode()
        elif action == "garble":
            lines[i] = draw(st.binary(max_size=12))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=damaged_rank_files(), text=st.text(max_size=40))
def test_any_damaged_rank_file_loads_and_counts_or_is_a_tokenizer_error(data, text):
    try:
        tok = build(INFO, data, pattern=PATTERN, special_tokens={"<|endoftext|>": 10_000})
    except TokenizerError as exc:
        assert "\n" not in str(exc)
        return
    # what loads counts any text: the validation leaves nothing for tiktoken to panic on
    assert tok.count(text + "\x01\xff") >= 1
    assert tok.count(text, "parse") == len(tok.encode(text, "parse"))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-5, 2**40) | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=6)
HF_FIELDS = ["type", "vocab", "merges", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
             "byte_fallback", "dropout", "fuse_unk", "ignore_merges"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(HF_FIELDS), value=JSON_VALUES | st.sampled_from(["x", "Ġ", "##", "é"]),
       top=st.sampled_from([None, "normalizer", "pre_tokenizer", "decoder", "added_tokens", "post_processor"]))
def test_a_tokenizer_json_of_the_wrong_shape_is_a_tokenizer_error(field, value, top, byte_level_json):
    doc = json.loads(byte_level_json)
    if top is None:
        doc["model"][field] = value
    else:
        doc[top] = value
    info = TokenizerInfo(id="shape", name="shape", format="hf", source="user")
    try:
        build(info, json.dumps(doc).encode()).count("hello world, Ġ 你好")
    except TokenizerError as exc:  # refused at load, or the library failed on the text (PanicGuard)
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def byte_level_json():
    """claude-legacy's tokenizer.json (a byte-level BPE, like GPT-2's), cut to its first 2,000 merges."""
    doc = json.loads(bundled_bytes("claude-legacy.tokenizer.json.xz"))
    merges = doc["model"]["merges"][:2000]
    pieces = {p for m in merges for p in (m.split(" ") if isinstance(m, str) else m)}
    merged = {"".join(m.split(" ") if isinstance(m, str) else m) for m in merges}
    keep = {t for t, i in doc["model"]["vocab"].items() if len(t) == 1 or t in pieces or t in merged}
    doc["model"]["vocab"] = {t: i for i, t in enumerate(sorted(keep))}
    doc["model"]["merges"] = merges
    doc["added_tokens"] = []
    return json.dumps(doc)
