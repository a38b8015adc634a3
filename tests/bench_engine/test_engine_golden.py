"""What a run leaves behind, byte for byte, for fixed records: the saved JSON (vLLM's keys, with and
without --save-detailed), the CSV and the printed summary; and `tokdeck bench --help` / `tokdeck ui
--help`. vLLM-compatible results must not change by accident: rewrite the golden files on purpose
with TOKDECK_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from tui.core.bench.engine import client_health
from tui.core.bench.report import format_summary
from tui.core.bench.results import BenchResult, RecordStore, RequestRecord, compute_summary

GOLDEN = Path(__file__).parent / "golden"


def _check(name: str, got: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("TOKDECK_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8")


def _busy_run() -> BenchResult:
    """A partial ramp-up run with failures, texts, goodput, warm-ups and every tokdeck key filled."""
    store = RecordStore(keep_texts=True)
    for i in range(40):
        ok = i % 9 != 4
        start = i * 0.031
        ttft = 0.05 + 0.013 * (i % 7)
        itls = tuple(0.008 + 0.001 * ((i + k) % 4) for k in range(3 + i % 5)) if ok else ()
        store.add(RequestRecord(
            index=(i * 7) % 40, ok=ok, error="" if ok else f"HTTP 503: busy {i}", start_time=start,
            ttft=ttft if ok else 0.0, e2el=ttft + sum(itls) if ok else 0.0, itls=itls, input_tokens=100 + i,
            output_tokens=len(itls) + 1 if ok else 0, input_source="usage" if i % 3 else "tokenizer:cl100k_base",
            output_source="usage" if ok else "", queue_time=0.002 * (i % 5), schedule_lag=0.0001 * i,
            chunks=len(itls) + 1 if ok else 0, text=f"answer {i}" if ok else ""))
    metrics, percentiles, goodput = ("ttft", "tpot", "itl", "e2el"), (50.0, 90.0, 99.0, 99.9), {"ttft": 110.0,
                                                                                                "tpot": 12.0}
    setup = {"date": "20260101-120000", "endpoint_type": "openai-chat", "backend": "openai-chat", "label": "gold",
             "model_id": "acme/chat-7b", "tokenizer_id": "cl100k_base", "num_prompts": 50, "request_rate": "inf",
             "burstiness": 0.5, "max_concurrency": 8, "ramp_up_strategy": "linear", "ramp_up_start_rps": 1.0,
             "ramp_up_end_rps": 20.0, "base_url": "http://gpu1:8000", "endpoint": "/v1/chat/completions",
             "dataset_name": "random", "seed": 7, "stream": True, "dispatched": 44, "stopped_by": "stop"}
    return BenchResult(
        setup=setup, summary=compute_summary(store, 1.75, metrics, percentiles, goodput),
        goodput=goodput, token_sources=store.source_counts(),
        client_health=client_health([0.0004 * (i % 13) for i in range(300)], store, 0.472),
        error_reasons={"HTTP 503: busy": 5}, partial=True, cancelled=4, warmup={"requests": 3, "failed": 1},
        store=store, usage_ignored={"usage.prompt_tokens is 0 for a non-empty prompt": 2},
        internal_errors=("accounting: 44 request(s) sent but 35 completed",))


def _empty_run() -> BenchResult:
    """Nothing succeeded in no time, without streaming: NaN and infinity become null."""
    store = RecordStore(streamed=False)
    store.add(RequestRecord(0, False, "cannot connect", 0.0, 0.0, 0.0, (), 0, 0, "", "", 0.0, 0.0, 0,
                            streamed=False))
    setup = {"date": "20260101-000000", "endpoint_type": "openai", "backend": "openai", "label": "openai",
             "model_id": "m", "tokenizer_id": "estimate", "num_prompts": 1, "request_rate": 2.5, "burstiness": 1.0,
             "max_concurrency": None, "base_url": "http://127.0.0.1:9", "endpoint": "/v1/completions",
             "dataset_name": "custom", "seed": 0, "stream": False, "dispatched": 1, "stopped_by": None}
    return BenchResult(
        setup=setup, summary=compute_summary(store, 0.0, ("ttft", "tpot"), (99.0,), None),
        goodput=None, token_sources=store.source_counts(),
        client_health=client_health([], store, float("nan")), error_reasons={"cannot connect": 1}, partial=False,
        cancelled=0, warmup={"requests": 0, "failed": 0}, store=store)


RUNS = {"busy": _busy_run, "empty": _empty_run}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_saved_json_csv_and_summary_are_the_golden_ones(name):
    result = RUNS[name]()
    for detailed in (False, True):
        # as --save-result writes it
        got = orjson.dumps(result.to_vllm_json(detailed=detailed), option=orjson.OPT_INDENT_2) + b"\n"
        _check(f"{name}{'-detailed' if detailed else ''}.json", got.decode("utf-8"))
    _check(f"{name}.csv", result.to_csv())
    _check(f"{name}-summary.txt", format_summary(result) + "\n")


@pytest.mark.parametrize("command", ["bench", "ui"])
def test_help_is_the_golden_one(command, monkeypatch, capsys):
    from tui.cli import main

    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    _check(f"{command}-help.txt", capsys.readouterr().out)
