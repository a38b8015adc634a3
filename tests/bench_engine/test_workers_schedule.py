"""Dealing a run's schedule to workers (tui.core.bench.schedule): the union of the workers'
schedules is the single-process schedule, shares add up, and a lost worker's requests are
re-dealt or failed, never dropped."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.bench.arrivals import arrival_times
from tui.core.bench.schedule import Dealer, clock_offset, concurrency_shares, deal, prefetch, pulled, shares

rates = st.one_of(st.just(math.inf), st.floats(0.5, 5000))
burstiness = st.one_of(st.just(math.inf), st.floats(0.05, 20))
ramps = st.one_of(st.none(), st.tuples(st.sampled_from(["linear", "exponential"]), st.floats(0.5, 50),
                                       st.floats(50, 500)))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 400), workers=st.integers(1, 12), rate=rates, shape=burstiness, ramp=ramps,
       seed=st.integers(0, 2**32))
def test_the_union_of_the_dealt_schedules_is_the_single_schedule(n, workers, rate, shape, ramp, seed):
    times = arrival_times(n, math.inf if ramp else rate, shape, seed, ramp)
    parts = deal(times, workers)
    assert len(parts) == workers
    assert sorted(item for part in parts for item in part) == list(enumerate(times))
    for part in parts:
        assert [due for _, due in part] == sorted(due for _, due in part)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 300), workers=st.integers(1, 8), rate=rates, shape=burstiness, ramp=ramps,
       limit=st.one_of(st.none(), st.floats(0.01, 5)), seed=st.integers(0, 2**16),
       steps=st.lists(st.floats(0.0, 0.5), max_size=30))
def test_timed_dealing_hands_out_each_request_once_by_its_due_time(n, workers, rate, shape, ramp, limit, seed, steps):
    times = arrival_times(n, math.inf if ramp else rate, shape, seed, ramp)
    dealer = Dealer(times, workers, pull=False, limit=limit)
    handed: list[tuple[int, float]] = []
    horizon = 0.0
    for step in steps + [math.inf]:
        horizon += step
        for w in range(workers):
            got = dealer.due_by(w, horizon)
            assert all(due <= horizon for _, due in got)
            handed.extend(got)
    expected = [(i, t) for i, t in enumerate(times) if limit is None or t < limit]
    assert sorted(handed) == expected
    assert dealer.truncated == (len(expected) < n)
    assert all(dealer.exhausted(w) for w in range(workers)) and dealer.undealt() == 0


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 200), workers=st.integers(1, 6), asks=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9))))
def test_pulled_dealing_gives_each_request_once_to_whoever_asks(n, workers, asks):
    dealer = Dealer([0.0] * n, workers, pull=True)
    given_out = []
    for w, count in asks:
        got = dealer.take(w % workers, count)
        assert len(got) <= count
        given_out.extend(i for i, _ in got)
    while not dealer.exhausted(0):
        given_out.extend(i for i, _ in dealer.take(0, 7))
    assert given_out == list(range(n))  # in order, each once


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 200), workers=st.integers(2, 6), pull=st.booleans(), rate=st.floats(5, 500),
       lost_at=st.floats(0.0, 10.0), horizon=st.floats(0.0, 2.0), done_share=st.floats(0, 1),
       which=st.integers(0, 5), seed=st.integers(0, 100))
def test_a_lost_workers_requests_are_redealt_or_failed_never_dropped(n, workers, pull, rate, lost_at, horizon,
                                                                     done_share, which, seed):
    times = [0.0] * n if pull else arrival_times(n, rate, 1.0, seed)
    dealer = Dealer(times, workers, pull=pull)
    lost = which % workers
    for w in range(workers):
        if pull:
            dealer.take(w, 5)
        else:
            dealer.due_by(w, lost_at + horizon)
    finished = set()
    for w in range(workers):  # some of what they held came back as records
        held = sorted(dealer.held[w])
        for i in held[:int(len(held) * done_share)]:
            assert dealer.finished(w, i)
            finished.add(i)
    before = dict(dealer.held[lost])
    outcome = dealer.lost(lost, lost_at)
    failed = {i for i, _ in outcome.failed}
    redealt = {i for i, _ in outcome.redealt}
    assert not failed & redealt
    assert set(before) <= failed | redealt  # what it held is failed or goes elsewhere
    assert all(due > lost_at for _, due in outcome.redealt)  # only what it cannot have sent yet
    assert not dealer.held[lost]
    if not pull:
        assert dealer.exhausted(lost)
    # everything is now finished, failed, held by a live worker or still to be handed out
    rest: list[int] = []
    for w in range(workers):
        if w != lost:
            rest.extend(dealer.held[w])
            rest.extend(i for i, _ in (dealer.take(w, n) if pull else dealer.due_by(w, math.inf)))
    assert sorted(list(finished) + list(failed) + rest) == list(range(n))


def test_with_no_worker_left_to_take_them_a_lost_workers_requests_fail():
    times = arrival_times(20, 10.0, 1.0, 0)
    dealer = Dealer(times, 2, pull=False)
    dealer.due_by(0, 10.0)
    dealer.ended[1] = True
    outcome = dealer.lost(0, 0.0)
    assert not outcome.redealt and sorted(i for i, _ in outcome.failed) == list(range(0, 20, 2))


@given(total=st.integers(0, 10_000), workers=st.integers(1, 300))
def test_shares_add_up_and_differ_by_at_most_one(total, workers):
    parts = shares(total, workers)
    assert len(parts) == workers and sum(parts) == total and max(parts) - min(parts) <= 1


@given(cap=st.integers(1, 100_000), workers=st.integers(1, 300))
def test_the_concurrency_shares_sum_to_the_cap_with_a_slot_each(cap, workers):
    if workers > cap:
        with pytest.raises(ValueError, match=f"{workers} workers need a concurrency of at least {workers}"):
            concurrency_shares(cap, workers)
        return
    parts = concurrency_shares(cap, workers)
    assert sum(parts) == cap and min(parts) >= 1
    assert concurrency_shares(None, workers) == [None] * workers


def test_closed_loops_are_pulled_and_the_prefetch_stays_small():
    assert pulled(8, math.inf) and not pulled(None, math.inf) and not pulled(8, 10.0)
    assert prefetch(1) == 1 and prefetch(128) == 16 and prefetch(10_000) == 16


@given(skew=st.floats(-1e5, 1e5), out=st.lists(st.floats(1e-5, 0.01), min_size=1, max_size=8),
       back=st.lists(st.floats(1e-5, 0.01), min_size=8, max_size=8), start=st.floats(0, 1e4))
def test_the_clock_offset_is_within_half_the_fastest_round_trip(skew, out, back, start):
    samples, t = [], start
    for a, b in zip(out, back):
        theirs = t + a + skew  # their clock when they answered
        samples.append((t, theirs, t + a + b))
        t += a + b + 0.001
    fastest = min(s[2] - s[0] for s in samples)
    assert abs(clock_offset(samples) - skew) <= fastest / 2 + 1e-6
