"""The Tokens editor behaves exactly like Textual's TextArea while caching what it can, and
reports what each edit changed."""

from __future__ import annotations

import random

import pytest
from textual.app import App, ComposeResult
from textual.widgets import TextArea

from tui.app.widgets import Editor

START = "a\r\nbc\r\n\r\n\txyz\tq\r\n"
INSERTS = ["", "x", "\n", "\r\n", "ab\ncd", "😀", "東京", "\t", "q\n\n\tr", "\u2028"]


class Pair(App):
    def __init__(self, soft_wrap: bool):
        super().__init__()
        self.soft_wrap = soft_wrap

    def compose(self) -> ComposeResult:
        yield Editor(START, id="fast", soft_wrap=self.soft_wrap)
        yield TextArea(START, id="plain", soft_wrap=self.soft_wrap)


def _wrap_state(area: TextArea):
    wrapped = area.wrapped_document
    rows = range(wrapped.height)
    return (wrapped.height, [wrapped._offset_to_line_info[y] for y in rows],
            [wrapped.get_offsets(i) for i in range(area.document.line_count)],
            [wrapped.get_tab_widths(i) for i in range(area.document.line_count)],
            [wrapped.location_to_offset((i, 1)) for i in range(area.document.line_count)],
            [wrapped.offset_to_location((1, y)) for y in rows])


@pytest.mark.parametrize("soft_wrap", [False, True])
async def test_random_edits_keep_the_editor_equal_to_a_textarea_and_spans_true(soft_wrap):
    app = Pair(soft_wrap)
    async with app.run_test(size=(40, 20)) as pilot:
        fast, plain = app.query_one("#fast", Editor), app.query_one("#plain", TextArea)
        assert fast.take_span() is None  # a new document: unknown
        rng = random.Random(soft_wrap)
        before = fast.text
        for step in range(600):
            # Textual 8.2's own TextArea can fail to undo into a soft-wrapped range (ValueError
            # from wrap_range); soft-wrapped, the Editor uses Textual's wrapping unchanged
            op = rng.random() if not soft_wrap else 1.0
            if op < 0.03:
                fast.undo(), plain.undo()
            elif op < 0.05:
                fast.redo(), plain.redo()
            else:
                lines = fast.document.line_count
                start = (rng.randrange(lines), rng.randrange(9))
                end = start if rng.random() < 0.85 else (rng.randrange(lines), rng.randrange(9))
                text = rng.choice(INSERTS)
                fast.replace(text, start, end), plain.replace(text, start, end)
            if rng.random() < 0.3:
                continue  # several edits before the next look: their spans add up
            after = fast.text
            assert after == plain.text
            p, s = fast.take_span()
            p = min(p, len(before), len(after))
            s = min(s, len(before) - p, len(after) - p)
            assert before[:p] == after[:p] and before[len(before) - s:] == after[len(after) - s:], step
            assert fast.document.get_size(4) == plain.document.get_size(4)
            fast.move_cursor((rng.randrange(fast.document.line_count), rng.randrange(9)))
            assert fast.cursor_offset() == fast.document.get_index_from_location(fast.cursor_location)
            assert _wrap_state(fast) == _wrap_state(plain), step
            before = after
        await pilot.pause()
        assert fast.virtual_size == plain.virtual_size
