"""The aiohttp application of ``tokdeck serve``: routes, error handling, auth, counting off the loop.

Counting (and resolving, and loading a tokenizer the first time) runs in thread pools:
tiktoken and HF batch encoding release the GIL, so a multi-megabyte text keeps one worker
busy while the event loop goes on answering other requests. Short texts have a pool of their
own and are counted in batches; the shortest, for tokenizers without a lock, are counted on
the loop, where they cost less than the hand-off (see ``batching``).

Every request body is read here (in one read when it came whole with its headers, else chunk
by chunk) and held to ``max_body_bytes`` whatever its framing (Content-Length, chunked,
compressed: the limit applies to the decoded bytes); a body that stops arriving for
``idle_timeout_s`` gets 408 and its connection is closed (aiohttp's keep-alive timeout, set to
the same value by ``run``, closes connections whose request headers stop arriving). A client
that goes away in the middle of a body is one line in the log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from ... import __version__
from ..errors import TokenizerError
from ..tokenizers import Registry, default_registry, resolve_model
from ..tokenizers.base import SpecialPolicy, Tokenizer, TokenizerInfo, first_line
from ..tokenizers.chat import ChatFormatError, chat_method, count_chat
from ..tokenizers.resolve import FAMILIES
from .batching import CountBatcher
from .requests import ApiError, ChatRequest, Target, decode_batch, decode_count

log = logging.getLogger("tokdeck.serve")

OPEN_PATHS = frozenset({"/health"})  # answered without the bearer token (for liveness probes)


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    auth_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 10 * 1024 * 1024
    #: a request whose body (or, through aiohttp's keep-alive timeout, headers) stops arriving this long is dropped
    idle_timeout_s: float = 30.0
    workers: int = 4
    preload: tuple[str, ...] = ()
    access_log: bool = False


@dataclass(frozen=True)
class Resolved:
    tokenizer: Tokenizer
    model_name: str | None
    via: str  # alias | tokenizer-id | openai | family | tokenizer (asked for by id)


RESOLVED_CACHE_SIZE = 4096


class ServiceState:
    def __init__(self, settings: ServeSettings, registry: Registry):
        self.settings = settings
        self.registry = registry
        # long texts, chats and batches; short texts have a pool of their own (see batching)
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="tokdeck-long")
        self.short_executor = ThreadPoolExecutor(max_workers=max(1, settings.workers),
                                                 thread_name_prefix="tokdeck-short")
        # resolving model names, loading tokenizers, /models: never queued behind counting
        self.setup_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokdeck-setup")
        self.started = time.monotonic()
        self.busy = 0  # jobs handed to the pools (counting, resolving) and not finished
        self.served: set[str] = set()  # tokenizer ids loaded for a request or preloaded
        self.batcher = CountBatcher(self.short_executor, self.executor)
        # the registry's aliases and discovered tokenizers are fixed for the process: resolve once
        self._resolved: dict[tuple[str | None, str | None], Resolved] = {}

    async def run(self, fn: Callable[[], Any], executor: ThreadPoolExecutor | None = None) -> Any:
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor or self.executor, fn)
        finally:
            self.busy -= 1

    async def count(self, tok: Tokenizer, text: str, specials: SpecialPolicy) -> int:
        self.busy += 1
        try:
            return await self.batcher.count(tok, text, specials)
        finally:
            self.busy -= 1

    async def resolved(self, target: Target) -> Resolved:
        """``resolve`` run in the pool the first time, then from a cache (errors are not cached)."""
        key = (target.model_name, target.tokenizer)
        hit = self._resolved.get(key)
        if hit is None:
            hit = await self.run(lambda: self.resolve(target), self.setup_executor)
            if len(self._resolved) >= RESOLVED_CACHE_SIZE:
                self._resolved.clear()
            self._resolved[key] = hit
        return hit

    # --------------------------------------------------------- in worker threads
    def resolve(self, target: Target) -> Resolved:
        reg = self.registry
        if target.tokenizer is not None:
            try:
                info = reg.info(target.tokenizer.strip())
            except TokenizerError as exc:
                raise ApiError(404, "unknown_tokenizer", str(exc)) from None
            via = "tokenizer"
        else:
            assert target.model_name is not None  # a Target names one or the other
            try:
                res = resolve_model(target.model_name, reg)
            except TokenizerError as exc:
                raise ApiError(404, "unknown_model", str(exc)) from None
            info, via = reg.info(res.tokenizer_id), res.via
        try:
            tok = reg.get(info.id)
        except TokenizerError as exc:
            raise ApiError(500, "tokenizer_error", str(exc)) from None
        self.served.add(info.id)
        return Resolved(tok, target.model_name, via)


STATE = web.AppKey("tokdeck_state", ServiceState)


def _describe(r: Resolved, specials: str) -> dict[str, Any]:
    info = r.tokenizer.info
    return {
        "tokenizer": info.id,
        "model_name": r.model_name,
        "resolved_via": r.via,
        "specials": specials,
        "approximate": info.approximate,  # the estimate, or a stand-in such as claude-legacy
        "estimate": not info.exact,  # a character heuristic, not a tokenizer
    }


def _chat_job(r: Resolved, req: ChatRequest) -> dict[str, Any]:
    try:
        c = count_chat(r.tokenizer, req.messages, req.specials)
    except ChatFormatError as exc:
        raise ApiError(422, "chat_template_error", f"{r.tokenizer.id}: {exc}") from None
    out = {"token_count": c.total_tokens, **_describe(r, c.specials), "method": c.method,
           "content_tokens": c.content_tokens, "overhead_tokens": c.overhead_tokens, "messages": c.messages}
    if c.template_source is not None:
        out["template"] = c.template_source if c.template_source == "bundled" else Path(c.template_source).name
    return out


def _openai_patterns() -> dict[str, list[str]]:
    """tiktoken's own model tables: encoding -> model names and ``prefix*`` patterns."""
    from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

    from ..tokenizers.resolve import _ENCODING_IDS

    out: dict[str, list[str]] = {}
    for name, enc in MODEL_TO_ENCODING.items():
        out.setdefault(_ENCODING_IDS.get(enc, enc), []).append(name)
    for prefix, enc in MODEL_PREFIX_TO_ENCODING.items():
        out.setdefault(_ENCODING_IDS.get(enc, enc), []).append(prefix + "*")
    return out


def _models_job(state: ServiceState) -> dict[str, Any]:
    reg = state.registry
    openai = _openai_patterns()
    families = dict(FAMILIES)
    rows = []
    for info in reg.infos():
        patterns = [p for p, target in reg.aliases.items() if target == info.id]
        patterns += list(families.get(info.id, ())) + openai.get(info.id, [])
        rows.append(_model_row(info, patterns, reg.is_loaded(info.id), reg.failure(info.id)))
    return {"tokenizers": rows, "aliases": dict(reg.aliases)}


def _model_row(info: TokenizerInfo, patterns: list[str], loaded: bool, error: str | None) -> dict[str, Any]:
    row = {"id": info.id, "name": info.name, "format": info.format, "source": info.source,
           "models": list(info.models), "patterns": patterns, "approximate": info.approximate,
           "estimate": not info.exact, "chat_method": chat_method(info), "loaded": loaded}
    if error:  # known broken at discovery, or failed to load for an earlier request
        row["error"] = error
    return row


# ------------------------------------------------------------------ HTTP layer
def _dumps(obj: Any) -> str:
    import orjson

    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # lone surrogates echoed back from the request: let json escape them
        return json.dumps(obj, ensure_ascii=True)


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=_dumps(obj), status=status, content_type="application/json", headers=headers)


def error_response(status: int, type_: str, message: str, headers: dict | None = None) -> web.Response:
    return json_response({"error": {"message": message, "type": type_}}, status, headers)


_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class ClientGone(Exception):
    """The client closed the connection before its request body was complete."""


class BodyUnreadable(ApiError):
    """The body stopped arriving (408), or its framing or compression is broken (400)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(handler: Handler, token: str | None) -> Handler:
    """``handler`` answering every error in JSON, behind the bearer token when one is given.

    Wrapped round each route rather than given as middlewares: aiohttp's middleware chain (ours,
    and one it adds whenever there is any) cost ~6 us of the ~90 us of CPU of a short count."""
    expected = f"Bearer {token}".encode() if token else None

    async def endpoint(request: web.Request) -> web.StreamResponse:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return error_response(401, "unauthorized", "missing or wrong bearer token",
                                      {"WWW-Authenticate": 'Bearer realm="tokdeck"'})
        try:
            return await handler(request)
        except BodyUnreadable as exc:  # the rest of the body is not coming, or cannot be decoded
            response = error_response(exc.status, exc.type, exc.message)
            # answer, then close at once: aiohttp would otherwise wait up to 10 s for the rest of it
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
            return response
        except ApiError as exc:
            return error_response(exc.status, exc.type, exc.message)
        except ClientGone as exc:
            log.warning("tokdeck serve: %s", exc)
            return web.Response(status=400)  # nobody is left to read it
        except TokenizerError as exc:  # a tokenizer failed on this text (see tokenizers.base.PanicGuard)
            return error_response(500, "tokenizer_error", str(exc))
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[STATE].settings.max_body_bytes
            return error_response(413, "payload_too_large", f"the body is larger than the limit of {limit:,} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(exc.status, _HTTP_TYPES.get(exc.status, "http_error"),
                                  f"{exc.reason}: {request.method} {request.path}", headers)
        except Exception as exc:  # a bug: answer in JSON and keep serving; the traceback goes to the log
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(500, "internal_error", f"{type(exc).__name__}: {str(exc)[:200]}")

    return endpoint


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


def _wrong_method(allowed: set[str]) -> Handler:
    async def wrong_method(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return wrong_method


async def _read_body(request: web.Request) -> bytes:
    """The whole body, held to the limit and the idle timeout (module docstring)."""
    settings = request.app[STATE].settings
    limit, expected = settings.max_body_bytes, request.content_length
    if expected is not None and expected > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=expected)
    if request.content.is_eof():
        # the whole body came with the headers (any small request): take it in one read, without
        # the per-chunk wait_for, its task and its timer (a short count's CPU: 155 -> 115 us)
        whole = request.content.read_nowait()
        if len(whole) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(whole))
        return whole
    body = bytearray()

    def received() -> str:
        return f"{len(body):,}" + (f" of {expected:,}" if expected is not None else "")

    while True:
        try:
            chunk = await asyncio.wait_for(request.content.readany(), settings.idle_timeout_s)
        except asyncio.TimeoutError:
            log.warning("tokdeck serve: %s sent nothing for %g s in the middle of %s %s (%s bytes received); "
                        "answered 408", request.remote, settings.idle_timeout_s, request.method, request.path,
                        received())
            raise BodyUnreadable(408, "request_timeout", f"the body stopped arriving: nothing for "
                                                         f"{settings.idle_timeout_s:g} s after {received()} bytes") from None
        except web.RequestPayloadError as exc:  # aiohttp's wrapper of a broken chunk or compression
            why = getattr(exc.__cause__, "message", "") or first_line(exc)
            raise BodyUnreadable(400, "invalid_body", f"the body cannot be read: {why} "
                                                      f"(after {received()} bytes)") from None
        except ConnectionError:
            raise ClientGone(f"{request.remote} closed the connection in the middle of {request.method} "
                             f"{request.path} ({received()} bytes received)") from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))


async def calculate(request: web.Request) -> web.Response:
    state: ServiceState = request.app[STATE]
    req = decode_count(await _read_body(request))
    r = await state.resolved(req.target)
    if isinstance(req, ChatRequest):
        return json_response(await state.run(lambda: _chat_job(r, req)))
    n = await state.count(r.tokenizer, req.text, req.specials)
    return json_response({"token_count": n, **_describe(r, req.specials), "char_count": len(req.text)})


async def batch_calculate(request: web.Request) -> web.Response:
    state: ServiceState = request.app[STATE]
    req = decode_batch(await _read_body(request))
    r = await state.resolved(req.target)
    counts = await state.run(lambda: r.tokenizer.count_many(req.texts, req.specials)) if req.texts else []
    return json_response({"results": [{"token_count": n, "char_count": len(t)} for n, t in zip(counts, req.texts)],
                          "total_tokens": sum(counts), **_describe(r, req.specials)})


async def models(request: web.Request) -> web.Response:
    state: ServiceState = request.app[STATE]
    return json_response(await state.run(lambda: _models_job(state), state.setup_executor))


async def health(request: web.Request) -> web.Response:
    state: ServiceState = request.app[STATE]
    return json_response({
        "status": "ok", "version": __version__, "uptime_s": round(time.monotonic() - state.started, 3),
        "busy": state.busy, "workers": state.settings.workers, "loaded": sorted(state.served),
    })


def make_app(settings: ServeSettings | None = None, registry: Registry | None = None) -> web.Application:
    """The service as an aiohttp Application (run it with AppRunner, or aiohttp's test utilities)."""
    settings = settings or ServeSettings()
    # _read_body enforces the limit on every body; client_max_size is aiohttp's own for request.read()
    app = web.Application(client_max_size=settings.max_body_bytes)
    state = ServiceState(settings, registry or default_registry())
    app[STATE] = state

    for path, methods, handler in (("/calculate", ("POST",), calculate),
                                   ("/batch-calculate", ("POST",), batch_calculate),
                                   ("/models", ("GET", "HEAD"), models), ("/health", ("GET", "HEAD"), health)):
        token = None if path in OPEN_PATHS else settings.auth_token
        resource, endpoint = app.router.add_resource(path), _endpoint(handler, token)
        for method in methods:
            resource.add_route(method, endpoint)
        # any other method: the router's 405, answered in JSON
        resource.add_route("*", _endpoint(_wrong_method(set(methods)), token))
    app.router.add_route("*", "/{path:.*}", _endpoint(_not_found, settings.auth_token))  # the router's 404

    async def shutdown_executor(_app: web.Application) -> None:
        state.executor.shutdown(wait=False, cancel_futures=True)
        state.short_executor.shutdown(wait=False, cancel_futures=True)
        state.setup_executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_executor)
    return app
