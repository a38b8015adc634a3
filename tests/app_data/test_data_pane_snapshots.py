"""Snapshots of the Data pane on sample_data/errors.jsonl at fixed sizes (scan settled; the scan's
elapsed time zeroed so the picture does not depend on the machine). Regenerate with
--snapshot-update, then look at them."""

from __future__ import annotations

from dataclasses import replace

from data_pane_testing import settle
from tokdeck_testing import SAMPLE_DATA


def _settled_at(view: str | None = None, line: int | None = None, search: str | None = None):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pane = pilot.app.query_one("DataPane")
        pane._show_report(replace(pane.report, elapsed=0.0))
        pane.query_one("#data-search").cursor_blink = False
        if search is not None:
            pane.search(search)
            await settle(pilot)
        if view:
            pane.action_show_view(view)
        if line is not None:
            pane.show_line(line)
        await pilot.pause(0.3)

    return run_before


def test_data_pane_summary_snapshot(snap_compare, make_data):
    assert snap_compare(make_data(SAMPLE_DATA / "errors.jsonl"), terminal_size=(100, 32), run_before=_settled_at())


def test_data_pane_problems_small_terminal_snapshot(snap_compare, make_data):
    assert snap_compare(make_data(SAMPLE_DATA / "errors.jsonl"), terminal_size=(80, 24),
                        run_before=_settled_at("problems"))


def test_data_pane_records_conversation_snapshot(snap_compare, make_data):
    # line 20: an assistant tool call with null content and the tool's reply
    assert snap_compare(make_data(SAMPLE_DATA / "errors.jsonl"), terminal_size=(80, 24),
                        run_before=_settled_at("records", line=20))


def test_data_pane_records_filtered_snapshot(snap_compare, make_data):
    assert snap_compare(make_data(SAMPLE_DATA / "errors.jsonl"), terminal_size=(100, 32),
                        run_before=_settled_at("records", search="role:tool"))
