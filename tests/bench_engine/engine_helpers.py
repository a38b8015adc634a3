"""Helpers for the benchmark-engine tests (a byte-scripted SSE server, chunk builders)."""

from __future__ import annotations

import asyncio

class ScriptedServer:
    """An aiohttp server answering POSTs with exactly the bytes of ``script``: [(delay_s, bytes)].

    Each write is flushed on its own, so a test controls how the stream is split across reads.
    ``status``/``body`` answer with an HTTP error instead; ``received`` keeps each request's
    headers and JSON body.
    """

    def __init__(self) -> None:
        self.script: list[tuple[float, bytes]] = []
        self.status = 200
        self.body = b""
        self.received: list[tuple[dict, dict]] = []
        self.url = ""
        self._runner = None

    async def _handle(self, request):
        from aiohttp import web

        self.received.append((dict(request.headers), await request.json()))
        if self.status != 200:
            return web.Response(status=self.status, body=self.body, content_type="application/json")
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

        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def start(self) -> "ScriptedServer":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
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
