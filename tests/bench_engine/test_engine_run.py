"""The engine end to end against the project's simulator over loopback (server truth in its records)."""

from __future__ import annotations

import json
import math
import time


from engine_helpers import request_writes

from tui.core.bench.client import BenchRequest
from tui.core.bench.engine import BenchmarkRun, BenchmarkThread, BenchSpec, TokenCounter, run_benchmark
from tui.core.bench.results import RequestRecord, RunSnapshot
from tui.core.bench.sim import SimConfig, SimServer, ThreadedSimulator


def fast(**kw) -> SimConfig:
    base = dict(ttft_ms=20.0, itl_ms=2.0, output_tokens=8)
    base.update(kw)
    return SimConfig(**base)


def requests(n, output_len=8):
    return [BenchRequest(prompt=f"Question number {i}: what is {i} plus {i}?", output_len=output_len,
                         input_len=None) for i in range(n)]


def peak_overlap(spans):
    events = sorted([(a, 1) for a, b in spans] + [(b, -1) for a, b in spans])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


async def test_max_concurrency_is_respected_on_the_server(cl100k):
    async with SimServer(fast(itl_ms=3.0, output_tokens=10)) as srv:
        spec = BenchSpec(base_url=srv.url, model="tokdeck-sim", max_concurrency=4)
        result = await run_benchmark(spec, requests(24, 10), TokenCounter(cl100k))
        recs = list(srv.records)
    assert result.completed == 24 and result.failed == 0
    spans = [(r.arrival, r.arrival + r.e2e_s) for r in recs]
    assert peak_overlap(spans) == 4  # reached, never exceeded
    assert result.summary.max_concurrent_requests <= 4
    # 20 of the 24 had to wait for a slot, and that wait is recorded as queue time, not schedule lag
    queued = [r for r in result.records() if r.queue_time > 0]
    assert len(queued) >= 20 - 4
    assert result.client_health.client_queue_time_ms.max > 0


async def test_token_counts_equal_the_servers_with_and_without_usage(cl100k):
    for usage in ("separate", "final", "none"):
        async with SimServer(fast(usage=usage, output_tokens=None)) as srv:
            reqs = [BenchRequest(prompt=f"hello {'x ' * i}", output_len=3 + i, input_len=cl100k.count(f"hello {'x ' * i}"))
                    for i in range(6)]
            result = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim"), reqs, TokenCounter(cl100k))
            truth = list(srv.records)
        assert result.completed == 6
        assert result.summary.total_output_tokens == sum(r.completion_tokens for r in truth) == sum(3 + i for i in range(6))
        assert result.summary.total_input_tokens == sum(r.prompt_tokens for r in truth)
        out_src = result.token_sources["output"]
        in_src = result.token_sources["input"]
        if usage == "none":
            assert out_src == {"tokenizer:cl100k_base": 6} and in_src == {"tokenizer:cl100k_base": 6}
        else:
            assert out_src == {"usage": 6} and in_src == {"usage": 6}


async def test_timings_are_never_below_the_servers_truth(cl100k):
    reqs = [BenchRequest(prompt="word " * (i + 1), output_len=8) for i in range(6)]  # distinct prompt lengths
    async with SimServer(fast(ttft_ms=30.0, itl_ms=4.0, reasoning_tokens=2)) as srv:
        result = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", max_concurrency=2),
                                     reqs, TokenCounter(cl100k))
        truth = {r.prompt_tokens: r for r in srv.records}
    assert result.completed == 6 and len(truth) == 6
    for rec in result.records():
        assert rec.ttft >= 0.030 and rec.e2el >= rec.ttft
        assert rec.chunks == 8 and len(rec.itls) == 7  # reasoning chunks count as output
        assert rec.output_tokens == 8 and rec.tpot is not None
        server = truth[rec.input_tokens]  # the same request seen by the server
        # sent before the server saw it, read after the server wrote it
        assert rec.ttft >= server.ttft_s and rec.e2el >= server.e2e_s


async def test_stream_shapes_without_done_or_role_chunk(cl100k):
    async with SimServer(fast(send_done=False, role_chunk=False, usage="final", tokens_per_chunk=3,
                              output_tokens=9)) as srv:
        result = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim"), requests(4, 9),
                                     TokenCounter(cl100k))
    assert result.completed == 4
    for rec in result.records():
        assert rec.output_tokens == 9 and rec.chunks == 3 and len(rec.itls) == 2  # one ITL per chunk


async def test_completions_backend_and_non_streaming(cl100k):
    async with SimServer(fast()) as srv:
        r1 = await run_benchmark(BenchSpec(base_url=srv.url + "/v1", model="tokdeck-sim", backend="openai"),
                                 requests(3), TokenCounter(cl100k))
        r2 = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", stream=False),
                                 requests(3), TokenCounter(cl100k))
        paths = {r.path for r in srv.records}
    assert r1.completed == 3 and r2.completed == 3
    assert paths == {"/v1/completions", "/v1/chat/completions"}
    for rec in r2.records():
        assert rec.itls == () and rec.ttft == rec.e2el and rec.tpot is None  # no TPOT without streaming
    assert r2.summary.metric("tpot").mean == 0.0 and r2.summary.metric("ttft").mean > 0


async def test_faults_fail_requests_with_reasons_and_the_run_goes_on(cl100k):
    cfg = fast(error_rate=0.2, cut_rate=0.2, malformed_rate=0.2, midstream_error_rate=0.2, seed=5)
    async with SimServer(cfg) as srv:
        result = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", max_concurrency=8),
                                     requests(60), TokenCounter(cl100k))
        counts = dict(srv.counts)
    assert result.completed + result.failed == 60
    assert result.completed == counts.get("ok", 0)
    assert result.failed == 60 - counts.get("ok", 0) > 0
    reasons = " | ".join(result.error_reasons)
    assert "HTTP 500" in reasons and "malformed stream chunk" in reasons and "error in stream" in reasons
    assert sum(result.error_reasons.values()) == result.failed
    d = result.to_vllm_json(detailed=True)
    assert sum(1 for e in d["errors"] if e) == result.failed
    # a malformed chunk's text stays in the request's own error; the reasons group by kind
    malformed = [e for e in d["errors"] if e.startswith("malformed stream chunk")]
    assert len(malformed) >= 2 and all(e.startswith("malformed stream chunk: ") for e in malformed)
    assert result.error_reasons["malformed stream chunk: not JSON"] == len(malformed)


async def test_events_stream_records_and_snapshots(cl100k):
    async with SimServer(fast(itl_ms=5.0, output_tokens=20)) as srv:
        spec = BenchSpec(base_url=srv.url, model="tokdeck-sim", max_concurrency=3, snapshot_interval=0.05)
        run = BenchmarkRun(spec, requests(12, 20), TokenCounter(cl100k))
        records, snaps = [], []
        async for ev in run.events():
            (records if isinstance(ev, RequestRecord) else snaps).append(ev)
    assert sorted(r.index for r in records) == list(range(12))
    assert len(snaps) >= 3 and snaps[-1].done and isinstance(snaps[0], RunSnapshot)
    assert [s.elapsed for s in snaps] == sorted(s.elapsed for s in snaps)
    assert snaps[-1].completed == 12 and snaps[-1].in_flight == 0
    assert max(s.in_flight for s in snaps) <= 3
    assert run.result.completed == 12


async def test_warmups_are_sent_but_not_measured(cl100k):
    async with SimServer(fast()) as srv:
        result = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", num_warmups=3),
                                     requests(5), TokenCounter(cl100k))
        n_server = len(srv.records)
    assert n_server == 8 and result.completed == 5
    assert result.warmup == {"requests": 3, "failed": 0}


async def test_duration_limit_stops_dispatching(cl100k):
    async with SimServer(fast()) as srv:
        spec = BenchSpec(base_url=srv.url, model="tokdeck-sim", request_rate=20.0, duration=0.4)
        from tui.core.bench.arrivals import arrival_times

        due = sum(1 for t in arrival_times(100, 20.0, 1.0, 0) if t < 0.4)
        result = await run_benchmark(spec, requests(100), TokenCounter(cl100k))
    assert 0 < result.completed <= due < 100
    assert result.setup["stopped_by"] == "duration" and not result.partial


async def test_api_key_is_sent_and_never_saved(cl100k):
    secret = "sk-test-NEVER-SAVE-1234"
    async with SimServer(fast(api_key=secret)) as srv:
        ok = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", api_key=secret),
                                 requests(2), TokenCounter(cl100k))
        bad = await run_benchmark(BenchSpec(base_url=srv.url, model="tokdeck-sim", api_key="wrong"),
                                  requests(2), TokenCounter(cl100k))
    assert ok.completed == 2 and bad.failed == 2
    assert all(r.startswith("HTTP 401") for r in bad.error_reasons)
    dumped = json.dumps(ok.to_vllm_json(detailed=True)) + ok.to_csv() + repr(ok.setup)
    assert secret not in dumped


def test_thread_runner_stop_gives_a_partial_result(cl100k):
    with ThreadedSimulator(fast(itl_ms=20.0, output_tokens=200)) as url:
        spec = BenchSpec(base_url=url, model="tokdeck-sim", max_concurrency=4, snapshot_interval=0.05)
        bt = BenchmarkThread(spec, requests(40, 200), TokenCounter(cl100k)).start()
        seen = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            item = bt.queue.get(timeout=30)
            if isinstance(item, RunSnapshot) and item.in_flight == 4 and item.elapsed > 0.2:
                seen = item
                break
        bt.stop()
        result = bt.join(30)
    assert seen is not None
    assert result is not None and result.partial
    assert result.cancelled == 4 and result.completed + result.failed < 40
    d = result.to_vllm_json()
    assert d["partial"] is True and d["cancelled"] == 4
    assert math.isfinite(d["duration"]) and d["duration"] < 30


async def test_stop_before_the_run_gives_an_empty_partial_result(cl100k):
    async with SimServer(fast()) as srv:
        run = BenchmarkRun(BenchSpec(base_url=srv.url, model="tokdeck-sim", num_warmups=2), requests(5),
                           TokenCounter(cl100k))
        run.stop()
        result = await run.run()
        sent = len(srv.records)
    assert result.partial and result.completed == 0 and result.setup["dispatched"] == 0 and sent == 0
    assert result.summary.metric("ttft").mean == 0.0


async def test_requests_due_together_send_one_at_a_time(cl100k):
    """A burst must not take every request's st first and send afterwards (that adds the burst's
    set-up time to every TTFT): each request is written to its socket before the next takes st."""
    n = 24
    async with SimServer(fast(ttft_ms=30.0)) as srv:
        # the warm-ups open n connections, so the burst reuses them
        run = BenchmarkRun(BenchSpec(base_url=srv.url, model="tokdeck-sim", max_concurrency=n, num_warmups=n),
                           requests(n), TokenCounter(cl100k))
        with request_writes() as writes:
            result = await run.run()
    assert result.completed == n
    starts = sorted(run.clock_origin + r.start_time for r in result.records())
    sent = sorted(t for t in writes if t >= run.clock_origin)
    assert len(sent) == n
    for i in range(n - 1):
        assert starts[i] < sent[i] < starts[i + 1]
