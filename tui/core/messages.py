"""One rule for the text of an OpenAI chat message, used by everything that turns messages into text.

The rule is what OpenAI-compatible servers (vLLM, SGLang) apply before a chat template sees a
message whose content is a list of parts:

- ``content`` a string: that string; ``null`` or absent: "" (an assistant turn that only calls
  tools);
- ``content`` a list: the text of each text part, in order, joined with ``"\\n"``. A text part is
  an object whose ``type`` is ``text``, ``input_text`` or ``output_text`` (its ``text``) or
  ``refusal`` (its ``refusal``), or a bare string (vLLM takes those as text). Other parts
  (images, audio, files) carry no text; an object part with no ``type``, or whose text is not a
  string, carries none either (the dataset validator reports those);
- anything else (a number, an object): no text.

``message_text`` adds an assistant's tool calls: each call's function name and its arguments
(the JSON string as sent; an object is serialised), after the content, joined with ``"\\n"``;
empty pieces are left out. A prompt made of several messages is their texts joined with
``"\\n"`` (``messages_text``), empty ones left out.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

#: part type -> the key that holds its text
TEXT_PART_KEYS: dict[str, str] = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
#: parts of one content, and messages of one prompt, are joined with this
JOIN = "\n"


def part_text(part: Any) -> str | None:
    """The text of one content part, or None when the part carries no text."""
    if type(part) is str:
        return part
    if type(part) is not dict:
        return None
    key = TEXT_PART_KEYS.get(part.get("type")) if type(part.get("type")) is str else None
    if key is None:
        return None
    text = part.get(key)
    return text if type(text) is str else None


def content_text(content: Any) -> str:
    """The text of a message's ``content`` (a string, a list of parts, or null)."""
    if type(content) is str:
        return content
    if type(content) is list:
        return JOIN.join(t for t in map(part_text, content) if t is not None)
    return ""


def tool_call_pieces(calls: Any) -> list[str]:
    """Function name and arguments of each tool call, non-empty ones, in order."""
    if type(calls) is not list:
        return []
    out: list[str] = []
    for call in calls:
        fn = call.get("function") if type(call) is dict else None
        if type(fn) is not dict:
            continue
        name, args = fn.get("name"), fn.get("arguments")
        if type(name) is str and name:
            out.append(name)
        if type(args) is not str and args is not None:
            try:
                args = json.dumps(args, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                args = None
        if args:
            out.append(args)
    return out


def message_text(message: Any) -> str:
    """A message's content text, then its tool calls' names and arguments."""
    if type(message) is not dict:
        return ""
    text = content_text(message.get("content"))
    calls = tool_call_pieces(message.get("tool_calls"))
    if not calls:
        return text
    return JOIN.join([text, *calls] if text else calls)


def messages_text(messages: Iterable[Any]) -> str:
    """Several messages as one prompt: their texts joined with newlines (no template, no roles)."""
    return JOIN.join(t for t in map(message_text, messages) if t)
