"""The text split into one tokenizer's tokens: alternating colours, optional ids and visible whitespace.

Thousands of tokens make a long Rich Text that a Static would wrap and render whole on every
update; here the pieces are laid out into lines once per width and only the lines on screen
are drawn (the Line API).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ...core.tokenizers.pieces import TokenPieces

_WHITESPACE = str.maketrans({" ": "·", "\t": "→", "\r": "␍", "\n": "⏎\n"})
# other control characters would move the terminal's cursor: show their Unicode pictures
_CONTROL = str.maketrans({**{c: 0x2400 + c for c in range(32) if c not in (9, 10)}, 0x7F: "␡"})
_STYLES = (Style.parse("on #1f3b57"), Style.parse("on #4a2f55"))
_SPECIAL = Style.parse("bold magenta")
_BYTES = Style.parse("italic yellow")
_ID = Style.parse("cyan")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
TAB = 4


def piece_runs(pieces: TokenPieces, *, show_ids: bool, show_whitespace: bool) -> list[tuple[str, Style]]:
    """The pieces as (text, style) runs, newlines included, before any wrapping."""
    runs = []
    for n, piece in enumerate(pieces.pieces):
        text = piece.text
        if piece.kind == "text":
            text = text.translate(_WHITESPACE) if show_whitespace else text.replace("\r", "")
        text = text.translate(_CONTROL)
        style = _STYLES[n % 2]
        if piece.kind == "special":
            style += _SPECIAL
        elif piece.kind == "bytes":
            style += _BYTES
        runs.append((text, style))
        if show_ids:
            runs.append((str(piece.id).translate(_SUBSCRIPT), _ID))  # subscript: never mistaken for text
    return runs


def lay_out(runs: list[tuple[str, Style]], width: int) -> list[list[Segment]]:
    """Runs folded into lines of at most ``width`` cells; a newline ends a line."""
    width = max(width, 1)
    lines: list[list[Segment]] = [[]]
    used = 0
    for text, style in runs:
        for k, part in enumerate(text.split("\n")):
            if k:
                lines.append([])
                used = 0
            while part:
                if "\t" in part:  # expand tabs where they fall (they cannot be drawn as such)
                    head, _, rest = part.partition("\t")
                    part = head + " " * (TAB - (used + cell_len(head)) % TAB) + rest
                size = cell_len(part)
                if used + size <= width:
                    lines[-1].append(Segment(part, style))
                    used += size
                    break
                cut = _fit(part, width - used)
                if cut == 0 and used == 0:
                    cut = 1  # a character wider than the line: give it a line of its own
                if cut:
                    lines[-1].append(Segment(part[:cut], style))
                lines.append([])
                used = 0
                part = part[cut:]
    return lines


def _fit(text: str, cells: int) -> int:
    """How many leading characters of text fit in ``cells``."""
    total = 0
    for i, ch in enumerate(text):
        total += cell_len(ch)
        if total > cells:
            return i
    return len(text)


class TokenLines(ScrollView, can_focus=True):
    """The laid-out runs, drawn line by line."""

    DEFAULT_CSS = "TokenLines { height: 1fr; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.runs: list[tuple[str, Style]] = []
        self._lines: list[list[Segment]] = []
        self._width = 0

    @property
    def text(self) -> str:
        """What is shown, unwrapped (for tests)."""
        return "".join(text for text, _ in self.runs)

    def set_runs(self, runs: list[tuple[str, Style]]) -> None:
        self.runs = runs
        self._width = 0  # lay out again
        self.scroll_to(0, 0, animate=False)
        self._layout()

    def _layout(self) -> None:
        width = self.scrollable_content_region.width
        if width == self._width:
            return
        self._width = width
        self._lines = lay_out(self.runs, width) if self.runs else []
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def on_resize(self) -> None:
        self._layout()

    def render_line(self, y: int) -> Strip:
        self._layout()
        index = y + self.scroll_offset.y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        return Strip(self._lines[index]).crop_extend(0, width, self.rich_style)


class TokenView(Vertical):
    """Shows a TokenPieces; ``caption`` explains what part of the document is shown."""

    DEFAULT_CSS = """
    TokenView { height: 1fr; }
    TokenView > #token-caption { color: $text-muted; height: auto; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pieces: TokenPieces | None = None
        self.show_ids = False
        self.show_whitespace = False

    def compose(self) -> ComposeResult:
        yield Static("", id="token-caption", markup=False)
        yield TokenLines(id="token-text")

    def show(self, pieces: TokenPieces | None, caption: str) -> None:
        self.pieces = pieces
        self.query_one("#token-caption", Static).update(caption)
        self._render_text()

    def set_options(self, *, show_ids: bool, show_whitespace: bool) -> None:
        self.show_ids, self.show_whitespace = show_ids, show_whitespace
        self._render_text()

    def _render_text(self) -> None:
        runs = [] if self.pieces is None else piece_runs(self.pieces, show_ids=self.show_ids,
                                                          show_whitespace=self.show_whitespace)
        self.query_one("#token-text", TokenLines).set_runs(runs)
