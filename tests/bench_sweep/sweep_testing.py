"""Helpers for the sweep tests (a unique module name: tests/ folders share sys.path)."""

from __future__ import annotations

import asyncio
from typing import Any


def run_sweep(sim: Any, scrape_interval: float = 0.1, **fields: Any):
    """(SweepResult, its events) of a sweep against the simulator ``sim`` (a SimConfig) in its own
    process, with the run options ``fields`` (given, as if typed) and small random prompts."""
    from tui.core.bench.options import RunOptions
    from tui.core.bench.prepare import prepare
    from tui.core.bench.sweep import SweepRun

    fields.setdefault("random_input_len", 16)
    fields.setdefault("random_output_len", 8)
    fields.setdefault("num_prompts", 200)
    fields.setdefault("tokenizer", "cl100k_base")
    fields.setdefault("disable_tqdm", True)
    prep = prepare(RunOptions(**fields, given=frozenset(fields)), sim_config=sim)
    events: list = []
    try:
        result = asyncio.run(SweepRun(prep, scrape_interval=scrape_interval).run(events.append))
    finally:
        prep.sim.stop()
    return result, events
