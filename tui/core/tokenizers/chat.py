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

What a template is given (tool-call conversations: an assistant message whose content is null
or absent with ``tool_calls``, then ``tool`` messages):

- the messages normalised as vLLM does before rendering: content null or absent -> "", content
  parts -> their text (the rule above), an empty ``tool_calls`` list dropped, and each tool
  call's ``arguments`` JSON string parsed into an object ({} when it is not JSON);
- a template that writes no tool call from those (checked once per template, with a probe
  conversation) is given the messages as OpenAI sends them instead: content null kept,
  arguments as JSON strings (DeepSeek-V3's template writes tool calls only then);
- a template that writes tool calls in neither shape (Gemma 3's, Llama 3's base template) gets
  them as text: each message's text by the rule above as its content (an assistant's tool
  calls follow its content), tool results as user turns, and consecutive turns of one role
  joined with "\n" (Gemma's template demands alternating user/assistant turns).

A template that raises, recurses without end, or renders for more than ``RENDER_LIMIT_S``
seconds is a ChatFormatError, not a stuck worker.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import TokdeckError
from ..json_input import MAX_DEPTH, JSONInputError, JSONTooDeep, loads, too_deep
from ..messages import JOIN, TEXT_PART_KEYS, content_text, message_text
from .base import SpecialPolicy, Tokenizer, TokenizerInfo, _check_policy, first_line
from .registry import DATA_DIR

METHODS = ("chat_template", "openai_rule", "sum_of_contents")

# OpenAI's published rule for gpt-3.5-turbo / gpt-4 / gpt-4o chat messages
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3

# tiktoken encodings of OpenAI models (discovered copies carry the bundled id as extra["base"])
_OPENAI_ENCODINGS = {"r50k_base", "p50k_base", "cl100k_base", "o200k_base", "o200k_harmony"}

#: the longest a chat template may render (ordinary ones take milliseconds)
RENDER_LIMIT_S = 10.0
#: the longest prompt a chat template may render, and the longest value a ``*`` or ``**`` in it may make
MAX_RENDER_CHARS = 50_000_000


class ChatFormatError(TokdeckError):
    """Messages that are not a list of chat messages, or a template that refuses them."""


@dataclass(frozen=True)
class ChatMessage:
    role: str
    text: str  # the content's text parts and tool-call arguments, as counted
    name: str | None = None
    #: the message as given (a template sees it shaped as the module docstring says)
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
def _check_content(content: Any, where: str) -> None:
    """Content must be a string, null or a list of part objects (strings count as text parts)."""
    if content is None or isinstance(content, str):
        return
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, str):
                continue
            if not isinstance(part, dict):
                raise ChatFormatError(f"{where}.content[{j}] must be a content part object or a string")
            kind = part.get("type")
            key = TEXT_PART_KEYS.get(kind) if isinstance(kind, str) else None
            if key is not None and not isinstance(part.get(key), str):
                raise ChatFormatError(f"{where}.content[{j}].{key} must be a string")
        return
    raise ChatFormatError(f"{where}.content must be a string, a list of parts or null")


def _check_tool_calls(calls: Any, where: str) -> None:
    """``tool_calls``: null, or a list of objects whose ``function`` is an object with a string
    ``name`` and ``arguments`` given as a JSON string, an object or an array."""
    if calls is None:
        return
    if not isinstance(calls, list):
        raise ChatFormatError(f"{where}.tool_calls must be a list")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            raise ChatFormatError(f"{at} must be an object")
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise ChatFormatError(f"{at}.function must be an object with name and arguments")
        if fn.get("name") is not None and not isinstance(fn["name"], str):
            raise ChatFormatError(f"{at}.function.name must be a string")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, (str, dict, list)):
            raise ChatFormatError(f"{at}.function.arguments must be a JSON string or an object")
        if isinstance(args, str):
            try:
                loads(args)
            except JSONTooDeep as exc:
                raise ChatFormatError(f"{at}.function.arguments is {exc}") from None
            except JSONInputError:
                pass  # not JSON: counted as text; vLLM gives the template {} for it


def parse_messages(messages: Any) -> list[ChatMessage]:
    """Validate OpenAI-style chat messages; raises ChatFormatError with a one-line message."""
    if not isinstance(messages, list) or not messages:
        raise ChatFormatError("messages must be a non-empty list of {role, content} objects")
    if too_deep(messages, MAX_DEPTH - 1):
        raise ChatFormatError(f"messages are nested more than {MAX_DEPTH} levels deep")
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
        _check_content(m.get("content"), where)
        _check_tool_calls(m.get("tool_calls"), where)
        out.append(ChatMessage(role=role, text=message_text(m), name=name, raw=dict(m)))
    return out


# ------------------------------------------------------------------ what a template is given
def _vllm_shape(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message as vLLM hands it to a chat template (see the module docstring)."""
    out = dict(message)
    out["content"] = content_text(message.get("content"))
    calls = out.pop("tool_calls", None)
    if message.get("role") == "assistant" and calls:
        out["tool_calls"] = [_vllm_call(call) for call in calls]
    return out


def _vllm_call(call: Mapping[str, Any]) -> dict[str, Any]:
    fn = dict(call["function"])
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = loads(args)
        except JSONInputError:
            args = {}
    fn["arguments"] = args if isinstance(args, (dict, list)) else {}
    return {**call, "function": fn}


def _openai_shape(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message as OpenAI's API takes it: content null kept beside tool calls, arguments as
    JSON strings; content parts still become their text."""
    out = dict(message)
    calls = message.get("tool_calls")
    content = message.get("content")
    out["content"] = None if content is None and calls else content_text(content)
    if calls:
        out["tool_calls"] = [_openai_call(call) for call in calls]
    return out


def _openai_call(call: Mapping[str, Any]) -> dict[str, Any]:
    fn = dict(call["function"])
    args = fn.get("arguments")
    if args is None:
        fn["arguments"] = "{}"
    elif not isinstance(args, str):
        fn["arguments"] = json.dumps(args, ensure_ascii=False)
    return {**call, "function": fn}


def _text_turns(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Tool calls as text, for a template that has no place for them (module docstring)."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        role = "user" if m.role == "tool" else m.role
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = JOIN.join(t for t in (turns[-1]["content"], m.text) if t)
        else:
            turns.append({"role": role, "content": m.text})
    return turns


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
        except (OSError, ValueError, RecursionError):  # unreadable or not JSON: no config
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
    from jinja2.exceptions import SecurityError
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

    class LimitedEnvironment(ImmutableSandboxedEnvironment):
        """``'x' * n`` and ``a ** b`` run in C and cannot be stopped: refuse results too big first."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if _too_big(operator, left, right):
                raise SecurityError(f"{operator!r} would make a value too big for a chat template")
            return super().call_binop(context, operator, left, right)

    env = LimitedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        compiled = env.from_string(template)
    except jinja2.exceptions.TemplateError as exc:
        raise ChatFormatError(f"the chat template does not compile: {first_line(exc)}") from None
    with _LOCK:
        _COMPILED[template] = compiled
    return compiled


def _too_big(operator: str, left: Any, right: Any) -> bool:
    if operator == "**":
        if not (isinstance(left, int) and isinstance(right, int)) or abs(left) < 2 or right < 0:
            return False
        return right * abs(left).bit_length() > 4 * MAX_RENDER_CHARS  # bits of the result
    for seq, n in ((left, right), (right, left)):
        if isinstance(n, int) and isinstance(seq, (str, list, tuple)):
            return len(seq) * n > MAX_RENDER_CHARS
    return False


def _render(template: ChatTemplate, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """Render within RENDER_LIMIT_S and MAX_RENDER_CHARS: a trace function on the template's own
    code (Jinja compiles it to Python named "<template>") stops a loop that does not end (the
    rest runs untraced), and the output is measured as it is produced."""
    import jinja2

    compiled = _compile(template.template)
    deadline = time.monotonic() + RENDER_LIMIT_S

    def on_line(frame, event, arg):
        if event == "line" and time.monotonic() > deadline:
            raise _TooLong
        return on_line

    def on_call(frame, event, arg):
        return on_line if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        parts, size = [], 0
        for part in compiled.generate(messages=messages, tools=None, documents=None,
                                      add_generation_prompt=add_generation_prompt, **template.special_tokens):
            size += len(part)
            if size > MAX_RENDER_CHARS:
                raise ChatFormatError(f"the chat template rendered more than {MAX_RENDER_CHARS:,} characters")
            parts.append(part)
        return "".join(parts)
    except _TooLong:
        raise ChatFormatError(f"the chat template did not finish rendering within {RENDER_LIMIT_S:g} s") from None
    except jinja2.exceptions.TemplateError as exc:
        raise ChatFormatError(f"the chat template refused the messages: {first_line(exc)}") from None
    except (TypeError, AttributeError, ValueError, KeyError, IndexError, ArithmeticError, RecursionError,
            MemoryError) as exc:
        raise ChatFormatError(f"the chat template failed on these messages: {type(exc).__name__}: "
                              f"{first_line(exc)}") from None
    finally:
        sys.settrace(previous)


class _TooLong(Exception):
    pass


#: a conversation with one tool call, to learn which message shape makes a template write it
_PROBE_FUNCTION = "tokdeck_probe_function"
_PROBE = (
    {"role": "user", "content": "What is the weather?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": _PROBE_FUNCTION, "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "4 degrees"},
)
_TOOL_SHAPES: dict[str, str] = {}


def tool_call_shape(template: ChatTemplate) -> str:
    """How this template is given tool-call conversations: "vllm", "openai" or "text" (module
    docstring); learnt once per template by rendering the probe conversation."""
    with _LOCK:
        known = _TOOL_SHAPES.get(template.template)
    if known is not None:
        return known
    shape = "text"
    for name, make in (("vllm", _vllm_shape), ("openai", _openai_shape)):
        try:
            if _PROBE_FUNCTION in _render(template, [make(m) for m in _PROBE]):
                shape = name
                break
        except ChatFormatError:
            continue
    with _LOCK:
        _TOOL_SHAPES[template.template] = shape
    return shape


def render_chat(template: ChatTemplate, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
    """The prompt a serving engine builds from ``messages`` with this template."""
    raws = [m.raw or {"role": m.role, "content": m.text} for m in messages]
    has_tool_turns = any(m.role == "tool" or raw.get("tool_calls") for m, raw in zip(messages, raws))
    shape = tool_call_shape(template) if has_tool_turns else "vllm"
    if shape == "text":
        shaped = _text_turns(messages)
    else:
        shaped = [(_vllm_shape if shape == "vllm" else _openai_shape)(raw) for raw in raws]
    return _render(template, shaped, add_generation_prompt)


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
