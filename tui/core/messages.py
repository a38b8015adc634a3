"""OpenAI chat messages: their typed model, and the one rule for their text.

The model (msgspec Structs, decoded and validated in C; unknown fields are refused, fields that
were absent stay ``UNSET``): ``Message`` (any role; ``content`` a string, a list of content parts,
null or absent), the content parts (tagged by ``type``), ``ToolCall`` and ``Function``, and
``PlainMessage``, the common ``{role, content}`` message with a string content.

The text rule is what OpenAI-compatible servers (vLLM, SGLang) apply before a chat template sees a
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
``"\\n"`` (``messages_text``), empty ones left out. Every function takes the decoded JSON (dicts
and lists) or the Structs alike.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal, get_args

from msgspec import UNSET, Struct, UnsetType

#: part type -> the key that holds its text
TEXT_PART_KEYS: dict[Any, str] = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
#: parts of one content, and messages of one prompt, are joined with this
JOIN = "\n"

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
#: every role of the Chat Completions API ("function" is deprecated)
ROLES: tuple[str, ...] = get_args(Role)


class Strict(Struct, forbid_unknown_fields=True, gc=False):
    """The base of the model: an unknown field fails the decode (a record the model does not
    describe exactly takes the slow, precise path); ``gc=False``: decoded JSON has no cycles.
    Fields are declared in the order the API and common writers put them, which is the order
    ``msgspec.json.encode`` writes them (a line equal to its record's encoding is the cheap case;
    ``kw_only`` where an optional field comes first)."""


class Part(Strict, tag_field="type"):
    """A content part; its ``type`` picks the class (an unknown type fails the decode)."""


class TextPart(Part, tag="text"):
    text: str


class InputTextPart(Part, tag="input_text"):
    text: str


class OutputTextPart(Part, tag="output_text"):
    text: str


class RefusalPart(Part, tag="refusal"):
    refusal: str


class ImageURL(Strict):
    url: str
    detail: str | UnsetType = UNSET


class ImagePart(Part, tag="image_url"):
    image_url: ImageURL


class InputAudio(Strict):
    data: str
    format: str


class AudioPart(Part, tag="input_audio"):
    input_audio: InputAudio


class FileData(Strict):
    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(Part, tag="file"):
    file: FileData


ContentPart = TextPart | InputTextPart | OutputTextPart | RefusalPart | ImagePart | AudioPart | FilePart
#: Struct part class -> the field that holds its text (from TEXT_PART_KEYS: one rule)
_STRUCT_TEXT_KEYS: dict[type, str] = {cls: TEXT_PART_KEYS[cls.__struct_config__.tag]
                                      for cls in (TextPart, InputTextPart, OutputTextPart, RefusalPart)}


class Function(Strict):
    """A function call: its name and its arguments as JSON text (as the API sends them)."""

    name: str
    arguments: str


class ToolCall(Strict, kw_only=True):
    id: str
    type: Literal["function"] | UnsetType = UNSET
    function: Function


class Message(Strict):
    """A chat message of any role, with every field the Chat Completions API defines for one
    (and ``weight``, of fine-tuning data). Which fields a role needs is not checked here."""

    role: Role
    tool_call_id: str | UnsetType = UNSET
    content: str | list[ContentPart] | None | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    refusal: str | None | UnsetType = UNSET
    tool_calls: list[ToolCall] | None | UnsetType = UNSET
    function_call: Function | None | UnsetType = UNSET
    weight: Literal[0, 1] | UnsetType = UNSET


class PlainMessage(Strict):
    """The common message, ``{role, content}`` with a string content and a role that needs
    nothing else: once decoded, no rule is left to check."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str


def part_text(part: Any) -> str | None:
    """The text of one content part, or None when the part carries no text."""
    if type(part) is str:
        return part
    if type(part) is not dict:
        key = _STRUCT_TEXT_KEYS.get(type(part))
        return None if key is None else getattr(part, key)
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
    name: Any
    args: Any
    for call in calls:
        if type(call) is ToolCall:
            name, args = call.function.name, call.function.arguments
        else:
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
    if type(message) is dict:
        content, calls = message.get("content"), message.get("tool_calls")
    elif type(message) is Message:
        content, calls = message.content, message.tool_calls
    elif type(message) is PlainMessage:
        return message.content
    else:
        return ""
    text = content_text(content)
    pieces = tool_call_pieces(calls)
    if not pieces:
        return text
    return JOIN.join([text, *pieces] if text else pieces)


def messages_text(messages: Iterable[Any]) -> str:
    """Several messages as one prompt: their texts joined with newlines (no template, no roles)."""
    return JOIN.join(t for t in map(message_text, messages) if t)
