"""Token counts of chat messages, with the overhead of the model's chat format where it is known.

    from tui.core.tokenizers.chat import count_chat, parse_messages
    msgs = parse_messages([{"role": "user", "content": "hello"}])   # ChatFormatError if malformed
    c = count_chat(reg.get("qwen3"), msgs)
    c.total_tokens, c.content_tokens, c.overhead_tokens, c.method
    tok.count_many(texts, specials)    # several counts by the fastest route for short texts

``method`` says how the total was obtained:

- ``chat_template`` - the tokenizer's Jinja chat template is rendered the way transformers'
  ``apply_chat_template`` does (sandboxed, ``trim_blocks``/``lstrip_blocks``, the
  ``raise_exception``/``strftime_now`` helpers, the tokenizer's special tokens such as
  ``bos_token`` as variables, ``add_generation_prompt=True``) and the prompt is counted with
  the ``parse`` policy, since template markers such as ``<|im_start|>`` are special tokens and
  a serving engine tokenizes the rendered prompt that way. BOS is added only if the template
  writes it (transformers tokenizes the rendering with ``add_special_tokens=False``).
  Templates: bundled tokenizers from ``data/chat_templates.json``; discovered ones from a
  ``chat_template.jinja`` or ``tokenizer_config.json`` beside their tokenizer file.
- ``openai_rule`` - tiktoken encodings (OpenAI models): OpenAI's published rule, 3 tokens per
  message plus its role's and values' tokens, +1 per ``name``, +3 to prime the reply.
- ``sum_of_contents`` - no template is known (Tekken, the estimate, tokenizers without one):
  the contents' tokens only; the real prompt is longer by an unknown overhead.

``content_tokens`` is the sum of each message's text counted alone; ``overhead_tokens`` is
``total_tokens - content_tokens`` (with a template that trims whitespace it can be slightly
below what the markers alone would cost). A message's text follows the one message-text rule
(``tui.core.messages``: text parts joined with ``\\n`` as vLLM joins them, other parts such as
images not counted, then the names and arguments of its ``tool_calls``). Tool definitions
(``tools``) are not counted.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import TokdeckError
from ..messages import TEXT_PART_KEYS, content_text, message_text
from .base import SpecialPolicy, Tokenizer, TokenizerInfo, _check_policy
from .registry import DATA_DIR

METHODS = ("chat_template", "openai_rule", "sum_of_contents")

# OpenAI's published rule for gpt-3.5-turbo / gpt-4 / gpt-4o chat messages
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3

# tiktoken encodings of OpenAI models (discovered copies carry the bundled id as extra["base"])
_OPENAI_ENCODINGS = {"r50k_base", "p50k_base", "cl100k_base", "o200k_base", "o200k_harmony"}


class ChatFormatError(TokdeckError):
    """Messages that are not a list of chat messages, or a template that refuses them."""


@dataclass(frozen=True)
class ChatMessage:
    role: str
    text: str  # the content's text parts and tool-call arguments, as counted
    name: str | None = None
    #: what the template sees: the message as given, with list content flattened to ``text``
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChatTemplate:
    source: str  # "bundled" or the file it was read from
    template: str
    special_tokens: Mapping[str, str]  # bos_token, eos_token, ... as template variables


@dataclass(frozen=True)
class ChatCount:
    tokenizer_id: str
    method: str  # one of METHODS
    total_tokens: int
    content_tokens: int
    overhead_tokens: int
    messages: int
    specials: str  # the policy the total was counted with
    exact: bool  # False for the estimate
    template_source: str | None = None


# ------------------------------------------------------------------ messages
def _content_text(content: Any, where: str) -> str:
    """The content's text by the one message-text rule (``tui.core.messages``), after checking
    that it is a string, null or a list of part objects."""
    if content is None or isinstance(content, str):
        return content_text(content)
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, str):
                continue
            if not isinstance(part, dict):
                raise ChatFormatError(f"{where}.content[{j}] must be a content part object or a string")
            key = TEXT_PART_KEYS.get(part.get("type")) if isinstance(part.get("type"), str) else None
            if key is not None and not isinstance(part.get(key), str):
                raise ChatFormatError(f"{where}.content[{j}].{key} must be a string")
        return content_text(content)
    raise ChatFormatError(f"{where}.content must be a string, a list of parts or null")


def _tool_call_arguments(calls: Any, where: str) -> list[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise ChatFormatError(f"{where}.tool_calls must be a list")
    out = []
    for j, call in enumerate(calls):
        if not isinstance(call, dict):
            raise ChatFormatError(f"{where}.tool_calls[{j}] must be an object")
        fn = call.get("function", call)
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if args is None:
            continue
        out.append(args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))
    return out


def parse_messages(messages: Any) -> list[ChatMessage]:
    """Validate OpenAI-style chat messages; raises ChatFormatError with a one-line message."""
    if not isinstance(messages, list) or not messages:
        raise ChatFormatError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ChatFormatError(f"{where} must be an object with role and content")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise ChatFormatError(f"{where}.role must be a non-empty string")
        if "content" not in m and not m.get("tool_calls"):
            raise ChatFormatError(f"{where} has no content")
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            raise ChatFormatError(f"{where}.name must be a string")
        content = _content_text(m.get("content"), where)
        _tool_call_arguments(m.get("tool_calls"), where)
        text = message_text(m)
        raw = dict(m)
        if isinstance(m.get("content"), list):
            raw["content"] = content
        out.append(ChatMessage(role=role, text=text, name=name, raw=raw))
    return out


# ------------------------------------------------------------------ templates
_BUNDLED: dict[str, dict] | None = None
_LOCK = threading.Lock()
_TEMPLATE_CACHE: dict[tuple[str, str | None], ChatTemplate | None] = {}
_COMPILED: dict[str, Any] = {}


def _bundled_templates() -> dict[str, dict]:
    global _BUNDLED
    if _BUNDLED is None:
        with open(DATA_DIR / "chat_templates.json", "rb") as fh:
            _BUNDLED = json.load(fh)
    return _BUNDLED


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _pick_template(value: Any) -> str | None:
    """``chat_template`` is a string, or a list of ``{name, template}`` (the "default" one is used)."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        chosen = named.get("default")
        return chosen if isinstance(chosen, str) and chosen.strip() else None
    return None


def _specials_from(config: Mapping[str, Any]) -> dict[str, str]:
    keys = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
    return {k: t for k in keys if (t := _token_text(config.get(k))) is not None}


def _template_from_folder(folder: Path) -> ChatTemplate | None:
    config_file = folder / "tokenizer_config.json"
    config: dict = {}
    if config_file.is_file():
        try:
            loaded = json.loads(config_file.read_text("utf-8"))
            config = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            config = {}
    jinja_file = folder / "chat_template.jinja"  # newer transformers save the template apart
    if jinja_file.is_file():
        try:
            return ChatTemplate(str(jinja_file), jinja_file.read_text("utf-8"), _specials_from(config))
        except (OSError, UnicodeDecodeError):
            pass
    template = _pick_template(config.get("chat_template"))
    if template is None:
        return None
    return ChatTemplate(str(config_file), template, _specials_from(config))


def chat_template_for(info: TokenizerInfo) -> ChatTemplate | None:
    """The chat template known for a tokenizer, or None. Cached per tokenizer."""
    key = (info.id, info.path)
    with _LOCK:
        if key in _TEMPLATE_CACHE:
            return _TEMPLATE_CACHE[key]
    found: ChatTemplate | None = None
    if info.source == "bundled":
        entry = _bundled_templates().get(info.id) or {}
        template = _pick_template(entry.get("chat_template"))
        if template is not None:
            found = ChatTemplate("bundled", template, _specials_from(entry))
    elif info.path and info.format in ("hf", "tiktoken", "tekken"):
        found = _template_from_folder(Path(info.path).parent)
    with _LOCK:
        _TEMPLATE_CACHE[key] = found
    return found


def _is_openai_encoding(info: TokenizerInfo) -> bool:
    if info.format != "tiktoken":
        return False
    return info.id in _OPENAI_ENCODINGS or info.extra.get("base") in _OPENAI_ENCODINGS


def chat_method(info: TokenizerInfo) -> str:
    """How chat messages are counted with this tokenizer (one of METHODS)."""
    if _is_openai_encoding(info):
        return "openai_rule"
    if info.format != "estimate" and chat_template_for(info) is not None:
        return "chat_template"
    return "sum_of_contents"


def _compile(template: str):
    with _LOCK:
        compiled = _COMPILED.get(template)
    if compiled is not None:
        return compiled
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """transformers' ``{% generation %}`` block (marks assistant text); renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        compiled = env.from_string(template)
    except jinja2.exceptions.TemplateError as exc:
        raise ChatFormatError(f"the chat template does not compile: {_one_line(exc)}") from None
    with _LOCK:
        _COMPILED[template] = compiled
    return compiled


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def render_chat(template: ChatTemplate, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
    """The prompt a serving engine builds from ``messages`` with this template."""
    import jinja2

    compiled = _compile(template.template)
    try:
        return compiled.render(messages=[dict(m.raw or {"role": m.role, "content": m.text}) for m in messages],
                               tools=None, documents=None, add_generation_prompt=add_generation_prompt,
                               **template.special_tokens)
    except jinja2.exceptions.TemplateError as exc:
        raise ChatFormatError(f"the chat template refused the messages: {_one_line(exc)}") from None
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
        raise ChatFormatError(f"the chat template failed on these messages: {type(exc).__name__}: "
                              f"{_one_line(exc)}") from None


# ------------------------------------------------------------------ counting
def count_chat(tok: Tokenizer, messages: Sequence[ChatMessage], specials: SpecialPolicy = "literal") -> ChatCount:
    """Count chat messages with ``tok``; see the module docstring for the methods.

    ``specials`` applies to the contents and to the ``openai_rule``/``sum_of_contents`` totals;
    a rendered template is always counted with ``parse`` (and so are its contents, so the
    overhead compares like with like).
    """
    _check_policy(specials)
    info = tok.info
    method = chat_method(info)
    if method == "chat_template":
        template = chat_template_for(info)
        assert template is not None
        prompt = render_chat(template, messages)
        counts = tok.count_many([prompt, *(m.text for m in messages)], "parse")
        total, content = counts[0], sum(counts[1:])
        return ChatCount(info.id, method, total, content, total - content, len(messages), "parse",
                         info.exact, template.source)
    content = sum(tok.count_many([m.text for m in messages], specials))
    if method == "openai_rule":
        extras = [m.role for m in messages] + [m.name for m in messages if m.name is not None]
        overhead = (OPENAI_TOKENS_PER_MESSAGE * len(messages) + sum(tok.count_many(extras, specials))
                    + OPENAI_TOKENS_PER_NAME * sum(m.name is not None for m in messages) + OPENAI_REPLY_PRIMING)
        return ChatCount(info.id, method, content + overhead, content, overhead, len(messages), specials, info.exact)
    return ChatCount(info.id, method, content, content, 0, len(messages), specials, info.exact)
