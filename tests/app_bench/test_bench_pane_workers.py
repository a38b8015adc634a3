"""The Bench pane with worker processes: the Workers row of the form, a live run spread over them."""

from __future__ import annotations

import os

from textual.widgets import DataTable, Input, Static

from bench_pane_testing import cell, ready, wait_for
from tui.core.bench.workers import WorkersRun


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_live_bench_pane_run_with_workers(make_bench):
    # ~3 s of run (15 waves of 30 ms + 15 x 12 ms over 4 slots), as the single-process run test
    app = make_bench("--num-prompts", "60", "--max-concurrency", "4", "--output-len", "16",
                     "--random-input-len", "32", sim=dict(ttft_ms=30.0, itl_ms=12.0))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        field = app.query_one("#bench-workers", Input)
        assert field.value == "1"  # the declaration's default
        field.value = "2"
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.thread is not None or pane.session, what="the run to start")
        assert not pane.session, "the run ended before the test saw it going on"
        run = pane.thread.run
        assert isinstance(run, WorkersRun) and run.workers.count == 2
        table = app.query_one("#bench-stats", DataTable)
        await wait_for(pilot, lambda: pane.thread is None or (cell(table, 0, 2) not in ("", "-")
                                                              and "in flight" in str(app.query_one(
                                                                  "#bench-throughput", Static).render())),
                       what="live rows")
        assert pane.session == [] and pane.live.records > 0, f"the run ended before a live row was drawn: {pane.status}"
        pids = run.workers.pids
        assert len(pids) == 2 and os.getpid() not in pids
        await wait_for(pilot, lambda: pane.session, what="the run to finish")
        result = pane.session[0].result
        assert not result.partial and not result.internal_errors
        assert result.completed == 60 and result.failed == 0
        assert sorted(r.index for r in result.records()) == list(range(60))
        assert result.setup["workers"] == 2 and result.setup["worker_transport"] == "processes"
        assert result.summary.max_concurrent_requests <= 4
        assert result.client_health.simulator.late_ms.writes == 60 * 16  # the simulator's lateness, still read
        assert "run 1 finished: 60 done, 0 failed" in pane.status
        assert all(_gone(pid) for pid in pids), "a worker process outlived the run"


async def test_more_workers_than_slots_is_refused_in_the_pane(make_bench):
    app = make_bench("--max-concurrency", "2")
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        app.query_one("#bench-workers", Input).value = "3"
        await pilot.press("f5")
        await wait_for(pilot, lambda: not pane.preparing, what="the refusal")
        assert pane.thread is None and not pane.session
        assert pane.status == "--workers 3 needs --max-concurrency of at least 3: the workers share the 2 slot(s), " \
                              "one at least each"


async def test_the_default_run_shows_the_simulators_configured_ttft(make_bench):
    # the form's defaults against the built-in simulator's (TTFT 150 ms, ITL 10 ms): ~10 s of run
    app = make_bench(sim=dict(ttft_ms=150.0, itl_ms=10.0))
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.bench
        await ready(pilot)
        assert app.query_one("#bench-num-prompts", Input).value == "100"
        assert app.query_one("#bench-max-concurrency", Input).value == "16"
        await pilot.press("f5")
        await wait_for(pilot, lambda: pane.session, timeout=120, what="the default run to finish")
        result = pane.session[0].result
        assert result.completed == 100 and result.failed == 0
        ttft = result.summary.metric("ttft").mean
        # within 10 % of the configured 150 ms (vLLM's default, 1,000 at once, measured ~2,300 ms),
        # plus the lateness the simulator and the client measured of themselves on a machine others load
        health = result.client_health
        late = health.simulator.late_ms.mean + health.event_loop_lag_ms.mean
        assert 150.0 <= ttft <= 165.0 + late, (ttft, late)


def test_the_form_defaults_keep_what_the_command_line_gave():
    from bench_pane_testing import run_options
    from tui.core.bench.options import with_form_defaults

    assert with_form_defaults(run_options()).num_prompts == 100
    given = with_form_defaults(run_options("--num-prompts", "1000", "--max-concurrency", "4"))
    assert (given.num_prompts, given.max_concurrency) == (1000, 4)
