"""Server-Sent Events for OpenAI-compatible streams: bytes in, event payloads out.

``SSEParser.feed(bytes)`` returns the ``data`` payload of every event completed by those bytes
(an event ends at a blank line, as the SSE spec says). Events split across reads, several
events in one read, ``\\r\\n``/``\\r``/``\\n`` line ends, comments (``: keep-alive``) and the
``event:``/``id:``/``retry:`` fields are handled; only ``data`` matters to a benchmark.
``close()`` returns an event left unterminated when the stream ended.

``classify(payload)`` turns one payload into what the benchmark needs, parsing it with orjson
(exact, and ~3x cheaper than ``json.loads`` on short chunks). The caller takes the chunk's
timestamp *before* calling it.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

_loads = orjson.loads


class SSEParser:
    """Incremental parser; one per response. Not thread-safe (one stream, one task)."""

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
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
        for line in lines:
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
            elif line[0] == 0x64 and line.startswith(b"data:"):  # 'd'
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value)
            # comments (":...") and the event/id/retry fields carry nothing a benchmark needs
        self._data = data
        return out

    def close(self) -> list[bytes]:
        """The stream ended: an event without its closing blank line still counts."""
        tail = self._buf
        self._buf = b""
        out = self.feed(tail.rstrip(b"\r") + b"\n\n") if tail else []
        if self._data:
            data, self._data = self._data, []
            out.append(data[0] if len(data) == 1 else b"\n".join(data))
        return out


# ------------------------------------------------------------------ payloads
DONE = 1
OUTPUT = 2  # carries generated output (content, reasoning or tool-call arguments)
EMPTY = 3  # valid chunk without output: role-only, finish-only, usage-only, keep-alive JSON
ERROR = 4  # an error object, or a payload that is not valid JSON


@dataclass(frozen=True, slots=True)
class Chunk:
    """One classified SSE payload. ``text`` is the generated output it carries."""

    kind: int
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


_DONE = Chunk(DONE)
_EMPTY = Chunk(EMPTY)


def _one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _error_message(err: object) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg") or err.get("type") or err
        code = err.get("code")
        return _one_line(f"{msg} (code {code})" if code not in (None, "") else msg)
    return _one_line(err)


def _delta_text(choice: dict) -> str:
    """Generated output in one streamed choice (chat delta or completions text)."""
    text = choice.get("text")
    if text:
        return text
    delta = choice.get("delta") or choice.get("message")
    if not delta:
        return ""
    parts = []
    for key in ("reasoning_content", "reasoning", "content"):
        v = delta.get(key)
        if v and isinstance(v, str):
            parts.append(v)
    calls = delta.get("tool_calls")
    if calls and isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if fn:
                args = fn.get("arguments")
                if args and isinstance(args, str):
                    parts.append(args)
    return parts[0] if len(parts) == 1 else "".join(parts)


def classify(payload: bytes) -> Chunk:
    """What one ``data`` payload means; never raises."""
    if payload == b"[DONE]":
        return _DONE
    try:
        obj = _loads(payload)
    except orjson.JSONDecodeError:
        if b"\n" in payload:
            # several data lines without blank lines between them (non-compliant servers):
            # SSE joins them with \n; JSON cannot contain a raw newline, so split them back.
            return merge([classify(p.strip()) for p in payload.split(b"\n") if p.strip()])
        return Chunk(ERROR, error=f"malformed stream chunk: {_one_line(payload.decode('utf-8', 'replace'), 80)}")
    if not isinstance(obj, dict):
        return Chunk(ERROR, error=f"malformed stream chunk (not an object): {_one_line(obj, 80)}")
    err = obj.get("error")
    if err:
        return Chunk(ERROR, error=f"error in stream: {_error_message(err)}")
    text = ""
    choices = obj.get("choices")
    if choices and isinstance(choices, list) and isinstance(choices[0], dict):
        text = _delta_text(choices[0])
    usage = obj.get("usage")
    if usage and isinstance(usage, dict):
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return Chunk(OUTPUT if text else EMPTY, text,
                     pt if isinstance(pt, int) else None, ct if isinstance(ct, int) else None)
    if text:
        return Chunk(OUTPUT, text)
    return _EMPTY


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
    kind = OUTPUT if text else (DONE if chunks[-1].kind == DONE else EMPTY)
    return Chunk(kind, text, pt, ct)
