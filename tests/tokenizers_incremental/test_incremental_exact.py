"""The incremental count equals the full count after every edit, for every bundled tokenizer."""

from __future__ import annotations

import random

import pytest

from tui.core.tokenizers import bundled_ids
from tui.core.tokenizers.incremental import IncrementalCounter, window_bounds

ALPHABET = [
    "\n", "\n", "\n", "\r\n", "\r", " ", " ", "  ", "\t", "/", "//", ".", ",", "'s", "'", "!", "?", "-", "(", ")",
    ":", '"', "#", "{", "}", *"abcdefgXYZ", "Hello", "world", "é", "e\u0301", "\u0301", "0", "1", "42", "12345",
    "中文", "日本語", "か", "한국어", "😀", "👍🏽", "\u00a0", "\u3000", "\u2028", "\x85", "¨", "ﬁ", "①", "Ｆ",
    "<|endoftext|>", "<|im_start|>", "<think>", "<s>", "[INST]", "<|begin_of_text|>", "\u200b", "ا",
]
PASTE = "def f(x):\n    return x  # comment\n\nclass A:\n    pass\n日本語のテキスト。\r\nEmoji 😀👍🏽 end.\n"


def random_text(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(pieces))


def edit(rng: random.Random, text: str) -> str:
    """One random edit: typing, deleting, pasting, newlines, CRLF, emoji, duplicating a span."""
    pos = rng.randint(0, len(text))
    op = rng.random()
    if op < 0.35:
        return text[:pos] + random_text(rng, rng.randint(1, 3)) + text[pos:]
    if op < 0.6:
        return text[:pos] + text[min(len(text), pos + rng.randint(1, 12)):]
    if op < 0.7:
        return text[:pos] + PASTE[: rng.randint(1, len(PASTE))] + text[pos:]
    if op < 0.85:
        return text[:pos] + rng.choice(["\n", "\r\n", "\n\n", " \n", "\n ", "😀", "\n/"]) + text[pos:]
    if op < 0.95:
        start = rng.randint(0, len(text))
        return text[:pos] + text[start:start + rng.randint(0, 200)] + text[pos:]
    return text[:pos]  # truncate


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
        text = edit(rng, text)
        if len(text) > 6000:
            text = text[-3000:]
        assert counter.count(text) == tok.count(text, specials), (step, text)
        if counter.stats and not counter.stats.whole and counter.stats.encoded_chars < len(text):
            reused += 1
    if tok.cut_rule is not None:
        assert reused > edits // 2  # it really was incremental, not a full re-encode each time


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
