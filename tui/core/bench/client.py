"""One request to an OpenAI-compatible endpoint, timed the way vLLM defines the metrics.

Backends: ``openai-chat`` (POST /v1/chat/completions, messages) and ``openai`` (POST
/v1/completions, a prompt), streaming with ``stream_options.include_usage`` or not.

Timing: ``st`` is taken just before the POST. For every read from the socket the timestamp is
taken as soon as the read returns, before any parsing; every event completed by that read
carries it. TTFT is the first chunk with generated output (content, reasoning content or
tool-call arguments) — a role-only first chunk is not a token; E2EL ends at the last such
chunk; one ITL per later output chunk.

Every request ends with ``Outcome.ok`` or a one-line ``Outcome.error``; nothing here raises
(except cancellation). Redirects are not followed: a benchmark measures the URL it was given,
and a redirect would carry its headers elsewhere or turn the POST into a GET. A streamed
response must end with ``[DONE]`` or a ``finish_reason``; one that just stops was cut off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
import orjson

from ..messages import messages_text
from .redact import clip, redact_url
from .sse import DONE, ERROR, OUTPUT, RESPONSE, Chunk, SSEParser, StreamError, classify, read_payload

BACKENDS = ("openai-chat", "openai")
DEFAULT_ENDPOINTS = {"openai-chat": "/v1/chat/completions", "openai": "/v1/completions"}
REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: the most bytes of a whole (non-streamed) answer read
MAX_BODY_BYTES = 64 << 20
NO_OUTPUT = "no output in the response"


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

    __slots__ = ("st", "times", "pieces", "prompt_tokens", "completion_tokens", "error", "done", "finished",
                 "bad_usage", "last_read", "timed_out")

    def __init__(self) -> None:
        self.st = 0.0
        self.times: list[float] = []  # when each output chunk arrived (absolute): TTFT, ITLs, E2EL
        self.pieces: list[str] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.error = ""
        self.done = False  # [DONE] came
        self.finished = False  # a finish_reason came
        self.bad_usage: str | None = None  # why the server's usage cannot be believed
        self.last_read = 0.0  # time of the last read from the socket (for read timeouts)
        self.timed_out = False

    @property
    def chunks(self) -> int:
        return len(self.times)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.times)

    @property
    def ttft(self) -> float:
        """Seconds from ``st`` to the first output chunk (0 before it)."""
        return self.times[0] - self.st if self.times else 0.0

    @property
    def e2el(self) -> float:
        return self.times[-1] - self.st if self.times else 0.0

    @property
    def itls(self) -> list[float]:
        """One gap per output chunk after the first."""
        times = self.times
        return [b - a for a, b in zip(times, times[1:])]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _short(text: str, limit: int = 160) -> str:
    return clip(text, limit)


def _http_error(status: int, reason: str | None, body: bytes) -> str:
    msg = ""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
        msg = body[:1024].decode("utf-8", "replace")
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg") or err.get("type")
        if not err:
            err = obj.get("message")
        if isinstance(err, str):
            msg = err
    if obj is not None and not msg:
        msg = body[:1024].decode("utf-8", "replace")  # JSON of another shape: show it as it came
    head = f"HTTP {status}" + (f" {reason}" if reason else "")
    return _short(f"{head}: {msg}" if msg.strip() else head)


def redirect_reason(url: str, status: int, location: str | None) -> str:
    """Why a redirected request failed, and the base URL to pass instead: the target without the
    API path that was asked for (``/v1/...``), when it ends with that path."""
    if not location or not location.strip():
        return f"HTTP {status} redirect without a Location header"
    try:
        target = urljoin(url, location.strip())
        parts = urlsplit(target)
        path = urlsplit(url).path
        tail = path[path.find("/v1/"):] if "/v1/" in path else path
        if tail and tail != "/" and parts.path.endswith(tail) and not parts.query:
            target = urlunsplit(parts._replace(path=parts.path[: -len(tail)], fragment=""))
    except ValueError:
        return _short(f"HTTP {status} redirect to an invalid URL: {location}")
    return _short(f"redirected to {redact_url(target)}; pass that URL as --base-url", 300)


def internal_error(exc: BaseException) -> str:
    """The reason for a request failed by a fault of tokdeck's own (a bug): never lost, never a traceback."""
    return _short(f"internal error: {type(exc).__name__}: {exc}")


def describe_exception(exc: BaseException, read_timeout: float | None = None) -> str:
    """A one-line reason for a failed request."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"timed out (no data for {read_timeout:g} s)" if read_timeout else "timed out"
    if isinstance(exc, StreamError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _short(f"cannot connect: {exc.os_error.strerror or exc}" if exc.os_error else f"cannot connect: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by the server mid-response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        if "content-encoding" in str(exc).lower():
            return _short(f"undecodable response body: {exc}")
        return _short(f"response cut off: {exc}")
    if isinstance(exc, aiohttp.ClientError):
        return _short(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        return _short(f"{type(exc).__name__}: {exc.strerror or exc}")
    return internal_error(exc)


def _apply(out: Outcome, c: Chunk, t: float) -> bool:
    """Fold one classified chunk into the outcome; False when the stream must stop."""
    if out.done:  # nothing after [DONE] counts; the rest is read only to reuse the connection
        return True
    kind = c.kind
    if kind == ERROR:
        out.error = c.error or "error in stream"
        return False
    if c.bad_usage is not None:
        out.bad_usage = out.bad_usage or c.bad_usage
    if c.prompt_tokens is not None:
        out.prompt_tokens = c.prompt_tokens
    if c.completion_tokens is not None:
        out.completion_tokens = c.completion_tokens
    if c.finished:
        out.finished = True
    if kind == OUTPUT:
        out.times.append(t)
        out.pieces.append(c.text)
    elif kind == DONE:
        out.done = True
    return True


def _end_of_stream(out: Outcome, events: int, resp: aiohttp.ClientResponse, first: bytes) -> str:
    """Why a stream that ended cleanly at the HTTP level still failed ("" when it did not)."""
    if not events:
        ctype = resp.headers.get("Content-Type", "") or "none"
        if ctype.lower().startswith("application/json"):
            return _short(f"not an event stream: the server answered plain JSON ({ctype}; it ignored "
                          f"\"stream\": true; try --no-stream): {first[:640].decode('utf-8', 'replace')}")
        return _short(f"not an event stream (Content-Type {ctype}): no data: lines in "
                      f"{first[:640].decode('utf-8', 'replace')!r}" if first else
                      f"not an event stream (Content-Type {ctype}): an empty response")
    if not out.done and not out.finished:
        return "response cut off: the stream ended without [DONE] or a finish_reason"
    if not out.chunks:
        return NO_OUTPUT
    return ""


async def send_streaming(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict,
                         out: Outcome, read_timeout: float | None = None) -> Outcome:
    """POST and read the SSE stream into ``out`` (``out.st`` is set here, just before the POST)."""
    parser = SSEParser()
    events = 0
    first = b""
    try:
        out.st = perf_counter()
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            if resp.status != 200:
                if resp.status in REDIRECTS:
                    out.error = redirect_reason(url, resp.status, resp.headers.get("Location"))
                else:
                    out.error = _http_error(resp.status, resp.reason, await resp.content.read(4096))
                return out
            readany = resp.content.readany
            feed = parser.feed
            times, pieces = out.times, out.pieces
            while True:
                data = await readany()
                t = perf_counter()  # before any parsing: every event completed by this read arrived now
                out.last_read = t
                if not data:
                    break
                if out.done:  # nothing after [DONE] counts; the rest is read only to reuse the connection
                    continue
                payloads = feed(data)
                if not events:
                    if not payloads:
                        first = first or data
                        continue
                    events = len(payloads)
                for payload in payloads:
                    read = read_payload(payload)
                    if isinstance(read, str):  # the common chunk: output (or nothing) and nothing else
                        if read:
                            times.append(t)
                            pieces.append(read)
                    elif not _apply(out, read, t):
                        return out
                    elif out.done:
                        break
            if not out.done:
                t = perf_counter()
                payloads = parser.close()
                events += len(payloads)
                for payload in payloads:
                    if not _apply(out, classify(payload), t):
                        return out
            out.error = _end_of_stream(out, events, resp, first)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes the request's reason
        if not out.done:  # after [DONE] the answer is whole: a transfer cut later loses nothing
            out.error = describe_exception(exc, read_timeout)
        elif not out.chunks and not out.error:
            out.error = NO_OUTPUT
    return out


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        data = await resp.content.readany()
        if not data:
            return b"".join(parts)
        size += len(data)
        if size > MAX_BODY_BYTES:
            raise StreamError(f"malformed response: longer than {MAX_BODY_BYTES >> 20} MiB")
        parts.append(data)


async def send_plain(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict,
                     out: Outcome, read_timeout: float | None = None) -> Outcome:
    """A non-streaming request: the whole answer arrives at once (TTFT = E2EL, no ITL)."""
    try:
        out.st = perf_counter()
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            if resp.status in REDIRECTS:
                out.error = redirect_reason(url, resp.status, resp.headers.get("Location"))
                return out
            data = await _read_body(resp) if resp.status == 200 else await resp.content.read(4096)
            t = perf_counter()
            out.last_read = t
            if resp.status != 200:
                out.error = _http_error(resp.status, resp.reason, data)
                return out
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001
        out.error = describe_exception(exc, read_timeout)
        return out
    c = classify(data, RESPONSE)
    if _apply(out, c, t) and not out.chunks:
        out.error = NO_OUTPUT
    return out
