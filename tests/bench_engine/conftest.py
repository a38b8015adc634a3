"""Fixtures for the benchmark-engine tests."""

from __future__ import annotations

import pytest

from engine_helpers import ScriptedServer


@pytest.fixture
async def scripted():
    server = await ScriptedServer().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def cl100k(bundled):
    return bundled.get("cl100k_base")
