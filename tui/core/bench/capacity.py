"""What a load sweep is asked, and what its steps answer: the sweep spec, the SLO, each step's
verdict, the capacity and the knee. Pure functions of measured figures (no I/O, no engine).

Definitions (the README's *Sweeps* says the same):

- A step **meets the SLO** when, for every ``--goodput`` limit, the step's SLO-percentile of that
  latency (``--slo-percentile``, default p99, over its successful requests) is at most the limit,
  and no more than ``100 - percentile`` % of its requests failed. Its margin is the worst ratio
  of measured to allowed.
- **Capacity**: the highest measured load that met the SLO, below the lowest load that broke it
  (no interpolation: a load that was measured). In requests/s for rate sweeps and ``auto``
  (with the concurrent streams it kept in flight), in streams for concurrency sweeps (with the
  requests/s they got).
- **Knee**: the lowest load beyond which throughput grows by at most :data:`KNEE_GAIN` although
  some higher load is at least :data:`KNEE_LOAD` times as high, while latency (the
  SLO-percentile end-to-end latency) climbs by at least :data:`LATENCY_CLIMB`.
- **Saturation** (an early stop): a step that raised the load by :data:`KNEE_LOAD` or more over
  the one before for at most :data:`KNEE_GAIN` more throughput, while latency climbed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..numbers import NumberRule
from .redact import clip

SWEEP_KINDS = ("concurrency", "rate")
#: steps of an explicit sweep
MAX_STEPS = 64
#: a step whose worst SLO ratio exceeds this ends a sweep: higher loads would only be worse
FAIL_MARGIN = 3.0
#: knee and saturation: at most this much more throughput ...
KNEE_GAIN = 0.10
#: ... for at least this factor more load ...
KNEE_LOAD = 1.25
#: ... while the SLO-percentile end-to-end latency grows by at least this factor
LATENCY_CLIMB = 1.25
#: the SLO percentile by default
DEFAULT_SLO_PERCENTILE = 99.0

_streams = NumberRule(int, lo=1, hi=100_000)  # options.MAX_CONCURRENCY (options imports this module)
_rate = NumberRule(float, lo=0, lo_open=True)
#: a step's number is never longer (errors quote it)
_MAX_NUMBER_CHARS = 24


@dataclass(frozen=True)
class SweepSpec:
    """``auto``, or explicit steps of one kind: ``concurrency`` (streams, closed loop) or ``rate``
    (requests/s, open loop), rising."""

    kind: str  # "auto", "concurrency" or "rate"
    loads: tuple[float, ...] = ()

    def __str__(self) -> str:
        if self.kind == "auto":
            return "auto"
        return f"{self.kind}=" + ",".join(f"{v:g}" for v in self.loads)

    @property
    def unit(self) -> str:
        """The unit of the load: "streams" for concurrency sweeps, else "req/s"."""
        return "streams" if self.kind == "concurrency" else "req/s"


def parse_sweep(text: str) -> SweepSpec:
    """``auto``, ``concurrency=1,2,4`` or ``rate=0.5,1,2``; ValueError saying what is wrong."""
    text = text.strip()
    if text.lower() == "auto":
        return SweepSpec("auto")
    kind, sep, values = text.partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in SWEEP_KINDS:
        raise ValueError(f"{clip(text, 40)!r} is not a sweep: give auto, concurrency=N,N,... or rate=R,R,...")
    parts = [p.strip() for p in values.split(",")]
    if not any(parts):
        raise ValueError(f"{kind}= lists no steps")
    if len(parts) > MAX_STEPS:
        raise ValueError(f"at most {MAX_STEPS} steps, not {len(parts)}")
    rule = _streams if kind == "concurrency" else _rate
    loads: list[float] = []
    for i, part in enumerate(parts, 1):
        if not part:
            raise ValueError(f"step {i} of {kind}= is empty")
        if len(part) > _MAX_NUMBER_CHARS:  # the parser's message quotes the whole text
            raise ValueError(f"step {i} of {kind}=: {clip(part, _MAX_NUMBER_CHARS)!r} is not a number")
        try:
            value = float(rule.parse(part))
        except ValueError as exc:
            raise ValueError(f"step {i} of {kind}=: {exc}") from None
        if loads and value <= loads[-1]:
            raise ValueError(f"the steps must rise: {part} comes after {loads[-1]:g}")
        loads.append(value)
    return SweepSpec(kind, tuple(loads))


_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "e2el": "E2EL", "itl": "ITL"}


def percentile_name(p: float) -> str:
    return f"p{p:g}"


@dataclass(frozen=True)
class SLO:
    """The limits of ``--goodput`` (ms) at the SLO percentile."""

    limits_ms: tuple[tuple[str, float], ...]  # (ttft|tpot|e2el, ms), in the order given
    percentile: float = DEFAULT_SLO_PERCENTILE

    def __bool__(self) -> bool:
        return bool(self.limits_ms)

    def text(self) -> str:
        """"p99 TTFT ≤ 500 ms and p99 TPOT ≤ 50 ms"."""
        p = percentile_name(self.percentile)
        return " and ".join(f"{p} {_NAMES[m]} ≤ {ms:g} ms" for m, ms in self.limits_ms)

    def to_json(self) -> dict[str, float]:
        return {"percentile": self.percentile, **{f"{m}_ms": ms for m, ms in self.limits_ms}}


@dataclass(frozen=True)
class Latency:
    """One latency's median and SLO percentile over a step's successful requests, in ms."""

    metric: str
    p50: float
    at_slo: float  # at the SLO percentile


@dataclass(frozen=True)
class Verdict:
    """A step against the SLO. ``passed`` None: no SLO was given."""

    passed: bool | None
    worst_ratio: float  # measured / allowed, the worst of all limits (0 without an SLO)
    reasons: tuple[str, ...] = ()  # each limit broken, worst first: "p99 TTFT 1650 ms > 500 ms (3.3×)"

    @property
    def far_off(self) -> bool:
        """Broken by more than FAIL_MARGIN: the sweep stops."""
        return self.worst_ratio > FAIL_MARGIN

    def text(self) -> str:
        if self.passed is None:
            return "no SLO"
        return "met the SLO" if self.passed else "broke the SLO: " + "; ".join(self.reasons)


def judge(latencies: tuple[Latency, ...], completed: int, failed: int, slo: SLO) -> Verdict:
    """The verdict of a step with these latencies and request counts."""
    if not slo:
        return Verdict(None, 0.0)
    p = percentile_name(slo.percentile)
    broken: list[tuple[float, str]] = []
    worst = 0.0
    by_metric = {lat.metric: lat for lat in latencies}
    for metric, limit in slo.limits_ms:
        lat = by_metric.get(metric)
        if completed == 0 or lat is None:
            ratio = math.inf
            why = f"no {_NAMES[metric]} measured"
        else:
            ratio = lat.at_slo / limit if limit > 0 else (math.inf if lat.at_slo > 0 else 0.0)
            why = f"{p} {_NAMES[metric]} {lat.at_slo:.0f} ms > {limit:g} ms ({_times(ratio)})"
        worst = max(worst, ratio)
        if ratio > 1:
            broken.append((ratio, why))
    total = completed + failed
    if total:
        allowed = 1 - slo.percentile / 100
        share = failed / total
        ratio = share / allowed if allowed > 0 else (math.inf if failed else 0.0)
        worst = max(worst, ratio)
        if ratio > 1:
            broken.append((ratio, f"{share:.1%} of requests failed ({(allowed):.1%} allowed)"))
    broken.sort(key=lambda b: -b[0])
    return Verdict(not broken, worst, tuple(why for _, why in broken))


def _times(ratio: float) -> str:
    return "∞×" if math.isinf(ratio) else f"{ratio:.1f}×"


@dataclass(frozen=True)
class CurvePoint:
    """One step on the sweep's load axis. ``load``: streams or req/s (in ``auto``, the throughput
    step's load is infinite: as much as it could take)."""

    step: int  # 1-based
    load: float
    throughput: float  # req/s
    ttft_ms: float  # SLO percentile
    e2el_ms: float  # SLO percentile
    passed: bool | None


@dataclass(frozen=True)
class CapacityAnswer:
    """The highest measured load that met the SLO below the lowest that broke it."""

    step: int
    load: float  # in the sweep's unit
    request_rate: float  # req/s at that load
    streams: float  # concurrent streams at that load (for rate loads: mean requests in flight)
    broken_by: str | None  # the lowest load that broke the SLO, as its step says it ("rate 42 req/s"); None: none


@dataclass(frozen=True)
class Knee:
    """Where more load stopped buying throughput (see the module docstring)."""

    step: int
    load: float
    throughput: float
    beyond_load: float  # the highest load measured
    latency_metric: str  # "ttft" or "e2el": whichever grew more beyond the knee
    latency_growth: float  # factor, from the knee to the highest load
    throughput_growth: float  # fraction, likewise


def capacity_of(points: list[CurvePoint]) -> CurvePoint | None:
    """The capacity step: the highest passing load below the lowest failing one."""
    failing = [p.load for p in points if p.passed is False]
    ceiling = min(failing) if failing else math.inf
    passing = [p for p in points if p.passed and p.load < ceiling]
    return max(passing, key=lambda p: p.load) if passing else None


def knee_of(points: list[CurvePoint]) -> Knee | None:
    """The knee (None when throughput kept rising with the load, or too few steps)."""
    pts = sorted(points, key=lambda p: p.load)
    for i, k in enumerate(pts):
        higher = pts[i + 1:]
        if not higher or k.throughput <= 0:
            continue
        if any(h.throughput > k.throughput * (1 + KNEE_GAIN) for h in higher):
            continue
        if not any(h.load >= k.load * KNEE_LOAD for h in higher):
            continue
        top = higher[-1]
        if not top.e2el_ms >= k.e2el_ms * LATENCY_CLIMB:
            continue
        ttft_growth = top.ttft_ms / k.ttft_ms if k.ttft_ms > 0 else math.inf
        e2el_growth = top.e2el_ms / k.e2el_ms if k.e2el_ms > 0 else math.inf
        metric, growth = ("ttft", ttft_growth) if ttft_growth >= e2el_growth else ("e2el", e2el_growth)
        return Knee(step=k.step, load=k.load, throughput=k.throughput, beyond_load=top.load, latency_metric=metric,
                    latency_growth=growth, throughput_growth=top.throughput / k.throughput - 1)
    return None


def saturation(before: CurvePoint, now: CurvePoint) -> str | None:
    """Why ``now`` shows saturation against the step before it (None when it does not)."""
    if before.throughput <= 0 or before.load <= 0 or now.load < before.load * KNEE_LOAD:
        return None
    gain = now.throughput / before.throughput - 1
    climb = now.e2el_ms / before.e2el_ms if before.e2el_ms > 0 else math.inf
    if gain > KNEE_GAIN or climb < LATENCY_CLIMB:
        return None
    return (f"saturated: throughput {_pct(gain)} ({before.throughput:.2f} -> {now.throughput:.2f} req/s) for "
            f"{now.load / before.load:.2g}× the load while latency climbed {climb:.1f}×")


def _pct(fraction: float) -> str:
    return f"{'+' if fraction >= 0 else ''}{fraction * 100:.0f} %"


def load_text(load: float, unit: str) -> str:
    if math.isinf(load):
        return "as much as it could take"
    return f"{load:g} concurrent streams" if unit == "streams" else f"{load:.3g} req/s"


def answer_lines(capacity: CapacityAnswer | None, knee: Knee | None, slo: SLO, unit: str, p: float) -> list[str]:
    """The answer, stated plainly: the capacity (with the SLO) and the knee."""
    lines = []
    if not slo:
        lines.append("capacity: no SLO given (--goodput ttft:MS tpot:MS e2el:MS): only the curve and the knee")
    elif capacity is None:
        lines.append(f"capacity: none measured: no load met {slo.text()}")
    else:
        if unit == "streams":
            head = f"{capacity.load:g} concurrent streams ({capacity.request_rate:.3g} req/s)"
        else:
            head = f"{capacity.request_rate:.3g} req/s (≈ {capacity.streams:.3g} concurrent streams)"
        nxt = f"; {capacity.broken_by} broke it" if capacity.broken_by is not None else "; no load measured broke it"
        lines.append(f"capacity: {head} with {slo.text()}{nxt}")
    if knee is None:
        lines.append("knee: none within the loads measured (throughput kept rising with the load)")
    else:
        name = f"{percentile_name(p)} {_NAMES[knee.latency_metric]}"
        served = "" if unit == "req/s" and math.isclose(knee.throughput, knee.load, rel_tol=0.005) else \
            f" ({knee.throughput:.3g} req/s served)"
        lines.append(f"knee: at {load_text(knee.load, unit)}{served}; beyond it {name} grows "
                     f"{knee.latency_growth:.1f}× while throughput grows {knee.throughput_growth * 100:.0f} %")
    return lines
