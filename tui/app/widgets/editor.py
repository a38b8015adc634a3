"""The Tokens pane's editor: a TextArea that stays fast on megabyte documents."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import islice
from typing import Callable

from rich.cells import cell_len
from textual.document._document import Document
from textual.document._document_navigator import DocumentNavigator
from textual.document._wrapped_document import WrappedDocument
from textual.expand_tabs import get_tab_widths
from textual.geometry import Size, clamp
from textual.widgets import TextArea


class _FastDocument(Document):
    """A Document that caches what Textual 8.2 recomputes from every line on each call.

    ``text`` joins every line, and TextArea reads it once per rendered line (to decide on its
    placeholder): about 40 ms per keystroke on a 1 MB document. ``get_size`` measures every
    line, once per keystroke when unwrapped (~10 ms). The lines only change in
    ``replace_range``, so keep the text and each line's width, and bring both up to date there
    from what the edit replaced.

    Every edit goes through ``replace_range`` (typing, pasting, undo and redo alike), so it also
    notes what each edit changed, for counting incrementally without comparing the texts."""

    _cached_text: str | None = None
    #: (p, s): the text shares its first p and last s characters with the text at the last
    #: ``take_span``; None: unknown (a new document)
    _span: tuple[int, int] | None = None
    _widths: list[int] | None = None  # each line's width in cells, tabs expanded to _widths_tab
    _widths_tab = 0

    def replace_range(self, start, end, text):
        top, bottom = sorted((start, end))
        old = self.text
        old_len = len(old)
        lines = self._lines
        top_start = self._row_start(top[0])
        bottom_start = self._row_start(bottom[0], (top[0], top_start))
        p = self._offset(top, top_start, old_len)
        s = old_len - self._offset(bottom, bottom_start, old_len)
        # the rows the edit replaces end here in the old text (what follows is unchanged)
        tail = bottom_start + len(lines[bottom[0]]) if bottom[0] < len(lines) else None
        self._cached_text = None
        try:
            result = super().replace_range(start, end, text)
        except BaseException:
            self._widths = None
            raise
        # the new text from the old one and the replaced rows: a few copies of the text in C,
        # not a join of every line (~1 ms per keystroke on 1 MB); one join, not `a + b + c`,
        # whose temporary is grown in place (3-25 ms for a 1 MB paste, against 0.2-8 ms)
        if tail is not None and top[0] < len(lines):
            middle = self._newline.join(lines[top[0]:result.end_location[0] + 1])
            self._cached_text = "".join((old[:top_start], middle, old[tail:]))
        if self._span is not None:
            self._span = (min(self._span[0], p), min(self._span[1], s))
        if self._widths is not None:  # the same rows Document.replace_range replaced
            new_rows = self._lines[top[0]:result.end_location[0] + 1]
            self._widths[top[0]:bottom[0] + 1] = [self._width(line) for line in new_rows]
        return result

    def _width(self, line: str) -> int:
        return cell_len(line.expandtabs(self._widths_tab)) if "\t" in line else cell_len(line)

    def get_size(self, tab_width: int) -> Size:
        if self._widths is None or self._widths_tab != tab_width:
            self._widths_tab = tab_width
            self._widths = [self._width(line) for line in self._lines]
        return Size(max(self._widths, default=0), len(self._lines))

    def _row_start(self, row: int, known: tuple[int, int] = (0, 0)) -> int:
        """The text offset where ``row`` starts; ``known``: an earlier (row, offset) to count from."""
        known_row, offset = known
        row = min(row, len(self._lines))
        return offset + sum(map(len, islice(self._lines, known_row, row))) + len(self._newline) * (row - known_row)

    def _offset(self, location, row_start: int, length: int) -> int:
        """The text offset of a (row, column) whose row starts at ``row_start``, clamped to the text."""
        row, column = location
        if row >= len(self._lines):
            return length
        return row_start + min(column, len(self._lines[row]))

    def take_span(self) -> tuple[int, int] | None:
        """What changed since the last call: (p, s) as in ``_span``, or None if unknown."""
        span, self._span = self._span, (sys.maxsize, sys.maxsize)
        return span

    @property
    def text(self) -> str:
        if self._cached_text is None:
            self._cached_text = super().text
        return self._cached_text


class _Rows(Sequence):
    """Row ``i`` of a document that is not soft-wrapped is its line ``i``: the per-row tables of
    ``WrappedDocument`` (``(i, 0)``, ``[i]``, ``[]``) computed on access, not stored per line."""

    def __init__(self, count: int, item: Callable[[int], object]):
        self.count, self._item = count, item

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self._item(index)


def _line_info(y: int) -> tuple[int, int]:
    return y, 0


def _offsets(line: int) -> list[int]:
    return [line]


def _no_wrap(line: int) -> list[int]:
    return []


class _FastWrappedDocument(WrappedDocument):
    """Two costs of Textual's ``WrappedDocument`` (8.2) on a 1 MB document, removed:

    - ``height`` sums over every line on each call, and TextArea asks for it once per rendered
      line (about 250 ms per keystroke): cached until the wrapping changes;
    - unwrapped (big documents open that way) it still builds three lists and a tuple per line
      on every full wrap (~0.13 s, several times while the editor mounts) and rebuilds them for
      every line below an edit that adds or removes a line (tens of thousands of objects per
      Enter, which the garbage collector then walks). Unwrapped, row i is line i: only the tab
      widths are stored, and those lists are shared for the lines without tabs.
    """

    _cached_height: int | None = None

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        self._cached_height = None
        if width:
            super().wrap(width, tab_width)
            return
        self._width = 0
        if tab_width:
            self._tab_width = tab_width
        lines = self.document.lines
        self._tab_width_cache = [self._tabs(line) for line in lines]
        self._set_rows(len(lines))

    def wrap_range(self, start, old_end, new_end) -> None:
        self._cached_height = None
        if self._width:
            super().wrap_range(start, old_end, new_end)
            return
        # the same clamping as WrappedDocument.wrap_range
        old_max, new_max = len(self._tab_width_cache) - 1, self.document.line_count - 1
        first = clamp(start[0], 0, min(old_max, new_max))
        top, old_bottom = sorted((first, clamp(old_end[0], 0, old_max)))
        new_bottom = max(first, clamp(new_end[0], 0, new_max))
        self._tab_width_cache[top:old_bottom + 1] = [self._tabs(line) for line in
                                                     self.document.lines[top:new_bottom + 1]]
        self._set_rows(self.document.line_count)

    def _tabs(self, line: str) -> list[int]:
        if "\t" in line:
            return [width for _, width in get_tab_widths(line, self._tab_width)]
        return _NO_TAB if line else _EMPTY  # get_tab_widths gives [0] and [] for these; never mutated

    def _set_rows(self, count: int) -> None:
        self._offset_to_line_info = _Rows(count, _line_info)
        self._line_index_to_offsets = _Rows(count, _offsets)
        self._wrap_offsets = _Rows(count, _no_wrap)

    @property
    def height(self) -> int:
        if self._cached_height is None:
            if self._width:
                self._cached_height = sum(len(offsets) + 1 for offsets in self._wrap_offsets)
            else:
                self._cached_height = len(self._tab_width_cache)
        return self._cached_height


_NO_TAB: list[int] = [0]
_EMPTY: list[int] = []


class Editor(TextArea):
    """A TextArea that stays fast on a megabyte: its document caches its text and size and notes
    what each edit changed; its wrapped document is cheap when unwrapped."""

    def _set_document(self, text: str, language: str | None) -> None:
        if language:  # syntax highlighting (unused here): Textual's own documents
            super()._set_document(text, language)
            return
        # TextArea._set_document's plain-text path, with the fast document classes
        self._highlight_query = None
        self.document = _FastDocument(text)
        self.wrapped_document = _FastWrappedDocument(self.document, tab_width=self.indent_width)
        self.navigator = DocumentNavigator(self.wrapped_document)
        self._build_highlight_map()
        self.move_cursor((0, 0))
        self._rewrap_and_refresh_virtual_size()

    def _watch_language(self, language: str | None) -> None:
        # Textual calls this as the widget mounts, rebuilding the document from its own text
        if language or type(self.document) is not _FastDocument:
            super()._watch_language(language)

    def take_span(self) -> tuple[int, int] | None:
        """What changed since the last call: the text still shares its first p and last s
        characters with the text then, as (p, s); None for a new document."""
        return self.document.take_span()

    def cursor_offset(self) -> int:
        """The cursor's offset in ``text``."""
        document = self.document
        if not isinstance(document, _FastDocument):
            return document.get_index_from_location(self.cursor_location)
        row, _ = self.cursor_location
        return document._offset(self.cursor_location, document._row_start(row), len(document.text))
