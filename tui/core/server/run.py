"""Running the service until SIGINT/SIGTERM: what `tokdeck serve` calls."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import signal
import sys
from typing import Callable

from aiohttp import web

from ..errors import TokdeckError, TokenizerError
from ..tokenizers import Registry, load_many, resolve_tokenizer_id
from .app import STATE, ServeSettings, make_app

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


class OneLineClientErrors(logging.Filter):
    """aiohttp logs a full traceback for every malformed request it answers 400 itself (a broken
    chunk, a bad header): that is the client's error, and one line says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "tokdeck serve: %s: %s", (record.getMessage(), " ".join(exc.message.split()))
            record.exc_info = None
        return True


_CLIENT_ERRORS = OneLineClientErrors()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def preload_ids(registry: Registry, names: tuple[str, ...]) -> list[str]:
    """Tokenizer ids (or model names) to load before listening; TokenizerError if one fails."""
    ids = []
    for name in names:
        tid = resolve_tokenizer_id(name, registry)
        if tid not in ids:
            ids.append(tid)
    for tid, tok in load_many(registry, ids).items():
        if isinstance(tok, TokenizerError):
            raise tok
    return ids


async def serve_async(settings: ServeSettings, registry: Registry | None = None,
                      announce: Callable[[str], None] | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (by default: SIGINT or SIGTERM)."""
    announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    app = make_app(settings, registry)
    state = app[STATE]
    loop = asyncio.get_running_loop()
    if settings.preload:
        ids = await loop.run_in_executor(state.executor, preload_ids, state.registry, settings.preload)
        state.served.update(ids)
    logging.getLogger("aiohttp.server").addFilter(_CLIENT_ERRORS)
    access_log = None
    if settings.access_log:
        access_log = logging.getLogger("tokdeck.serve.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    # aiohttp closes a connection whose request headers have not all arrived this long after it
    # opened (or after its previous request): the idle timeout for what comes before the body
    runner = web.AppRunner(app, shutdown_timeout=3.0, keepalive_timeout=settings.idle_timeout_s,
                           access_log=access_log, access_log_format=ACCESS_LOG_FORMAT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise TokdeckError(f"cannot listen on {settings.host}:{settings.port}: {why}") from None
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        announce(f"tokdeck serve: listening on http://{shown}:{port} "
                 f"(auth {'on' if settings.auth_token else 'off'}, body limit {settings.max_body_bytes:,} bytes, "
                 f"idle timeout {settings.idle_timeout_s:g} s, {settings.workers} workers; Ctrl-C stops)")
        if not is_loopback(settings.host):
            announce(f"tokdeck serve: warning: listening on {settings.host}: other machines can reach this service"
                     + ("" if settings.auth_token else "; set --auth-token or TOKDECK_SERVE_TOKEN to require a token"))
        if stop is None:
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        announce("tokdeck serve: stopping")
    finally:
        await runner.cleanup()


def serve(settings: ServeSettings, registry: Registry | None = None) -> None:
    asyncio.run(serve_async(settings, registry))
