"""Writing the valid records of a dataset in another format.

Conversions (records that cannot be converted are skipped, with the reason counted):
- to ``openai-chat`` / ``message-list``: from any chat format; sharegpt tags human/user ->
  user, gpt/assistant/... -> assistant, system -> system (and its ``system`` key becomes the
  first message); alpaca -> [system], history pairs, user (instruction + "\\n" + input),
  assistant (output); prompt-completion -> user + assistant (``chosen`` when there is no
  completion); prompt -> user; openai-batch chat requests -> their body.messages.
- to ``sharegpt``: a JSON array file (vLLM's ShareGPT loader reads one with ``json.load``),
  one record per line; records with tool calls or tool messages are skipped (no ShareGPT form
  vLLM reads), content parts become their text.
- to ``prompt`` (vLLM's custom format): the record's prompt text (see ``formats``) and
  ``output_tokens`` = the answer's token count with the given tokenizer (omitted without one,
  or when the record has no answer).
- to the same format: each valid record exactly as parsed (other keys kept): a cleaned copy.

The output is written to a temporary file beside ``out`` and renamed into place at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..errors import TokdeckError
from ..messages import content_text, messages_text
from .detect import detect_format
from .formats import SHAREGPT_GPT, SHAREGPT_HUMAN
from .model import ExportResult
from .parsing import MAX_DEPTH, JSONEncodeError, dumps
from .scanner import cancelled, issue_text, iter_valid, resolve_tokenizers
from .source import STDIN, FileState, Replay, check_readable, is_stream, open_stream

EXPORT_FORMATS: tuple[str, ...] = ("openai-chat", "message-list", "sharegpt", "prompt")

_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "developer": "system"}


def to_messages(fmt: str, obj) -> tuple[list | None, list | None, str | None]:
    """(messages, tools, None) or (None, None, reason it cannot be converted)."""
    if fmt == "openai-chat":
        return obj["messages"], obj.get("tools"), None
    if fmt == "message-list":
        return obj, None, None
    if fmt == "sharegpt":
        msgs = [{"role": "system", "content": obj["system"]}] if obj.get("system") else []
        for turn in obj["conversations"]:
            tag = turn["from"]
            if tag in SHAREGPT_HUMAN:
                role = "user"
            elif tag in SHAREGPT_GPT:
                role = "assistant"
            elif tag == "system":
                role = "system"
            else:
                return None, None, f'a "{tag}" turn has no OpenAI form without tool-call ids'
            msgs.append({"role": role, "content": turn["value"]})
        return msgs, None, None
    if fmt == "alpaca":
        system = obj.get("system")
        msgs = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
        for pair in obj.get("history") or []:
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair):
                msgs += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        inp = obj.get("input") or ""
        msgs.append({"role": "user", "content": f"{obj['instruction']}\n{inp}" if inp else obj["instruction"]})
        msgs.append({"role": "assistant", "content": obj["output"]})
        return msgs, None, None
    if fmt == "prompt-completion":
        msgs = []
        answer = obj["completion"] if "completion" in obj else obj["chosen"]
        for value, role in ((obj["prompt"], "user"), (answer, "assistant")):
            msgs += value if isinstance(value, list) else [{"role": role, "content": value}]
        return msgs, None, None
    if fmt == "prompt":
        return [{"role": "user", "content": obj["prompt"]}], None, None
    if fmt == "openai-batch":
        if obj["url"] != "/v1/chat/completions":
            return None, None, issue_text(f"a {obj['url']} request is not a conversation")
        return obj["body"]["messages"], obj["body"].get("tools"), None
    return None, None, f"{fmt} records have no roles"


def _sharegpt(msgs: list) -> tuple[dict | None, str | None]:
    """ShareGPT with the leading system prompt(s) in ``system``: vLLM's loader (and `tokdeck bench`)
    take turns 0 and 1 as prompt and answer, so the conversation must start with the human turn."""
    lead = 0
    while lead < len(msgs) and msgs[lead]["role"] in ("system", "developer"):
        lead += 1
    system = messages_text(msgs[:lead])
    conv = []
    for m in msgs[lead:]:
        tag = _TO_SHAREGPT.get(m["role"])
        if tag is None or m.get("tool_calls") or m.get("function_call"):
            return None, "tool calls and tool messages have no ShareGPT form vLLM reads"
        conv.append({"from": tag, "value": content_text(m.get("content"))})
    return ({"conversations": conv, "system": system} if lead else {"conversations": conv}), None


class _AtomicOut:
    """A file written under a temporary name and renamed over ``path`` only when complete."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.tmp, "wb", buffering=1 << 20)
        return self.fh

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            if self.tmp.exists():
                self.tmp.unlink()
        return False


def export(path: str, out: str, to_format: str, format: str | None = None, tokenizer=None, registry=None,
           cancel=None) -> ExportResult:
    """Write the valid records of ``path`` to ``out`` as ``to_format``; invalid records are left out.

    ``path`` may be a stream (``-``, a pipe), read once. ``tokenizer`` (id, model name or Tokenizer)
    gives ``output_tokens`` for the ``prompt`` format. Raises TokdeckError for an unreadable input,
    an unknown format, ``out`` equal to ``path``, or a file that changed while it was read (then
    ``out`` is left as it was).
    """
    if to_format not in EXPORT_FORMATS:
        raise TokdeckError(f"cannot export to {to_format!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    stream = is_stream(path)
    if not stream:
        check_readable(path)
    if path != STDIN and os.path.exists(out) and os.path.samefile(path, out):
        raise TokdeckError(f"{out}: the output would overwrite the input")
    if os.path.isdir(out):
        raise TokdeckError(f"{out}: is a folder, not a file")
    tok = resolve_tokenizers([tokenizer], registry)[0] if tokenizer is not None else None
    if not stream:
        return _export(path, path, out, to_format, format, tok, cancel)
    with open_stream(path) as raw:
        return _export(path, Replay(raw), out, to_format, format, tok, cancel)


def _export(path: str, src: str | Replay, out: str, to_format: str, format: str | None, tok, cancel) -> ExportResult:
    before = FileState.of(path) if isinstance(src, str) else None
    guess = detect_format(src, format)
    converted = 0
    skipped: Counter = Counter()
    batch: list = []  # (prompt, answer or None) for the prompt target, counted in batches

    def flush_prompts(fh) -> None:
        answers = [a for _, a in batch if a is not None]
        counts = iter(tok.count_many(answers)) if tok is not None and answers else iter(())
        for prompt, answer in batch:
            rec = {"prompt": prompt}
            if answer is not None and tok is not None:
                rec["output_tokens"] = max(1, next(counts))
            fh.write(dumps(rec))
            fh.write(b"\n")
        batch.clear()

    with _AtomicOut(Path(out)) as fh:
        if to_format == "sharegpt":
            fh.write(b"[")
        for n, (line, rec, obj) in enumerate(iter_valid(src, guess, skipped)):
            if n % 1024 == 0 and cancelled(cancel):
                raise TokdeckError("export cancelled")
            if guess.format == to_format:  # the record as it is: only the invalid ones are left out
                item = obj
            elif to_format == "prompt":
                if not rec.prompt:
                    skipped["no prompt text"] += 1
                    continue
                batch.append((rec.prompt, rec.answer or None))
                converted += 1
                if len(batch) >= 1024:
                    flush_prompts(fh)
                continue
            else:
                msgs, tools, why = to_messages(guess.format, obj)
                if msgs is None:
                    skipped[why] += 1
                    continue
                if to_format == "openai-chat":
                    item = {"messages": msgs, **({"tools": tools} if tools else {})}
                elif to_format == "message-list":
                    item = msgs
                else:
                    item, why = _sharegpt(msgs)
                    if item is None:
                        skipped[why] += 1
                        continue
            try:
                data = dumps(item)
            except JSONEncodeError:  # a conversion one level deeper than a record at the nesting limit
                skipped[f"nested more than {MAX_DEPTH} levels deep once converted"] += 1
                continue
            if to_format == "sharegpt":
                fh.write(b",\n" if converted else b"\n")
            fh.write(data)
            if to_format != "sharegpt":
                fh.write(b"\n")
            converted += 1
        if batch:
            flush_prompts(fh)
        if to_format == "sharegpt":
            fh.write(b"\n]\n")
        change = before.change_since(path, "the export") if before is not None else None
        if change:  # a mix of two versions of the file: keep `out` as it was
            raise TokdeckError(f"{path}: {change}: nothing written to {out}")
    if "invalid" in skipped:
        skipped["invalid record"] = skipped.pop("invalid")
    return ExportResult(path=str(out), to_format=to_format, from_format=guess.format, converted=converted,
                        skipped=sum(skipped.values()), skipped_reasons=dict(skipped),
                        output_tokens_from=tok.id if tok is not None and to_format == "prompt" else None)
