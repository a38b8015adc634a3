"""Benchmark datasets: custom JSONL (three shapes), ShareGPT, random and sonnet prompts."""

from __future__ import annotations

import json

import pytest

from tui.core.bench.datasets import (SONNET_BASE_PROMPT, DatasetError, load_custom, load_sharegpt,
                                     random_requests, sonnet_lines, sonnet_requests)


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def test_custom_three_shapes_and_output_lengths(tmp_path, cl100k):
    f = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "Tell me a story", "output_tokens": 17, "ignored": 1},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is four, of course."}],
        "",
    ])
    reqs = load_custom(f, cl100k, 3, seed=0)
    by_kind = {("prompt" if r.prompt is not None else len(r.messages)): r for r in reqs}
    p = by_kind["prompt"]
    assert p.output_len == 17 and p.input_len == cl100k.count("Tell me a story")
    sys_user = by_kind[2]
    assert sys_user.output_len == 256 and sys_user.input_len == cl100k.count("Be brief.\nHi")
    qa = by_kind[1]  # the assistant reply is dropped and gives the output length
    assert qa.messages == ({"role": "user", "content": "What is 2+2?"},)
    assert qa.output_len == cl100k.count("It is four, of course.")
    assert all(r.output_len == 9 for r in load_custom(f, cl100k, 3, output_len=9))


def test_custom_sampling_is_seeded_and_oversamples(tmp_path, cl100k):
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"p{i}"} for i in range(5)])
    a = [r.prompt for r in load_custom(f, cl100k, 12, seed=1)]
    assert len(a) == 12 and set(a) == {f"p{i}" for i in range(5)}
    assert a == [r.prompt for r in load_custom(f, cl100k, 12, seed=1)]
    assert a != [r.prompt for r in load_custom(f, cl100k, 12, seed=2)]


@pytest.mark.parametrize("line, reason", [
    ('{"prompt": "ok"', "invalid JSON"),
    ('{"text": "no prompt"}', 'expected a "prompt" or "messages" key'),
    ('{"prompt": 5}', '"prompt" must be a string'),
    ('{"prompt": "x", "output_tokens": 0}', '"output_tokens" must be a positive integer'),
    ('[{"content": "no role"}]', "message 0 must be an object with a role"),
    ('"just a string"', "expected an object or an array of messages"),
])
def test_broken_custom_line_is_refused_naming_file_and_line(tmp_path, cl100k, line, reason):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "fine"}\n\n' + line + "\n", "utf-8")
    with pytest.raises(DatasetError) as exc:
        load_custom(f, cl100k, 2)
    msg = str(exc.value)
    assert msg.startswith(f"{f}:3: ") and reason in msg and "\n" not in msg


def test_missing_file(tmp_path, cl100k):
    with pytest.raises(DatasetError, match="no such file"):
        load_custom(tmp_path / "nope.jsonl", cl100k, 1)


def sharegpt_rows():
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    rows = []
    for i in range(8):
        rows.append({"conversations": [{"from": "human", "value": " ".join(words[: 4 + i % 5]) + f" {i}"},
                                       {"from": "gpt", "value": " ".join(reversed(words)) + f" {i}"}]})
    rows.append({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a long enough reply"}]})
    rows.append({"conversations": [{"from": "human", "value": "only one turn here"}]})
    rows.append({"conversations": [{"from": "human", "value": "a prompt of some length"}, {"from": "gpt", "value": "ok"}]})
    return rows


@pytest.mark.parametrize("as_jsonl", [False, True])
def test_sharegpt_array_or_jsonl_with_vllms_filters(tmp_path, cl100k, as_jsonl):
    rows = sharegpt_rows()
    f = tmp_path / "sg.json"
    if as_jsonl:
        write_jsonl(f, rows)
    else:
        f.write_text(json.dumps(rows), "utf-8")
    reqs = load_sharegpt(f, cl100k, 8, seed=0)
    assert len(reqs) == 8
    prompts = {r.prompt for r in reqs}
    assert "hi" not in prompts and "a prompt of some length" not in prompts  # < 4 tokens
    for r in reqs:
        assert r.input_len == cl100k.count(r.prompt) >= 4
        reply = next(row["conversations"][1]["value"] for row in rows if row["conversations"][0]["value"] == r.prompt)
        assert r.output_len == cl100k.count(reply)
    # with a fixed output length the reply length no longer filters "ok"
    fixed = load_sharegpt(f, cl100k, 9, seed=0, output_len=32)
    assert "a prompt of some length" in {r.prompt for r in fixed} and all(r.output_len == 32 for r in fixed)


def test_sharegpt_broken_entry(tmp_path, cl100k):
    f = tmp_path / "sg.json"
    f.write_text(json.dumps([{"conversations": [{"from": "human"}, {"from": "gpt", "value": "x"}]}]), "utf-8")
    with pytest.raises(DatasetError, match=r"entry 0: turn 0 needs a string"):
        load_sharegpt(f, cl100k, 1)


@pytest.mark.parametrize("tid", ["cl100k_base", "qwen3", "llama3"])
def test_random_prompts_have_exactly_the_asked_token_count(bundled, tid):
    tok = bundled.get(tid)
    reqs = random_requests(tok, 20, input_len=64, output_len=16, range_ratio=0.5, seed=7)
    for r in reqs:
        assert tok.count(r.prompt) == r.input_len
        assert 32 <= r.input_len <= 96 and 8 <= r.output_len <= 24
    assert [r.prompt for r in reqs] == [r.prompt for r in random_requests(tok, 20, 64, 16, 0.5, seed=7)]
    fixed = random_requests(tok, 5, input_len=100, output_len=10)
    assert {r.input_len for r in fixed} == {100} and {tok.count(r.prompt) for r in fixed} == {100}


def test_random_needs_a_real_tokenizer(bundled):
    with pytest.raises(DatasetError, match="needs a real tokenizer"):
        random_requests(bundled.get("estimate"), 1)


def test_sonnet_prompts(cl100k):
    lines = sonnet_lines()
    assert len(lines) >= 200 and lines[0].startswith("From fairest creatures")
    reqs = sonnet_requests(cl100k, 6, input_len=300, output_len=50, prefix_len=100, seed=1)
    prefixes = {r.prompt[:400] for r in reqs}
    assert len(prefixes) == 1  # the shared prefix
    for r in reqs:
        assert r.prompt.startswith(SONNET_BASE_PROMPT) and r.output_len == 50
        assert r.input_len == cl100k.count(r.prompt)
        assert 200 < r.input_len < 400
        body = r.prompt[len(SONNET_BASE_PROMPT):].splitlines(keepends=True)
        assert all(line in lines for line in body)


def test_custom_line_nested_too_deeply_to_send_is_refused_with_its_line(tmp_path, cl100k):
    deep = '[{"role": "user", "content": ' + "[" * 252 + '"x"' + "]" * 252 + "}]"
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "fine"}, deep])
    with pytest.raises(DatasetError, match=r"d\.jsonl:2: the messages are nested too deeply to send"):
        load_custom(f, cl100k, 4)
    ok = '[{"role": "user", "content": ' + "[" * 200 + '"x"' + "]" * 200 + "}]"
    assert len(load_custom(write_jsonl(tmp_path / "ok.jsonl", [ok]), cl100k, 2)) == 2
