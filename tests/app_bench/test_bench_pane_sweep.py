"""A sweep from the Bench pane against the built-in simulator: the form's sweep fields, points
drawn as steps finish, the answer at the end, the server's view, history and comparison."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from bench_pane_testing import ready, wait_for
from tui.app.widgets.sweep_view import SweepView
from tui.core.bench.options import FORM_ROWS


def test_the_sweep_and_slo_fields_come_from_the_option_declarations():
    labels = [spec.label for row in FORM_ROWS for spec in row]
    assert {"Sweep", "Step seconds", "SLO percentile", "Goodput SLOs"} <= set(labels)
    assert [[s.name for s in row] for row in FORM_ROWS if row[0].name == "step_duration"] == [
        ["step_duration", "step_requests"]]  # requests beside seconds


async def test_a_sweep_from_the_form_draws_its_points_and_ends_with_the_capacity(make_bench):
    # 4 places, 8-token answers of 170 ms: 8 streams wait ~170 ms for a place (TTFT ~270 ms > 180), 4 do
    # not (TTFT 100 ms: margins wide enough for a loaded machine)
    app = make_bench("--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "60",
                     sim=dict(ttft_ms=100.0, itl_ms=10.0, max_batch=4))
    async with app.run_test(size=(140, 50)) as pilot:
        pane = app.bench
        await ready(pilot)
        app.query_one("#bench-sweep", Input).value = "concurrency=1,4,8"
        app.query_one("#bench-step-requests", Input).value = "16"
        app.query_one("#bench-goodput", Input).value = "ttft:180"
        await pilot.press("f5")
        view = app.query_one(SweepView)
        await wait_for(pilot, lambda: pane.thread is not None or pane.sweeps, what="the sweep to start")
        await wait_for(pilot, lambda: len(view.curves[-1].points) >= 1, what="a first point")
        assert not view.has_class("-hidden")
        await wait_for(pilot, lambda: pane.sweeps, timeout=60, what="the sweep to finish")
        curve, result = pane.sweeps[0]
        assert [p.step for p in curve.points] == [1, 2, 3] and view.builds >= 1
        answer = str(app.query_one("#sweep-answer", Static).render())
        assert answer.startswith("capacity: 4 concurrent streams (") and "knee:" in answer
        assert app.query_one("#sweep-steps", DataTable).row_count == 3
        assert curve.samples and max(s.running for s in curve.samples) <= 4  # the simulator's /metrics
        assert "sweep 1 finished: 3 step(s); capacity: 4 concurrent streams" in pane.status
        history = app.query_one("#bench-history", DataTable)
        assert "sweep-1" in history.rows


async def test_two_sweeps_compare_overlaid_with_their_answers(make_bench):
    app = make_bench("--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "20",
                     "--sweep", "concurrency=1,2", "--step-requests", "8", "--goodput", "ttft:500",
                     sim=dict(ttft_ms=10.0, itl_ms=2.0, max_batch=4))
    async with app.run_test(size=(140, 50)) as pilot:
        pane = app.bench
        await ready(pilot)
        for n in (1, 2):
            await pilot.press("f5")
            await wait_for(pilot, lambda: len(pane.sweeps) == n, timeout=60, what=f"sweep {n}")
        pane.selected = ["sweep-1", "sweep-2"]
        await pilot.press("f8")
        view = app.query_one(SweepView)
        assert [c.name for c in view.curves] == ["sweep 1", "sweep 2"]
        answer = str(app.query_one("#sweep-answer", Static).render())
        assert "sweep 1: capacity: 2 concurrent streams" in answer and "sweep 2: capacity: 2" in answer
        assert app.query_one("#sweep-steps", DataTable).row_count == 4


async def test_saved_sweeps_are_listed_in_history_opened_and_compared(make_bench, tmp_path):
    flags = ("--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "20", "--sweep",
             "concurrency=1,2", "--step-requests", "8", "--goodput", "ttft:500", "--save-result",
             "--result-dir", str(tmp_path), "--result-filename", "first.json")
    app = make_bench(*flags, sim=dict(ttft_ms=10.0, itl_ms=2.0, max_batch=4))
    async with app.run_test(size=(140, 50)) as pilot:
        pane = app.bench
        await ready(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: (tmp_path / "first.json").exists(), timeout=60, what="the saved sweep")
        session_curve = pane.sweeps[0][0]
    (tmp_path / "second.json").write_bytes((tmp_path / "first.json").read_bytes())
    (tmp_path / "run.json").write_text('{"completed": 4, "request_throughput": 2.0}')
    # a new session: the result folder lists both sweeps (marked, with their capacity) next to the run
    app = make_bench("--result-dir", str(tmp_path))
    async with app.run_test(size=(140, 50)) as pilot:
        pane = app.bench
        await ready(pilot)
        history = app.query_one("#bench-history", DataTable)
        await wait_for(pilot, lambda: history.row_count == 3, what="the folder listing")
        first = str(tmp_path / "first.json")
        row = [str(c) for c in history.get_row(first)]
        assert row[1] == "first (concurrency=1,2)" and row[2] == "sweep file" and row[3] == "2 steps"
        assert row[7] == f"capacity {pane.files[first].capacity_rate:,.2f} req/s"
        assert [str(c) for c in history.get_row(str(tmp_path / "run.json"))][2] == "file"
        # enter opens its curve, as the session drew it
        await pilot.press("f4")
        assert app.focused is history
        history.move_cursor(row=history.get_row_index(first))
        await pilot.press("enter")
        view = app.query_one(SweepView)
        await wait_for(pilot, lambda: not view.has_class("-hidden"), what="the sweep view")
        assert [c.name for c in view.curves] == ["first"]
        assert view.curves[0].points == session_curve.points and view.curves[0].samples
        answer = str(app.query_one("#sweep-answer", Static).render())
        assert answer.startswith("capacity: 2 concurrent streams")
        assert app.query_one("#sweep-steps", DataTable).row_count == 2
        # F8 overlays the two selected sweep files
        pane.selected = [first, str(tmp_path / "second.json")]
        await pilot.press("f8")
        assert [c.name for c in view.curves] == ["first", "second"]
        answer = str(app.query_one("#sweep-answer", Static).render())
        assert "first: capacity: 2 concurrent streams" in answer and "second: capacity: 2" in answer
        assert app.query_one("#sweep-steps", DataTable).row_count == 4
