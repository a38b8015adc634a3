"""Helpers for the benchmark-engine tests (a byte-scripted SSE server, chunk builders, a probe
on request writes; the probe also serves tests/perf/perf_bench_accuracy.py)."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def request_writes() -> Iterator[list[float]]:
    """``time.perf_counter()`` of every HTTP POST handed to a socket in this process while inside
    (asyncio's selector transport, which aiohttp writes through): it observes the real writes,
    at one extra Python call per write and none per response chunk."""
    writes: list[float] = []
    cls = asyncio.selector_events._SelectorSocketTransport
    saved = {name: cls.__dict__[name] for name in ("write", "writelines") if name in cls.__dict__}

    def write(self, data, _orig=saved["write"]):
        if bytes(data[:5]) == b"POST ":
            writes.append(time.perf_counter())
        return _orig(self, data)

    def writelines(self, list_of_data, _orig=saved.get("writelines")):  # Python 3.12+ has its own
        list_of_data = list(list_of_data)
        if list_of_data and bytes(list_of_data[0][:5]) == b"POST ":
            writes.append(time.perf_counter())
        return _orig(self, list_of_data)

    cls.write = write
    if "writelines" in saved:
        cls.writelines = writelines
    try:
        yield writes
    finally:
        for name, fn in saved.items():
            setattr(cls, name, fn)

class ScriptedServer:
    """An aiohttp server answering POSTs with exactly the bytes of ``script``: [(delay_s, bytes)].

    Each write is flushed on its own, so a test controls how the stream is split across reads.
    ``status``/``body`` (and ``headers``, e.g. a redirect's Location) answer with an HTTP error
    instead; ``received`` keeps each POST's headers and JSON body, ``gets`` the path of every GET
    of an API path.
    """

    def __init__(self) -> None:
        self.script: list[tuple[float, bytes]] = []
        self.status = 200
        self.body = b""
        self.headers: dict[str, str] = {}
        self.received: list[tuple[dict, dict]] = []
        self.gets: list[str] = []
        self.url = ""
        self._runner = None

    async def _handle(self, request):
        from aiohttp import web

        self.received.append((dict(request.headers), await request.json()))
        if self.status != 200:
            return web.Response(status=self.status, body=self.body, content_type="application/json",
                                headers=self.headers)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for delay, data in self.script:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(data)
        await resp.write_eof()
        return resp

    async def _models(self, request):
        from aiohttp import web

        self.gets.append(request.path)
        if self.status != 200:
            return web.Response(status=self.status, body=self.body, headers=self.headers)
        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _get(self, request):
        from aiohttp import web

        self.gets.append(request.path)
        return web.Response(status=405)

    async def start(self) -> "ScriptedServer":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/chat/completions", self._get)
        app.router.add_get("/v1/completions", self._get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class RawServer:
    """A TCP server answering every request with exactly ``response`` (status line, headers, body
    as given), then closing: for what an HTTP framework will not send (a body cut by a closed
    connection, undecodable header bytes, a gzip header over garbage). ``requests`` counts them."""

    def __init__(self, response: bytes = b"") -> None:
        self.response = response
        self.requests = 0
        self.url = ""
        self._server = None

    async def _handle(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        self.requests += 1
        writer.write(self.response)
        await writer.drain()
        writer.close()

    async def start(self) -> "RawServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def sse(obj) -> bytes:
    """One SSE event with a JSON payload."""
    import json

    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def chat_chunk(content=None, role=None, reasoning=None, finish=None, usage=None, choices=True) -> dict:
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    obj = {"id": "x", "object": "chat.completion.chunk",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
    if usage is not None:
        obj["usage"] = usage
    return obj
