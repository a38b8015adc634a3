"""Fixtures for the simulator tests: a started SimServer per config, an aiohttp client."""

from __future__ import annotations

import pytest


@pytest.fixture
async def start_sim():
    """``srv = await start_sim(**SimConfig fields)``: a started simulator, closed after the test."""
    from tui.core.bench.sim import SimConfig, start_simulator

    servers = []

    async def start(**fields):
        fields.setdefault("ttft_ms", 2.0)
        fields.setdefault("itl_ms", 0.5)
        srv = await start_simulator(SimConfig(**fields))
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.close()


@pytest.fixture
async def http():
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session
