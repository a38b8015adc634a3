"""Runs spread over local worker processes (tui.core.bench.workers), against the project's
simulator or an aiohttp server over loopback: the same requests and figures as one process, the
closed loop pulled, a worker killed mid-run, a stop, and no process left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from types import SimpleNamespace

import pytest

from engine_helpers import chat_chunk, sse
from tui.core.bench.arrivals import arrival_times
from tui.core.bench.client import BenchRequest
from tui.core.bench.engine import BenchmarkRun, BenchmarkThread, BenchSpec, TokenCounter
from tui.core.bench.results import RequestRecord, RunSnapshot
from tui.core.bench.sim import SimConfig, ThreadedSimulator
from tui.core.bench.options import RunOptions
from tui.core.bench.workers import LocalWorkers, WorkersRun, make_run, worker_backend
from tui.core.errors import TokdeckError


@pytest.fixture
def counter(cl100k):
    return TokenCounter(cl100k)


def sim(**cfg):
    return ThreadedSimulator(SimConfig(**{"ttft_ms": 30.0, "itl_ms": 5.0, "output_tokens": 12, **cfg}))


def prompts(n: int, output_len: int = 12) -> list[BenchRequest]:
    return [BenchRequest(prompt=f"request {i}", output_len=output_len, input_len=2) for i in range(n)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def run_collecting(run) -> tuple[object, list]:
    events: list = []
    result = await run.run(events.append)
    return result, events


def test_one_worker_keeps_the_single_process_path(counter):
    assert worker_backend(RunOptions(workers=1)) is None
    prep = SimpleNamespace(spec=BenchSpec(base_url="http://127.0.0.1:9", model="m"), requests=prompts(2),
                           counter=counter)
    assert type(make_run(prep, None)) is BenchmarkRun  # its result is today's, key for key (golden files)


LOADS = {
    "poisson": dict(request_rate=40.0),
    "bursty, with warm-ups": dict(request_rate=60.0, burstiness=0.3, num_warmups=3),
    "ramp-up": dict(ramp_up=("linear", 20.0, 80.0)),
    "closed loop": dict(max_concurrency=5),
}


@pytest.mark.parametrize("load", LOADS.values(), ids=LOADS.keys())
async def test_two_workers_send_the_single_schedule_and_agree_with_one_process(counter, load):
    n = 48
    with sim() as url:
        spec = BenchSpec(base_url=url, model="m", seed=3, **load)
        one = await BenchmarkRun(spec, prompts(n), counter).run()
        pool = LocalWorkers(2)
        two, events = await run_collecting(WorkersRun(spec, prompts(n), counter, pool))
    times = arrival_times(n, spec.request_rate, spec.burstiness, spec.seed, spec.ramp_up)
    for result in (one, two):
        recs = list(result.records())
        assert [r.index for r in recs] == list(range(n)) and all(r.ok for r in recs), result.error_reasons
        assert not result.internal_errors and result.cancelled == 0 and not result.partial
        # each request left at its planned time (plus its wait for a slot and any lateness)
        assert max(abs(r.start_time - r.schedule_lag - r.queue_time - times[r.index]) for r in recs) < 0.002
    assert two.setup["workers"] == 2 and two.setup["dispatched"] == n and two.warmup == one.warmup
    s1, s2 = one.summary, two.summary
    assert (s2.total_input_tokens, s2.total_output_tokens) == (s1.total_input_tokens, s1.total_output_tokens)
    ttft1 = s1.metric("ttft").mean
    assert s2.metric("ttft").mean == pytest.approx(ttft1, abs=max(10.0, 0.25 * ttft1))
    assert s2.metric("tpot").mean == pytest.approx(s1.metric("tpot").mean, abs=1.5)
    assert s2.duration == pytest.approx(s1.duration, rel=0.25)
    if spec.max_concurrency:
        assert s2.max_concurrent_requests <= spec.max_concurrency
    # the same event stream as one process: every record, live snapshots, the last one done
    assert sorted(e.index for e in events if isinstance(e, RequestRecord)) == list(range(n))
    snaps = [e for e in events if isinstance(e, RunSnapshot)]
    assert snaps[-1].done and snaps[-1].completed == n and snaps[-1].dispatched == n
    assert any(s.in_flight > 0 and not s.done for s in snaps)
    assert all(gone(pid) for pid in pool.pids)


async def test_workers_count_output_tokens_locally_when_the_server_sends_no_usage(counter):
    server = sim(usage="none", output_tokens=20, output_tokens_jitter=8)
    url = server.start()
    try:
        spec = BenchSpec(base_url=url, model="m", request_rate=80.0)
        result = await WorkersRun(spec, prompts(30, 40), counter, LocalWorkers(2)).run()
        truth = sorted(r.completion_tokens for r in server.records)
    finally:
        server.stop()
    assert result.token_sources["output"] == {"tokenizer:cl100k_base": 30}
    assert sorted(r.output_tokens for r in result.records()) == truth and len(set(truth)) > 1


async def test_a_closed_loop_is_pulled_so_no_request_waits_behind_a_slow_worker(counter):
    """One 3 s request among fast ones, two workers with one slot each: the worker stuck on it
    holds at most its prefetch (one request); the other sends all the rest meanwhile. Dealt in
    advance, half of the fast requests would wait 3 s behind the slow one."""
    from aiohttp import web

    async def chat(request):
        body = await request.json()
        if body["messages"][0]["content"] == "slow":
            await asyncio.sleep(3.0)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in ("a", " b", " c"):
            await resp.write(sse(chat_chunk(content=word)))
        await resp.write(sse(chat_chunk(finish="stop")) + b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        reqs = [BenchRequest(prompt="slow")] + [BenchRequest(prompt=f"fast {i}") for i in range(40)]
        result = await WorkersRun(BenchSpec(base_url=url, model="m", max_concurrency=2), reqs, counter,
                                  LocalWorkers(2)).run()
    finally:
        await runner.cleanup()
    recs = {r.index: r for r in result.records()}
    assert len(recs) == 41 and all(r.ok for r in recs.values()) and not result.internal_errors
    slow_end = recs[0].start_time + recs[0].e2el
    assert slow_end > 3.0
    behind = [i for i, r in recs.items() if i and r.start_time >= slow_end - 0.01]
    assert len(behind) <= 1, behind  # the one the slow worker had prefetched


@pytest.mark.parametrize("load", [dict(request_rate=30.0), dict(max_concurrency=6)], ids=["timed", "pulled"])
async def test_a_worker_killed_mid_run_fails_what_it_held_and_the_run_goes_on(counter, load):
    n = 60
    pool = LocalWorkers(2)
    with sim(ttft_ms=20.0, itl_ms=40.0, output_tokens=20) as url:  # ~0.8 s per request
        run = WorkersRun(BenchSpec(base_url=url, model="m", **load), prompts(n, 20), counter, pool)
        killed = []
        async for event in run.events():
            if isinstance(event, RunSnapshot) and event.elapsed > 0.6 and not killed:
                killed.append(pool.pids[0])
                os.kill(pool.pids[0], signal.SIGKILL)
    result = run.result
    assert killed and not result.internal_errors and not result.partial
    reasons = result.error_reasons
    assert set(reasons) == {"worker 1 died: killed by SIGKILL"} and reasons["worker 1 died: killed by SIGKILL"] >= 1
    # every request was sent once and ended: completed or failed (none cancelled, none lost)
    assert [r.index for r in result.records()] == list(range(n))
    assert result.setup["dispatched"] == result.completed + result.failed == n and result.cancelled == 0
    assert result.completed >= n // 2
    assert all(gone(pid) for pid in pool.pids)


async def test_stop_cancels_every_workers_requests_and_keeps_a_partial_result(counter):
    pool = LocalWorkers(3)
    with sim(ttft_ms=20.0, itl_ms=100.0, output_tokens=30) as url:  # 3 s per request
        run = WorkersRun(BenchSpec(base_url=url, model="m", max_concurrency=6), prompts(30, 30), counter, pool)
        async for event in run.events():
            if isinstance(event, RunSnapshot) and event.elapsed > 0.5 and not run.stopped:
                assert event.in_flight == 6
                run.stop()
    result = run.result
    assert result.partial and result.cancelled == 6 and result.completed == 0 and not result.internal_errors
    assert result.setup["dispatched"] == 6 and result.setup["stopped_by"] == "stop"
    assert all(gone(pid) for pid in pool.pids)


def test_a_benchmark_thread_drives_a_run_with_workers_as_a_ui_would(counter):
    """The Bench pane's way: the run on its own thread and loop, events through a queue, a stop
    from the UI's thread."""
    import queue

    pool = LocalWorkers(2)
    with sim(ttft_ms=20.0, itl_ms=100.0, output_tokens=30) as url:
        thread = BenchmarkThread.of(WorkersRun(BenchSpec(base_url=url, model="m", max_concurrency=4), prompts(12, 30),
                                               counter, pool)).start()
        seen = []
        while True:
            item = thread.queue.get(timeout=60)
            seen.append(item)
            if isinstance(item, RunSnapshot) and item.in_flight == 4 and not thread.run.stopped:
                thread.stop()
            if not isinstance(item, (RequestRecord, RunSnapshot)):
                break
        result = thread.join(timeout=60)
    assert result is seen[-1] and result.partial and result.cancelled == 4 and not result.internal_errors
    assert any(isinstance(e, RunSnapshot) and e.done for e in seen)
    assert all(gone(pid) for pid in pool.pids)
    with pytest.raises(queue.Empty):
        thread.queue.get_nowait()


async def test_duration_ends_the_dealing_for_every_worker(counter):
    with sim() as url:
        spec = BenchSpec(base_url=url, model="m", request_rate=20.0, duration=0.6)
        result = await WorkersRun(spec, prompts(100), counter, LocalWorkers(2)).run()
    times = arrival_times(100, 20.0, 1.0, 0)
    assert result.setup["stopped_by"] == "duration" and not result.partial and not result.internal_errors
    assert [r.index for r in result.records()] == [i for i, t in enumerate(times) if t < 0.6]


async def test_a_worker_lost_before_the_start_is_a_one_line_error(counter):
    pool = LocalWorkers(2).start()
    deadline = time.monotonic() + 30
    while len(pool.pids) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    os.kill(pool.pids[1], signal.SIGKILL)
    with sim() as url:
        with pytest.raises(TokdeckError, match=r"^worker 2 died: killed by SIGKILL$"):
            await WorkersRun(BenchSpec(base_url=url, model="m"), prompts(4), counter, pool).run()
    assert all(gone(pid) for pid in pool.pids)


def test_a_cap_below_the_number_of_workers_is_refused(counter):
    with pytest.raises(ValueError, match="3 workers need a concurrency of at least 3"):
        WorkersRun(BenchSpec(base_url="http://127.0.0.1:9", model="m", max_concurrency=2), prompts(4), counter,
                   LocalWorkers(3))

