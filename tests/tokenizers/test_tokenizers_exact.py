"""Counts equal each tokenizer's own library, for every bundled tokenizer, under both policies."""

from __future__ import annotations

import random

import pytest

from tui.core.tokenizers.registry import _manifest

TRICKY = [
    "",
    " ",
    "Hello, world!",
    "你好，世界。今日はいい天気ですね。안녕하세요",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇫🇷",
    "line one\r\nline two\r\n\r\n\rtrailing\r",
    " " * 257 + "x" + "\t" * 40 + "\n" * 33,
    "def f(x):\n\treturn {'a': [1, 2, 3]}  # comment\n\n\nclass A:\n    pass\n",
    "<|endoftext|>hi<|endoftext|> <|fim_prefix|>x<|fim_suffix|> <|endofprompt|>",
    "<s>[INST] hi [/INST]</s> <|im_start|>user\nq<|im_end|> <think>x</think> <bos><eos>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|> <｜begin▁of▁sentence｜>",
    "<|start|>assistant<|channel|>final<|message|>ok<|end|><|return|>",
    "12345678901234567890 3.14159 1e-9 0x1F",
    "https://example.com/a/b?c=d&e=f#g //comment /* x */",
    "Ünïcödé çàfé naïve résumé ﬁ ligature Å Å",
    "\u0000\u0001\u200b\ufeff\u00a0 zero-width and nbsp",
    "a" * 5000,
    "lone \ud800 surrogate and \udfff another",
]

ALPHABET = list("aAbZ zé日本語한\n\n\r\t  /.,!?'\"-_0123456789") + ["👍", "👨‍👩‍👧", "<|endoftext|>", "[INST]", "<s>", "\r\n"]


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 120))) for _ in range(n)]


TEXTS = TRICKY + random_texts(150, seed=7)
IDS_BY_FORMAT = {fmt: [tid for tid, e in _manifest().items() if e["format"] == fmt] for fmt in ("tiktoken", "hf", "tekken")}


@pytest.mark.parametrize("tid", IDS_BY_FORMAT["tiktoken"])
def test_tiktoken_family_equals_tiktoken(bundled, tiktoken_reference, tid):
    ref = tiktoken_reference(tid)
    tok = bundled.get(tid)
    assert tok.vocab_size == ref.n_vocab
    for text in TEXTS:
        assert tok.encode(text, "literal") == ref.encode_ordinary(text), repr(text)
        assert tok.encode(text, "parse") == ref.encode(text, allowed_special="all"), repr(text)
    assert tok.count_many(TEXTS, "literal") == [len(ref.encode_ordinary(t)) for t in TEXTS]


@pytest.mark.parametrize("tid", IDS_BY_FORMAT["hf"])
def test_hf_equals_tokenizers_library(bundled, raw_files, tid):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(raw_files[tid]))
    ref.no_truncation()
    ref.no_padding()
    tok = bundled.get(tid)
    for literal, policy in ((True, "literal"), (False, "parse")):
        ref.encode_special_tokens = literal
        for text in TEXTS:
            clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            expected = ref.encode(clean, add_special_tokens=False).ids
            assert tok.encode(text, policy) == expected, (policy, repr(text))
    ref.encode_special_tokens = True
    clean_texts = [t for t in TEXTS if "\ud800" not in t]  # the library rejects lone surrogates
    assert tok.count_many(clean_texts) == [len(e.ids) for e in ref.encode_batch(clean_texts, add_special_tokens=False)]


def test_tekken_equals_mistral_common(bundled, raw_files):
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    ref = Tekkenizer.from_file(raw_files["mistral-tekken"])
    tok = bundled.get("mistral-tekken")
    assert tok.vocab_size == ref.n_words
    for text in TEXTS:
        assert tok.encode(text, "literal") == ref.encode(text, bos=False, eos=False), repr(text)


def test_tekken_parse_turns_control_strings_into_their_ids(bundled, raw_files):
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    ref = Tekkenizer.from_file(raw_files["mistral-tekken"])
    tok = bundled.get("mistral-tekken")
    ids = tok.encode("[INST] hi [/INST]", "parse")
    assert ids[0] == ref.get_special_token("[INST]") and ids[-1] == ref.get_special_token("[/INST]")
    assert ids[1:-1] == ref.encode(" hi ", bos=False, eos=False)
    # text without control strings: the policy makes no difference
    assert tok.encode("plain text 123", "parse") == tok.encode("plain text 123", "literal")


@pytest.mark.parametrize("tid", list(_manifest()))
def test_special_token_string_is_one_token_only_under_parse(bundled, tid):
    tok = bundled.get(tid)
    specials = sorted(tok.special_ids())
    assert specials, f"{tid} has no special tokens"
    special_id = specials[-1] if tid != "mistral-tekken" else 3
    text = tok.token_bytes([special_id])[0].decode("utf-8")
    assert tok.encode(text, "parse") == [special_id]
    assert special_id not in tok.encode(text, "literal")
    assert tok.count(text, "literal") > 1


def test_estimate_formula(bundled):
    est = bundled.get("estimate")
    assert est.count("") == 0
    assert est.count("abcd" * 10) == 10
    assert est.count("你好世界啊嗯") == 4  # 6 / 1.5
    assert est.count("你好世" + "abcdefgh") == round(3 / 1.5 + 8 / 4)
    assert not est.info.exact and est.info.approximate


def test_counting_is_policy_checked(bundled):
    with pytest.raises(ValueError):
        bundled.get("cl100k_base").count("x", "bogus")
