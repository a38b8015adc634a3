"""Request bodies of the token-counting service, validated into frozen Structs.

    req = decode_count(body)     # POST /calculate; decode_batch(body) for /batch-calculate

A body is decoded in C by msgspec into a Struct of the fields its endpoint takes: types checked,
unknown fields refused. A body that decode refuses (not JSON, a wrong type, an unknown field, a
lone surrogate, NaN, deep nesting) goes through the precise path instead: ``parse_json`` (the
limits of ``tui.core.json_input``), then ``parse_count``/``parse_batch``, which find what is
wrong and say it; so does a chat (see ``_CountBody``). Both paths end in the same checks, so a
body gets the same request or the same error either way (tests/serve/test_serve_requests.py).

Every problem is an ``ApiError`` carrying the HTTP status, a machine-readable ``type`` and a
one-line message; the app turns it into ``{"error": {"message", "type"}}``.
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

import msgspec

from ..json_input import JSONInputError, loads
from ..tokenizers.base import SPECIAL_POLICIES, SpecialPolicy
from ..tokenizers.chat import ChatFormatError, ChatMessage, parse_messages


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


# frozen Structs rather than frozen dataclasses: built in C, ~0.1 us instead of ~2 us each,
# for every request
class Target(msgspec.Struct, frozen=True):
    """Which tokenizer a request asks for: a model name to resolve, or a tokenizer id (one of the two)."""

    model_name: str | None
    tokenizer: str | None


class TextRequest(msgspec.Struct, frozen=True):
    target: Target
    specials: SpecialPolicy
    text: str


class ChatRequest(msgspec.Struct, frozen=True):
    target: Target
    specials: SpecialPolicy
    messages: tuple[ChatMessage, ...]


#: what POST /calculate asks for
CountRequest: TypeAlias = TextRequest | ChatRequest


class BatchRequest(msgspec.Struct, frozen=True):
    target: Target
    specials: SpecialPolicy
    texts: tuple[str, ...]


class _TargetFields(msgspec.Struct, forbid_unknown_fields=True):
    # null is a field not given, as in the precise path
    model_name: str | None = None
    model: str | None = None
    tokenizer: str | None = None
    specials: SpecialPolicy | None = None


class _CountBody(_TargetFields):
    text: str | None = None
    # Not decoded here: a body with messages is parsed whole by the precise path. A Raw is not
    # checked inside (UTF-8, number range, nesting), so a messages key given twice would let an
    # invalid first value through; rendering a chat costs far more than a second parse anyway.
    messages: msgspec.Raw = msgspec.Raw()


class _BatchBody(_TargetFields):
    texts: list[str] | None = None


_COUNT_BODY = msgspec.json.Decoder(_CountBody)
_BATCH_BODY = msgspec.json.Decoder(_BatchBody)
#: what makes the typed decode hand a body to the precise path
_REFUSED = (msgspec.DecodeError, RecursionError)


def decode_count(body: bytes) -> CountRequest:
    """The request of a POST /calculate body; ApiError if it is not one."""
    try:
        fields = _COUNT_BODY.decode(body)
    except _REFUSED:
        return parse_count(parse_json(body))
    if fields.messages:  # a chat (or messages given as null): see _CountBody
        return parse_count(parse_json(body))
    return _count_request(fields.model_name, fields.model, fields.tokenizer, fields.specials, fields.text, None)


def decode_batch(body: bytes) -> BatchRequest:
    """The request of a POST /batch-calculate body; ApiError if it is not one."""
    try:
        fields = _BATCH_BODY.decode(body)
    except _REFUSED:
        return parse_batch(parse_json(body))
    return _batch_request(fields.model_name, fields.model, fields.tokenizer, fields.specials, fields.texts)


# ------------------------------------------------------------------ the precise path
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


def parse_count(data: dict[str, Any]) -> CountRequest:
    return _count_request(data.get("model_name"), data.get("model"), data.get("tokenizer"), data.get("specials"),
                          data.get("text"), data.get("messages"))


def parse_batch(data: dict[str, Any]) -> BatchRequest:
    return _batch_request(data.get("model_name"), data.get("model"), data.get("tokenizer"), data.get("specials"),
                          data.get("texts"))


# ------------------------------------------------------------------ the checks both paths make
# (a field given as null is a field not given)
def _target(model_name: object, model: object, tokenizer: object) -> Target:
    if model_name is not None and model is not None:
        raise invalid("give model_name or model, not both")
    model = model_name if model_name is not None else model
    if model is not None and tokenizer is not None:
        raise invalid("give model_name or tokenizer, not both")
    if model is None and tokenizer is None:
        raise invalid("model_name (or tokenizer) is required")
    return Target(model_name=_name("model_name", model), tokenizer=_name("tokenizer", tokenizer))


def _name(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{field} must be a non-empty string")
    return value


def _specials(specials: object) -> SpecialPolicy:
    if specials is None:
        return "literal"
    if specials not in SPECIAL_POLICIES:
        raise invalid(f"specials must be one of {', '.join(repr(p) for p in SPECIAL_POLICIES)}")
    return cast(SpecialPolicy, specials)


def _count_request(model_name: object, model: object, tokenizer: object, specials: object,
                   text: object, messages: object) -> CountRequest:
    target, policy = _target(model_name, model, tokenizer), _specials(specials)
    if (text is None) == (messages is None):
        raise invalid("give either text (a string) or messages (a list of chat messages)")
    if text is not None:
        if not isinstance(text, str):
            raise invalid("text must be a string")
        return TextRequest(target, policy, text)
    try:
        parsed = parse_messages(messages)
    except ChatFormatError as exc:
        raise invalid(str(exc)) from None
    return ChatRequest(target, policy, tuple(parsed))


def _batch_request(model_name: object, model: object, tokenizer: object, specials: object,
                   texts: object) -> BatchRequest:
    target, policy = _target(model_name, model, tokenizer), _specials(specials)
    if not isinstance(texts, list):
        raise invalid("texts must be a list of strings")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise invalid(f"texts[{i}] must be a string")
    return BatchRequest(target, policy, tuple(texts))
