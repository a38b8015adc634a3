"""Helpers for the Bench pane tests: the app on the bundled registry with a fast simulator."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

FAST_SIM = dict(ttft_ms=15.0, itl_ms=4.0)


def run_args(*argv: str) -> argparse.Namespace:
    """`tokdeck ui`'s parsed flags, as the CLI hands them to make_app."""
    from tui.commands.bench import add_run_arguments

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return p.parse_args(list(argv))


async def wait_for(pilot, cond, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; status: {pilot.app.bench.status!r}")
        await pilot.pause(0.05)


async def ready(pilot) -> None:
    """Wait until the Bench pane has the focus (its keys work from then on)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.focused is not None and app.bench in app.focused.ancestors_with_self,
                   timeout=10, what="the Bench pane's focus")


def cell(table, row: int, col: int) -> str:
    return str(table.get_row_at(row)[col])


def vllm_result(ttfts: list[float], itls: list[list[float]], out_lens: list[int], **summary) -> dict:
    """A result file as `vllm bench serve --save-result --save-detailed` writes it (old goodput key)."""
    data = {"date": "20250101-000000", "backend": "vllm", "model_id": "acme/chat-7b", "tokenizer_id": "acme/chat-7b",
            "num_prompts": len(ttfts), "request_rate": "inf", "burstiness": 1.0, "max_concurrency": None,
            "duration": 10.0, "completed": len(ttfts), "total_input_tokens": 100 * len(ttfts),
            "total_output_tokens": sum(out_lens), "request_throughput": len(ttfts) / 10.0,
            "request_goodput:": 0.5, "output_throughput": sum(out_lens) / 10.0,
            "total_token_throughput": (100 * len(ttfts) + sum(out_lens)) / 10.0,
            "input_lens": [100] * len(ttfts), "output_lens": out_lens, "ttfts": ttfts, "itls": itls,
            "generated_texts": [""] * len(ttfts), "errors": [""] * len(ttfts),
            "mean_ttft_ms": 1.0, "median_ttft_ms": 1.0, "std_ttft_ms": 0.0, "p99_ttft_ms": 1.0}
    data.update(summary)
    return data


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


@pytest.fixture
def make_bench(bundled):
    """make_bench(*flags, start=False, sim=..., **kw) -> the app opened on the Bench pane."""
    from tui.app.app import make_app
    from tui.core.bench.sim import SimConfig
    from tui.core.config import Config

    def build(*flags: str, start: bool = False, sim: dict | None = None, **kwargs):
        kwargs.setdefault("registry", bundled)
        kwargs.setdefault("config", Config())
        return make_app("bench", bench_args=run_args(*flags), bench_start=start,
                        sim_config=SimConfig(**(sim or FAST_SIM)), **kwargs)

    return build
