"""TLS: verified by default, a CA bundle accepted, verification switched off on request."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from aiohttp import web

from engine_helpers import chat_chunk, sse
from tui.core.bench.client import BenchRequest
from tui.core.bench.engine import BenchSpec, run_benchmark

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture
async def tls_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def chat(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(sse(chat_chunk(content="hi")) + b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", str(cert)
    finally:
        await runner.cleanup()


async def test_tls_verification(tls_server):
    url, cert = tls_server
    reqs = [BenchRequest(prompt="x", output_len=1, input_len=1)]
    default = await run_benchmark(BenchSpec(base_url=url, model="m"), reqs)
    assert default.failed == 1 and "certificate" in next(iter(default.error_reasons)).lower()
    with_ca = await run_benchmark(BenchSpec(base_url=url, model="m", ca_bundle=cert), reqs)
    insecure = await run_benchmark(BenchSpec(base_url=url, model="m", insecure=True), reqs)
    assert with_ca.completed == 1 and insecure.completed == 1
