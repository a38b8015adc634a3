"""The Data pane on hostile files: deep nesting and huge numbers in the detail view, paths that are
not regular files, a file that changes while it is scanned."""

from __future__ import annotations

import json

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
        assert [(e.line, e.kind) for e in pane.report.errors] == [(2, "too-deep"), (3, "number-out-of-range")]
        await pilot.press("f4", "down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 2"), what="line 2")
        assert "too-deep" in app.query_one("#data-detail").plain()
        await pilot.press("down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 3"), what="line 3")
        await pilot.press("down")
        await wait_for(pilot, lambda: app.query_one("#data-detail").plain().startswith("line 4"), what="line 4")
        assert "assistant\nhello" in app.query_one("#data-detail").plain()
