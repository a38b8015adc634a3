"""The sweep's spec, the SLO verdict of a step, and the capacity, knee and saturation read from a
curve: pure functions, checked on figures with a known answer."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.core.bench.capacity import (SLO, CurvePoint, Latency, SweepSpec, capacity_of, judge, knee_of, parse_sweep,
                                     saturation)


def test_sweep_specs_read_back_as_typed():
    assert parse_sweep("auto") == parse_sweep(" AUTO ") == SweepSpec("auto")
    assert parse_sweep("concurrency=1,2,4,8") == SweepSpec("concurrency", (1, 2, 4, 8))
    assert parse_sweep("rate=0.5, 1, 2.5") == SweepSpec("rate", (0.5, 1, 2.5))
    assert str(parse_sweep("rate=0.5,1,2.5")) == "rate=0.5,1,2.5"
    assert parse_sweep(str(SweepSpec("concurrency", (1, 16)))) == SweepSpec("concurrency", (1, 16))


@pytest.mark.parametrize("text, words", [
    ("", "is not a sweep"), ("fast", "is not a sweep"), ("streams=1,2", "is not a sweep"),
    ("concurrency=", "lists no steps"), ("rate=1,,2", "step 2 of rate= is empty"),
    ("concurrency=0,1", "step 1 of concurrency=: must be between 1 and 100,000"),
    ("concurrency=1.5", "step 1 of concurrency=: '1.5' is not a whole number"),
    ("rate=1,inf", "step 2 of rate=: must be a finite number > 0"), ("rate=nan", "must be a finite number"),
    ("rate=-1", "must be a finite number > 0"), ("concurrency=4,2", "the steps must rise: 2 comes after 4"),
    ("rate=1,1", "the steps must rise"), ("concurrency=" + ",".join(map(str, range(1, 66))), "at most 64 steps"),
])
def test_bad_sweep_specs_say_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_sweep(text)


@given(st.text(max_size=80))
def test_any_text_is_a_sweep_or_one_line_error(text):
    try:
        spec = parse_sweep(text)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert spec.kind in ("auto", "concurrency", "rate")
    assert all(math.isfinite(v) and v > 0 for v in spec.loads)
    assert list(spec.loads) == sorted(set(spec.loads))
    assert parse_sweep(str(spec)).kind == spec.kind


@given(st.lists(st.integers(1, 100_000), min_size=1, max_size=64, unique=True))
def test_rising_concurrency_lists_round_trip(values):
    values.sort()
    spec = parse_sweep("concurrency=" + ",".join(map(str, values)))
    assert spec.loads == tuple(values) and parse_sweep(str(spec)) == spec


def _lat(ttft=100.0, tpot=20.0, e2el=1000.0):
    return (Latency("ttft", ttft / 2, ttft), Latency("tpot", tpot / 2, tpot), Latency("e2el", e2el / 2, e2el))


def test_a_step_meets_the_slo_when_every_limit_holds_at_the_percentile():
    slo = SLO((("ttft", 500.0), ("tpot", 50.0)), 99.0)
    assert slo.text() == "p99 TTFT ≤ 500 ms and p99 TPOT ≤ 50 ms"
    ok = judge(_lat(ttft=500.0, tpot=50.0), 100, 0, slo)
    assert ok.passed and ok.worst_ratio == 1.0 and ok.text() == "met the SLO"
    bad = judge(_lat(ttft=1650.0, tpot=60.0), 100, 0, slo)
    assert bad.passed is False and bad.far_off and bad.worst_ratio == pytest.approx(3.3)
    assert bad.reasons == ("p99 TTFT 1650 ms > 500 ms (3.3×)", "p99 TPOT 60 ms > 50 ms (1.2×)")
    assert not judge(_lat(ttft=1400.0), 100, 0, slo).far_off  # 2.8×: broken, not by a wide margin


def test_failed_requests_count_against_the_slo():
    slo = SLO((("ttft", 500.0),), 99.0)
    assert judge(_lat(), 99, 1, slo).passed  # 1 % may miss at p99
    v = judge(_lat(), 96, 4, slo)
    assert v.passed is False and v.far_off and v.reasons == ("4.0% of requests failed (1.0% allowed)",)
    nothing = judge((), 0, 10, slo)
    assert nothing.passed is False and math.isinf(nothing.worst_ratio)
    assert judge(_lat(), 0, 0, SLO(())).passed is None  # no SLO, no verdict


def _pt(step, load, thr, e2el, passed=True, ttft=None):
    return CurvePoint(step, load, thr, ttft if ttft is not None else e2el / 10, e2el, passed)


def test_capacity_is_the_highest_passing_load_below_the_lowest_failing_one():
    pts = [_pt(1, 1, 1, 100), _pt(2, 2, 2, 100), _pt(3, 4, 4, 100, False), _pt(4, 3, 3, 100),
           _pt(5, 8, 4, 300, True)]  # step 5 passed (noise) above a failure: not the capacity
    assert capacity_of(pts).step == 4
    assert capacity_of([_pt(1, 1, 1, 100, False)]) is None
    assert capacity_of([_pt(1, 1, 1, 100), _pt(2, 2, 2, 100)]).step == 2


def test_the_knee_is_where_more_load_stopped_buying_throughput():
    # the simulator's closed loop: r / T(r) up to the batch of 32, flat beyond, TTFT climbing
    curve = [_pt(1, 1, 0.70, 1420), _pt(2, 4, 2.66, 1500), _pt(3, 16, 6.74, 2372), _pt(4, 32, 9.44, 3388),
             _pt(5, 64, 9.44, 6780, ttft=3500)]
    knee = knee_of(curve)
    assert (knee.step, knee.load) == (4, 32)
    assert knee.latency_metric == "ttft" and knee.latency_growth == pytest.approx(3500 / 338.8)
    assert knee.throughput_growth == pytest.approx(0.0)
    assert knee_of(curve[:4]) is None  # throughput still rising at the last step
    flat = [_pt(1, 1, 5, 100), _pt(2, 2, 5.2, 102)]  # flat but latency too: a client limit, not a knee
    assert knee_of(flat) is None


def test_saturation_needs_flat_throughput_more_load_and_climbing_latency():
    before = _pt(1, 32, 9.4, 3400)
    assert "saturated: throughput +1 % (9.40 -> 9.50 req/s) for 2× the load while latency climbed 2.0×" in \
        saturation(before, _pt(2, 64, 9.5, 6800))
    assert saturation(before, _pt(2, 64, 12.0, 6800)) is None  # still rising
    assert saturation(before, _pt(2, 36, 9.5, 6800)) is None  # too little more load to say
    assert saturation(before, _pt(2, 64, 9.5, 3500)) is None  # latency did not climb
