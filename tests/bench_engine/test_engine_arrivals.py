"""The arrival process: gamma gaps as vLLM defines them, seeded and reproducible."""

from __future__ import annotations

import math
import statistics

import pytest

from tui.core.bench.arrivals import arrival_times, gaps, request_rate_at


def test_infinite_rate_sends_everything_at_zero():
    assert arrival_times(50) == [0.0] * 50


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_mean_gap_is_one_over_rate_and_last_arrival_is_n_over_rate(burstiness):
    n, rate = 2000, 20.0
    times = arrival_times(n, rate, burstiness, seed=3)
    g = gaps(times)
    assert statistics.fmean(g) == pytest.approx(1 / rate, rel=1e-9)  # vLLM rescales the sum to n / rate
    assert times[-1] == pytest.approx(n / rate)
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_burstiness_sets_the_spread_of_gaps():
    # gamma(shape k): coefficient of variation 1 / sqrt(k)
    for k in (0.25, 1.0, 9.0):
        g = gaps(arrival_times(20000, 10.0, k, seed=1))
        cv = statistics.pstdev(g) / statistics.fmean(g)
        assert cv == pytest.approx(1 / math.sqrt(k), rel=0.1), k


def test_constant_gaps_for_infinite_burstiness():
    g = gaps(arrival_times(10, 4.0, math.inf))
    assert g == pytest.approx([0.25] * 10)


def test_seeded_schedules_are_reproducible_and_seeds_differ():
    a = arrival_times(100, 5.0, 1.0, seed=42)
    assert a == arrival_times(100, 5.0, 1.0, seed=42)
    assert a != arrival_times(100, 5.0, 1.0, seed=43)


def test_linear_ramp_up_rate_per_request():
    ramp = ("linear", 2.0, 12.0)
    assert request_rate_at(0, 11, math.inf, ramp) == 2.0
    assert request_rate_at(5, 11, math.inf, ramp) == pytest.approx(7.0)
    assert request_rate_at(10, 11, math.inf, ramp) == 12.0
    g = gaps(arrival_times(4000, math.inf, math.inf, ramp=ramp))
    assert g[0] == pytest.approx(1 / 2.0) and g[-1] == pytest.approx(1 / 12.0)
    assert request_rate_at(10, 11, math.inf, ("exponential", 1.0, 100.0)) == pytest.approx(100.0)


def test_bad_values_raise():
    with pytest.raises(ValueError):
        arrival_times(3, 1.0, 0.0)
