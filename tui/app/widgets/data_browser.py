"""A virtual record browser over a LineIndex: millions of lines, only the visible ones are read.

``RecordBrowser`` is a Line-API ``ScrollView``: ``render_line`` reads the rows on screen with
``os.pread`` (through the index), keeps the decoded prefix of each in a small LRU cache, and
never holds more than the cache. A filter (an ``array('q')`` of line numbers) shows only those
lines over the same index. ``conversation_text`` renders one record for the detail panel.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict

import orjson
from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...core.datasets.parsing import MAX_DEPTH, visible
from ...core.messages import JOIN, content_text, part_text

#: bytes of a line read for its row (the row shows a prefix; long lines are cut before decoding)
ROW_BYTES = 1024
CACHE_LINES = 2048
GUTTER = 9  # "12345678 " line-number column
_CONTROL = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], " ")  # a raw ESC would reach the terminal


class RecordBrowser(ScrollView, can_focus=True):
    """One row per physical line (or per matching line when filtered); a row cursor."""

    DEFAULT_CSS = """
    RecordBrowser { background: $surface; overflow-x: hidden; }
    RecordBrowser > .record-browser--cursor { background: $accent 40%; }
    RecordBrowser > .record-browser--gutter { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"record-browser--cursor", "record-browser--gutter"}
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
    ]

    class Moved(Message):
        """The cursor is on ``line`` (None: nothing to show)."""

        def __init__(self, browser: "RecordBrowser", line: int | None) -> None:
            super().__init__()
            self.browser = browser
            self.line = line

        @property
        def control(self) -> "RecordBrowser":
            return self.browser

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.index = None
        self.rows: array | None = None  # the filter: line numbers shown, ascending; None = every line
        self.cursor = 0
        self._cache: OrderedDict[int, str] = OrderedDict()
        self.reads = 0  # lines read from the file (tests and the perf script check it stays small)

    # ------------------------------------------------------------ data
    def set_index(self, index) -> None:
        self.index = index
        self.rows = None
        self._cache.clear()
        self.cursor = 0
        self._resize()
        self.scroll_to(0, 0, animate=False)
        self._moved()

    def set_filter(self, rows: array | None) -> None:
        """Show only ``rows`` (None: every line); keeps the cursor on its line when it is still shown."""
        line = self.current_line
        self.rows = rows
        self._resize()
        self.cursor = self._row_of(line) if line is not None else 0
        self._scroll_to_cursor(center=True)
        self._moved()

    def extend_filter(self, more: array) -> None:
        """Matches arriving from a running search (ascending, after the ones shown)."""
        if self.rows is None:
            self.rows = array("q")
        was_empty = not self.rows
        self.rows.extend(more)
        self._resize()
        if was_empty and self.rows:
            self.cursor = 0
            self._moved()
        self.refresh()

    @property
    def row_count(self) -> int:
        if self.index is None:
            return 0
        return len(self.rows) if self.rows is not None else len(self.index)

    @property
    def current_line(self) -> int | None:
        return self.line_at_row(self.cursor)

    def line_at_row(self, row: int) -> int | None:
        if not 0 <= row < self.row_count:
            return None
        return self.rows[row] if self.rows is not None else row + 1

    def _row_of(self, line: int) -> int:
        """The row showing ``line``, or the nearest row after it."""
        if self.rows is None:
            return max(0, min(line - 1, self.row_count - 1))
        return max(0, min(bisect_left(self.rows, line), len(self.rows) - 1))

    def goto_line(self, line: int) -> bool:
        """Put the cursor on ``line``; False when the filter hides it (the caller may clear the filter)."""
        if self.index is None or not 1 <= line <= len(self.index):
            return False
        row = self._row_of(line)
        if self.line_at_row(row) != line:
            return False
        self.cursor = row
        self._scroll_to_cursor(center=True)
        self._moved()
        return True

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count)
        self.refresh()

    def on_resize(self) -> None:
        self._resize()
        self.call_after_refresh(self._scroll_to_cursor)  # keep the cursor's row on screen

    def text_of(self, line: int) -> str:
        """The row text of ``line`` (a decoded, control-free prefix), from the cache or the file."""
        text = self._cache.get(line)
        if text is not None:
            self._cache.move_to_end(line)
            return text
        raw = self.index.read_line(line, ROW_BYTES)
        self.reads += 1
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        text = raw.decode("utf-8", "replace").translate(_CONTROL)
        self._cache[line] = text
        if len(self._cache) > CACHE_LINES:
            self._cache.popitem(last=False)
        return text

    # ------------------------------------------------------------ rendering
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        row = self.scroll_offset.y + y
        line = self.line_at_row(row)
        if line is None:
            return Strip.blank(width, self.rich_style)
        base = self.rich_style
        gutter = self.get_component_rich_style("record-browser--gutter")
        style = base + self.get_component_rich_style("record-browser--cursor") if row == self.cursor else base
        text = self.text_of(line)[: max(0, width - GUTTER)]
        segments = [Segment(f"{line:>{GUTTER - 1}} ", base + gutter if row != self.cursor else style),
                    Segment(text, style)]
        return Strip(segments).adjust_cell_length(width, style)

    # ------------------------------------------------------------ keys
    def _moved(self) -> None:
        self.refresh()
        self.post_message(self.Moved(self, self.current_line))

    def _scroll_to_cursor(self, center: bool = False) -> None:
        if center:  # also once laid out: a browser just made visible has no height yet
            self.call_after_refresh(self._scroll_to_cursor)
        height = max(1, self.scrollable_content_region.height)
        top = self.scroll_offset.y
        if center:
            self.scroll_to(y=max(0, self.cursor - height // 2), animate=False)
        elif self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def _set_cursor(self, row: int) -> None:
        if not self.row_count:
            return
        row = max(0, min(row, self.row_count - 1))
        if row != self.cursor:
            self.cursor = row
            self._scroll_to_cursor()
            self._moved()

    def action_move(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, end: int) -> None:
        self._set_cursor(self.row_count - 1 if end else 0)


# ---------------------------------------------------------------- the detail panel


class DetailView(ScrollView, can_focus=True):
    """The selected record, wrapped to the width and drawn with the Line API: showing another record
    re-wraps only its text and never changes the screen's layout (a Static in a scrolling
    container would, on every cursor move)."""

    DEFAULT_CSS = """
    DetailView { overflow-x: hidden; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.text = Text()
        self._lines: list[Text] = []
        self._width = 0

    def show(self, text: Text) -> None:
        self.text = text
        self._wrap()
        self.scroll_to(0, 0, animate=False)

    def _wrap(self) -> None:
        width = max(1, self.scrollable_content_region.width)
        self._width = width
        self._lines = list(self.text.wrap(self.app.console, width)) if self.text else []
        # setting virtual_size the usual way lays the whole screen out again (~10-25 ms a move);
        # only the scrollbar can change here, so update it alone unless it appears or disappears
        shown = self.show_vertical_scrollbar
        size = Size(width, len(self._lines))
        self.set_reactive(DetailView.virtual_size, size)
        self._scroll_update(size)
        self.refresh(layout=self.show_vertical_scrollbar != shown)

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._wrap()

    def plain(self) -> str:
        return self.text.plain

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        n = self.scroll_offset.y + y
        if n >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        segments = list(self._lines[n].render(self.app.console))
        return Strip(segments).apply_style(self.rich_style).adjust_cell_length(width, self.rich_style)

DETAIL_BYTES = 256 << 10  # a record's detail reads at most this much of its line
DETAIL_CHARS = 4000  # per message content
ROLE_STYLES = {"system": "bold magenta", "developer": "bold magenta", "user": "bold cyan", "human": "bold cyan",
               "assistant": "bold green", "gpt": "bold green", "tool": "bold yellow", "function": "bold yellow",
               "observation": "bold yellow", "function_call": "bold yellow"}


def _clip(s: str, n: int = DETAIL_CHARS) -> str:
    return s if len(s) <= n else s[:n] + f"… ({len(s) - n:,} more characters)"


def _content(content) -> str:
    """A message's content for reading: its text by the one message-text rule, with a marker
    for each part that carries none (an image, audio, a file)."""
    if content is None:
        return "(no content)"
    if isinstance(content, list):
        parts = []
        for p in content:
            text = part_text(p)
            if text is not None:
                parts.append(text)
            else:
                parts.append(f"[{p.get('type', 'part')}]" if isinstance(p, dict) else f"[{type(p).__name__}]")
        return JOIN.join(parts)
    if isinstance(content, str):
        return content_text(content)
    return orjson.dumps(content).decode()


def _messages(value) -> tuple[list, str, str] | None:
    """(turns, role key, content key) when the record is a conversation."""
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return value, "role", "content"
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return value["messages"], "role", "content"
        if isinstance(value.get("conversations"), list):
            return value["conversations"], "from", "value"
        body = value.get("body")
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            return body["messages"], "role", "content"
    return None


def conversation_text(line: int, raw: bytes, truncated: bool, issues=()) -> Text:
    """The detail panel for one line: its problems (LineIssue), then messages as a conversation,
    anything else pretty-printed."""
    out = Text()
    out.append(f"line {line:,}", style="bold")
    for issue in issues:
        where = f" col {issue.column}" if issue.column else ""
        out.append(f"\n{issue.severity} {issue.kind}{where}: {issue.message}",
                   style="red" if issue.severity == "error" else "yellow")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if truncated:
        return _as_text(out, raw, f"  (over {DETAIL_BYTES >> 10} KB: the start of the line, as text)\n\n")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _as_text(out, raw, f"  not one JSON value: {exc}\n\n")
    head = out.copy()
    try:
        return _shown(_render_value(out, value))
    except orjson.JSONEncodeError:  # read, but nested deeper than orjson writes back
        return _as_text(head, raw, f"  (nested more than {MAX_DEPTH} levels deep: the line as text)\n\n")


def _shown(out: Text) -> Text:
    """``out`` with the record's control characters made visible (one for one: the styles stay put)."""
    out.plain = visible(out.plain, keep_lines=True)
    return out


def _as_text(out: Text, raw: bytes, note: str) -> Text:
    out.append(note, style="dim")
    out.append(_clip(raw.decode("utf-8", "replace"), 8 * DETAIL_CHARS))
    return _shown(out)


def _render_value(out: Text, value) -> Text:
    turns = _messages(value)
    if turns is None:
        out.append("\n")
        out.append(_clip(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode(), 8 * DETAIL_CHARS))
        return out
    msgs, role_key, content_key = turns
    if isinstance(value, dict):
        extra = {k: v for k, v in value.items() if k not in ("messages", "conversations", "body")}
        if extra:
            out.append("  " + _clip(orjson.dumps(extra).decode(), 300), style="dim")
    out.append("\n")
    for m in msgs:
        out.append("\n")
        if not isinstance(m, dict):
            out.append(f"(not a message: {_clip(orjson.dumps(m).decode(), 200)})\n", style="red")
            continue
        role = str(m.get(role_key, "?"))
        out.append(role, style=ROLE_STYLES.get(role, "bold red"))
        if m.get("name"):
            out.append(f" ({m['name']})", style="dim")
        if m.get("tool_call_id"):
            out.append(f" ← {m['tool_call_id']}", style="dim")
        out.append("\n")
        if m.get(content_key) is not None or not m.get("tool_calls"):
            out.append(_clip(_content(m.get(content_key))) + "\n")
        for call in m.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            fn = fn if isinstance(fn, dict) else {}
            args = fn.get("arguments")
            args = args if isinstance(args, str) else orjson.dumps(args).decode()
            out.append(f"→ {fn.get('name', '?')}({_clip(args, 500)})", style="yellow")
            if isinstance(call, dict) and call.get("id"):
                out.append(f"  id {call['id']}", style="dim")
            out.append("\n")
    return out
