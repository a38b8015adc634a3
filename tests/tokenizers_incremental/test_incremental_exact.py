"""The incremental count equals the full count after every edit, for every bundled tokenizer."""

from __future__ import annotations

import random

import pytest

from tui.core.tokenizers import bundled_ids
from tui.core.tokenizers.incremental import UNCHANGED, EditLog, IncrementalCounter, window_bounds

ALPHABET = [
    "\n", "\n", "\n", "\r\n", "\r", " ", " ", "  ", "\t", "/", "//", ".", ",", "'s", "'", "!", "?", "-", "(", ")",
    ":", '"', "#", "{", "}", *"abcdefgXYZ", "Hello", "world", "é", "e\u0301", "\u0301", "0", "1", "42", "12345",
    "中文", "日本語", "か", "한국어", "😀", "👍🏽", "\u00a0", "\u3000", "\u2028", "\x85", "¨", "ﬁ", "①", "Ｆ",
    "<|endoftext|>", "<|im_start|>", "<think>", "<s>", "[INST]", "<|begin_of_text|>", "\u200b", "ا",
]
PASTE = "def f(x):\n    return x  # comment\n\nclass A:\n    pass\n日本語のテキスト。\r\nEmoji 😀👍🏽 end.\n"


def random_text(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(pieces))


def edit(rng: random.Random, text: str) -> tuple[str, tuple[int, int]]:
    """One random edit (typing, deleting, pasting, newlines, CRLF, emoji, duplicating a span) and
    its span: the lengths of the prefix and suffix the new text shares with the old one."""
    pos = rng.randint(0, len(text))
    end = pos
    op = rng.random()
    if op < 0.35:
        new = random_text(rng, rng.randint(1, 3))
    elif op < 0.6:
        new, end = "", min(len(text), pos + rng.randint(1, 12))
    elif op < 0.7:
        new = PASTE[: rng.randint(1, len(PASTE))]
    elif op < 0.85:
        new = rng.choice(["\n", "\r\n", "\n\n", " \n", "\n ", "😀", "\n/"])
    elif op < 0.95:
        start = rng.randint(0, len(text))
        new = text[start:start + rng.randint(0, 200)]
    else:
        new, end = "", len(text)  # truncate
    return text[:pos] + new + text[end:], (pos, len(text) - end)


@pytest.mark.parametrize("specials", ["literal", "parse"])
@pytest.mark.parametrize("tokenizer_id", bundled_ids() + ["estimate"])
def test_incremental_count_equals_full_count_after_random_edits(bundled, tokenizer_id, specials):
    tok = bundled.get(tokenizer_id)
    rng = random.Random(f"{tokenizer_id}/{specials}")
    counter = IncrementalCounter(tok, specials)
    text = random_text(rng, 300)
    edits = 150 if tok.cut_rule is None else 250
    reused = 0
    for step in range(edits):
        text, _ = edit(rng, text)
        if len(text) > 6000:
            text = text[-3000:]
        assert counter.count(text) == tok.count(text, specials), (step, text)
        if counter.stats and not counter.stats.whole and counter.stats.encoded_chars < len(text):
            reused += 1
    if tok.cut_rule is not None:
        assert reused > edits // 2  # it really was incremental, not a full re-encode each time


@pytest.mark.parametrize("tokenizer_id", bundled_ids() + ["estimate"])
def test_counts_from_edit_spans_equal_full_counts(bundled, tokenizer_id):
    """The editor's path: what each edit changed comes from an EditLog, never from comparing texts;
    the counter sometimes skips versions (a busy row) and sometimes declines a big edit."""
    tok = bundled.get(tokenizer_id)
    rng = random.Random(f"spans/{tokenizer_id}")
    log = EditLog()
    counter = IncrementalCounter(tok, "parse" if rng.random() < 0.5 else "literal")
    text = random_text(rng, 400)
    version = log.record(None)
    assert counter.count(text, version=version, edits=log) == tok.count(text, counter.specials)
    for step in range(150 if tok.cut_rule is None else 400):
        text, span = edit(rng, text)
        if len(text) > 6000:
            text, span = text[-3000:], (0, 3000)
        version = log.record(span)
        if rng.random() < 0.3:
            continue  # this version is never counted: the next count spans several edits
        limit = rng.choice([None, None, 40])
        n = counter.count(text, version=version, edits=log, max_chars=limit)
        if n is None:
            assert limit is not None and counter.version != version
            n = counter.count(text, version=version, edits=log)
        assert n == tok.count(text, counter.specials), (step, text)
    assert counter.resyncs == 0


def test_edit_log_composes_spans():
    log = EditLog()
    v0 = log.record(None)
    v1 = log.record((5, 3))
    v2 = log.record((2, 7))
    assert log.span(v0, v1) == (5, 3) and log.span(v1, v2) == (2, 7)
    assert log.span(v0, v2) == (2, 3)  # the shortest prefix and the shortest suffix of the steps
    assert log.span(v2, v2) == UNCHANGED
    assert log.span(v2, v1) is None
    log2 = EditLog()
    first = log2.record((0, 0))
    for _ in range(EditLog.KEEP + 1):
        last = log2.record((1, 1))
    assert log2.span(first, last) is None  # too far behind: the counter compares texts instead


def test_cancelled_count_returns_none_and_resumes(bundled):
    tok = bundled.get("cl100k_base")
    text = "".join(f"line {i} of text\n" for i in range(20_000))
    counter = IncrementalCounter(tok)
    assert counter.count(text, cancelled=lambda: True) is None
    calls = []

    def cancel_after_first_batch() -> bool:
        calls.append(1)
        return len(calls) > 1

    assert counter.count(text + "x\n", cancelled=cancel_after_first_batch) is None
    assert counter.count(text) == tok.count(text)
    assert counter.stats.encoded_chars < len(text)  # blocks counted before the cancel were kept


def test_whole_count_path_is_reused_for_unchanged_text(bundled):
    tok = bundled.get("llama2")
    assert tok.cut_rule is None
    counter = IncrementalCounter(tok)
    text = "Hello world\nsecond line\n"
    assert counter.count(text) == tok.count(text)
    assert counter.count(text) == tok.count(text)
    assert counter.stats.whole and counter.stats.encoded_blocks == 0


@pytest.mark.parametrize("tokenizer_id", ["o200k_base", "qwen3", "llama2"])
def test_token_window_around_the_cursor_matches_the_document(bundled, tokenizer_id):
    tok = bundled.get(tokenizer_id)
    rng = random.Random(7)
    lines = ["".join(rng.choice("abc xyz.,") for _ in range(rng.randint(0, 70))) for _ in range(2000)]
    text = "\n".join(lines)
    start, end = window_bounds(text, tok.cut_rule, len(text) // 2, 5000)
    assert 0 < start < len(text) // 2 < end < len(text)
    assert end - start <= 5000 + 200
    assert text[start - 1] == "\n"
    if tok.cut_rule is not None:  # a window between cut points is exactly the document's tokens there
        assert (tok.count(text[:start]) + tok.count(text[start:end]) + tok.count(text[end:])) == tok.count(text)
