"""vLLM's formulas on hand-built records; expected values computed independently (statistics)."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from tui.core.bench.engine import client_health
from tui.core.bench.metrics import parse_goodput, parse_metric_names, parse_percentiles
from tui.core.bench.results import BenchResult, RecordStore, RequestRecord, compute_summary


def rec(i, start, ttft, itls, out_tok, in_tok=10, ok=True, error=""):
    e2el = ttft + sum(itls)
    return RequestRecord(index=i, ok=ok, error=error, start_time=start, ttft=ttft if ok else 0.0,
                         e2el=e2el if ok else 0.0, itls=tuple(itls) if ok else (), input_tokens=in_tok,
                         output_tokens=out_tok if ok else 0, input_source="usage",
                         output_source="usage" if ok else "", queue_time=0.01 * i, schedule_lag=0.001 * i,
                         chunks=len(itls) + 1 if ok else 0, text=None)


RECORDS = [
    rec(0, 0.00, 0.100, [0.010, 0.012, 0.011], out_tok=4),
    rec(1, 0.05, 0.150, [0.020, 0.030], out_tok=6),  # 6 tokens in 3 chunks
    rec(2, 0.10, 0.090, [], out_tok=1),  # one token: no TPOT, TPOT 0 for goodput
    rec(3, 0.40, 0.300, [0.050] * 5, out_tok=6),
    rec(4, 0.20, 0.0, [], out_tok=0, ok=False, error="HTTP 500: boom"),
    rec(5, 1.30, 0.120, [0.015, 0.016, 0.014, 0.020], out_tok=5, in_tok=7),
]
OK = [r for r in RECORDS if r.ok]
DURATION = 2.0


def pct(values, p):
    """numpy.percentile's linear interpolation via statistics.quantiles (inclusive method)."""
    if p == 50:
        return statistics.median(values)
    n = 1000 if p != int(p) else 100
    return statistics.quantiles(values, n=n, method="inclusive")[round(p * n / 100) - 1]


def store_of(records, keep_texts=False):
    st = RecordStore(keep_texts=keep_texts)
    for r in reversed(records):  # completion order differs from dispatch order
        st.add(r)
    return st


def test_counts_throughputs_and_token_totals():
    s = compute_summary(store_of(RECORDS), DURATION)
    total_in = sum(r.input_tokens for r in OK)
    total_out = sum(r.output_tokens for r in OK)
    assert (s.completed, s.failed) == (5, 1)
    assert (s.total_input_tokens, s.total_output_tokens) == (total_in, total_out)
    assert s.request_throughput == pytest.approx(5 / DURATION)
    assert s.output_throughput == pytest.approx(total_out / DURATION)
    assert s.total_token_throughput == pytest.approx((total_in + total_out) / DURATION)
    assert s.request_goodput is None


def test_latency_statistics_match_vllm_definitions():
    pm = ("ttft", "tpot", "itl", "e2el")
    s = compute_summary(store_of(RECORDS), DURATION, pm, (50.0, 90.0, 99.0, 99.9))
    ttfts = [r.ttft for r in OK]
    e2els = [r.ttft + sum(r.itls) for r in OK]
    tpots = [(e - r.ttft) / (r.output_tokens - 1) for r, e in zip(OK, e2els) if r.output_tokens > 1]
    itls = [g for r in OK for g in r.itls]
    assert len(tpots) == 4  # the one-token request is left out
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        m = s.metric(name)
        assert m.mean == pytest.approx(statistics.fmean(values) * 1000)
        assert m.median == pytest.approx(statistics.median(values) * 1000)
        assert m.std == pytest.approx(statistics.pstdev(values) * 1000)
        for p in (90.0, 99.0, 99.9, 50.0):
            assert m.percentile(p) == pytest.approx(pct(values, p) * 1000), (name, p)


def test_goodput_uses_every_given_slo_and_tpot_zero_for_single_tokens():
    slo = parse_goodput(["ttft:140", "tpot:40"])
    s = compute_summary(store_of(RECORDS), DURATION, goodput=slo)
    good = 0
    for r in OK:
        e2el = r.ttft + sum(r.itls)
        tpot = (e2el - r.ttft) / (r.output_tokens - 1) if r.output_tokens > 1 else 0.0
        if r.ttft * 1000 <= 140 and tpot * 1000 <= 40:
            good += 1
    assert good == 3  # records 0, 2 (one token: TPOT 0) and 5
    assert s.request_goodput == pytest.approx(good / DURATION)
    s2 = compute_summary(store_of(RECORDS), DURATION, goodput=parse_goodput(["e2el:200"]))
    assert s2.request_goodput == pytest.approx(
        sum(1 for r in OK if (r.ttft + sum(r.itls)) * 1000 <= 200) / DURATION)


def test_peak_concurrency_and_peak_output_chunks_per_second():
    s = compute_summary(store_of(RECORDS), DURATION)
    spans = [(r.start_time, r.start_time + r.ttft + sum(r.itls)) for r in OK]
    peak = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert s.max_concurrent_requests == peak
    t0 = min(a for a, _ in spans)
    buckets = {}
    for r in OK:
        t = r.start_time + r.ttft
        times = [t]
        for g in r.itls:
            t += g
            times.append(t)
        for t in times:
            buckets[int(t - t0)] = buckets.get(int(t - t0), 0) + 1
    assert s.max_output_tokens_per_s == max(buckets.values())


def test_no_successful_request_gives_zeros_not_errors():
    s = compute_summary(store_of([RECORDS[4]]), 1.0, ("ttft", "e2el"), (99.0,))
    assert s.completed == 0 and s.failed == 1
    assert s.metric("ttft").mean == 0.0 and s.metric("e2el").percentile(99.0) == 0.0 and s.request_throughput == 0.0


def test_option_parsers():
    assert parse_percentiles("50, 99,99.9") == (50.0, 99.0, 99.9)
    assert parse_metric_names("ttft,e2el") == ("ttft", "e2el")
    for bad in ("101", "x", ""):
        with pytest.raises(ValueError):
            parse_percentiles(bad)
    with pytest.raises(ValueError):
        parse_metric_names("ttft,latency")
    for bad in (["ttft"], ["foo:1"], ["ttft:-1"], ["ttft:abc"]):
        with pytest.raises(ValueError):
            parse_goodput(bad)
    assert parse_goodput(["ttft:500 tpot:50", "e2el:2000"]) == {"ttft": 500.0, "tpot": 50.0, "e2el": 2000.0}


def make_result(keep_texts=False, records=RECORDS, pm=("ttft", "tpot", "itl"), ps=(99.0, 99.9)):
    st = store_of(records, keep_texts)
    return BenchResult(
        setup={"date": "20260101-000000", "backend": "openai-chat", "model_id": "m", "tokenizer_id": "t",
               "num_prompts": len(records), "request_rate": "inf", "burstiness": 1.0, "max_concurrency": None},
        summary=compute_summary(st, DURATION, pm, ps), goodput=None, token_sources=st.source_counts(),
        client_health=client_health([], st, 0.0), error_reasons={"HTTP 500: boom": 1}, partial=False,
        cancelled=0, warmup={}, store=st)


VLLM_KEYS = ["date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
             "max_concurrency", "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
             "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
             "max_output_tokens_per_s", "max_concurrent_requests"]


def test_saved_json_has_vllms_keys_and_percentile_names():
    d = json.loads(json.dumps(make_result().to_vllm_json()))
    for key in VLLM_KEYS:
        assert key in d, key
    for m in ("ttft", "tpot", "itl"):
        for k in (f"mean_{m}_ms", f"median_{m}_ms", f"std_{m}_ms", f"p99_{m}_ms", f"p99.9_{m}_ms"):
            assert k in d, k
    assert "mean_e2el_ms" not in d and "ttfts" not in d  # not selected / not detailed
    assert d["token_count_sources"] == {"input": {"usage": 5}, "output": {"usage": 5}}


def test_detailed_arrays_in_dispatch_order_with_one_error_per_request():
    d = make_result().to_vllm_json(detailed=True)
    for key in ("input_lens", "output_lens", "ttfts", "itls", "start_times", "errors"):
        assert len(d[key]) == len(RECORDS), key
    assert d["start_times"] == [r.start_time for r in RECORDS]
    assert d["errors"] == [r.error for r in RECORDS]
    assert d["itls"][3] == pytest.approx([0.05] * 5)
    assert d["output_lens"] == [r.output_tokens for r in RECORDS]
    assert "generated_texts" not in d
    assert "generated_texts" in make_result(keep_texts=True).to_vllm_json(detailed=True)


def test_csv_one_row_per_request():
    rows = list(csv.DictReader(io.StringIO(make_result().to_csv())))
    assert [int(r["index"]) for r in rows] == list(range(len(RECORDS)))
    assert rows[4]["ok"] == "0" and rows[4]["error"] == "HTTP 500: boom" and rows[4]["ttft_ms"] == ""
    assert float(rows[1]["ttft_ms"]) == pytest.approx(150.0)
    assert float(rows[1]["tpot_ms"]) == pytest.approx((0.05 / 5) * 1000)
    assert rows[2]["tpot_ms"] == ""  # one output token
    assert float(rows[3]["itl_max_ms"]) == pytest.approx(50.0)


def test_100k_requests_stay_compact():
    from array import array

    st = RecordStore()
    itls = tuple(0.01 + k * 1e-4 for k in range(20))
    for i in range(100_000):
        st.add(rec(i, i * 0.001, 0.1, itls, out_tok=21))
    arrays = [v for v in vars(st).values() if isinstance(v, array)]
    used = sum(a.buffer_info()[1] * a.itemsize for a in arrays)
    assert used <= 100_000 * 100 + 4 * 2_000_000  # ~85 bytes a request + 4 per ITL
    assert st.errors == {} and st.sources == ["usage"]  # labels stored once, indexed per request
    s = compute_summary(st, 100.0, ("itl",), (50.0,))
    assert s.completed == 100_000
    assert s.metric("itl").mean == pytest.approx(statistics.fmean(itls) * 1000, rel=1e-6)
