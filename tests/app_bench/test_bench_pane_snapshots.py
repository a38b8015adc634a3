"""Snapshots of the Bench pane at fixed sizes, from fixed result files (live timings are not stable).

Regenerate with --snapshot-update, then look at the SVGs."""

from __future__ import annotations

from bench_pane_testing import ready, save_fixed, wait_for
from tui.core.bench.history import load_result_file


def _app(bundled):
    from tui.app.app import make_app
    from tui.core.config import Config

    return make_app("bench", registry=bundled, config=Config())


def test_bench_setup_form_small_terminal_snapshot(snap_compare, bundled):
    async def before(pilot):
        await ready(pilot)

    assert snap_compare(_app(bundled), terminal_size=(80, 24), run_before=before)


def test_bench_finished_run_snapshot(snap_compare, bundled, tmp_path):
    path = save_fixed(tmp_path / "fixed-run.json")

    async def before(pilot):
        await ready(pilot)
        pilot.app.bench.open_path(path)
        await wait_for(pilot, lambda: pilot.app.bench.shown, what="the opened file")
        await pilot.pause(0.2)

    assert snap_compare(_app(bundled), terminal_size=(100, 44), run_before=before)


def test_bench_compare_snapshot(snap_compare, bundled, tmp_path):
    a = load_result_file(save_fixed(tmp_path / "baseline.json"))
    b = load_result_file(save_fixed(tmp_path / "slower.json", slow=1.5, label="slower"))

    async def before(pilot):
        await ready(pilot)
        pilot.app.bench.show_runs([a, b])
        await pilot.pause(0.2)

    assert snap_compare(_app(bundled), terminal_size=(100, 60), run_before=before)
