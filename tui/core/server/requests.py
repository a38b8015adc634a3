"""Request bodies of the token-counting service, validated into frozen dataclasses.

Every problem is an ``ApiError`` carrying the HTTP status, a machine-readable ``type`` and a
one-line message; the app turns it into ``{"error": {"message", "type"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..json_input import JSONInputError, loads
from ..tokenizers.base import SPECIAL_POLICIES
from ..tokenizers.chat import ChatFormatError, ChatMessage, parse_messages


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


@dataclass(frozen=True)
class Target:
    """Which tokenizer a request asks for: a model name to resolve, or a tokenizer id."""

    model_name: str | None
    tokenizer: str | None


@dataclass(frozen=True)
class CountRequest:
    target: Target
    specials: str
    text: str | None = None
    messages: tuple[ChatMessage, ...] | None = None


@dataclass(frozen=True)
class BatchRequest:
    target: Target
    specials: str
    texts: tuple[str, ...]


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, parsed with the limits of ``tui.core.json_input`` (nesting,
    NaN and out-of-range numbers refused; lone surrogates accepted)."""
    try:
        data = loads(body)
    except JSONInputError as exc:
        raise ApiError(400, "invalid_json", f"the body is {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _target(data: dict) -> Target:
    # a field given as null is a field not given
    model_name, model, tokenizer = data.get("model_name"), data.get("model"), data.get("tokenizer")
    if model_name is not None and model is not None:
        raise invalid("give model_name or model, not both")
    model = model_name if model_name is not None else model
    if model is not None and tokenizer is not None:
        raise invalid("give model_name or tokenizer, not both")
    if model is None and tokenizer is None:
        raise invalid("model_name (or tokenizer) is required")
    for field, value in (("model_name", model), ("tokenizer", tokenizer)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise invalid(f"{field} must be a non-empty string")
    return Target(model_name=model, tokenizer=tokenizer)


def _specials(data: dict) -> str:
    specials = data.get("specials")
    if specials is None:
        return "literal"
    if specials not in SPECIAL_POLICIES:
        raise invalid(f"specials must be one of {', '.join(repr(p) for p in SPECIAL_POLICIES)}")
    return specials


def parse_count(data: dict) -> CountRequest:
    target, specials = _target(data), _specials(data)
    has_text, has_messages = data.get("text") is not None, data.get("messages") is not None
    if has_text == has_messages:
        raise invalid("give either text (a string) or messages (a list of chat messages)")
    if has_text:
        if not isinstance(data["text"], str):
            raise invalid("text must be a string")
        return CountRequest(target, specials, text=data["text"])
    try:
        messages = parse_messages(data["messages"])
    except ChatFormatError as exc:
        raise invalid(str(exc)) from None
    return CountRequest(target, specials, messages=tuple(messages))


def parse_batch(data: dict) -> BatchRequest:
    target, specials = _target(data), _specials(data)
    texts = data.get("texts")
    if not isinstance(texts, list):
        raise invalid("texts must be a list of strings")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise invalid(f"texts[{i}] must be a string")
    return BatchRequest(target, specials, tuple(texts))
