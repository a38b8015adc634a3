"""The cut rules are exact where they are assigned, and cuts never split a special token."""

from __future__ import annotations

import random

import pytest

from tui.core.tokenizers import bundled_ids
from tui.core.tokenizers.cuts import cut_positions, cuts_between, split_blocks

from test_incremental_exact import random_text

EXPECTED_RULES = {
    "r50k_base": "r50k+crlf", "p50k_base": "r50k+crlf", "cl100k_base": "cl100k", "o200k_base": "o200k",
    "o200k_harmony": "o200k", "qwen3": "cl100k", "deepseek-v3": "cl100k", "llama3": "cl100k",
    "gemma3": "cl100k", "claude-legacy": "r50k", "mistral-tekken": "o200k", "llama2": None,
}


def test_every_bundled_tokenizer_has_its_proven_rule(bundled):
    assert {tid: bundled.get(tid).cut_rule for tid in bundled_ids()} == EXPECTED_RULES


@pytest.mark.parametrize("tokenizer_id", [t for t, rule in EXPECTED_RULES.items() if rule])
def test_count_is_additive_at_every_cut(bundled, tokenizer_id):
    tok = bundled.get(tokenizer_id)
    rng = random.Random(tokenizer_id)
    checked = 0
    for specials in ("literal", "parse"):
        for _ in range(300):
            text = random_text(rng, rng.randint(2, 40))
            if rng.random() < 0.3:  # CRLF documents (what the editor turns mixed line endings into)
                text = text.replace("\r\n", "\n").replace("\n", "\r\n")
            cuts = cut_positions(text, tok.cut_rule)
            if not cuts:
                continue
            parts = [p for c in cuts for p in (text[:c], text[c:])]
            counts = tok.count_many([text, *parts], specials)
            for k in range(len(cuts)):
                assert counts[1 + 2 * k] + counts[2 + 2 * k] == counts[0], (specials, text[:cuts[k]], text[cuts[k]:])
                checked += 1
    assert checked > 200


@pytest.mark.parametrize("rule", ["cl100k", "o200k", "r50k", "r50k+crlf"])
def test_blocks_join_back_to_the_text(rule):
    rng = random.Random(rule)
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 60))
        blocks = split_blocks(text, rule)
        assert "".join(blocks) == text
        assert all(blocks)
        assert [sum(map(len, blocks[:i])) for i in range(1, len(blocks))] == cut_positions(text, rule)


@pytest.mark.parametrize("rule", ["cl100k", "o200k", "r50k", "r50k+crlf"])
@pytest.mark.parametrize("guards", [((), ()), (("\n\n", "a\nb", "<|im_start|>\n"), ("<s>", "\n "))])
def test_cuts_between_sees_only_the_span_but_agrees_with_the_whole_text(rule, guards):
    rng = random.Random(f"{rule}/{len(guards[0])}")
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 80))
        if rng.random() < 0.3:
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        text += rng.choice(["", "a\nb", "<s>", "\n\n", "<|im_start|>\nx"])
        everywhere = cut_positions(text, rule, *guards)
        lo = rng.randint(-2, len(text) + 2)
        hi = rng.randint(lo, len(text) + 3)
        assert cuts_between(text, rule, lo, hi, *guards) == [c for c in everywhere if lo < c < hi], (text, lo, hi)


def test_the_broken_rules_really_are_broken(bundled):
    """Why llama2 has no rule and claude-legacy/tekken have the stricter ones."""

    def additive(tid: str, a: str, b: str) -> bool:
        tok = bundled.get(tid)
        return tok.count(a + b) == tok.count(a) + tok.count(b)

    assert not additive("llama2", "a\n", "中")  # SentencePiece prepends "▁" to every block
    assert not additive("mistral-tekken", "x.\n", "//")  # punctuation takes [\r\n/]* after it
    assert cut_positions("x.\n//", "o200k") == [] and cut_positions("x.\n//", "cl100k") == [3]
    assert not additive("claude-legacy", "a\n\n", "b")  # GPT-2: "\n" runs go with the next word
    assert cut_positions("a\n\nb", "r50k") == [] and cut_positions("a\n\nb", "cl100k") == [3]
    assert additive("r50k_base", "a\r", "\nb") and cut_positions("a\r\nb", "r50k+crlf") == [2]
    assert not additive("claude-legacy", "x\r", "\n¨")  # NFKC: "¨" becomes " \u0308"


def test_cuts_never_fall_inside_an_atomic_token():
    text = "a\n<|x\ny|>\nb\n<|x\ny|>z"
    cuts = cut_positions(text, "cl100k", atomic=("<|x\ny|>",))
    for start in (2, 12):
        assert not any(start < c < start + 7 for c in cuts)
    assert cuts == [2, 10, 12]
    blocks = split_blocks(text, "cl100k", atomic=("<|x\ny|>",))
    assert "".join(blocks) == text and "<|x\ny|>" in blocks[1] and "<|x\ny|>" in blocks[-1]
    assert cut_positions("a\n<lt>b", "cl100k", lstrip=("<lt>",)) == []


@pytest.mark.parametrize("tokenizer_id", ["cl100k_base", "o200k_harmony", "qwen3", "llama3", "deepseek-v3"])
def test_special_tokens_after_newlines_stay_whole_under_parse(bundled, tokenizer_id):
    from tui.core.tokenizers.incremental import IncrementalCounter

    tok = bundled.get(tokenizer_id)
    hf = getattr(tok, "hf", None)
    known = ([a.content for a in hf.get_added_tokens_decoder().values() if a.special] if hf
             else sorted(tok.encoding.special_tokens_set))
    specials = sorted(known)[:20]
    assert specials and all(tok.count(s, "parse") == 1 for s in specials)
    text = "".join(f"line {i}\n{specials[i % len(specials)]}\n" for i in range(50))
    counter = IncrementalCounter(tok, "parse")
    assert counter.count(text) == tok.count(text, "parse") < tok.count(text, "literal")
