"""Helpers for the dashboard tests: a settled Tokens pane, fast (the session's bundled registry)."""

from __future__ import annotations

import time

import pytest


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
    from textual.widgets import DataTable

    table = app.query_one("#counts", DataTable)
    rows = {}
    for r in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(r)]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def make(bundled):
    """make(text=..., **kw) -> the app on the session's bundled registry."""
    from tui.app.app import make_app

    def build(text: str = "", **kwargs):
        kwargs.setdefault("registry", bundled)
        return make_app(text=text, **kwargs)

    return build
