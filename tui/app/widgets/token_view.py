"""The text split into one tokenizer's tokens: alternating colours, optional ids and visible whitespace."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.app import ComposeResult
from textual.widgets import Static

from ...core.tokenizers.pieces import TokenPieces

_WHITESPACE = str.maketrans({" ": "·", "\t": "→", "\r": "␍", "\n": "⏎\n"})
_STYLES = ("on #1f3b57", "on #4a2f55")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def render_pieces(pieces: TokenPieces, *, show_ids: bool, show_whitespace: bool) -> Text:
    out = Text(no_wrap=False, overflow="fold")
    for n, piece in enumerate(pieces.pieces):
        text = piece.text.translate(_WHITESPACE) if show_whitespace and piece.kind == "text" else piece.text
        style = _STYLES[n % 2]
        if piece.kind == "special":
            style += " bold magenta"
        elif piece.kind == "bytes":
            style += " italic yellow"
        out.append(text, style=style)
        if show_ids:
            out.append(str(piece.id).translate(_SUBSCRIPT), style="cyan")  # subscript: never mistaken for text
    return out


class TokenView(VerticalScroll, can_focus=True):
    """Shows a TokenPieces; ``caption`` explains what part of the document is shown."""

    DEFAULT_CSS = """
    TokenView { height: 1fr; }
    TokenView > #token-caption { color: $text-muted; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pieces: TokenPieces | None = None
        self.show_ids = False
        self.show_whitespace = False

    def compose(self) -> ComposeResult:
        yield Static("", id="token-caption", markup=False)
        yield Static("", id="token-text", markup=False)

    def show(self, pieces: TokenPieces | None, caption: str) -> None:
        self.pieces = pieces
        self.query_one("#token-caption", Static).update(caption)
        self._render_text()

    def set_options(self, *, show_ids: bool, show_whitespace: bool) -> None:
        self.show_ids, self.show_whitespace = show_ids, show_whitespace
        self._render_text()

    def _render_text(self) -> None:
        body = self.query_one("#token-text", Static)
        if self.pieces is None:
            body.update("")
        else:
            body.update(render_pieces(self.pieces, show_ids=self.show_ids, show_whitespace=self.show_whitespace))
