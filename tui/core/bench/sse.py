"""Server-Sent Events for OpenAI-compatible streams: bytes in, event payloads out.

``SSEParser.feed(bytes)`` returns the ``data`` payload of every event completed by those bytes
(an event ends at a blank line, as the SSE spec says). Events split across reads, several
events in one read, ``\\r\\n``/``\\r``/``\\n`` line ends, comments (``: keep-alive``) and the
``event:``/``id:``/``retry:`` fields are handled; only ``data`` matters to a benchmark.
``close()`` returns an event left unterminated when the stream ended. An event may not grow
past ``MAX_EVENT_BYTES`` (``StreamError``): a server that never ends a line cannot take all
the memory. A read of whole one-line ``data: `` events, what servers send, is split at C speed.

``read_payload(payload)`` turns one payload into what the benchmark needs: the text of the
common chunk (output and nothing else), else a ``Chunk``; ``classify`` always gives the Chunk.
The caller takes the chunk's timestamp *before* calling them. msgspec decodes the payload in C
into Structs that declare the whole chunk: the fields read, with the types the OpenAI API gives
them, and the fields servers add that are not read (``id``, ``created``, ...) as JSON scalars,
checked and dropped, so that nothing passes unchecked (a number too large for a double or
invalid UTF-8 fails a chunk wherever it is, as with orjson). Anything else - another type, a
key not declared, an error object, usage that cannot be believed - goes to
``read_precisely``: orjson, and every field read checked by hand to name what is wrong.
Server output is hostile until checked: ``choices`` must be an array of objects,
``delta``/``message`` an object, ``text``/``content``/``reasoning``/tool-call
``arguments``/``finish_reason`` a string or null, else the chunk is an ``ERROR`` naming the field
("malformed stream chunk: delta is a string: <the chunk>"). ``usage`` is checked by
:func:`usage_counts`; usage that fails the check is not an error (the output is fine) but is
reported in ``Chunk.bad_usage``, and the counts are then made locally. Both paths give the same
result for any payload (a property test holds them to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import orjson

from .redact import clip

_loads = orjson.loads

#: the most bytes one event may hold (a whole long answer in one chunk is ~1 MB; many tiny data
#: lines take ~8x their size in memory)
MAX_EVENT_BYTES = 16 << 20
BOM = b"\xef\xbb\xbf"
#: the largest usage count believed: no model reads or writes a billion tokens in one request
MAX_USAGE_TOKENS = 1_000_000_000


class StreamError(ValueError):
    """The byte stream cannot be an event stream (its message is the request's failure reason)."""


class SSEParser:
    """Incremental parser; one per response. Not thread-safe (one stream, one task)."""

    __slots__ = ("_buf", "_data", "_size", "_parts", "_pending", "_started", "_idle")

    def __init__(self) -> None:
        self._started = False  # a byte-order mark may open the stream (the SSE spec ignores it)
        self._idle = False  # started, and nothing of an unfinished line or event is held
        self._buf = b""  # the unfinished last line
        self._data: list[bytes] = []  # data values of the unfinished event
        self._size = 0  # bytes of the unfinished event's data lines
        self._parts: list[bytes] = []  # reads without a line end, not yet joined to _buf
        self._pending = 0  # their bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._idle and chunk[-1:] == b"\n":
            # whole events of one "data: " line each, what servers send: split at C speed
            # (bytes.splitlines breaks at \r\n, \r and \n, the SSE line ends)
            lines = chunk.splitlines()
            if len(lines) == 2:
                if not lines[1] and lines[0][:6] == b"data: ":
                    return [lines[0][6:]]
            elif not len(lines) & 1:
                payloads = []
                for i in range(0, len(lines), 2):
                    line = lines[i]
                    if lines[i + 1] or line[:6] != b"data: ":
                        break
                    payloads.append(line[6:])
                else:
                    return payloads
        if not self._started:
            chunk, self._buf = self._buf + chunk, b""
            if len(chunk) < 3 and BOM.startswith(chunk):
                self._buf = chunk  # perhaps the start of a byte-order mark: decide with the next read
                return []
            if chunk.startswith(BOM):
                chunk = chunk[3:]
            self._started = True
        if b"\n" not in chunk and b"\r" not in chunk:
            # no line ends here: keep the piece; joining a long line at every read would copy
            # it again each time (a 10 MB chunk in 64 KB reads: 160 copies of up to 10 MB)
            if chunk:
                self._parts.append(chunk)
                self._pending += len(chunk)
                self._idle = False
                self._check()
            return []
        if self._parts:
            buf = self._buf + b"".join(self._parts) + chunk
            self._parts, self._pending = [], 0
        else:
            buf = self._buf + chunk if self._buf else chunk
        held = b""
        if b"\r" in buf:
            # a \r at the very end may be the first half of \r\n: keep it for the next read
            if buf.endswith(b"\r"):
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop() + held
        out: list[bytes] = []
        data = self._data
        size = self._size
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
                    size = 0
            elif line[0] == 0x64 and line.startswith(b"data:"):  # 'd'
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value)
                size += len(line) + 1  # the line as it came: many empty data lines count too
            # comments (":...") and the event/id/retry fields carry nothing a benchmark needs
        self._data = data
        self._size = size
        self._check()
        self._idle = not (data or self._buf)
        return out

    def _check(self) -> None:
        if self._size + len(self._buf) + self._pending > MAX_EVENT_BYTES:
            raise StreamError(f"malformed stream: an event longer than {MAX_EVENT_BYTES >> 20} MiB")

    def close(self) -> list[bytes]:
        """The stream ended: an event without its closing blank line still counts."""
        tail = self._buf + b"".join(self._parts)
        self._buf, self._parts, self._pending = b"", [], 0
        out = self.feed(tail.rstrip(b"\r") + b"\n\n") if tail else []
        if self._data:
            data, self._data = self._data, []
            out.append(data[0] if len(data) == 1 else b"\n".join(data))
        return out


# ------------------------------------------------------------------ payloads
DONE = 1
OUTPUT = 2  # carries generated output (content, reasoning or tool-call arguments)
EMPTY = 3  # valid chunk without output: role-only, finish-only, usage-only, keep-alive JSON
ERROR = 4  # an error object, or a payload that is not a valid chunk

#: how a payload's problems are labelled: one event of a stream, or a whole (non-streamed) body
CHUNK = "malformed stream chunk"
RESPONSE = "malformed response"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One classified SSE payload. ``text`` is the generated output it carries; ``finished``: it
    gave a ``finish_reason``; ``bad_usage``: why its usage cannot be believed (counts are None)."""

    kind: int
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    finished: bool = False
    bad_usage: str | None = None


_DONE = Chunk(DONE)
_EMPTY = Chunk(EMPTY)

_KINDS = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array",
          dict: "an object", type(None): "null"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _excerpt(payload: bytes, limit: int = 80) -> str:
    head = payload[: limit * 8]  # a 10 MB chunk is not decoded whole to show 80 characters
    return clip(head.decode("utf-8", "replace") + ("…" if len(head) < len(payload) else ""), limit)


def malformed(label: str, what: str, payload: bytes) -> Chunk:
    """An ERROR chunk: "<label>: <what>: <excerpt>". ``what`` names the problem without any of
    the payload (failures are grouped by label and ``what``; see ``results.error_reason``)."""
    return Chunk(ERROR, error=f"{label}: {what}: {_excerpt(payload)}")


def usage_counts(usage: object) -> tuple[int | None, int | None, str | None]:
    """(prompt_tokens, completion_tokens, None) from a ``usage`` value, or (None, None, why) when
    it cannot be believed: not an object, or a count that is not a whole number (a boolean, a
    fraction, a string), negative or over ``MAX_USAGE_TOKENS``. A missing or null count is None."""
    if type(usage) is not dict:
        return None, None, f"usage is {_kind(usage)}"
    counts: list[int | None] = []
    for key in ("prompt_tokens", "completion_tokens"):
        v = usage.get(key)
        if v is None:
            counts.append(None)
            continue
        if type(v) is not int:
            return None, None, f"usage.{key} is {'not a whole number' if type(v) is float else _kind(v)}"
        if v < 0:
            return None, None, f"usage.{key} is negative"
        if v > MAX_USAGE_TOKENS:
            return None, None, f"usage.{key} is over {MAX_USAGE_TOKENS:,}"
        counts.append(v)
    return counts[0], counts[1], None


def _error_message(err: object, payload: bytes) -> str:
    if type(err) is str:
        return clip(err, 200)
    if type(err) is dict:
        msg = next((m for m in (err.get("message"), err.get("msg"), err.get("type")) if type(m) is str and m), None)
        if msg is not None:
            code = err.get("code")
            return clip(f"{msg} (code {code})" if type(code) in (str, int) and code != "" else msg, 200)
    return _excerpt(payload, 200)  # never str() a parsed value: a deep one overflows the stack


# ------------------------------------------------------------------ the typed chunk
#: a field the benchmark does not read: decoded (so checked) and dropped
_Scalar = str | float | bool | None


class _Shape(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """An object of an OpenAI-compatible chunk; an unknown key sends the payload to the precise path.
    Fields are declared in the order servers send them: msgspec expects each key where the
    previous one ended (5-10 % faster than another order)."""


class _Function(_Shape):
    name: _Scalar = None
    arguments: str | None = None


class _ToolCall(_Shape):
    index: _Scalar = None
    id: _Scalar = None
    type: _Scalar = None
    function: _Function | None = None


class _Delta(_Shape):
    """A streamed chat chunk's ``delta``, or a whole chat answer's ``message``."""

    role: _Scalar = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: _Scalar = None


class _Choice(_Shape):
    index: _Scalar = None
    text: str | None = None  # completions
    delta: _Delta | None = None
    message: _Delta | None = None
    logprobs: None = None
    finish_reason: str | None = None
    stop_reason: _Scalar = None  # vLLM
    matched_stop: _Scalar = None  # SGLang


class _Usage(_Shape):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: _Scalar = None


class _Payload(_Shape):
    id: _Scalar = None
    object: _Scalar = None
    created: _Scalar = None
    model: _Scalar = None
    system_fingerprint: _Scalar = None
    service_tier: _Scalar = None
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: None = None  # an error of any other value goes to the precise path
    obfuscation: _Scalar = None  # OpenAI pads chunks with it


_decode = msgspec.json.Decoder(_Payload).decode


def _text(choice: _Choice) -> str:
    """The generated output in one choice: its ``text`` (completions) when not empty, else its
    ``delta`` (or, without one, its ``message``): reasoning, content and tool-call arguments, in that order."""
    if choice.text:
        return choice.text
    delta = choice.delta if choice.delta is not None else choice.message
    if delta is None:
        return ""
    calls = delta.tool_calls
    if delta.reasoning_content is None and delta.reasoning is None and calls is None:
        return delta.content or ""
    parts = [delta.reasoning_content or "", delta.reasoning or "", delta.content or ""]
    if calls:
        parts += [call.function.arguments or "" for call in calls if call.function is not None]
    return "".join(parts)


def _read(choice: _Choice | None, usage: _Usage | None, bad_usage: str | None = None) -> str | Chunk:
    """What a checked payload gives, from its first choice and its usage (None: absent): just the
    text when it carries nothing else the benchmark needs, else its Chunk."""
    if usage is None and (choice is None or choice.finish_reason is None):
        return _text(choice) if choice is not None else ""
    text = _text(choice) if choice is not None else ""
    finished = choice is not None and bool(choice.finish_reason)
    if not (text or finished or usage is not None):
        return _EMPTY
    pt = usage.prompt_tokens if usage is not None else None
    ct = usage.completion_tokens if usage is not None else None
    return Chunk(OUTPUT if text else EMPTY, text, pt, ct, finished=finished, bad_usage=bad_usage)


def _believed(count: int | None) -> bool:
    return count is None or 0 <= count <= MAX_USAGE_TOKENS


def read_payload(payload: bytes, label: str = CHUNK) -> str | Chunk:
    """What one ``data`` payload (or, with ``label=RESPONSE``, a whole JSON body) means; never raises.

    The common chunk - a first choice with output or nothing, no ``finish_reason``, usage or
    error - gives just its text ("" when it carries none), without building a Chunk; any other
    payload gives its Chunk. The same as :func:`read_precisely`, faster."""
    try:
        shape = _decode(payload)
    except msgspec.MsgspecError:  # [DONE], not JSON, another type, an unknown key: find out which
        return read_precisely(payload, label)
    choices, usage = shape.choices, shape.usage
    if usage is not None and not (_believed(usage.prompt_tokens) and _believed(usage.completion_tokens)):
        return read_precisely(payload, label)  # it says why the usage cannot be believed
    return _read(choices[0] if choices else None, usage)


def classify(payload: bytes, label: str = CHUNK) -> Chunk:
    """:func:`read_payload` as a Chunk, whatever the payload; never raises."""
    read = read_payload(payload, label)
    if isinstance(read, Chunk):
        return read
    return Chunk(OUTPUT, read) if read else _EMPTY


# ------------------------------------------------------------------ the precise path
def _read_choice(choice: dict) -> _Choice | str:
    """The part of a choice the benchmark reads, or what in that part is malformed. A choice's
    ``text`` (completions) wins; else its ``delta``, or its ``message`` without one."""
    fin = choice.get("finish_reason")
    if fin is not None and type(fin) is not str:
        return f"finish_reason is {_kind(fin)}"
    text = choice.get("text")
    if text is not None:
        if type(text) is not str:
            return f"text is {_kind(text)}"
        if text:
            return _Choice(text=text, finish_reason=fin)
    key = "delta"
    delta = choice.get(key)
    if delta is None:
        key = "message"
        delta = choice.get(key)
        if delta is None:
            return _Choice(text=text, finish_reason=fin)
    if type(delta) is not dict:
        return f"{key} is {_kind(delta)}"
    fields: dict[str, str | None] = {}
    for field in ("reasoning_content", "reasoning", "content"):
        v = delta.get(field)
        if v is not None and type(v) is not str:
            return f"{key}.{field} is {_kind(v)}"
        fields[field] = v
    calls = delta.get("tool_calls")
    read_calls: list[_ToolCall] | None = None
    if calls is not None:
        if type(calls) is not list:
            return f"{key}.tool_calls is {_kind(calls)}"
        read_calls = []
        for call in calls:
            if type(call) is not dict:
                return f"a tool call is {_kind(call)}"
            fn = call.get("function")
            if fn is None:
                continue
            if type(fn) is not dict:
                return f"a tool call's function is {_kind(fn)}"
            args = fn.get("arguments")
            if args is not None and type(args) is not str:
                return f"a tool call's arguments are {_kind(args)}"
            read_calls.append(_ToolCall(function=_Function(arguments=args)))
    read = _Delta(tool_calls=read_calls, **fields)
    if key == "delta":
        return _Choice(text=text, delta=read, finish_reason=fin)
    return _Choice(text=text, message=read, finish_reason=fin)


def read_precisely(payload: bytes, label: str = CHUNK) -> str | Chunk:
    """The reference for :func:`read_payload`: parses with orjson and checks by hand every field
    the benchmark reads, naming the first that is malformed; ignores what it does not read (other
    choices, keys it does not know). Slower; for the payloads the typed decode refuses."""
    if payload == b"[DONE]":
        return _DONE
    try:
        obj = _loads(payload)
    except orjson.JSONDecodeError:
        if label == CHUNK and b"\n" in payload:
            # several data lines without blank lines between them (non-compliant servers):
            # SSE joins them with \n; JSON cannot contain a raw newline, so split them back.
            return merge([classify(p.strip()) for p in payload.split(b"\n") if p.strip()])
        if label == RESPONSE and payload.lstrip()[:5] == b"data:":
            return malformed(label, "an event stream although \"stream\" was false", payload)
        return malformed(label, "not JSON", payload)
    if type(obj) is not dict:
        return malformed(label, "not a JSON object", payload)
    err = obj.get("error")
    if err:
        where = "stream" if label == CHUNK else "response"
        return Chunk(ERROR, error=f"error in {where}: {_error_message(err, payload)}")
    choice = None
    choices = obj.get("choices")
    if choices is not None:
        if type(choices) is not list:
            return malformed(label, f"choices is {_kind(choices)}", payload)
        if choices:
            if type(choices[0]) is not dict:
                return malformed(label, f"a choice is {_kind(choices[0])}", payload)
            read = _read_choice(choices[0])
            if isinstance(read, str):
                return malformed(label, read, payload)
            choice = read
    usage = obj.get("usage")
    if usage is None:
        return _read(choice, None)
    pt, ct, bad = usage_counts(usage)
    return _read(choice, _Usage(prompt_tokens=pt, completion_tokens=ct), bad)


def merge(chunks: list[Chunk]) -> Chunk:
    """Several payloads that arrived as one event, as a single chunk."""
    for c in chunks:
        if c.kind == ERROR:
            return c
    if not chunks:
        return _EMPTY
    text = "".join(c.text for c in chunks)
    pt = next((c.prompt_tokens for c in reversed(chunks) if c.prompt_tokens is not None), None)
    ct = next((c.completion_tokens for c in reversed(chunks) if c.completion_tokens is not None), None)
    bad = next((c.bad_usage for c in chunks if c.bad_usage), None)
    kind = OUTPUT if text else (DONE if chunks[-1].kind == DONE else EMPTY)
    return Chunk(kind, text, pt, ct, finished=any(c.finished for c in chunks), bad_usage=bad)
