"""Core of the Bench pane's history: result files (tokdeck's and vLLM's), comparison, live buffers."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench_pane_testing import vllm_result, write_json
from tui.core.bench.history import compare, list_result_files, load_result_file, run_from_dict
from tui.core.bench.live import Decimating, LiveRun, Reservoir, bucket_max, histogram, series_curves, thin
from tui.core.bench.metrics import percentile
from tui.core.bench.results import RequestRecord
from tui.core.errors import TokdeckError


def test_vllm_file_with_old_goodput_key_and_no_latencies(tmp_path):
    data = vllm_result([0.1, 0.2, 0.0], [[0.01, 0.03], [0.02], []], [3, 2, 0],
                       errors=["", "", "HTTP 500"], mean_itl_ms=99.0)
    run = load_result_file(write_json(tmp_path / "v.json", data))
    assert run.kind == "vllm" and run.name == "v"
    assert run.value("request_goodput") == 0.5  # "request_goodput:" read as request_goodput
    s = run.series
    assert list(s.ok) == [1, 1, 0] and s.start is None
    assert s.e2el[0] == pytest.approx(0.14) and s.e2el[1] == pytest.approx(0.22)  # TTFT + the gaps
    ttft = run.stats["ttft"]
    assert ttft.mean == pytest.approx(150.0) and ttft.p50 == pytest.approx(150.0)
    assert ttft.p99 == pytest.approx(percentile([0.1, 0.2], 99) * 1000)
    assert run.stats["itl"].mean == pytest.approx(20.0)  # from the arrays, not the file's 99
    curves = series_curves(s, 40)
    assert not curves.x_is_time and curves.ttft[0] == [0.0, 1.0]


def test_summary_only_file_keeps_the_files_numbers(tmp_path):
    data = {"completed": 5, "request_throughput": 2.0, "mean_ttft_ms": 12.5, "median_ttft_ms": 11.0,
            "p90_ttft_ms": 20.0, "p99_ttft_ms": 30.0, "mean_tpot_ms": 4.0}
    run = load_result_file(write_json(tmp_path / "s.json", data))
    assert run.series is None
    t = run.stats["ttft"]
    assert (t.mean, t.p50, t.p90, t.p99) == (12.5, 11.0, 20.0, 30.0)
    assert run.stats["tpot"].mean == 4.0 and run.stats["tpot"].p99 is None and run.stats["e2el"] is None


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(TokdeckError, match="no such file"):
        load_result_file(tmp_path / "none.json")
    with pytest.raises(TokdeckError, match="not JSON"):
        load_result_file(_write(tmp_path / "b.json", "{nope"))
    with pytest.raises(TokdeckError, match="not a benchmark result"):
        load_result_file(write_json(tmp_path / "c.json", {"hello": 1}))


def _write(path, text):
    path.write_text(text)
    return path


def test_list_result_files_newest_first(tmp_path):
    import os

    a = write_json(tmp_path / "a.json", {"completed": 1})
    b = write_json(tmp_path / "b.json", {"completed": 1})
    (tmp_path / "notes.txt").write_text("x")
    os.utime(a, (1000, 1000))
    assert [f.path for f in list_result_files(tmp_path)] == [b, a]
    assert list_result_files(tmp_path / "missing") == []


def test_compare_deltas_against_the_first_run():
    a = run_from_dict({"completed": 10, "request_throughput": 10.0, "mean_ttft_ms": 100.0}, "a", "x")
    b = run_from_dict({"completed": 10, "request_throughput": 12.0, "mean_ttft_ms": 80.0}, "b", "y")
    c = run_from_dict({"completed": 8, "mean_ttft_ms": 0.0}, "c", "z")
    rows = {r.label: r for r in compare([a, b, c])}
    rps = rows["requests/s"]
    assert rps.values == (10.0, 12.0, None)
    assert rps.deltas == (None, 2.0, None) and rps.percents[1] == pytest.approx(20.0)
    ttft = rows["TTFT mean (ms)"]
    assert ttft.deltas[1] == -20.0 and ttft.percents[1] == pytest.approx(-20.0) and ttft.lower_is_better
    assert ttft.deltas[2] == -100.0
    assert "TPOT mean (ms)" not in rows  # unknown for every run: no row
    with pytest.raises(ValueError):
        compare([a])


def _rec(i, ok=True, start=0.0, ttft=0.1, e2el=0.5, itls=(0.01,) * 4, out=5, error=""):
    return RequestRecord(i, ok, error, start, ttft, e2el, itls, 10, out, "usage", "usage", 0.0, 0.0, len(itls) + 1)


def test_live_run_stats_errors_and_bounded_buffers():
    live = LiveRun(100, cap=64, reservoir=50)
    ttfts = [0.05 + 0.001 * i for i in range(500)]
    for i, t in enumerate(ttfts):
        live.add(_rec(i, start=i * 0.01, ttft=t))
    live.add(_rec(500, ok=False, error="HTTP 500: boom"))
    st = live.stats()
    assert st["ttft"].count == 500 and st["ttft"].mean == pytest.approx(sum(ttfts) / 500 * 1000)
    assert len(live.metrics["ttft"].values) == 50  # sampled percentiles, exact mean
    assert min(ttfts) * 1000 <= st["ttft"].p50 <= max(ttfts) * 1000
    assert st["itl"].count == 2000 and st["itl"].p99 == pytest.approx(10.0, abs=1e-6)
    assert len(live.ttft_points) < 64  # bounded, whole run covered
    assert live.ttft_points.xs[0] == pytest.approx(0.05) and live.ttft_points.xs[-1] > 4.0
    assert live.errors == {"HTTP 500: boom": 1} and list(live.latest_errors) == [(500, "HTTP 500: boom")]
    c = live.curves(20)
    assert len(c.ttft[0]) == 20


def test_downsampling_helpers():
    xs = list(range(1000))
    ys = [math.sin(x) for x in xs]
    tx, ty = thin(xs, ys, 50)
    assert len(tx) == 50 and tx[0] == 0 and tx[-1] == 999
    bx, by = bucket_max(xs, [0] * 500 + [7] + [0] * 499, 10)
    assert len(bx) == 10 and max(by) == 7  # a spike survives
    centres, counts = histogram([[0, 1, 2], [2, 2]], bins=4)
    assert len(centres) == 4 and sum(counts[0]) == 3 and counts[1][-1] == 2
    d = Decimating(8)
    for i in range(100):
        d.add(i, i)
    assert len(d) < 8 and d.xs[0] == 0
    r = Reservoir(10)
    r.extend([1.0] * 100)
    assert r.stats().mean == pytest.approx(1000.0) and len(r.values) == 10


def test_series_curves_of_a_session_like_run():
    data = {"completed": 2, "ttfts": [0.1, 0.2], "latencies": [1.1, 1.2], "output_lens": [10, 10],
            "start_times": [0.0, 0.5], "errors": ["", ""]}
    run = run_from_dict(data, "r", "session")
    c = series_curves(run.series, 50)
    assert c.x_is_time and c.ttft[1] == [100.0, 200.0]
    assert max(c.in_flight[1]) == 2.0
    xs, ys = c.tokens_per_s
    # 20 output tokens spread over the run: the area under the curve
    step = xs[1] - xs[0]
    assert sum(y * step for y in ys) == pytest.approx(20.0, rel=0.2)


def _snap(lag_ms, ttft_p50=100.0, itl_p50=10.0):
    from tui.core.bench.results import RunSnapshot

    return RunSnapshot(elapsed=1.0, planned=10, dispatched=5, completed=1, failed=0, in_flight=4,
                       total_input_tokens=1, total_output_tokens=1, request_throughput=1.0, output_throughput=1.0,
                       chunks_per_s=10.0, recent_ttft_ms=(ttft_p50, ttft_p50), recent_tpot_ms=None,
                       recent_itl_ms=(itl_p50, itl_p50), loop_lag_ms=lag_ms)


def test_live_lag_warning_needs_more_than_one_spike():
    live = LiveRun(10)
    assert live.lag_warning() is None
    for lag in (0.1, 0.2, 9.0, 0.1):  # limit: max(1, min(5 % of 100, 25 % of 10)) = 2.5 ms
        live.add(_snap(lag))
    assert live.lag_warning() is None  # one late interval is not a bottleneck
    live.add(_snap(4.0))
    warning = live.lag_warning()
    assert warning is not None and "4.0 ms late (limit 2.5 ms)" in warning


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), cap=st.integers(1, 50), cuts=st.lists(st.integers(1, 400), max_size=20))
def test_reservoir_sample_does_not_depend_on_how_values_arrive(n, cap, cuts):
    values = [float(i) for i in range(n)]
    whole, chunked = Reservoir(cap, seed=3), Reservoir(cap, seed=3)
    whole.extend(values)
    i = 0
    for c in cuts + [n]:
        chunked.extend(values[i:i + c])
        i += c
    assert list(chunked.values) == list(whole.values)
    assert whole.count == n and len(whole.values) == min(n, cap) and len(set(whole.values)) == len(whole.values)
    assert whole.total == pytest.approx(sum(values))


def test_reservoir_sample_is_uniform_and_cheap():
    """Each tenth of a stream is as likely in the sample (a per-value draw would cost the UI thread)."""
    per_tenth = [0] * 10
    for seed in range(300):
        r = Reservoir(20, seed=seed)
        for start in range(0, 2000, 256):
            r.extend([float(v) for v in range(start, min(start + 256, 2000))])
        for v in r.values:
            per_tenth[int(v) // 200] += 1
    assert all(abs(c - 600) < 120 for c in per_tenth), per_tenth  # expected 600 each, sd ~23

    class CountingRandom(random.Random):
        draws = 0

        def random(self):
            CountingRandom.draws += 1
            return super().random()

        def getrandbits(self, k):
            CountingRandom.draws += 1
            return super().getrandbits(k)

    r = Reservoir(1000)
    r._rng = CountingRandom(0)
    r.extend([1.0] * 200_000)
    assert CountingRandom.draws < 40_000  # ~3 per replacement, k ln(n/k) = 5,300 of them; not one per value
