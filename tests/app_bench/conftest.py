"""Fixtures for the Bench pane tests: the app on the bundled registry with a fast simulator."""

from __future__ import annotations

import pytest

from bench_pane_testing import FAST_SIM, run_options


@pytest.fixture
def make_bench(bundled, counting):
    """make_bench(*flags, start=False, sim=..., **kw) -> the app opened on the Bench pane."""
    from tui.app.app import make_app
    from tui.core.bench.sim import SimConfig
    from tui.core.config import Config

    def build(*flags: str, start: bool = False, sim: dict | None = None, **kwargs):
        if kwargs.setdefault("registry", bundled) is bundled:
            kwargs.setdefault("counting", counting)
        kwargs.setdefault("config", Config())
        return make_app("bench", bench_options=run_options(*flags), bench_start=start,
                        sim_config=SimConfig(**(sim or FAST_SIM)), **kwargs)

    return build
