"""One request to an OpenAI-compatible endpoint, timed the way vLLM defines the metrics.

Backends: ``openai-chat`` (POST /v1/chat/completions, messages) and ``openai`` (POST
/v1/completions, a prompt), streaming with ``stream_options.include_usage`` or not.

Timing: ``st`` is taken just before the POST. For every read from the socket the timestamp is
taken as soon as the read returns, before any parsing; every event completed by that read
carries it. TTFT is the first chunk with generated output (content, reasoning content or
tool-call arguments) — a role-only first chunk is not a token; E2EL ends at the last such
chunk; one ITL per later output chunk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from ..messages import messages_text
from .sse import DONE, ERROR, OUTPUT, SSEParser, classify

BACKENDS = ("openai-chat", "openai")
DEFAULT_ENDPOINTS = {"openai-chat": "/v1/chat/completions", "openai": "/v1/completions"}


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One prompt to send: a plain prompt or chat messages, and the output length to ask for."""

    prompt: str | None = None
    messages: tuple[dict, ...] | None = None
    output_len: int | None = None  # max tokens to ask for; None leaves it to the server
    input_len: int | None = None  # prompt tokens counted locally (None: not counted)

    def as_messages(self) -> list[dict]:
        if self.messages is not None:
            return list(self.messages)
        return [{"role": "user", "content": self.prompt or ""}]

    def as_prompt(self) -> str:
        """The text sent to /v1/completions: chat data flattened by the one message-text rule."""
        if self.prompt is not None:
            return self.prompt
        return messages_text(self.messages or ())


def build_body(backend: str, model: str, req: BenchRequest, *, stream: bool = True, ignore_eos: bool = False,
               temperature: float | None = None, extra: dict | None = None) -> bytes:
    body: dict[str, Any] = {"model": model}
    if backend == "openai-chat":
        body["messages"] = req.as_messages()
        if req.output_len is not None:
            body["max_completion_tokens"] = req.output_len
    else:
        body["prompt"] = req.as_prompt()
        if req.output_len is not None:
            body["max_tokens"] = req.output_len
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if temperature is not None:
        body["temperature"] = temperature
    if ignore_eos:
        body["ignore_eos"] = True
    if extra:
        body.update(extra)
    return orjson.dumps(body)


class Outcome:
    """What one request produced (mutable while streaming; the engine turns it into a record)."""

    __slots__ = ("st", "ttft", "last", "itls", "pieces", "prompt_tokens", "completion_tokens", "error",
                 "chunks", "done", "last_read", "timed_out")

    def __init__(self) -> None:
        self.st = 0.0
        self.ttft = 0.0  # seconds after st; 0 until the first output chunk
        self.last = 0.0  # absolute time of the last output chunk
        self.itls: list[float] = []
        self.pieces: list[str] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.error = ""
        self.chunks = 0
        self.done = False
        self.last_read = 0.0  # time of the last read from the socket (for read timeouts)
        self.timed_out = False

    @property
    def ok(self) -> bool:
        return not self.error and self.chunks > 0

    @property
    def e2el(self) -> float:
        return self.last - self.st if self.chunks else 0.0

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _short(text: str, limit: int = 160) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _http_error(status: int, reason: str | None, body: bytes) -> str:
    msg = ""
    try:
        obj = orjson.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict):
            msg = str(err.get("message") or err)
        elif err:
            msg = str(err)
        elif isinstance(obj, dict) and obj.get("message"):
            msg = str(obj["message"])
    except (orjson.JSONDecodeError, TypeError):
        msg = body[:300].decode("utf-8", "replace")
    head = f"HTTP {status}" + (f" {reason}" if reason else "")
    return _short(f"{head}: {msg}" if msg.strip() else head)


def describe_exception(exc: BaseException, read_timeout: float | None = None) -> str:
    """A one-line reason for a failed request."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"timed out (no data for {read_timeout:g} s)" if read_timeout else "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _short(f"cannot connect: {exc.os_error.strerror or exc}" if exc.os_error else f"cannot connect: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the server mid-response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _short(f"response cut off: {exc}")
    if isinstance(exc, aiohttp.ClientError):
        return _short(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return _short(f"{type(exc).__name__}: {exc.strerror or exc}")
    return _short(f"{type(exc).__name__}: {exc}")


def _apply(out: Outcome, c, t: float) -> bool:
    """Fold one classified chunk into the outcome; False when the stream must stop."""
    if out.done:  # nothing after [DONE] counts; the rest is read only to reuse the connection
        return True
    if c.prompt_tokens is not None:
        out.prompt_tokens = c.prompt_tokens
    if c.completion_tokens is not None:
        out.completion_tokens = c.completion_tokens
    kind = c.kind
    if kind == OUTPUT:
        if out.chunks:
            out.itls.append(t - out.last)
        else:
            out.ttft = t - out.st
        out.last = t
        out.chunks += 1
        out.pieces.append(c.text)
    elif kind == DONE:
        out.done = True
    elif kind == ERROR:
        out.error = c.error or "error in stream"
        return False
    return True


async def send_streaming(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict,
                         out: Outcome, read_timeout: float | None = None) -> Outcome:
    """POST and read the SSE stream into ``out`` (``out.st`` is set here, just before the POST)."""
    parser = SSEParser()
    try:
        out.st = perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                out.error = _http_error(resp.status, resp.reason, await resp.content.read(4096))
                return out
            readany = resp.content.readany
            feed = parser.feed
            loads = orjson.loads
            itls, pieces = out.itls, out.pieces
            while True:
                data = await readany()
                t = perf_counter()  # before any parsing: every event completed by this read arrived now
                out.last_read = t
                if not data:
                    break
                for payload in feed(data):
                    # fast path for the common chunk shapes; anything unusual goes through classify()
                    if out.done or payload == b"[DONE]":
                        out.done = True
                        continue
                    try:
                        obj = loads(payload)
                        choices = obj["choices"]
                        if "error" in obj or "usage" in obj or len(choices) != 1:
                            raise KeyError
                        c0 = choices[0]
                        delta = c0.get("delta")
                        if delta is None:  # completions: {"text": ...}
                            text = c0["text"]
                        elif "reasoning_content" in delta or "reasoning" in delta or "tool_calls" in delta:
                            raise KeyError
                        else:
                            text = delta.get("content")
                        if text is not None and text.__class__ is not str:
                            raise KeyError
                    except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
                        if not _apply(out, classify(payload), t):
                            return out
                        continue
                    if text:
                        if out.chunks:
                            itls.append(t - out.last)
                        else:
                            out.ttft = t - out.st
                        out.last = t
                        out.chunks += 1
                        pieces.append(text)
            if not out.done:
                t = perf_counter()
                for payload in parser.close():
                    if not _apply(out, classify(payload), t):
                        return out
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes the request's reason
        out.error = describe_exception(exc, read_timeout)
        return out
    if not out.error and not out.chunks:
        out.error = "no output in the response" if out.done else "stream ended without any output chunk"
    return out


async def send_plain(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict,
                     out: Outcome, read_timeout: float | None = None) -> Outcome:
    """A non-streaming request: the whole answer arrives at once (TTFT = E2EL, no ITL)."""
    try:
        out.st = perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            data = await resp.read()
            t = perf_counter()
            if resp.status != 200:
                out.error = _http_error(resp.status, resp.reason, data[:4096])
                return out
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001
        out.error = describe_exception(exc, read_timeout)
        return out
    c = classify(data)
    if c.kind == ERROR:
        out.error = c.error or "malformed response"
        return out
    _apply(out, c, t)
    if not out.chunks:
        out.error = "no output in the response"
    return out
