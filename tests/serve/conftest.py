"""Fixtures for the token-counting service: an in-process server over loopback, and the CLI."""

from __future__ import annotations

import contextlib
import re
import selectors
import subprocess
import sys
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tokdeck_testing import REPO, subprocess_env


@pytest.fixture
async def serve_client(bundled):
    """A factory: ``await serve_client(**settings)`` -> aiohttp TestClient of a fresh app.

    Uses the session's bundled registry unless ``registry=`` is given (``registry=None`` in the
    settings means the process-wide default registry, which reads the user config)."""
    from tui.core.server import ServeSettings, make_app

    clients: list[TestClient] = []

    async def make(registry="bundled", **settings) -> TestClient:
        reg = bundled if registry == "bundled" else registry
        client = TestClient(TestServer(make_app(ServeSettings(**settings), reg)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


_LISTENING = re.compile(r"listening on (http://\S+)")


@pytest.fixture
def cli_server():
    """``with cli_server(*args) as (proc, url, stderr_lines):`` runs the real CLI service."""
    return _cli_server


@contextlib.contextmanager
def _cli_server(*args: str, env: dict | None = None, timeout: float = 60):
    """Run `python -m tui.cli serve --port 0 ARGS` and yield (process, base URL, stderr lines so far)."""
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(env), cwd=REPO)
    lines: list[str] = []
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"the server did not start: {''.join(lines)}")
            if sel.select(timeout=0.5):
                line = proc.stderr.readline().decode()
                lines.append(line)
                m = _LISTENING.search(line)
                url = m.group(1) if m else None
        yield proc, url, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
