"""Prompts for a benchmark run, as vLLM's ``bench serve`` datasets make them, offline.

- ``custom``: JSONL; each line one of ``{"prompt": str, "output_tokens"?: int}`` (vLLM's
  format; other keys ignored), ``{"messages": [...], "output_tokens"?: int}``, or a bare JSON
  array of messages. A conversation ending with assistant turns is sent without them and, unless
  the line gives ``output_tokens``, asks for as many tokens as the first of those replies had.
- ``sharegpt``: a JSON array file (or JSONL) of ``{"conversations": [{"from", "value"}, ...]}``;
  turn 0 is the prompt, turn 1's token count the output length; like vLLM, entries with fewer
  than 2 turns are skipped and pairs with prompt or output < 4 tokens, prompt > 1024 or
  prompt + output > 2048 tokens are dropped.
- ``random``: prompts of exactly N tokens of the local tokenizer, made of random whole-word
  tokens (re-tokenized and adjusted until the count is exact); lengths drawn uniformly from
  [N·(1−r), N·(1+r)] with ``--random-range-ratio`` r, as in vLLM.
- ``sonnet``: vLLM's sonnet prompts ("Pick as many lines as you can from these poem lines:"
  + a shared prefix of lines + random lines) from a bundled public-domain text
  (``data/sonnets.txt``: Shakespeare's sonnets 1-3, 12, 15, 18-20, 29, 30, 55, 60, 73, 116, 130).

Every loader is seeded (``seed``), returns exactly ``num_prompts`` requests (re-using prompts
when the file has fewer, like vLLM's oversampling) and counts each prompt locally with the
tokenizer. A line that cannot be read stops the load with ``path:line: reason`` (one line);
the Data pane (``tui.core.datasets``) does the deep validation.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from typing import Any, Sequence

import orjson

from ..errors import TokdeckError
from ..paths import read_file_bytes
from ..messages import message_text, messages_text
from .client import BenchRequest

SONNET_PATH = Path(__file__).resolve().parent / "data" / "sonnets.txt"
SONNET_BASE_PROMPT = "Pick as many lines as you can from these poem lines:\n"
DEFAULT_CUSTOM_OUTPUT_LEN = 256


class DatasetError(TokdeckError):
    """A dataset cannot be used for a benchmark (one line naming the file and line)."""


def _read_bytes(path: str | Path) -> bytes:
    data = read_file_bytes(path, DatasetError)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data


def _json_error(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _jsonl(path: str | Path, data: bytes):
    """(line number, parsed value) for every non-blank line; a broken line raises DatasetError."""
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            yield lineno, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: invalid JSON ({_json_error(exc)})") from None


def _sample(items: list, num: int, rng: random.Random) -> list:
    """Shuffle, take ``num``; re-use items (random choice) when there are fewer."""
    items = list(items)
    rng.shuffle(items)
    if len(items) >= num:
        return items[:num]
    return items + rng.choices(items, k=num - len(items))


def _check_messages(path, lineno: int, msgs: Any) -> tuple[dict, ...]:
    if not isinstance(msgs, list) or not msgs:
        raise DatasetError(f"{path}:{lineno}: messages must be a non-empty array")
    for k, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise DatasetError(f"{path}:{lineno}: message {k} must be an object with a role")
        c = m.get("content")
        if c is not None and not isinstance(c, (str, list)):
            raise DatasetError(f"{path}:{lineno}: message {k}: content must be a string or a list of parts")
    try:  # the messages go into the request body as they are: it must be possible to write it
        orjson.dumps({"messages": msgs})
    except orjson.JSONEncodeError:  # orjson writes at most 254 levels of nesting
        raise DatasetError(f"{path}:{lineno}: the messages are nested too deeply to send in a request body") from None
    return tuple(msgs)


def load_custom(path: str | Path, tokenizer, num_prompts: int, seed: int = 0,
                output_len: int | None = None, default_output_len: int = DEFAULT_CUSTOM_OUTPUT_LEN
                ) -> list[BenchRequest]:
    """vLLM's ``custom`` JSONL (plus chat lines); ``output_len`` overrides every line's own."""
    rows: list[tuple[str | None, tuple | None, int | None, str | None]] = []
    for lineno, obj in _jsonl(path, _read_bytes(path)):
        prompt = msgs = reply = None
        out_len = None
        if isinstance(obj, list):
            msgs = _check_messages(path, lineno, obj)
        elif isinstance(obj, dict):
            if "prompt" in obj:
                prompt = obj["prompt"]
                if not isinstance(prompt, str):
                    raise DatasetError(f"{path}:{lineno}: \"prompt\" must be a string")
            elif "messages" in obj:
                msgs = _check_messages(path, lineno, obj["messages"])
            else:
                raise DatasetError(f"{path}:{lineno}: expected a \"prompt\" or \"messages\" key")
            ot = obj.get("output_tokens")
            if ot is not None:
                if isinstance(ot, bool) or not isinstance(ot, int) or ot < 1:
                    raise DatasetError(f"{path}:{lineno}: \"output_tokens\" must be a positive integer")
                out_len = ot
        else:
            raise DatasetError(f"{path}:{lineno}: expected an object or an array of messages")
        if msgs is not None:
            cut = len(msgs)
            while cut > 0 and msgs[cut - 1].get("role") == "assistant":
                cut -= 1
            if cut == 0:
                raise DatasetError(f"{path}:{lineno}: the conversation has no turn before the assistant's")
            if cut < len(msgs):
                reply = message_text(msgs[cut])
                msgs = msgs[:cut]
        rows.append((prompt, msgs, out_len, reply))
    if not rows:
        raise DatasetError(f"{path}: no prompts in the file")
    rows = _sample(rows, num_prompts, random.Random(seed))
    texts = [p if p is not None else messages_text(m) for p, m, _, _ in rows]
    counts = tokenizer.count_many(texts)
    replies = [r for *_, r in rows if r is not None and output_len is None]
    reply_counts = iter(tokenizer.count_many(replies)) if replies else iter(())
    out: list[BenchRequest] = []
    for (prompt, msgs, own, reply), n in zip(rows, counts):
        if output_len is not None:
            olen = output_len
        elif own is not None:
            olen = own
        elif reply is not None:
            olen = max(next(reply_counts), 1)
        else:
            olen = default_output_len
        out.append(BenchRequest(prompt=prompt, messages=msgs, output_len=olen, input_len=n))
    return out


def _sharegpt_entries(path: str | Path, data: bytes) -> list[tuple[str, Any]]:
    head = data.lstrip()[:1]
    if head == b"[":
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}: invalid JSON ({_json_error(exc)})") from None
        return [(f"{path}: entry {i}", e) for i, e in enumerate(items)]
    return [(f"{path}:{lineno}", e) for lineno, e in _jsonl(path, data)]


def load_sharegpt(path: str | Path, tokenizer, num_prompts: int, seed: int = 0,
                  output_len: int | None = None) -> list[BenchRequest]:
    """ShareGPT conversations, filtered like vLLM's sampler."""
    pairs: list[tuple[str, str]] = []
    for where, e in _sharegpt_entries(path, _read_bytes(path)):
        if not isinstance(e, dict):
            raise DatasetError(f"{where}: expected an object with \"conversations\"")
        conv = e.get("conversations")
        if conv is None:
            continue
        if not isinstance(conv, list):
            raise DatasetError(f"{where}: \"conversations\" must be an array")
        if len(conv) < 2:
            continue
        turns = []
        for k in (0, 1):
            t = conv[k]
            v = t.get("value") if isinstance(t, dict) else None
            if not isinstance(v, str):
                raise DatasetError(f"{where}: turn {k} needs a string \"value\"")
            turns.append(v)
        pairs.append((turns[0], turns[1]))
    if not pairs:
        raise DatasetError(f"{path}: no conversations with at least two turns")
    rng = random.Random(seed)
    rng.shuffle(pairs)
    chosen: list[BenchRequest] = []
    step = max(64, num_prompts)
    for start in range(0, len(pairs), step):
        batch = pairs[start:start + step]
        p_counts = tokenizer.count_many([p for p, _ in batch])
        c_counts = tokenizer.count_many([c for _, c in batch]) if output_len is None else [output_len] * len(batch)
        for (prompt, _), pl, cl in zip(batch, p_counts, c_counts):
            olen = output_len if output_len is not None else cl
            if pl < 4 or (output_len is None and olen < 4) or pl > 1024 or pl + olen > 2048:
                continue
            chosen.append(BenchRequest(prompt=prompt, output_len=olen, input_len=pl))
            if len(chosen) == num_prompts:
                return chosen
    if not chosen:
        raise DatasetError(f"{path}: every conversation was filtered out (prompt or reply under 4 tokens, "
                           "prompt over 1024 or both over 2048)")
    return chosen + rng.choices(chosen, k=num_prompts - len(chosen))


# ---------------------------------------------------------------------- random
_WORD = re.compile(rb"^ [a-z]{2,9}$")


def _word_pool(tokenizer) -> list[str]:
    """Whole-word tokens (" word") of the tokenizer: concatenations re-tokenize to themselves."""
    if not getattr(tokenizer, "has_vocab", True):
        raise DatasetError(f"the random dataset needs a real tokenizer, not {tokenizer.id}: pass --tokenizer ID")
    ids = list(range(tokenizer.vocab_size))
    specials = tokenizer.special_ids()
    pool: list[str] = []
    for start in range(0, len(ids), 4096):
        chunk = [i for i in ids[start:start + 4096] if i not in specials]
        try:
            pieces = tokenizer.token_bytes(chunk)
        except Exception:  # noqa: BLE001 - ids past a tokenizer's last entry: done
            break
        pool.extend(b.decode("ascii") for b in pieces if _WORD.match(b))
    if len(pool) < 100:
        raise DatasetError(f"tokenizer {tokenizer.id} has too few whole-word tokens for random prompts")
    return pool


def _lengths(n: int, target: int, ratio: float, rng: random.Random) -> list[int]:
    lo = max(int(math.floor(target * (1 - ratio))), 1)
    hi = max(int(math.ceil(target * (1 + ratio))), lo)
    return [rng.randint(lo, hi) for _ in range(n)]


def exact_text(tokenizer, words: Sequence[str], pool: Sequence[str], n: int, rng: random.Random) -> str:
    """Text of exactly ``n`` tokens, starting from ``words``; adjusted by re-tokenizing."""
    text = "".join(words)
    for _ in range(50):
        ids = tokenizer.encode(text)
        if len(ids) == n:
            return text
        if len(ids) > n:
            text = tokenizer.decode(ids[:n])
        else:
            text += "".join(rng.choices(pool, k=n - len(ids)))
    raise DatasetError(f"cannot make a prompt of exactly {n} tokens with {tokenizer.id}")


def random_requests(tokenizer, num_prompts: int, input_len: int = 1024, output_len: int = 128,
                    range_ratio: float = 0.0, seed: int = 0) -> list[BenchRequest]:
    if input_len < 1 or output_len < 1:
        raise DatasetError("random input and output lengths must be at least 1 token")
    if not 0 <= range_ratio < 1:
        raise DatasetError("--random-range-ratio must be in [0, 1)")
    rng = random.Random(seed)
    pool = _word_pool(tokenizer)
    in_lens = _lengths(num_prompts, input_len, range_ratio, rng)
    out_lens = _lengths(num_prompts, output_len, range_ratio, rng)
    texts = ["".join(rng.choices(pool, k=n)) for n in in_lens]
    counts = tokenizer.count_many(texts)
    out = []
    for text, n, got, olen in zip(texts, in_lens, counts, out_lens):
        if got != n:
            text = exact_text(tokenizer, [text], pool, n, rng)
        out.append(BenchRequest(prompt=text, output_len=olen, input_len=n))
    return out


# ---------------------------------------------------------------------- sonnet
def sonnet_lines(path: Path = SONNET_PATH) -> list[str]:
    return [line + "\n" for line in path.read_text("utf-8").splitlines() if line.strip()]


def sonnet_requests(tokenizer, num_prompts: int, input_len: int = 550, output_len: int = 150,
                    prefix_len: int = 200, seed: int = 0, path: Path = SONNET_PATH) -> list[BenchRequest]:
    """vLLM's sonnet prompts (without a chat template: the base prompt is counted as plain text)."""
    lines = sonnet_lines(path)
    base_offset = tokenizer.count(SONNET_BASE_PROMPT)
    if input_len <= base_offset:
        raise DatasetError(f"--sonnet-input-len must exceed the base prompt's {base_offset} tokens")
    if prefix_len > input_len:
        raise DatasetError("--sonnet-prefix-len must not exceed --sonnet-input-len")
    avg = sum(tokenizer.count_many(lines)) / len(lines)
    num_input = round((input_len - base_offset) / avg)
    num_prefix = max(round((prefix_len - base_offset) / avg), 0)
    prefix = lines[:num_prefix]
    rng = random.Random(seed)
    prompts = [SONNET_BASE_PROMPT + "".join(prefix + rng.choices(lines, k=max(num_input - num_prefix, 0)))
               for _ in range(num_prompts)]
    counts = tokenizer.count_many(prompts)
    return [BenchRequest(prompt=p, output_len=output_len, input_len=n) for p, n in zip(prompts, counts)]
