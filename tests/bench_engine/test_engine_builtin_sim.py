"""The built-in simulator of a run: in a process of its own, and named in the verdict when it,
not the client, missed its timings."""

from __future__ import annotations

import argparse
import asyncio
import os

import pytest

from tui.core.bench.engine import run_benchmark
from tui.core.bench.options import RunOptions, add_run_arguments, from_namespace
from tui.core.bench.prepare import prepare
from tui.core.bench.results import Lateness, SimulatorHealth
from tui.core.bench.report import format_summary
from tui.core.bench.sim import SimConfig
from tui.core.bench.simproc import judge_lateness


def _args(*flags: str) -> RunOptions:
    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return from_namespace(p.parse_args(["--random-input-len", "16", "--disable-tqdm", *flags]))


def _run(args, cfg: SimConfig):
    lines: list[str] = []
    prep = prepare(args, sim_config=cfg, say=lines.append)
    try:
        (pid,) = prep.sim.pids
        assert pid != os.getpid()  # not in the client's process
        result = asyncio.run(run_benchmark(prep.spec, prep.requests, prep.counter, emit_records=False))
        return result, prep.sim.with_lateness(result), lines, pid
    finally:
        prep.sim.stop()


def test_an_overloaded_builtin_simulator_is_named_in_the_verdict():
    # no gap between tokens: 8 x 3,000 chunks are all due at once, far more than it can write on time
    cfg = SimConfig(ttft_ms=20, itl_ms=0)
    _, result, lines, pid = _run(_args("--num-prompts", "8", "--output-len", "3000"), cfg)
    assert any("using the built-in simulator" in line and "its own process" in line for line in lines)
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)
    assert result.completed == 8
    sim = result.client_health.simulator
    assert sim.late is True and sim.late_ms.p99 > sim.limit_ms == 1.0
    assert sim.late_ms.writes == 8 * 3000
    warning = result.client_health.warning
    assert f"the simulator was late by {sim.late_ms.p99:.1f} ms" in warning
    text = format_summary(result)
    assert "Simulator lateness p50/p99/max (ms):" in text
    assert "WARNING: " in text and "the simulator was late by" in text
    saved = result.to_vllm_json()["client_health"]["simulator"]
    assert saved["late"] is True and saved["limit_ms"] == 1.0


def test_a_simulator_on_time_is_not_blamed():
    cfg = SimConfig(ttft_ms=150, itl_ms=10)  # the limit: 25 % of the ITL, 2.5 ms
    result, judged, _, _ = _run(_args("--num-prompts", "2", "--output-len", "3"), cfg)
    assert judged.client_health.simulator.late_ms.writes == 6  # what its /health said
    assert result.client_health.simulator is None
    assert "simulator" not in result.to_vllm_json()["client_health"]  # the key only with a built-in simulator
    on_time = judge_lateness(result, {"late_ms": {"writes": 6, "mean": 0.3, "p50": 0.2, "p99": 2.4, "max": 9.0}}, cfg)
    assert on_time.client_health.simulator == SimulatorHealth(Lateness(6.0, 0.3, 0.2, 2.4, 9.0), 2.5, False)
    assert on_time.to_vllm_json()["client_health"]["simulator"] == {
        "late_ms": {"writes": 6.0, "mean": 0.3, "p50": 0.2, "p99": 2.4, "max": 9.0}, "limit_ms": 2.5, "late": False}
    assert "simulator" not in (on_time.client_health.warning or "")
    late = judge_lateness(result, {"late_ms": {"writes": 6, "mean": 3, "p50": 2, "p99": 2.6, "max": 9}}, cfg)
    assert late.client_health.simulator.late is True
    for broken in ({}, {"late_ms": "soon"}, {"late_ms": {"writes": 1, "mean": 0, "p50": 0, "p99": float("nan"),
                                                           "max": 0}},
                   {"late_ms": {"writes": 1, "mean": 0, "p50": 0, "p99": True, "max": 0}}):
        assert judge_lateness(result, broken, cfg).client_health == result.client_health
