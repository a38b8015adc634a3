"""When each request is due: vLLM's arrival process, reproducible from a seed.

``--request-rate inf`` sends everything at time 0. Otherwise gaps are gamma-distributed with
shape = burstiness and scale = 1 / (rate · burstiness) (burstiness 1 = Poisson; < 1 burstier;
``inf`` = constant gaps). As vLLM does, without a ramp-up the cumulative times are rescaled so
the last request is due at exactly N / rate (this removes the 1-2 % run-to-run spread of the
sum). A ramp-up moves the rate linearly (or exponentially) from start to end RPS over the
requests: request i uses the rate at progress i / (N − 1), exactly as vLLM computes it.
"""

from __future__ import annotations

import math
import random
from typing import Sequence


def request_rate_at(i: int, n: int, rate: float, ramp: tuple[str, float, float] | None) -> float:
    if ramp is None:
        return rate
    strategy, start, end = ramp
    progress = i / max(n - 1, 1)
    if strategy == "linear":
        return start + (end - start) * progress
    if strategy == "exponential":
        return start * (end / start) ** progress
    raise ValueError(f"unknown ramp-up strategy {strategy!r}")


def arrival_times(n: int, rate: float = math.inf, burstiness: float = 1.0, seed: int = 0,
                  ramp: tuple[str, float, float] | None = None) -> list[float]:
    """Planned send times (seconds from the run's start) of ``n`` requests."""
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    rng = random.Random(seed)
    delays: list[float] = []
    total = 0.0
    for i in range(n):
        r = request_rate_at(i, n, rate, ramp)
        if r <= 0:
            raise ValueError(f"request rate must be > 0 (got {r} for request {i})")
        if math.isinf(r):
            gap = 0.0
        elif math.isinf(burstiness):
            gap = 1.0 / r
        else:
            gap = rng.gammavariate(burstiness, 1.0 / (r * burstiness))
        total += gap
        delays.append(total)
    if ramp is None and n and delays[-1] > 0 and not math.isinf(rate):
        factor = (n / rate) / delays[-1]
        delays = [d * factor for d in delays]
    return delays


def gaps(times: Sequence[float]) -> list[float]:
    """Inter-arrival gaps of planned times (the first one measured from 0)."""
    out, prev = [], 0.0
    for t in times:
        out.append(t - prev)
        prev = t
    return out
