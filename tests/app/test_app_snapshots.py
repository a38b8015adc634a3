"""Snapshots of the Tokens pane at fixed sizes (regenerate with --snapshot-update, then look at them)."""

from __future__ import annotations

from textual.widgets import TextArea

from tokens_pane_testing import settle, token_view_shown
from tui.app.widgets.counts_table import CountsTable
from tui.core.config import Config, TokensSettings
from tui.core.tokenizers import bundled_ids

TEXT = ("# Release notes\n\nTokens differ by tokenizer: 東京 is two characters, 😀 is one.\n"
        "\tIndented line with <|endoftext|> inside.\nLast line.\n")


def _app(bundled, counting, **tokens):
    from tui.app.app import make_app

    return make_app(text=TEXT, registry=bundled, config=Config(tokens=TokensSettings(**tokens)), counting=counting)


async def _settled(pilot) -> None:
    pilot.app.query_one("#editor", TextArea).cursor_blink = False
    await settle(pilot)


def test_tokens_pane_snapshot(snap_compare, bundled, counting):
    assert snap_compare(_app(bundled, counting), terminal_size=(100, 30), run_before=_settled)


def test_tokens_pane_small_terminal_snapshot(snap_compare, bundled, counting):
    assert snap_compare(_app(bundled, counting), terminal_size=(80, 24), run_before=_settled)


def test_token_view_snapshot(snap_compare, bundled, counting):
    async def token_view(pilot):
        await _settled(pilot)
        pilot.app.query_one("#counts", CountsTable).move_cursor(row=bundled_ids().index("qwen3"))
        await pilot.press("ctrl+t")
        pane = pilot.app.tokens
        pane.show_whitespace = pane.show_ids = True  # as F3/F2 do, without their transient notice
        pane._request_pieces(now=True)
        await token_view_shown(pilot, "qwen3")

    assert snap_compare(_app(bundled, counting, specials="parse"), terminal_size=(100, 30), run_before=token_view)
