"""What the dashboard draws about a run, kept small: bounded buffers, sampled statistics, chart data.

A UI feeds ``LiveRun`` the records and snapshots of a ``BenchmarkThread`` a few times a second
and asks it for ``curves(width)`` and ``stats()`` only when ``version`` changed. Memory stays
bounded whatever the run's length: every chart series is a ``Decimating`` buffer (when full, every
other point goes, so the whole run stays covered at a coarser step), and the percentiles come from
uniform reservoir samples (means are exact). ``series_curves`` makes the same curves for a
finished run from its per-request series (output tokens spread evenly between first token and
end), so live, opened and compared runs draw alike.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter, deque
from dataclasses import dataclass
from typing import Sequence

from .engine import lag_limit_ms
from .history import STAT_PERCENTILES, MetricStats, RunSeries
from .metrics import percentile
from .results import RequestRecord, RunSnapshot, error_reason

POINTS = 2048  # points kept per chart series
RESERVOIR = 20_000  # samples kept per metric for live percentiles
LATEST_ERRORS = 5
HIST_BINS = 24


class Decimating:
    """(x, y) points; at ``cap`` every other point is dropped and the keep-step doubles."""

    def __init__(self, cap: int = POINTS) -> None:
        self.cap = cap
        self.xs = array("d")
        self.ys = array("d")
        self._step = 1
        self._seen = 0

    def add(self, x: float, y: float) -> None:
        self._seen += 1
        if self._seen % self._step:
            return
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) >= self.cap:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self._step *= 2

    def __len__(self) -> int:
        return len(self.xs)


class Reservoir:
    """A uniform sample of at most ``cap`` values with an exact running mean.

    Algorithm L (Li, 1994): once full, it draws how many values to skip before the next
    replacement, so a value costs no random draw (runs feed it ~40,000 ITLs a second on the UI
    thread: one ``randrange`` per value took most of a drain tick).
    """

    def __init__(self, cap: int = RESERVOIR, seed: int = 0) -> None:
        self.cap = cap
        self.values = array("d")
        self.count = 0
        self.total = 0.0
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = 0  # the count at which the next value replaces a sampled one

    def _skip(self) -> None:
        rng = self._rng
        self._w *= math.exp(math.log(1.0 - rng.random()) / self.cap)
        # w is 1 before the first draw (no skip) and may underflow to 0 (skip past any run)
        gap = 0.0 if self._w >= 1.0 else math.inf if self._w <= 0.0 else \
            math.log(1.0 - rng.random()) / math.log1p(-self._w)
        self._next += int(min(gap, 1e18)) + 1

    def extend(self, values: Sequence[float]) -> None:
        start, n = self.count, len(values)
        self.count += n
        self.total += sum(values)
        free = self.cap - len(self.values)
        if free > 0:
            self.values.extend(values[:free])
            if len(self.values) < self.cap:
                return
            self._next = self.cap
            self._skip()
        while self._next <= self.count:  # the value number self._next (1-based) replaces one
            self.values[self._rng.randrange(self.cap)] = values[self._next - start - 1]
            self._skip()

    def stats(self) -> MetricStats | None:
        if not self.count:
            return None
        s = sorted(self.values)
        p50, p90, p99 = (percentile(s, p) * 1000.0 for p in STAT_PERCENTILES)
        return MetricStats(self.total / self.count * 1000.0, p50, p90, p99, self.count)


@dataclass(frozen=True)
class Curves:
    """Chart data of one run, downsampled. x in seconds from the start (or request # when not known)."""

    ttft: tuple[Sequence[float], Sequence[float]]  # (x, TTFT ms), scatter
    tokens_per_s: tuple[Sequence[float], Sequence[float]]
    in_flight: tuple[Sequence[float], Sequence[float]]
    latencies_ms: Sequence[float]  # E2EL sample for the histogram
    x_is_time: bool = True


def thin(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list[float], list[float]]:
    """At most ``n`` evenly spaced points (first and last kept): scatter data for ``n`` columns."""
    m = len(xs)
    if m <= n or n < 2:
        return list(xs), list(ys)
    idx = [round(i * (m - 1) / (n - 1)) for i in range(n)]
    return [xs[i] for i in idx], [ys[i] for i in idx]


def bucket_max(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[list[float], list[float]]:
    """At most ``n`` points: consecutive points merged, keeping each bucket's peak (lines keep spikes)."""
    m = len(xs)
    if m <= n or n < 1:
        return list(xs), list(ys)
    ox, oy = [], []
    for b in range(n):
        lo, hi = b * m // n, (b + 1) * m // n
        if hi > lo:
            ox.append(xs[hi - 1])
            oy.append(max(ys[lo:hi]))
    return ox, oy


def histogram(samples: Sequence[Sequence[float]], bins: int = HIST_BINS
              ) -> tuple[list[float], list[list[int]]]:
    """Shared bins over every sample: (bin centres, counts per sample)."""
    values = [v for s in samples for v in s]
    if not values:
        return [], [[] for _ in samples]
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    centres = [lo + (i + 0.5) * width for i in range(bins)]
    counts = []
    for s in samples:
        c = [0] * bins
        for v in s:
            c[min(int((v - lo) / width), bins - 1)] += 1
        counts.append(c)
    return centres, counts


class LiveRun:
    """Accumulates a running benchmark's records and snapshots for drawing."""

    def __init__(self, planned: int, cap: int = POINTS, reservoir: int = RESERVOIR) -> None:
        self.planned = planned
        self.version = 0
        self.ttft_points = Decimating(cap)
        self.latencies = Decimating(cap)
        self.tokens_per_s = Decimating(cap)
        self.in_flight = Decimating(cap)
        self.metrics = {m: Reservoir(reservoir, seed=i) for i, m in enumerate(("ttft", "tpot", "itl", "e2el"))}
        self.errors: Counter[str] = Counter()
        self.latest_errors: deque[tuple[int, str]] = deque(maxlen=LATEST_ERRORS)
        self.snapshot: RunSnapshot | None = None
        self.worst_lag_ms = 0.0  # the second-worst of the last 8 snapshots (~p99 of 200 ticks of 10 ms)
        self._lags: deque[float] = deque(maxlen=8)
        self.records = 0

    def add(self, item: RequestRecord | RunSnapshot) -> None:
        self.version += 1
        if isinstance(item, RunSnapshot):
            self.snapshot = item
            self.tokens_per_s.add(item.elapsed, item.chunks_per_s)
            self.in_flight.add(item.elapsed, float(item.in_flight))
            self._lags.append(item.loop_lag_ms)
            self.worst_lag_ms = sorted(self._lags)[-2] if len(self._lags) > 1 else self._lags[0]
            return
        self.records += 1
        if not item.ok:
            self.errors[error_reason(item.error)] += 1
            self.latest_errors.append((item.index, item.error))
            return
        self.ttft_points.add(item.start_time + item.ttft, item.ttft * 1000.0)
        self.latencies.add(item.start_time, item.e2el * 1000.0)
        self.metrics["ttft"].extend((item.ttft,))
        self.metrics["e2el"].extend((item.e2el,))
        tpot = item.tpot
        if tpot is not None:
            self.metrics["tpot"].extend((tpot,))
        if item.itls:
            self.metrics["itl"].extend(item.itls)

    def stats(self) -> dict[str, MetricStats | None]:
        return {m: r.stats() for m, r in self.metrics.items()}

    def curves(self, width: int) -> Curves:
        return Curves(ttft=thin(self.ttft_points.xs, self.ttft_points.ys, width),
                      tokens_per_s=bucket_max(self.tokens_per_s.xs, self.tokens_per_s.ys, width),
                      in_flight=bucket_max(self.in_flight.xs, self.in_flight.ys, width),
                      latencies_ms=list(self.latencies.ys))

    def lag_warning(self) -> str | None:
        """A warning when the engine's event loop runs late enough to distort the timings."""
        snap = self.snapshot
        if snap is None:
            return None
        ttft = snap.recent_ttft_ms[0] if snap.recent_ttft_ms else 0.0
        itl = snap.recent_itl_ms[0] if snap.recent_itl_ms else 0.0
        limit = lag_limit_ms(ttft, itl)
        if self.worst_lag_ms > limit:
            return (f"client is the bottleneck: its event loop ran {self.worst_lag_ms:.1f} ms late "
                    f"(limit {limit:.1f} ms); TTFT/ITL are inflated")
        return None


def series_curves(series: RunSeries, width: int, buckets: int = 240) -> Curves:
    """Curves of a finished run from its per-request series (output spread from first token to end)."""
    n = len(series)
    ok = [i for i in range(n) if series.ok[i]]
    if series.start is None:  # vLLM files: no start times; x is the request number
        xs = [float(i) for i in ok]
        ttft = thin(xs, [series.ttft[i] * 1000.0 for i in ok], width)
        lat = [series.e2el[i] * 1000.0 for i in ok]
        return Curves(ttft=ttft, tokens_per_s=([], []), in_flight=([], []), latencies_ms=thin(lat, lat, POINTS)[0],
                      x_is_time=False)
    start = series.start
    order = sorted(ok, key=lambda i: start[i] + series.ttft[i])
    ttft = thin([start[i] + series.ttft[i] for i in order], [series.ttft[i] * 1000.0 for i in order], width)
    ends = [start[i] + (series.e2el[i] if series.ok[i] else 0.0) for i in range(n)]
    t_end = max(ends, default=0.0)
    if t_end <= 0:
        return Curves(ttft=ttft, tokens_per_s=([], []), in_flight=([], []), latencies_ms=[])
    nb = max(min(buckets, int(math.ceil(t_end / 0.25))), 1)  # buckets of >= 0.25 s
    step = t_end / nb
    tok = [0.0] * nb
    for i in ok:  # output tokens spread evenly from the first token to the end
        a, b = start[i] + series.ttft[i], start[i] + series.e2el[i]
        k = series.output_tokens[i]
        if k <= 0:
            continue
        if b <= a:
            tok[min(int(a / step), nb - 1)] += k
            continue
        rate = k / (b - a)
        j0, j1 = int(a / step), min(int(b / step), nb - 1)
        for j in range(j0, j1 + 1):
            lo, hi = max(a, j * step), min(b, (j + 1) * step)
            if hi > lo:
                tok[j] += rate * (hi - lo)
    flight = [0] * (nb + 1)
    for i in range(n):  # requests in flight: +1 at start, -1 at end (difference array)
        flight[min(int(start[i] / step), nb)] += 1
        flight[min(int(ends[i] / step), nb)] -= 1
    level, inflight = 0, []
    for j in range(nb):
        level += flight[j]
        inflight.append(float(level))
    xs = [(j + 1) * step for j in range(nb)]
    lat = [series.e2el[i] * 1000.0 for i in ok]
    return Curves(ttft=ttft, tokens_per_s=bucket_max(xs, [t / step for t in tok], width),
                  in_flight=bucket_max(xs, inflight, width), latencies_ms=thin(lat, lat, POINTS)[0])
