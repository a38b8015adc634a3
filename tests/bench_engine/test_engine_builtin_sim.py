"""The built-in simulator of a run: in a process of its own, and named in the verdict when it,
not the client, missed its timings."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat

import pytest

from tui.core.bench.engine import BenchmarkThread, run_benchmark
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


def _open_files() -> dict[int, tuple[int, int]]:
    """Every open file descriptor of this process and what it is (device, inode)."""
    files = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            st = os.fstat(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            continue
        files[int(name)] = (st.st_dev, st.st_ino)
    return files


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_a_run_started_like_the_bench_pane_closes_no_descriptor_it_does_not_own():
    # the Bench pane's way: prepare() (which starts the simulator's process and runs its own
    # asyncio.run) in a worker thread beside a running loop, then the run on a BenchmarkThread.
    # A descriptor closed twice would take the simulator's pipes or a loop's epoll with it.
    before = _open_files()
    prep = await asyncio.to_thread(prepare, _args("--num-prompts", "16", "--max-concurrency", "8", "--output-len", "32"),
                                   sim_config=SimConfig(ttft_ms=5, itl_ms=1))
    try:
        prepared = _open_files()
        assert before.items() <= prepared.items()
        opened = prepared.keys() - before.keys()  # what the parent keeps of the simulator: its stdin and stdout
        assert len(opened) == 2 and all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in opened)
        bt = BenchmarkThread(prep.spec, prep.requests, prep.counter).start()
        result = await asyncio.to_thread(bt.join)
        assert result.completed == 16
        assert prepared.items() <= _open_files().items()  # the simulator's pipes and this loop's epoll
        assert prep.sim.health()["requests"] == {"ok": 16}  # still running: its stdin pipe is open
    finally:
        prep.sim.stop()
    assert _open_files() == before
