"""Sweeps against the simulator's capacity model: explicit steps, auto within 10 % of the analytic
capacity, the early stops, and the server's view aligned with the steps."""

from __future__ import annotations

import math

import pytest
from sweep_testing import run_sweep

from tui.core.bench.capacity import SweepSpec
from tui.core.bench.sim import SimConfig, capacity
from tui.core.bench.sweep import ServerUpdate, StepFinished, StepStarted, StepUpdate, SweepFinished

#: 4 places; a request of 8 tokens takes T = 30 + 7 * 5 = 65 ms at any batch
BATCH4 = SimConfig(ttft_ms=30, itl_ms=5, max_batch=4)


def test_a_concurrency_sweep_finds_the_batch_limit_and_the_server_shows_its_queue():
    result, events = run_sweep(BATCH4, sweep=SweepSpec("concurrency", (1, 2, 4, 8)), step_requests=48,
                               goodput=(("ttft", 70.0),))  # halfway between 30 ms and ~95 ms: a loaded CI
    assert [s.plan.value for s in result.steps] == [1, 2, 4, 8] and result.stop_reason is None
    passed = [s.verdict.passed for s in result.steps]
    assert passed == [True, True, True, False]  # 8 streams wait ~65 ms for a place: TTFT ~95 ms > 70
    assert result.capacity.load == 4 and result.capacity.streams == 4
    assert result.capacity.broken_by == "concurrency 8"
    thr = [s.figures.throughput for s in result.steps]
    assert thr[2] == pytest.approx(4 / 0.065, rel=0.25) and thr[3] == pytest.approx(thr[2], rel=0.1)
    assert (result.knee.step, result.knee.load) == (3, 4)
    assert result.answer()[0].startswith("capacity: 4 concurrent streams (")
    assert "with p99 TTFT ≤ 70 ms; concurrency 8 broke it" in result.answer()[0]
    # events in order: each step starts, reports, finishes; the sweep finishes last
    kinds = [type(e) for e in events if not isinstance(e, (StepUpdate, ServerUpdate))]
    assert kinds == [StepStarted, StepFinished] * 4 + [SweepFinished]
    assert any(isinstance(e, StepUpdate) and e.step == 4 for e in events)
    # each step is a normal run: its own vLLM result, and the server's samples of its own time
    for s in result.steps:
        d = s.result.to_vllm_json()
        assert d["max_concurrency"] == s.plan.value and d["request_rate"] == "inf"
        assert d["completed"] + d["failed"] == 48 and d["warmup"] == {"requests": s.plan.value, "failed": 0}
        view = s.result.server_metrics
        assert view.engine == "vllm" and view.note is None and view.samples
        assert all(x.running <= min(s.plan.value, 4) for x in view.samples)
    waiting = [x.waiting for x in result.steps[3].result.server_metrics.samples]
    assert max(waiting) == 4 and all(x.waiting == 0 for s in result.steps[:3] for x in s.result.server_metrics.samples)
    samples = [e.sample for e in events if isinstance(e, ServerUpdate)]
    assert [x.t for x in samples] == sorted(x.t for x in samples)  # one clock: the sweep's


def test_a_rate_sweep_sends_each_rate_open_loop_evenly_spaced():
    # SLO limits far above the unqueued 30 ms / 5 ms: this is about how rate steps run, and a loaded
    # machine once gave a p99 TTFT of 172 ms
    result, _ = run_sweep(BATCH4, sweep=SweepSpec("rate", (10.0, 25.0)), step_duration=2.0,
                          goodput=(("ttft", 400.0), ("tpot", 50.0)))
    assert [s.plan.value for s in result.steps] == [10.0, 25.0]
    for s in result.steps:
        d = s.result.to_vllm_json()
        assert d["request_rate"] == s.plan.value and d["max_concurrency"] is None
        assert d["burstiness"] == math.inf or d["burstiness"] is None  # even gaps (saved as null: JSON has no inf)
        assert d["num_prompts"] == math.ceil(s.plan.value * 2.0)
        assert s.figures.throughput == pytest.approx(s.plan.value, rel=0.15)  # the rate it was served at
        assert s.verdict.passed
        assert s.streams == pytest.approx(s.plan.value * 0.065, rel=0.35)  # Little's law
    assert result.capacity.request_rate == 25.0 and result.capacity.broken_by is None
    assert "no load measured broke it" in result.answer()[0]


def test_a_sweep_whose_second_step_breaks_the_slo_by_3x_ends_there_and_says_why():
    # 2 places, 8-token answers of 95 ms: 16 streams wait ~7 turns, ~665 ms, for a TTFT limit of 150 ms
    # (2.5x the unqueued TTFT, so that one stream meets it on a loaded machine too)
    result, _ = run_sweep(SimConfig(ttft_ms=60, itl_ms=5, max_batch=2), sweep=SweepSpec("concurrency", (1, 16, 32)),
                          step_requests=32, goodput=(("ttft", 150.0),))
    assert len(result.steps) == 2
    assert result.steps[1].verdict.far_off
    assert result.stop_reason.startswith("step 2 (concurrency 16) broke the SLO by more than 3×: p99 TTFT ")
    assert result.stop_reason.endswith("higher loads would only be worse")
    assert result.capacity.load == 1 and not result.partial


def test_a_sweep_stops_when_throughput_stops_rising_while_latency_climbs():
    result, _ = run_sweep(BATCH4, sweep=SweepSpec("concurrency", (2, 4, 8, 16, 32)), step_requests=48)
    assert [s.plan.value for s in result.steps] == [2, 4, 8]  # 8 gained nothing on 4 and waited twice as long
    assert result.stop_reason.startswith("step 3 (concurrency 8) saturated: throughput ")
    assert result.capacity is None and result.answer()[0].startswith("capacity: no SLO given")
    assert result.knee.load == 4


def test_auto_finds_the_analytic_capacity_within_10_percent_in_at_most_10_steps():
    # a batch of 32 whose ITL grows 5 % per request in it; 16-token answers: T(32) = 50 + 15 * 10 * 2.55 ms
    cfg = SimConfig(ttft_ms=50, itl_ms=10, max_batch=32, itl_growth=0.05)
    expected = capacity(cfg, 16).rate  # 74.1 req/s; a TTFT limit of 3 x TTFT allows almost no queue
    result, _ = run_sweep(cfg, sweep=SweepSpec("auto"), step_duration=2.0, random_output_len=16,
                          goodput=(("ttft", 150.0),), num_prompts=400)
    roles = [s.plan.role for s in result.steps]
    assert roles[:2] == ["synchronous", "throughput"] and len(roles) <= 10
    assert set(roles[2:]) <= {"spaced", "bisection", "knee"}
    found = result.capacity.request_rate
    assert found == pytest.approx(expected, rel=0.10), (found, expected, result.answer())
    assert result.knee is not None and result.knee.throughput == pytest.approx(expected, rel=0.15)
    assert result.stop_reason is None
