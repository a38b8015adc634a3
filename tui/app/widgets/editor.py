"""The Tokens pane's editor: a TextArea that stays fast on megabyte documents."""

from __future__ import annotations

from textual.document._document import Document
from textual.document._wrapped_document import WrappedDocument
from textual.widgets import TextArea


class _CachedTextDocument(Document):
    """``Document.text`` joins every line on each call, and TextArea reads it once per rendered
    line (to decide on its placeholder): about 40 ms per keystroke on a 1 MB document. The
    lines only change in ``replace_range``, so keep the joined text until then."""

    _cached_text: str | None = None

    def replace_range(self, *args, **kwargs):
        self._cached_text = None
        try:
            return super().replace_range(*args, **kwargs)
        finally:
            self._cached_text = None

    @property
    def text(self) -> str:
        if self._cached_text is None:
            self._cached_text = super().text
        return self._cached_text


class _CachedHeightWrappedDocument(WrappedDocument):
    """Textual's ``WrappedDocument.height`` sums over every line on each call, and TextArea asks
    for it once per rendered line: about 250 ms per keystroke on a 1 MB document (Textual 8.2).
    The height only changes when the wrap offsets do (``wrap``/``wrap_range``), so cache it."""

    _cached_height: int | None = None

    def wrap(self, *args, **kwargs):
        self._cached_height = None
        try:
            return super().wrap(*args, **kwargs)
        finally:
            self._cached_height = None

    def wrap_range(self, *args, **kwargs):
        self._cached_height = None
        try:
            return super().wrap_range(*args, **kwargs)
        finally:
            self._cached_height = None

    @property
    def height(self) -> int:
        if self._cached_height is None:
            self._cached_height = sum(len(offsets) + 1 for offsets in self._wrap_offsets)
        return self._cached_height


class Editor(TextArea):
    """A TextArea whose document caches its text and whose wrapped document caches its height."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._use_cached_height()

    def _set_document(self, *args, **kwargs) -> None:
        super()._set_document(*args, **kwargs)
        self._use_cached_height()

    def _use_cached_height(self) -> None:
        if type(self.document) is Document:
            self.document.__class__ = _CachedTextDocument
        if type(self.wrapped_document) is WrappedDocument:
            self.wrapped_document.__class__ = _CachedHeightWrappedDocument
            self.wrapped_document._cached_height = None
