"""Fixtures for the Data pane tests: the app opened on a dataset (waiting helpers: data_pane_testing)."""

from __future__ import annotations

import pytest

from tokdeck_testing import SAMPLE_DATA


@pytest.fixture
def make_data(bundled, counting):
    """make_data(path, **kw) -> the app opened on the Data pane with ``path`` (None: no file)."""
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings

    def build(path=None, **kwargs):
        if kwargs.setdefault("registry", bundled) is bundled:
            kwargs.setdefault("counting", counting)
        # the Tokens pane counts with the cheap estimate only: its tokenizer loads would compete for the CPU
        kwargs.setdefault("config", Config(tokens=TokensSettings(enabled=("estimate",), reference="estimate")))
        return make_app("data", data_path=path, **kwargs)

    return build


@pytest.fixture
def sample():
    return lambda name: SAMPLE_DATA / name
