"""The dataset formats tokdeck knows: detection, per-record validation, prompt/answer extraction.

Each validator takes one parsed record, appends ``(kind, message)`` pairs to ``errs`` (the
record is invalid) and ``warns``, and returns a ``Rec`` describing the valid record, or None.
They see the lines the typed decoders of ``records`` refuse; ``records``' readers give the same
``Rec`` and warnings for the others (the builders and messages below are shared).

The prompt/answer pair of a record (used for token statistics and consumer checks):
- openai-chat, message-list: the text of every message before the last assistant message
  (joined by newlines), and that assistant message (content, plus tool-call names and
  arguments); with no assistant message, every message is prompt and there is no answer;
- sharegpt: turn 0 and turn 1, exactly what vLLM's ShareGPT loader takes;
- alpaca: instruction + "\\n" + input (when non-empty), and output;
- prompt-completion: prompt and completion (or chosen, for preference data);
- prompt: the prompt, and the declared ``output_tokens`` as answer length;
- text: the text; openai-batch: the request's messages/prompt/input, no answer.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from ..messages import JOIN, ROLES, TEXT_PART_KEYS, tool_call_pieces
from . import parsing

FORMATS: tuple[str, ...] = ("openai-chat", "message-list", "sharegpt", "alpaca", "prompt-completion",
                            "prompt", "text", "openai-batch")
#: formats whose records have a prompt and an answer (vLLM's ShareGPT length filter applies)
PAIRED: frozenset[str] = frozenset({"openai-chat", "message-list", "sharegpt", "alpaca", "prompt-completion"})

CHAT_ROLES = ROLES
_CHAT_ROLES = frozenset(CHAT_ROLES)
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})  # valid as {role, content} alone
SHAREGPT_HUMAN = frozenset({"human", "user"})
SHAREGPT_GPT = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})
SHAREGPT_OTHER = frozenset({"system", "observation", "function_call", "tool", "function"})
SHAREGPT_TAGS = SHAREGPT_HUMAN | SHAREGPT_GPT | SHAREGPT_OTHER
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal", "image", "audio",
                        "input_text", "input_image", "input_file", "output_text"})
BATCH_URLS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations")


class Rec(NamedTuple):
    """What a valid record contributes to statistics."""

    fields: list  # [(role or field name, characters)]
    turns: int | None  # messages/turns in the record (chat formats)
    prompt: str
    answer: str | None
    declared_output: int | None = None  # `output_tokens` of the prompt format
    key: str | None = None  # custom_id of openai-batch (must be unique)


NO_REPLY = ("no-assistant-reply", "no assistant message: fine for benchmarking, wrong for fine-tuning")


def bad_arguments(where: str) -> tuple[str, str]:
    return "bad-arguments", f"{where}.function.arguments is not valid JSON"


def unmatched_tool_call(where: str, tool_call_id: str) -> tuple[str, str]:
    return "unmatched-tool-call", f'{where}.tool_call_id "{tool_call_id}" answers no earlier tool call'


def chat_rec(fields: list, texts: list[str], last_assistant: int, warns: list) -> Rec:
    """The Rec of a valid conversation (``texts``: one per message); no assistant message: a warning."""
    if last_assistant < 0:
        warns.append(NO_REPLY)
        return Rec(fields, len(texts), JOIN.join(t for t in texts if t), None)
    return Rec(fields, len(texts), JOIN.join(t for t in texts[:last_assistant] if t), texts[last_assistant])


def sharegpt_order(tags: Sequence[str], warns: list) -> None:
    """The turn-order warnings of a valid ShareGPT conversation."""
    if not any(t in SHAREGPT_GPT for t in tags):
        warns.append(("no-assistant-reply", "no gpt turn: fine for benchmarking, wrong for fine-tuning"))
    else:
        speakers = [t for t in tags if t in SHAREGPT_HUMAN or t in SHAREGPT_GPT]
        if speakers and speakers[0] not in SHAREGPT_HUMAN:
            warns.append(("turn-order", f'the first turn is from "{speakers[0]}", expected "human"'))
        elif any((a in SHAREGPT_HUMAN) == (b in SHAREGPT_HUMAN) for a, b in zip(speakers, speakers[1:])):
            warns.append(("turn-order", "human and gpt turns do not alternate"))


def alpaca_rec(instruction: str, input: str, output: str) -> Rec:
    fields = [("instruction", len(instruction)), ("output", len(output))]
    if input:
        fields.append(("input", len(input)))
    return Rec(fields, None, f"{instruction}\n{input}" if input else instruction, output)


def empty_text(text: str, what: str, warns: list) -> None:
    if not text.strip():
        warns.append(("empty-text", f"the {what} is empty"))


def type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__  # pragma: no cover


_MISSING = object()


def _field(obj: dict, key: str, where: str, errs: list, kind=str, expect="a string", optional=False):
    """obj[key] if it has the expected type; else an error (missing or wrong type) and _MISSING."""
    v = obj.get(key, _MISSING)
    if v is _MISSING or (v is None and not optional):
        if not optional:
            errs.append(("missing-field", f'{where}has no "{key}"'))
        return _MISSING
    if v is None:
        return _MISSING
    if type(v) is not kind and not (kind is str and isinstance(v, str)):
        errs.append(("wrong-type", f'{where}"{key}" is {type_name(v)}, expected {expect}'))
        return _MISSING
    return v


def content_text(content, where: str, errs: list, warns: list) -> str | None:
    """The text of a message content (a string or a list of parts); None and an error if wrong."""
    if type(content) is str:
        return content
    if type(content) is list:
        texts = []
        for j, part in enumerate(content):
            w = f"{where}[{j}]"
            if type(part) is not dict:
                errs.append(("wrong-type", f"{w} is {type_name(part)}, expected a content part object"))
                continue
            t = part.get("type")
            if type(t) is not str:
                errs.append(("missing-field" if t is None else "wrong-type", f'{w} has no "type" string'))
                continue
            key = TEXT_PART_KEYS.get(t)
            if key is not None:
                txt = part.get(key)
                if type(txt) is not str:
                    errs.append(("missing-field" if txt is None else "wrong-type",
                                 f'{w} ({t}) needs "{key}" as a string'))
                    continue
                texts.append(txt)
            elif t not in PART_TYPES:
                warns.append(("unknown-part-type", f'{w} has type "{t}", which the OpenAI API does not define'))
        return JOIN.join(texts)
    if content is None:
        return None
    errs.append(("wrong-type", f"{where} is {type_name(content)}, expected a string or an array of parts"))
    return None


def _tool_calls_text(calls, where: str, errs: list, warns: list, ids: set) -> str | None:
    if type(calls) is not list:
        errs.append(("wrong-type", f"{where} is {type_name(calls)}, expected an array"))
        return None
    for k, call in enumerate(calls):
        w = f"{where}[{k}]"
        if type(call) is not dict:
            errs.append(("wrong-type", f"{w} is {type_name(call)}, expected an object"))
            continue
        cid = call.get("id")
        if type(cid) is str:
            ids.add(cid)
        elif cid is None:
            errs.append(("missing-field", f'{w} has no "id"'))
        else:
            errs.append(("wrong-type", f'{w}.id is {type_name(cid)}, expected a string'))
        fn = call.get("function")
        if type(fn) is not dict:
            if call.get("type", "function") == "function":
                errs.append(("missing-field" if fn is None else "wrong-type", f'{w} needs "function" as an object'))
            continue
        name = fn.get("name")
        if type(name) is not str:
            errs.append(("missing-field" if name is None else "wrong-type", f'{w}.function needs "name" as a string'))
        args = fn.get("arguments")
        if type(args) is str:
            try:
                parsing.loads(args)
            except parsing.JSONDecodeError:
                warns.append(bad_arguments(w))
        elif args is None:
            errs.append(("missing-field", f'{w}.function has no "arguments"'))
        else:
            errs.append(("wrong-type", f"{w}.function.arguments is {type_name(args)}, expected a JSON "
                                       "string (the object serialised), as the API sends it"))
    return JOIN.join(tool_call_pieces(calls))


def check_messages(msgs, where: str, errs: list, warns: list, fields: list) -> tuple[list, int]:
    """Validate an OpenAI message list. Returns (text per message, index of the last assistant or -1)."""
    texts: list[str] = []
    last_assistant = -1
    call_ids: set = set()
    for i, m in enumerate(msgs):
        if type(m) is dict and len(m) == 2:  # the common case, {role, content}: no other rule applies
            role = m.get("role")
            content = m.get("content")
            if type(content) is str and type(role) is str and role in _PLAIN_ROLES:
                if role == "assistant":
                    last_assistant = i
                fields.append((role, len(content)))
                texts.append(content)
                continue
        w = f"{where}[{i}]"
        if type(m) is not dict:
            errs.append(("wrong-type", f"{w} is {type_name(m)}, expected a message object"))
            texts.append("")
            continue
        role = m.get("role")
        if type(role) is not str:
            errs.append(("missing-field" if role is None else "wrong-type", f'{w} has no "role" string'))
            texts.append("")
            continue
        if role not in _CHAT_ROLES:
            errs.append(("unknown-role", f'{w}.role "{role}" is not one of {", ".join(CHAT_ROLES)}'))
            texts.append("")
            continue
        content = m.get("content")
        if role == "assistant":
            last_assistant = i
            calls = m.get("tool_calls")
            fcall = m.get("function_call")
            text = content_text(content, f"{w}.content", errs, warns) if content is not None else ""
            if calls is not None:
                ctext = _tool_calls_text(calls, f"{w}.tool_calls", errs, warns, call_ids)
                if ctext:
                    text = f"{text}\n{ctext}" if text else ctext
            if content is None and not calls and not fcall:
                errs.append(("missing-field", f'{w} (assistant) has neither "content" nor "tool_calls"'))
            if "weight" in m and (type(m["weight"]) is not int or m["weight"] not in (0, 1)):
                errs.append(("bad-value", f"{w}.weight must be 0 or 1"))
        else:
            if content is None:
                errs.append(("missing-field", f'{w} ({role}) has no "content"'))
                text = ""
            else:
                text = content_text(content, f"{w}.content", errs, warns)
            if role == "tool":
                tid = m.get("tool_call_id")
                if type(tid) is not str:
                    errs.append(("missing-field" if tid is None else "wrong-type",
                                 f'{w} (tool) needs "tool_call_id" as a string'))
                elif tid not in call_ids:
                    warns.append(unmatched_tool_call(w, tid))
            elif role == "function" and type(m.get("name")) is not str:
                errs.append(("missing-field", f'{w} (function) needs "name" as a string'))
        name = m.get("name")
        if name is not None and type(name) is not str:
            errs.append(("wrong-type", f"{w}.name is {type_name(name)}, expected a string"))
        text = text or ""
        fields.append((role, len(text)))
        texts.append(text)
    return texts, last_assistant


def _chat_rec(msgs, where: str, errs: list, warns: list) -> Rec | None:
    if type(msgs) is not list:
        errs.append(("wrong-type", f"{where} is {type_name(msgs)}, expected an array of messages"))
        return None
    if not msgs:
        errs.append(("empty", f"{where} is empty"))
        return None
    fields: list = []
    texts, last = check_messages(msgs, where, errs, warns, fields)
    if errs:
        return None
    return chat_rec(fields, texts, last, warns)


def v_openai_chat(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "messages"'))
        return None
    if "messages" not in obj:
        errs.append(("missing-field", 'the record has no "messages"'))
        return None
    tools = obj.get("tools")
    if tools is not None:
        if type(tools) is not list:
            errs.append(("wrong-type", f'"tools" is {type_name(tools)}, expected an array'))
        else:
            for k, tool in enumerate(tools):
                if type(tool) is not dict:
                    errs.append(("wrong-type", f"tools[{k}] is {type_name(tool)}, expected an object"))
                    continue
                if tool.get("type", "function") != "function":
                    continue  # other tool types (custom, built-in) have their own shapes
                fn = tool.get("function")
                if type(fn) is not dict or type(fn.get("name")) is not str:
                    errs.append(("missing-field", f'tools[{k}] needs "function" with a "name"'))
    ptc = obj.get("parallel_tool_calls")
    if ptc is not None and type(ptc) is not bool:
        errs.append(("wrong-type", f'"parallel_tool_calls" is {type_name(ptc)}, expected true or false'))
    rec = _chat_rec(obj["messages"], "messages", errs, warns)
    return None if errs else rec


def v_message_list(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not list:
        errs.append(("wrong-type", f"the record is {type_name(obj)}, expected an array of messages"))
        return None
    return _chat_rec(obj, "messages", errs, warns)


def v_sharegpt(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "conversations"'))
        return None
    conv = _field(obj, "conversations", "the record ", errs, list, "an array")
    if conv is _MISSING:
        return None
    if not conv:
        errs.append(("empty", '"conversations" is empty'))
        return None
    fields = []
    values = []
    tags = []
    for i, turn in enumerate(conv):
        w = f"conversations[{i}] "
        if type(turn) is not dict:
            errs.append(("wrong-type", f"conversations[{i}] is {type_name(turn)}, expected an object"))
            continue
        tag = _field(turn, "from", w, errs)
        value = _field(turn, "value", w, errs)
        if tag is _MISSING or value is _MISSING:
            continue
        if tag not in SHAREGPT_TAGS:
            errs.append(("unknown-role", f'conversations[{i}].from "{tag}" is not a ShareGPT tag '
                                         "(human, gpt, system, function_call, observation)"))
            continue
        fields.append((tag, len(value)))
        values.append(value)
        tags.append(tag)
    system = obj.get("system")
    if system is not None and type(system) is not str:
        errs.append(("wrong-type", f'"system" is {type_name(system)}, expected a string'))
    if errs:
        return None
    sharegpt_order(tags, warns)
    return Rec(fields, len(conv), values[0], values[1] if len(values) > 1 else None)


def v_alpaca(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "instruction"'))
        return None
    ins = _field(obj, "instruction", "the record ", errs)
    out = _field(obj, "output", "the record ", errs)
    inp = _field(obj, "input", "the record ", errs, optional=True)
    if errs:
        return None
    return alpaca_rec(ins, "" if inp is _MISSING else inp, out)


def _text_or_messages(obj: dict, key: str, errs: list, warns: list, fields: list) -> str | None:
    v = obj.get(key)
    if type(v) is str:
        fields.append((key, len(v)))
        return v
    if type(v) is list:  # TRL's conversational prompt-completion
        texts, _ = check_messages(v, key, errs, warns, fields)
        return "\n".join(texts)
    errs.append(("missing-field" if v is None else "wrong-type",
                 f'"{key}" is {type_name(v)}, expected a string or an array of messages'
                 if v is not None else f'the record has no "{key}"'))
    return None


def v_prompt_completion(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "prompt"'))
        return None
    fields: list = []
    prompt = _text_or_messages(obj, "prompt", errs, warns, fields)
    answer_key = "completion" if "completion" in obj or "chosen" not in obj else "chosen"
    answer = _text_or_messages(obj, answer_key, errs, warns, fields)
    if answer_key == "chosen":
        _text_or_messages(obj, "rejected", errs, warns, fields)
    if errs or prompt is None:
        return None
    return Rec(fields, None, prompt, answer)


def v_prompt(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "prompt"'))
        return None
    prompt = _field(obj, "prompt", "the record ", errs)
    out = obj.get("output_tokens")
    if out is not None and (type(out) is not int or out < 1):
        errs.append(("bad-value", f'"output_tokens" must be a whole number ≥ 1, not {orjson_repr(out)}'))
    if errs:
        return None
    empty_text(prompt, "prompt", warns)
    return Rec([("prompt", len(prompt))], None, prompt, None, out)


def v_text(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected an object with "text"'))
        return None
    text = _field(obj, "text", "the record ", errs)
    if errs:
        return None
    empty_text(text, "text", warns)
    return Rec([("text", len(text))], None, text, None)


def v_openai_batch(obj, errs: list, warns: list) -> Rec | None:
    if type(obj) is not dict:
        errs.append(("wrong-type", f'the record is {type_name(obj)}, expected a batch request object'))
        return None
    cid = _field(obj, "custom_id", "the record ", errs)
    method = _field(obj, "method", "the record ", errs)
    url = _field(obj, "url", "the record ", errs)
    body = _field(obj, "body", "the record ", errs, dict, "an object")
    if method is not _MISSING and method != "POST":
        errs.append(("bad-value", f'"method" is "{method}"; batch requests must be "POST"'))
    if errs:
        return None
    fields: list = []
    prompt = ""
    if url not in BATCH_URLS:
        warns.append(unknown_endpoint(url))
    if url == "/v1/chat/completions":
        if type(body.get("model")) is not str:
            errs.append(("missing-field", 'body has no "model" string'))
        if "messages" not in body:
            errs.append(("missing-field", 'body has no "messages"'))
            return None
        chat_warns: list = []
        rec = _chat_rec(body["messages"], "body.messages", errs, chat_warns)
        if errs or rec is None:
            return None
        fields, prompt = batch_chat(rec, chat_warns, warns)
    else:
        key = {"/v1/completions": "prompt"}.get(url, "input")
        v = body.get(key)
        if type(v) is str:
            prompt = v
            fields.append((key, len(v)))
    if errs:
        return None
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    return Rec(fields, None, prompt, None, mt if type(mt) is int else None, cid)


def unknown_endpoint(url: str) -> tuple[str, str]:
    return "unknown-endpoint", f'"url" {url} is not a Batch API endpoint ({", ".join(BATCH_URLS)})'


def batch_chat(rec: Rec, chat_warns: list, warns: list) -> tuple[list, str]:
    """(fields, prompt) of a chat request: every message is prompt; a request has no reply by
    nature, so that warning is dropped."""
    warns.extend(w for w in chat_warns if w[0] != "no-assistant-reply")
    return rec.fields, "\n".join(x for x in (rec.prompt, rec.answer) if x)


def v_unknown(obj, errs: list, warns: list) -> Rec | None:
    return Rec([], None, "", None)


def orjson_repr(v) -> str:
    return parsing.dumps(v).decode("utf-8", "replace")[:40]


VALIDATORS: dict[str, Callable] = {
    "openai-chat": v_openai_chat, "message-list": v_message_list, "sharegpt": v_sharegpt,
    "alpaca": v_alpaca, "prompt-completion": v_prompt_completion, "prompt": v_prompt,
    "text": v_text, "openai-batch": v_openai_batch, "unknown": v_unknown,
}


def classify(obj) -> str | None:
    """The format one parsed record looks like, from its shape and keys."""
    if type(obj) is list:
        if obj and type(obj[0]) is dict and "role" in obj[0]:
            return "message-list"
        return None
    if type(obj) is not dict:
        return None
    if "messages" in obj:
        return "openai-chat"
    if "conversations" in obj:
        return "sharegpt"
    if "custom_id" in obj and "body" in obj:
        return "openai-batch"
    if "instruction" in obj:
        return "alpaca"
    if "prompt" in obj:
        return "prompt-completion" if ("completion" in obj or "chosen" in obj) else "prompt"
    if "text" in obj:
        return "text"
    return None


#: the key a format is recognised by, for the sentence in FormatGuess.how
SIGNATURE = {"openai-chat": '"messages"', "message-list": "an array of {role, content}",
             "sharegpt": '"conversations"', "alpaca": '"instruction"', "prompt-completion": '"prompt" + "completion"',
             "prompt": '"prompt"', "text": '"text"', "openai-batch": '"custom_id" + "body"'}
