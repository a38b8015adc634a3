"""The record browser on big files (reads only what is visible), the search filter, cancelling a scan."""

from __future__ import annotations

import json

from textual.widgets import Input, Static

from data_pane_testing import settle, wait_for
from tui.app.widgets.data_browser import CACHE_LINES


def _write_lines(path, n: int, every: int = 1000) -> None:
    with open(path, "w") as fh:
        for i in range(1, n + 1):
            word = "needle" if i % every == 0 else "hay"
            fh.write(json.dumps({"prompt": f"record {i} {word}", "output_tokens": 8}) + "\n")


async def test_browser_scrolls_200k_lines_reading_only_visible_rows(make_data, tmp_path):
    path = tmp_path / "big.jsonl"
    n = 200_000
    _write_lines(path, n)
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        assert pane.report.records == n and len(pane.index) == n
        await pilot.press("f4")
        browser = pane.browser
        await pilot.pause(0.1)
        height = browser.scrollable_content_region.height
        reads0 = browser.reads
        assert 0 < reads0 <= height + 2
        await pilot.press("end")
        await pilot.pause(0.2)
        assert browser.current_line == n
        assert f"record {n} needle" in app.query_one("#data-detail").plain()
        await pilot.press(*["pageup"] * 10)
        await pilot.press("home", "down", "down")
        await pilot.pause(0.2)
        assert browser.current_line == 3
        # ~12 screens were shown: rows read stay proportional to that, not to the file's 200k lines
        assert browser.reads <= 15 * (height + 2), browser.reads
        assert len(browser._cache) <= CACHE_LINES


async def test_search_filters_the_browser_and_escape_clears(make_data, tmp_path):
    path = tmp_path / "big.jsonl"
    n = 50_000
    _write_lines(path, n, every=997)
    want = [i for i in range(1, n + 1) if i % 997 == 0]
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        await pilot.press("ctrl+f")
        assert app.focused is app.query_one("#data-search", Input)
        await pilot.press(*"NEEDLE", "enter")
        await settle(pilot)
        browser = pane.browser
        assert list(browser.rows) == want
        assert app.focused is browser
        await pilot.press("down", "down")
        await pilot.pause(0.2)
        assert browser.current_line == want[2]
        note = str(app.query_one("#data-records-note", Static).render())
        assert f"{len(want):,} matching lines" in note
        # a field query: the prompt field, a record number
        await pilot.press("ctrl+f")
        app.query_one("#data-search", Input).value = ""
        await pilot.press(*"prompt:record 4990 hay", "enter")
        await settle(pilot)
        assert list(browser.rows) == [4990]
        # escape in the search box shows every line again
        await pilot.press("ctrl+f", "escape")
        await pilot.pause(0.1)
        assert browser.rows is None and browser.row_count == n
        assert pane.query is None


async def test_search_on_errors_file_field_query(make_data, sample):
    app = make_data(sample("errors.jsonl"))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        pane.search("role:tool")
        await settle(pilot)
        assert list(pane.browser.rows) == [14, 20]
        # jumping to a problem whose line the filter hides clears the filter
        pane.show_line(12)
        await pilot.pause(0.1)
        assert pane.browser.rows is None and pane.browser.current_line == 12


async def test_cancel_a_scan_shows_an_incomplete_report(make_data, tmp_path):
    path = tmp_path / "many.jsonl"
    n = 1_000_000  # tiny records: the structure pass takes about a second
    with open(path, "w") as fh:
        fh.write("".join(f'{{"text": "t{i}"}}\n' for i in range(n)))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        pane = app.query_one("DataPane")
        await wait_for(pilot, lambda: pane.progress is not None or pane.report is not None, what="progress")
        assert pane.report is None, "the scan finished before its first progress batch"
        await pilot.press("f6")
        await settle(pilot)
        r = pane.report
        assert not r.complete
        assert 0 < r.records < n
        assert "INCOMPLETE" in str(app.query_one("#data-status", Static).render())
        assert "INCOMPLETE" in str(app.query_one("#data-summary", Static).render())
        # Send to Bench refuses a partial scan
        await pilot.press("f7")
        await pilot.pause(0.1)
        assert any("cancelled" in m.message for m in app._notifications)
        assert app.query_one("#panes").active == "data"


async def test_latest_search_wins(make_data, tmp_path):
    path = tmp_path / "big.jsonl"
    _write_lines(path, 100_000, every=3)
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        pane.search("needle")  # a third of the lines: still streaming in when the next search starts
        pane.search('"record 7 hay"')
        await settle(pilot)
        assert list(pane.browser.rows) == [7]
        assert "filter text 'record 7 hay': 1 matching lines" in str(app.query_one("#data-records-note").render())
