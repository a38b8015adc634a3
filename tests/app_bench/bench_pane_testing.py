"""Helpers for the Bench pane tests (a unique module name: every test folder has a conftest)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

FAST_SIM = dict(ttft_ms=15.0, itl_ms=4.0)


def run_options(*argv: str):
    """`tokdeck ui`'s run flags, as the CLI hands them to make_app."""
    from tui.core.bench.options import add_run_arguments, from_namespace

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return from_namespace(p.parse_args(list(argv)))


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


def fixed_result(n: int = 150, slow: float = 1.0, label: str = "fixed"):
    """A deterministic finished run (the engine's own result code over fixed records)."""
    from tui.core.bench.engine import client_health
    from tui.core.bench.results import BenchResult, RecordStore, RequestRecord, compute_summary

    store = RecordStore()
    end = 0.0
    for i in range(n):
        ok = i % 37 != 5
        start = i * 0.05
        ttft = (0.08 + 0.04 * ((i * 7) % 11) / 10) * slow
        itls = tuple(0.01 * slow * (1 + ((i + k) % 5) / 10) for k in range(15)) if ok else ()
        e2el = ttft + sum(itls)
        end = max(end, start + e2el)
        store.add(RequestRecord(i, ok, "" if ok else "HTTP 503: server overloaded", start, ttft if ok else 0.0,
                                e2el if ok else 0.0, itls, 200, 16 if ok else 0, "usage", "usage", 0.0, 0.0,
                                len(itls) + 1 if ok else 0))
    metrics, percentiles, goodput = ("ttft", "tpot", "itl", "e2el"), (50.0, 90.0, 99.0), {"ttft": 100.0}
    setup = {"date": "20250101-120000", "endpoint_type": "openai-chat", "backend": "openai-chat", "label": label,
             "model_id": "tokdeck-sim", "tokenizer_id": "cl100k_base", "num_prompts": n, "request_rate": 20.0,
             "burstiness": 1.0, "max_concurrency": 8, "base_url": "http://127.0.0.1:8000",
             "endpoint": "/v1/chat/completions", "dataset_name": "random", "seed": 0, "stream": True,
             "dispatched": n, "stopped_by": None}
    return BenchResult(setup=setup, summary=compute_summary(store, end, metrics, percentiles, goodput), goodput=goodput,
                       token_sources=store.source_counts(), client_health=client_health([0.0004] * 200, store, 0.31),
                       error_reasons={"HTTP 503: server overloaded": sum(1 for i in range(n) if i % 37 == 5)},
                       partial=False, cancelled=0, warmup={"requests": 0, "failed": 0}, store=store)


def save_fixed(path: Path, **kwargs) -> Path:
    return write_json(path, fixed_result(**kwargs).to_vllm_json(detailed=True))
