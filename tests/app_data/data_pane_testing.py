"""Helpers for the Data pane tests (a unique module name: `from conftest import` is ambiguous across folders)."""

from __future__ import annotations

import time


async def settle(pilot, timeout: float = 60.0) -> None:
    """Wait until the pane's scan, token pass, index and search are done and the screen caught up."""
    pane = pilot.app.query_one("DataPane")
    deadline = time.monotonic() + timeout
    while not pane.settled():
        if time.monotonic() > deadline:
            raise AssertionError(f"the Data pane did not settle: {pane.wait_hint()}")
        await pilot.pause(0.02)
    await pilot.pause(0.1)  # the detail panel's timer and the last repaint


async def wait_for(pilot, cond, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
