"""The Data pane on hostile files: deep nesting and huge numbers in the detail view, paths that are
not regular files, a file that changes while it is scanned."""

from __future__ import annotations

import json
from pathlib import Path

from data_pane_testing import settle, wait_for
from tui.app.widgets.data_browser import conversation_text
MAX_DEPTH = 254

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_detail_of_lines_too_deep_or_too_big_to_render_shows_them_as_text():
    for raw in (json.dumps(CHAT)[:-1] + ', "meta": ' + _deep(MAX_DEPTH) + "}",  # read, not writable
                '{"messages": [{"role": "user", "content": {"a": ' + _deep(MAX_DEPTH) + "}}]}",
                '{"messages": ' + _deep(5000) + "}",  # not read at all
                '{"text": "x", "n": ' + "9" * 5000 + "}"):
        text = conversation_text(7, raw.encode(), truncated=False).plain
        assert text.startswith("line 7") and raw[:12] in text


async def test_moving_onto_hostile_lines_keeps_the_pane_alive(make_data, tmp_path):
    path = tmp_path / "hostile.jsonl"
    lines = [json.dumps(CHAT), '{"messages": [{"role": "user", "content": ' + _deep(MAX_DEPTH + 3) + "}]}",
             json.dumps(CHAT)[:-1] + ', "n": ' + "9" * 5000 + "}", json.dumps(CHAT)]
    path.write_text("\n".join(lines) + "\n")
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        assert [(e.line, e.kind) for e in pane.report.errors] == [(2, "too-deep"), (3, "number-too-large")]
        await pilot.press("f4", "down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 2"), what="line 2")
        assert "too-deep" in app.query_one("#data-detail").plain()
        await pilot.press("down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 3"), what="line 3")
        await pilot.press("down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 4"), what="line 4")
        assert "assistant\nhello" in app.query_one("#data-detail").plain()


async def test_a_fifo_or_a_device_is_refused_with_an_accurate_message(make_data, tmp_path):
    import os

    fifo = tmp_path / "stream.jsonl"
    os.mkfifo(fifo)
    app = make_data(fifo)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause(0.2)  # opening the FIFO would wait for a writer: the pane must not open it
        pane = app.query_one("DataPane")
        assert pane.report is None and pane.path is None
        messages = [n.message for n in app._notifications]
        assert any("is a pipe, not a regular file" in m for m in messages), messages
        pane.open(Path("/dev/zero"))
        await pilot.pause(0.1)
        messages = [n.message for n in app._notifications]
        assert any("/dev/zero: is a device" in m for m in messages) and pane.path is None
        assert not any("is a folder" in m for m in messages)


def test_ui_with_a_fifo_dataset_says_what_it_is(tmp_path):
    import os

    from tokdeck_testing import run_cli

    fifo = tmp_path / "stream.jsonl"
    os.mkfifo(fifo)
    proc = run_cli("ui", str(fifo), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"tokdeck: error: {fifo}: is a pipe, not a regular file "
                                   "(only `tokdeck inspect` reads pipes, in one pass)")


async def test_a_file_changed_during_the_scan_is_shown_incomplete(make_data, tmp_path):
    path = tmp_path / "growing.jsonl"
    line = json.dumps(CHAT) + "\n"
    path.write_text(line * 300_000)  # ~25 MB: the scan takes long enough to change the file meanwhile
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        pane = app.query_one("DataPane")
        await wait_for(pilot, lambda: pane.progress is not None or pane.report is not None, what="the scan")
        assert pane.report is None, "the scan ended before the file changed"
        with open(path, "a") as fh:
            fh.write(line)
        await settle(pilot)
        assert not pane.report.complete
        status = str(app.query_one("#data-status").render())
        summary = str(app.query_one("#data-summary").render())
        assert "INCOMPLETE (the file changed during the scan:" in status
        assert "INCOMPLETE (the file changed during the scan:" in summary
        from tui.app.data import bench_plan

        assert bench_plan(pane.report)[0] == "no" and "rescan" in bench_plan(pane.report)[1]


async def test_control_characters_from_the_data_are_shown_not_sent_to_the_terminal(make_data, tmp_path):
    path = tmp_path / "evil.jsonl"
    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    path.write_bytes(json.dumps({"messages": [{"role": "user", "content": evil},
                                              {"role": evil, "content": "x"}]}).encode() + b"\n"
                     + b'{"text": "raw \x1b[2J and \xc2\x9b in the line"}\n')
    app = make_data(path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        pane = app.query_one("DataPane")
        assert all("\x1b" not in i.message for i in pane.report.errors)
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 1"), what="line 1")
        detail = app.query_one("#data-detail").plain()
        assert "␛]0;owned" in detail and not any(c in detail for c in "\x1b\x07\x9b")
        rows = [pane.browser.text_of(n) for n in (1, 2)]
        assert not any(c in row for row in rows for c in "\x1b\x07\x9b")
