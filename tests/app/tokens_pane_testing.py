"""Helpers for the dashboard tests: a settled Tokens pane, its table's rows.

A module of its own, not conftest.py: `from conftest import ...` picks whichever conftest
module was imported first, and tests/app_data and tests/app_bench have theirs too.
"""

from __future__ import annotations

import time


async def settle(pilot, timeout: float = 60.0) -> None:
    """Wait until every row has counted the current text, and the screen has caught up."""
    pane = pilot.app.tokens
    deadline = time.monotonic() + timeout
    while not pane.settled():
        if time.monotonic() > deadline:
            raise AssertionError(f"counts did not settle: {pane.counts.keys()} {pane.errors}")
        await pilot.pause(0.02)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table_rows(app) -> dict[str, list[str]]:
    """The Tokens table as shown: tokenizer id -> the other cells."""
    from tui.app.widgets.counts_table import CountsTable

    table = app.query_one("#counts", CountsTable)
    rows = {}
    for r in range(table.row_count):
        cells = table.get_row_at(r)
        rows[cells[0]] = cells[1:]
    return rows


async def token_view_shown(pilot, tokenizer_id: str, timeout: float = 30.0) -> None:
    """Wait until the token view shows ``tokenizer_id``'s tokens (they come from the counting process)."""
    from tui.app.widgets.token_view import TokenView

    view = pilot.app.query_one("#token-view", TokenView)
    deadline = time.monotonic() + timeout
    while not pilot.app.tokens.view_settled() or view.pieces is None or view.pieces.tokenizer_id != tokenizer_id:
        if time.monotonic() > deadline:
            raise AssertionError(f"the token view did not show {tokenizer_id}")
        await pilot.pause(0.02)
    await pilot.pause()
