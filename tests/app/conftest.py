"""Fixtures for the dashboard tests (helpers live in tokens_pane_testing.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def make(bundled, counting):
    """make(text=..., **kw) -> the app on the session's bundled registry and counting process."""
    from tui.app.app import make_app

    def build(text: str = "", **kwargs):
        if kwargs.setdefault("registry", bundled) is bundled:
            kwargs.setdefault("counting", counting)
        return make_app(text=text, **kwargs)

    return build
