"""Opening datasets in the Data pane: the summary equals the core's report, the problem list, bad paths."""

from __future__ import annotations

from textual.widgets import ContentSwitcher, DataTable, Input, Static

from data_pane_testing import settle, wait_for
from tui.core.datasets import scan_file


def _problem_rows(app) -> list[list[str]]:
    table = app.query_one("#data-problems", DataTable)
    return [[str(c) for c in table.get_row_at(r)] for r in range(table.row_count)]


async def test_errors_file_summary_equals_core_report(make_data, sample):
    path = sample("errors.jsonl")
    expected = scan_file(str(path))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        r = pane.report
        assert r.complete
        assert (r.records, r.valid, r.invalid) == (expected.records, expected.valid, expected.invalid) == (21, 7, 14)
        assert (r.error_total, r.warning_total) == (expected.error_total, expected.warning_total)
        status = str(app.query_one("#data-status", Static).render())
        assert "openai-chat · 21 records · 7 valid · 14 invalid · 14 errors · 3 warnings" in status
        summary = str(app.query_one("#data-summary", Static).render())
        assert "21 records: 7 valid, 14 invalid" in summary
        assert "duplicate prompts: 1 (line 21 = line 1)" in summary
        assert "would drop 1" in summary and "lines 16" in summary
        # the histogram shows messages per record without a tokenizer
        assert app.query_one("#data-hists").display and app.query_one("#data-hist").display
        assert not app.query_one("#data-hist-answer").display  # one series: messages per record


async def test_problem_list_lists_the_known_problems_and_jumps_to_the_line(make_data, sample):
    path = sample("errors.jsonl")
    expected = scan_file(str(path))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        assert app.query_one("#data-views", ContentSwitcher).current == "data-problems-view"
        rows = _problem_rows(app)
        # sample_data/README.md's table: every problem on its line, with its kind
        got = [(int(row[0].split(":")[0]), row[1], row[2]) for row in rows]
        want = sorted((i.line, i.severity, i.kind) for i in expected.errors + expected.warnings)
        assert got == want
        assert (3, "error", "invalid-json") in got and (12, "error", "unknown-role") in got
        assert (4, "warning", "blank-line") in got and (16, "warning", "no-assistant-reply") in got
        assert rows[0][0] == "3:31"  # the column of the missing comma
        # select the unknown-role row: the record browser opens on line 12
        table = app.query_one("#data-problems", DataTable)
        assert app.focused is table
        await pilot.press(*["down"] * [g[0] for g in got].index(12), "enter")
        await pilot.pause(0.2)
        assert app.query_one("#data-views", ContentSwitcher).current == "data-records-view"
        pane = app.query_one("DataPane")
        browser = pane.browser
        assert browser.current_line == 12
        top, height = browser.scroll_offset.y, browser.scrollable_content_region.height
        assert height > 0 and top <= browser.cursor < top + height  # its row is on screen
        assert app.focused is pane.browser
        detail = app.query_one("#data-detail").plain()
        assert detail.startswith("line 12") and "bot" in detail


async def test_clean_file_has_no_problems_and_shows_a_conversation(make_data, sample):
    path = sample("openai-chat.jsonl")
    expected = scan_file(str(path))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        assert (pane.report.records, pane.report.valid, pane.report.invalid) == (expected.records, expected.records, 0)
        assert "errors: none" in str(app.query_one("#data-summary", Static).render())
        await pilot.press("f3")
        assert _problem_rows(app) == []
        await pilot.press("f4")
        assert app.focused is pane.browser
        # find a record with tool calls and look at its detail: role labels, the call, the tool reply
        line = next(n for n in range(1, len(pane.index) + 1) if b'"tool_calls"' in pane.index.read_line(n))
        await pilot.press(*["down"] * (line - 1))
        await pilot.pause(0.2)
        assert pane.browser.current_line == line
        detail = app.query_one("#data-detail").plain()
        assert "assistant\n" in detail and "→ " in detail and "tool ← " in detail


async def test_missing_file_and_folder_notify_without_crashing(make_data, sample, tmp_path):
    app = make_data(tmp_path / "nope.jsonl")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one("DataPane")
        assert pane.report is None and pane.path is None
        assert any("no such file" in n.message for n in app._notifications)
        # the open dialog: a folder, then a real file
        pane.focus_default()
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query("#data-open-path"), what="the open dialog")
        app.screen.query_one("#data-open-path", Input).value = str(tmp_path)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert any("is a folder" in n.message for n in app._notifications)
        assert pane.report is None
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query("#data-open-path"), what="the open dialog")
        app.screen.query_one("#data-open-path", Input).value = str(sample("prompt.jsonl"))
        await pilot.press("enter")
        await settle(pilot)
        assert pane.report.format.format == "prompt" and pane.report.records == 24


async def test_unreadable_file_notifies(make_data, tmp_path):
    import os

    import pytest

    path = tmp_path / "locked.jsonl"
    path.write_text('{"text": "a"}\n')
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root: permissions do not apply
        path.chmod(0o600)
        pytest.skip("running as root: a file cannot be made unreadable")
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause(0.2)
        assert app.query_one("DataPane").report is None
        assert any("ermission" in n.message for n in app._notifications)


async def test_format_override_from_the_open_dialog(make_data, sample):
    from textual.widgets import Select

    app = make_data(None)
    async with app.run_test(size=(100, 32)) as pilot:
        pane = app.query_one("DataPane")
        pane.focus_default()
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query("#data-open-path"), what="the open dialog")
        app.screen.query_one("#data-open-path", Input).value = str(sample("prompt-completion.jsonl"))
        app.screen.query_one("#data-open-format", Select).value = "text"
        await pilot.click("#open")
        await settle(pilot)
        r = pane.report
        assert r.format.format == "text"
        assert r.invalid == scan_file(str(sample("prompt-completion.jsonl")), format="text").invalid == r.records
        await pilot.press("ctrl+o")  # the dialog opens again with the same file and format
        await wait_for(pilot, lambda: app.screen.query("#data-open-path"), what="the open dialog")
        assert app.screen.query_one("#data-open-format", Select).value == "text"
        await pilot.press("escape")


async def test_help_and_palette_list_the_data_pane_keys(make_data, sample):
    from textual.widgets import Markdown

    app = make_data(sample("errors.jsonl"))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Data: Open" in titles and "Data: To Bench" in titles and "Data: Problems" in titles
        await app._data_action("show_view('problems')")  # what the palette's "Data: Problems" runs
        await pilot.pause(0.1)
        assert app.query_one("#data-views", ContentSwitcher).current == "data-problems-view"
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.query(Markdown), what="the help screen")
        source = app.screen.query_one(Markdown).source
        assert "## Data pane" in source and "| `ctrl+f` | Search |" in source and "The **Data** pane" in source


async def test_problem_list_is_capped_and_counts_the_rest(make_data, tmp_path):
    from tui.app.data import MAX_ROWS

    path = tmp_path / "bad.jsonl"
    path.write_text("".join('{"text": "ok"}\n' if i % 3 == 0 else "not json\n" for i in range(3000)))
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        r = app.query_one("DataPane").report
        assert r.error_total == 2000
        await pilot.press("f3")
        assert app.query_one("#data-problems", DataTable).row_count == MAX_ROWS == 1000
        note = str(app.query_one("#data-problems-note", Static).render())
        assert "2,000 errors, 0 warnings; 1,000 more not listed" in note
