"""vLLM's serving-benchmark statistics, computed from compact per-request arrays.

Definitions (``vllm bench serve``; see the README): TTFT, TPOT = (E2EL − TTFT) / (output − 1)
for requests with more than one output token, ITL per streamed output chunk, E2EL. Statistics
are mean, median, population std and ``numpy.percentile`` with linear interpolation, in ms;
an empty sample gives 0 like vLLM's ``np.mean(x or 0)``. Failed requests are left out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate
from operator import mul
from typing import Iterable, Sequence

METRICS = ("ttft", "tpot", "itl", "e2el")
DEFAULT_PERCENTILE_METRICS = ("ttft", "tpot", "itl")
DEFAULT_PERCENTILES = (99.0,)
GOODPUT_KEYS = ("ttft", "tpot", "e2el")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """``numpy.percentile(values, p)`` (linear interpolation) of already sorted values."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    pos = (n - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    a, b = sorted_values[lo], sorted_values[hi]
    return a + (b - a) * frac if frac else a


@dataclass(frozen=True)
class Distribution:
    """A sample's statistics (in ms from seconds, by default); all 0 for an empty sample."""

    count: int
    mean: float
    median: float
    std: float
    max: float
    percentiles: tuple[tuple[float, float], ...]  # (p, value) in the order asked for

    def at(self, p: float) -> float:
        return dict(self.percentiles)[p]


def summarize(values: Iterable[float], percentiles: Sequence[float], scale: float = 1000.0) -> Distribution:
    """mean/median/std/max and the given percentiles of ``values`` (seconds) in ms (``scale``)."""
    vals = sorted(values)
    n = len(vals)
    if n == 0:
        return Distribution(0, 0.0, 0.0, 0.0, 0.0, tuple((p, 0.0) for p in percentiles))
    mean = math.fsum(vals) / n
    # E[x²] − mean², with exactly rounded sums: no per-value Python loop or copy for millions
    # of ITLs, and at latency scales the cancellation costs far less than the printed precision
    var = max(math.fsum(map(mul, vals, vals)) / n - mean * mean, 0.0)
    return Distribution(count=n, mean=mean * scale, median=percentile(vals, 50.0) * scale,
                        std=math.sqrt(var) * scale, max=vals[-1] * scale,
                        percentiles=tuple((p, percentile(vals, p) * scale) for p in percentiles))


def percentile_word(p: float) -> str:
    """vLLM's spelling of a percentile in keys and labels: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def parse_percentiles(text: str) -> tuple[float, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            p = float(part)
        except ValueError:
            raise ValueError(f"not a number: {part!r}") from None
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {part} is outside 0..100")
        out.append(p)
    if not out:
        raise ValueError("no percentiles given")
    return tuple(out)


def parse_metric_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric {', '.join(bad) or '(none)'}: choose from {', '.join(METRICS)}")
    return names


def parse_goodput(pairs: Sequence[str]) -> dict[str, float]:
    """``["ttft:500", "tpot:50"]`` -> ``{"ttft": 500.0, "tpot": 50.0}`` (milliseconds)."""
    out: dict[str, float] = {}
    for pair in pairs:
        for item in pair.split():
            name, sep, value = item.partition(":")
            if not sep:
                raise ValueError(f"goodput SLO {item!r} is not KEY:MS (keys: {', '.join(GOODPUT_KEYS)})")
            if name not in GOODPUT_KEYS:
                raise ValueError(f"unknown goodput metric {name!r} (keys: {', '.join(GOODPUT_KEYS)})")
            try:
                ms = float(value)
            except ValueError:
                raise ValueError(f"goodput SLO {item!r}: {value!r} is not a number of ms") from None
            if ms < 0 or math.isnan(ms):
                raise ValueError(f"goodput SLO {item!r} must be a non-negative number of ms")
            out[name] = ms
    return out


def tpot_of(ttft: float, e2el: float, output_tokens: int) -> float | None:
    """TPOT in seconds, or None when the request had at most one output token."""
    if output_tokens > 1:
        return (e2el - ttft) / (output_tokens - 1)
    return None


def is_good(ttft: float, e2el: float, output_tokens: int, slo_ms: dict[str, float]) -> bool:
    """vLLM's goodput rule: every given SLO holds (≤); TPOT counts as 0 for ≤ 1 output token."""
    if "ttft" in slo_ms and ttft * 1000.0 > slo_ms["ttft"]:
        return False
    if "e2el" in slo_ms and e2el * 1000.0 > slo_ms["e2el"]:
        return False
    if "tpot" in slo_ms:
        tpot = tpot_of(ttft, e2el, output_tokens) or 0.0
        if tpot * 1000.0 > slo_ms["tpot"]:
            return False
    return True


def peak_output_tokens_per_s(starts: Sequence[float], ttfts: Sequence[float], e2els: Sequence[float],
                             itls_of) -> float:
    """vLLM's ``max_output_tokens_per_s``: output chunks bucketed into 1-s windows.

    Each successful request contributes one event at start+TTFT and one per ITL after it,
    counted from the earliest start. ``itls_of(i)`` gives request i's ITLs.
    """
    n = len(starts)
    if n == 0:
        return 0.0
    t0 = min(starts)
    buckets: Counter = Counter()
    for i in range(n):
        # times since t0 of every output chunk, then their 1-s bucket (all loops in C)
        times = accumulate(itls_of(i), initial=starts[i] + ttfts[i] - t0)
        buckets.update(map(int, times))
    return float(max(buckets.values()))


def peak_concurrency(starts: Sequence[float], e2els: Sequence[float]) -> int:
    """Most requests in flight at once: a sweep over half-open [start, start+E2EL) intervals."""
    events = [(s, 1) for s in starts] + [(s + e, -1) for s, e in zip(starts, e2els)]
    events.sort()
    cur = peak = 0
    for _, d in events:
        cur += d
        if cur > peak:
            peak = cur
    return peak
