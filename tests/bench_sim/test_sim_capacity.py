"""The capacity model: a maximum batch with a first-in-first-out queue, ITL that grows with the
batch, and the analytic capacity those give - measured against the formulas."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sim_testing import chat_body


async def _stream(session, url: str, stream: bool = True) -> None:
    async with session.post(url + "/v1/chat/completions", json=chat_body(stream=stream)) as r:
        await r.read()


async def test_the_batch_queues_in_arrival_order_and_its_itl_grows_with_it(start_sim):
    # 4 places, ITL 4 ms * (1 + 0.5 * (4 - 1)) = 10 ms in a full batch; 8 requests 5 ms apart, all
    # in before the first gap starts
    srv = await start_sim(ttft_ms=60, itl_ms=4, itl_growth=0.5, output_tokens=6, max_batch=4)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = []
        for _ in range(8):
            tasks.append(asyncio.create_task(_stream(session, srv.url)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    recs = sorted(srv.records, key=lambda r: r.arrival)
    assert [r.fault for r in recs] == [None] * 8
    first, waiters = recs[:4], recs[4:]
    for r in first:  # the batch held 4 during all of their gaps (a freed place passes on at once)
        assert r.queue_s == 0.0
        gaps = r.itls_s
        assert len(gaps) == 5
        # 10 ms (a batch of 2 would give 7, no growth 4); writes are never early but may be late on a
        # loaded machine, which stretches the measured gaps, never shrinks their mean much
        assert 0.0085 <= sum(gaps) / len(gaps) <= 0.016
        assert r.e2e_s >= 0.060 + 5 * 0.010 - 1e-6
    starts = [r.arrival + r.queue_s for r in recs]
    assert starts == sorted(starts)  # first in, first served
    for waiter, leaver in zip(waiters, first):  # each took the place of the one that arrived 4 earlier
        assert waiter.queue_s > 0.02
        assert waiter.arrival + waiter.queue_s == pytest.approx(leaver.arrival + leaver.e2e_s, abs=0.01)
        assert waiter.ttft_s >= waiter.queue_s + 0.060


@pytest.mark.parametrize("stream", [True, False])
async def test_a_waiter_whose_client_left_gives_its_turn_to_the_next(start_sim, stream):
    # the holder's 600 ms leave time for the other two to arrive on a loaded machine
    srv = await start_sim(ttft_ms=600, itl_ms=1, output_tokens=2, max_batch=1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        holder = asyncio.create_task(_stream(session, srv.url, stream))
        await asyncio.sleep(0.03)
        quitter = asyncio.create_task(_stream(session, srv.url, stream))
        await asyncio.sleep(0.03)
        patient = asyncio.create_task(_stream(session, srv.url, stream))
        for _ in range(40):
            await asyncio.sleep(0.01)
            if srv.health()["waiting"] == 2:
                break
        assert srv.health()["running"] == 1 and srv.health()["waiting"] == 2
        quitter.cancel()
        await asyncio.gather(holder, patient)
    assert srv.health()["running"] == 0 and srv.health()["waiting"] == 0
    assert srv.counts == {"ok": 2, "client_gone": 1}
    served = [r for r in srv.records if r.fault is None]
    assert served[1].queue_s == pytest.approx(served[0].e2e_s - 0.06, abs=0.1)


async def _closed_loop(url: str, streams: int, requests: int) -> None:
    """``streams`` clients, each sending its next request when the last one ended."""
    left = [requests]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def client():
            while left[0] > 0:
                left[0] -= 1
                await _stream(session, url)
        await asyncio.gather(*(client() for _ in range(streams)))


@pytest.mark.parametrize("streams", [2, 8])
async def test_throughput_rises_to_the_knee_at_max_batch_then_stays(start_sim, streams):
    from tui.core.bench.sim import SimConfig, capacity

    fields = dict(ttft_ms=10, itl_ms=4, itl_growth=0.5, output_tokens=6, max_batch=4)
    srv = await start_sim(**fields)
    await _closed_loop(srv.url, streams, 40)
    recs = srv.records
    assert len(recs) == 40 and all(r.fault is None for r in recs)
    span = max(r.arrival + r.e2e_s for r in recs) - min(r.arrival for r in recs)
    measured = len(recs) / span
    batch = min(streams, 4)
    expected = batch / ((10 + 5 * 4 * (1 + 0.5 * (batch - 1))) / 1000)  # r / T(r): 50 req/s, then 66.7
    if streams > 4:  # beyond the knee the queue keeps the batch full: exactly the analytic capacity
        assert expected == pytest.approx(capacity(SimConfig(**fields), 6).rate)
        assert measured == pytest.approx(expected, rel=0.10)
        assert max(r.queue_s for r in recs) > 0.03
    else:  # below it each client's own turnaround adds a little
        assert expected * 0.8 <= measured <= expected * 1.02
        assert max(r.queue_s for r in recs) == 0.0


def test_capacity_formula():
    from tui.core.bench.sim import SimConfig, capacity

    cfg = SimConfig(ttft_ms=150, itl_ms=10, itl_growth=0.05, max_batch=32)
    full = capacity(cfg, 128)  # T(32) = 150 + 127 * 10 * (1 + 0.05 * 31) = 3388.5 ms
    assert (full.streams, full.limited_by) == (32, "max_batch")
    assert full.e2e_ms == pytest.approx(3388.5)
    assert full.rate == pytest.approx(32 / 3.3885)
    assert full.tpot_ms == pytest.approx(25.5)
    slo = capacity(cfg, 128, tpot_slo_ms=20)  # 10 * (1 + 0.05 * (r - 1)) <= 20: r <= 21
    assert (slo.streams, slo.limited_by) == (21, "tpot")
    assert slo.rate == pytest.approx(21 / 2.690)
    assert slo.tpot_ms == pytest.approx(20.0)
    assert capacity(cfg, 128, tpot_slo_ms=100).streams == 32  # a loose SLO: the batch is the limit
    chunked = capacity(SimConfig(ttft_ms=0, itl_ms=10, tokens_per_chunk=4, max_batch=2), 9)  # 3 chunks, 2 gaps
    assert chunked.e2e_ms == pytest.approx(20.0) and chunked.tpot_ms == pytest.approx(2.5)
    with pytest.raises(ValueError, match="no capacity limit"):
        capacity(SimConfig(itl_ms=10), 128)
    with pytest.raises(ValueError, match="already exceeds the SLO"):
        capacity(cfg, 128, tpot_slo_ms=5)


def test_capacity_config_is_validated():
    from tui.core.bench.sim import SimConfig
    from tui.core.errors import TokdeckError

    for bad in (dict(max_batch=0), dict(max_batch=2.5), dict(max_batch=True), dict(itl_growth=-0.1),
                dict(itl_growth=float("nan")), dict(itl_growth=float("inf"))):
        with pytest.raises(TokdeckError, match="^simulator: (max_batch|itl_growth) must be"):
            SimConfig(**bad).validate()
