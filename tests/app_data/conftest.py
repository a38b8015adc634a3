"""Helpers for the Data pane tests: the app opened on a dataset, waiting until its scan settles."""

from __future__ import annotations

import time

import pytest

from tokdeck_testing import SAMPLE_DATA


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


@pytest.fixture
def make_data(bundled):
    """make_data(path, **kw) -> the app opened on the Data pane with ``path`` (None: no file)."""
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings

    def build(path=None, **kwargs):
        kwargs.setdefault("registry", bundled)
        # the Tokens pane counts with the cheap estimate only: its tokenizer loads would compete for the CPU
        kwargs.setdefault("config", Config(tokens=TokensSettings(enabled=("estimate",), reference="estimate")))
        return make_app("data", data_path=path, **kwargs)

    return build


@pytest.fixture
def sample():
    return lambda name: SAMPLE_DATA / name
