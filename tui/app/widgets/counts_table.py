"""The Tokens pane's table: one row per tokenizer, drawn line by line.

A DataTable re-renders every visible cell whenever any cell changes (its render caches are
keyed by an update counter) and keeps the old renders until its LRU caches evict them: about
80 cell renders per count update, several updates per keystroke, and a heap of cached
segments that the garbage collector then walks. Here a changed row costs one Strip.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # cells of content; the last column also takes what is left of the widget
    right: bool = False  # right-aligned (numbers)


class CountsTable(ScrollView, can_focus=True):
    """Rows of short text cells under a fixed header, with a row cursor and zebra stripes."""

    COMPONENT_CLASSES = {"counts-table--header", "counts-table--cursor", "counts-table--even-row"}
    DEFAULT_CSS = """
    CountsTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        overflow-x: hidden;
        & > .counts-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .counts-table--even-row { background: $surface-lighten-1 50%; }
        & > .counts-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .counts-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        &:dark > .counts-table--even-row { background: $surface-darken-1 40%; }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Cursor up", show=False),
        Binding("down", "cursor(1)", "Cursor down", show=False),
        Binding("pageup", "cursor(-10)", "Page up", show=False),
        Binding("pagedown", "cursor(10)", "Page down", show=False),
        Binding("home", "cursor(-1_000_000)", "First row", show=False),
        Binding("end", "cursor(1_000_000)", "Last row", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=False)

    class RowHighlighted(Message):
        """The cursor moved to ``row`` (its key: ``row_key``)."""

        def __init__(self, table: "CountsTable", row: int, row_key: str):
            super().__init__()
            self.table = table
            self.row = row
            self.row_key = row_key

        @property
        def control(self) -> "CountsTable":
            return self.table

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.columns: list[Column] = []
        self._keys: list[str] = []
        self._rows: dict[str, list[str]] = {}
        self._strips: dict[int, Strip] = {}  # row index -> rendered line, at the width in _strip_width
        self._strip_width = 0

    # ------------------------------------------------------------------ content
    def set_columns(self, columns: list[Column]) -> None:
        self.columns = list(columns)
        self._changed()

    def set_rows(self, rows: dict[str, list[str]]) -> None:
        """Replace every row: key -> cells (one per column)."""
        self._keys = list(rows)
        self._rows = {key: list(cells) for key, cells in rows.items()}
        self.cursor_row = max(0, min(self.cursor_row, len(self._keys) - 1))
        self._changed()

    def update_cell(self, row_key: str, column_key: str, value: str) -> None:
        cells = self._rows[row_key]
        col = next(i for i, c in enumerate(self.columns) if c.key == column_key)
        if cells[col] != value:
            cells[col] = value
            index = self._keys.index(row_key)
            self._strips.pop(index, None)
            self.refresh_line(index + 1)  # virtual lines: the header is line 0

    @property
    def row_count(self) -> int:
        return len(self._keys)

    def get_row_at(self, index: int) -> list[str]:
        return list(self._rows[self._keys[index]])

    def move_cursor(self, *, row: int) -> None:
        self.cursor_row = max(0, min(row, len(self._keys) - 1))

    def _changed(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(sum(c.width + 2 for c in self.columns), len(self._keys) + 1)
        self.refresh()

    # ------------------------------------------------------------------ cursor
    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._strips.pop(old, None)
        self._strips.pop(new, None)
        visible = max(1, self.scrollable_content_region.height - 1)  # rows below the header
        top = self.scroll_offset.y
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()
        if self._keys:
            self.post_message(self.RowHighlighted(self, new, self._keys[new]))

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(row=event.y - 1 + self.scroll_offset.y)

    def _on_focus(self, event: events.Focus) -> None:
        self._strips.clear()  # the cursor's style depends on focus
        super()._on_focus(event)

    def _on_blur(self, event: events.Blur) -> None:
        self._strips.clear()
        super()._on_blur(event)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # ------------------------------------------------------------------ drawing
    def _widths(self, width: int) -> list[int]:
        widths = [c.width for c in self.columns]
        if widths:
            fixed = sum(w + 2 for w in widths[:-1])
            widths[-1] = max(widths[-1], width - fixed - 2)
        return widths

    def _line(self, cells: list[str], widths: list[int], style: Style) -> Strip:
        segments = []
        for column, value, width in zip(self.columns, cells, widths):
            if cell_len(value) > width:
                value = set_cell_size(value, width - 1) + "…"
            pad = " " * (width - cell_len(value))
            segments.append(Segment(f" {pad}{value} " if column.right else f" {value}{pad} ", style))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if width != self._strip_width:
            self._strips.clear()
            self._strip_width = width
        widths = self._widths(width)
        if y == 0:
            style = base + self.get_component_rich_style("counts-table--header")
            strip = self._line([c.label for c in self.columns], widths, style)
            return strip.crop_extend(0, width, style)
        index = y - 1 + self.scroll_offset.y
        if index >= len(self._keys):
            return Strip.blank(width, base)
        strip = self._strips.get(index)
        if strip is None:
            style = base
            if index % 2 == 0:
                style += self.get_component_rich_style("counts-table--even-row")
            if index == self.cursor_row:
                style += self.get_component_rich_style("counts-table--cursor")
            strip = self._line(self._rows[self._keys[index]], widths, style).crop_extend(0, width, style)
            self._strips[index] = strip
        return strip
