"""Each format's record as msgspec Structs: the fast path of the structure pass.

A line is decoded first by its format's typed decoders (``DECODERS``: in C, the JSON syntax, UTF-8,
the types, the roles and tags, the required fields; an unknown field fails the decode). What they
accept is described by the Structs alone: ``READERS`` turn a Struct into the record's ``Rec`` and
the warnings a schema cannot rule out (no assistant reply, a ``tool_call_id`` that answers no
earlier call, tool-call arguments that are not JSON, ShareGPT turn order, an empty text), or into
None when the record breaks a rule a schema cannot express (an assistant message with neither
content nor tool calls, a ``tool`` message without ``tool_call_id``...). A line the decoders
refuse, and a record a reader gives None for, take the slow path (``parsing``, ``formats``):
orjson, the validators on dicts, ``parsing.diagnose``: today's errors and warnings, exactly.

Every typed value is one orjson reads the same (the two parsers agree on JSON, UTF-8 and
surrogates; integers are held to the range orjson reads as integers), so a record is
valid, with the same ``Rec`` and warnings, on either path (``test_datasets_typed`` checks it).

Duplicate keys: the typed decoders, like orjson, keep the last value. A record's compact
``encode`` writes the keys the Struct holds (absent fields stay ``UNSET`` and are not written)
and its strings, with as many colons as orjson's re-encoding on the slow path: the same
``parsing.maybe_duplicate_keys`` pre-check decides which lines are searched for repeated keys
(on the colon counts alone: the Struct's field order may differ from the line's key order; a
line that may escape a colon, ``\\u003a``, is searched whatever its counts). The schemas hold no
floats, so a line is never shorter than its compact encoding: a repeated key always makes it
longer, and its verdict is the slow path's.

``ARRAY_DECODERS`` decode a JSON array of a chat format's plain records in one call: the
scanner's block path (many lines at once, their newlines made commas).
"""

from __future__ import annotations

from types import GenericAlias
from typing import Annotated, Any, Callable, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ..messages import Message, PlainMessage, Strict, content_text, message_text
from . import parsing
from .formats import (BATCH_URLS, Rec, alpaca_rec, bad_arguments, batch_chat, chat_rec, empty_text, sharegpt_order,
                      unknown_endpoint, unmatched_tool_call)

NonEmpty = Meta(min_length=1)
#: integers orjson also reads as integers (it reads ones past 64 bits as floats, which the validators
#: refuse); msgspec's bounds stop at int64's, so those between 2**63 and 2**64 take the slow path
Int = Annotated[int, Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


class PlainChat(Strict):
    """An openai-chat record of plain messages only: valid once decoded. Its messages are a tuple:
    a tuple of Structs the garbage collector does not track is untracked at its first collection,
    where a list is traversed at every one while the scan holds a sub-block of records (very
    short records: about 10% of the structure pass)."""

    messages: Annotated[tuple[PlainMessage, ...], NonEmpty]


class Chat(Strict):
    messages: Annotated[list[Message], NonEmpty]
    parallel_tool_calls: bool | None | UnsetType = UNSET


ShareGPTTag = Literal["human", "user", "gpt", "assistant", "chatgpt", "bard", "bing", "model", "system",
                      "observation", "function_call", "tool", "function"]


class Turn(Strict, rename={"from_": "from"}):
    from_: ShareGPTTag
    value: str


class ShareGPT(Strict, kw_only=True):
    id: str | UnsetType = UNSET
    conversations: Annotated[list[Turn], NonEmpty]
    system: str | None | UnsetType = UNSET


class Alpaca(Strict, kw_only=True):
    instruction: str
    input: str | None | UnsetType = UNSET
    output: str


TextOrMessages = str | list[Message]


class PromptCompletion(Strict):
    prompt: TextOrMessages
    completion: TextOrMessages | UnsetType = UNSET
    chosen: TextOrMessages | UnsetType = UNSET
    rejected: TextOrMessages | UnsetType = UNSET


class Prompt(Strict):
    prompt: str
    output_tokens: Annotated[int, Meta(ge=1, le=(1 << 63) - 1)] | None | UnsetType = UNSET


class Text(Strict):
    text: str


class BatchBody(Strict):
    """The body fields the checks read (a chat request's, or ``prompt``/``input``); a body with
    others (sampling parameters, tools...) takes the slow path."""

    model: str | UnsetType = UNSET
    max_tokens: Int | None | UnsetType = UNSET
    max_completion_tokens: Int | None | UnsetType = UNSET
    messages: Annotated[list[Message], NonEmpty] | UnsetType = UNSET
    prompt: str | UnsetType = UNSET
    input: str | UnsetType = UNSET


class Batch(Strict):
    custom_id: str
    method: Literal["POST"]
    url: str
    body: BatchBody


TYPES: dict[str, tuple[Any, ...]] = {
    "openai-chat": (PlainChat, Chat),
    "message-list": (Annotated[tuple[PlainMessage, ...], NonEmpty], Annotated[list[Message], NonEmpty]),
    "sharegpt": (ShareGPT,), "alpaca": (Alpaca,), "prompt-completion": (PromptCompletion,),
    "prompt": (Prompt,), "text": (Text,), "openai-batch": (Batch,),
}
#: format -> its typed decoders' ``decode``, the common shape's first (the scanner tries them in turn)
DECODERS: dict[str, tuple[Callable[[bytes], Any], ...]] = {
    fmt: tuple(msgspec.json.Decoder(t).decode for t in types) for fmt, types in TYPES.items()}
#: a chat format's first decoder -> the decoder of a JSON array of the same records: the scanner's
#: block path decodes the lines of a sub-block joined with commas in one call (which fails unless
#: every line holds exactly one record)
ARRAY_DECODERS: dict[Callable[[bytes], Any], Callable[[bytes], list]] = {
    DECODERS[fmt][0]: msgspec.json.Decoder(GenericAlias(list, (TYPES[fmt][0],))).decode
    for fmt in ("openai-chat", "message-list")}

#: a decoded record's compact encoding (no key twice, nothing absent written)
encode = msgspec.json.Encoder().encode


# ------------------------------------------------------------------ readers
# Each mirrors its validator in ``formats`` on what the schema lets through, in the same order
# (so the warnings come in the same order); None where the validator would give an error.

Read = tuple[Rec, list]


def messages_rec(msgs: list[Message], where: str, warns: list) -> tuple[list, list[str], int] | None:
    """``formats.check_messages`` on typed messages: (fields, text per message, index of the last
    assistant message or -1), or None for a message the validator refuses."""
    fields: list = []
    texts: list[str] = []
    last = -1
    call_ids: set[str] = set()
    for i, m in enumerate(msgs):
        role, content = m.role, m.content
        if role == "assistant":
            last = i
            calls = m.tool_calls
            if (content is None or content is UNSET) and not calls and not m.function_call:
                return None
            if calls:
                for k, call in enumerate(calls):
                    call_ids.add(call.id)
                    try:
                        parsing.loads(call.function.arguments)
                    except parsing.JSONDecodeError:
                        warns.append(bad_arguments(f"{where}[{i}].tool_calls[{k}]"))
            text = message_text(m)
        else:
            if content is None or content is UNSET:
                return None
            if role == "tool":
                if m.tool_call_id is UNSET:
                    return None
                if m.tool_call_id not in call_ids:
                    warns.append(unmatched_tool_call(f"{where}[{i}]", m.tool_call_id))
            elif role == "function" and type(m.name) is not str:
                return None
            text = content_text(content)
        fields.append((role, len(text)))
        texts.append(text)
    return fields, texts, last


def _chat(msgs: list[Message], where: str, warns: list) -> Rec | None:
    got = messages_rec(msgs, where, warns)
    return None if got is None else chat_rec(got[0], got[1], got[2], warns)


def read_chat(record: Chat) -> Read | None:
    """(A ``PlainChat`` is counted by the scanner itself: ``Structure._count_plain``.)"""
    warns: list = []
    rec = _chat(record.messages, "messages", warns)
    return None if rec is None else (rec, warns)


def read_message_list(record: list[Message]) -> Read | None:
    warns: list = []
    rec = _chat(record, "messages", warns)
    return None if rec is None else (rec, warns)


def read_sharegpt(record: ShareGPT) -> Read | None:
    conv = record.conversations
    tags = [t.from_ for t in conv]
    warns: list = []
    sharegpt_order(tags, warns)
    return Rec([(t.from_, len(t.value)) for t in conv], len(conv), conv[0].value,
               conv[1].value if len(conv) > 1 else None), warns


def read_alpaca(record: Alpaca) -> Read | None:
    return alpaca_rec(record.instruction, record.input or "", record.output), []


def _text_or_messages(value: TextOrMessages | UnsetType, key: str, warns: list, fields: list) -> str | None:
    if type(value) is str:
        fields.append((key, len(value)))
        return value
    if type(value) is not list:  # absent
        return None
    got = messages_rec(value, key, warns)
    if got is None:
        return None
    fields.extend(got[0])
    return "\n".join(got[1])


def read_prompt_completion(record: PromptCompletion) -> Read | None:
    warns: list = []
    fields: list = []
    chosen = record.completion is UNSET and record.chosen is not UNSET
    prompt = _text_or_messages(record.prompt, "prompt", warns, fields)
    answer = _text_or_messages(record.chosen if chosen else record.completion, "chosen" if chosen else "completion",
                               warns, fields)
    if chosen and _text_or_messages(record.rejected, "rejected", warns, fields) is None:
        return None
    if prompt is None or answer is None:
        return None
    return Rec(fields, None, prompt, answer), warns


def read_prompt(record: Prompt) -> Read | None:
    warns: list = []
    empty_text(record.prompt, "prompt", warns)
    declared = record.output_tokens if type(record.output_tokens) is int else None
    return Rec([("prompt", len(record.prompt))], None, record.prompt, None, declared), warns


def read_text(record: Text) -> Read | None:
    warns: list = []
    empty_text(record.text, "text", warns)
    return Rec([("text", len(record.text))], None, record.text, None), warns


def read_batch(record: Batch) -> Read | None:
    url, body = record.url, record.body
    warns: list = []
    if url not in BATCH_URLS:
        warns.append(unknown_endpoint(url))
    fields: list = []
    prompt = ""
    if url == "/v1/chat/completions":
        if body.model is UNSET or body.messages is UNSET:
            return None
        chat_warns: list = []
        rec = _chat(body.messages, "body.messages", chat_warns)
        if rec is None:
            return None
        fields, prompt = batch_chat(rec, chat_warns, warns)
    else:
        text = body.prompt if url == "/v1/completions" else body.input
        if type(text) is str:
            prompt = text
            fields.append(("prompt" if url == "/v1/completions" else "input", len(text)))
    most = body.max_tokens if body.max_completion_tokens is UNSET else body.max_completion_tokens
    return Rec(fields, None, prompt, None, most if type(most) is int else None, record.custom_id), warns


READERS: dict[str, Callable[[Any], Read | None]] = {
    "openai-chat": read_chat, "message-list": read_message_list, "sharegpt": read_sharegpt, "alpaca": read_alpaca,
    "prompt-completion": read_prompt_completion, "prompt": read_prompt, "text": read_text, "openai-batch": read_batch,
}
