"""Fixtures for the dashboard tests (helpers live in tokens_pane_testing.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def make(bundled):
    """make(text=..., **kw) -> the app on the session's bundled registry."""
    from tui.app.app import make_app

    def build(text: str = "", **kwargs):
        kwargs.setdefault("registry", bundled)
        return make_app(text=text, **kwargs)

    return build
