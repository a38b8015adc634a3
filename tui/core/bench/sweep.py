"""Load sweeps: a run per step at rising load, each judged against the SLO, and the capacity answer.

    prep = prepare(options)                  # options.sweep set: auto, concurrency=..., rate=...
    sweep = SweepRun(prep)
    async for event in sweep.events():       # StepStarted, StepUpdate, ServerUpdate, SweepNotice,
        ...                                  # StepFinished (with its verdict), SweepFinished (the answer)
    sweep.result                             # SweepResult: steps, capacity, knee (partial after stop())

Every step is a normal run (a :class:`~.engine.BenchmarkRun`, or what ``make_run`` builds: the
run options reach every step, so a runner with workers serves the high steps too) with its own
vLLM-compatible result. How a load maps onto the engine:

- a **concurrency** step of C streams is a closed loop: ``--max-concurrency C`` at rate inf;
- a **rate** step of R req/s is an open loop with no concurrency limit (the server, not the
  client, holds whatever queue builds up), its arrivals evenly spaced unless ``--burstiness``
  was given;
- ``auto``: a synchronous step (1 stream) for the unloaded latency, a throughput step
  (``--max-concurrency`` streams, default :data:`THROUGHPUT_STREAMS`) for the ceiling, rates
  spaced between them (:data:`SPACED`) up to the first that breaks the SLO, bisection between
  the last that met it and the first that broke it until they are within
  :data:`BISECT_TOLERANCE`, and one rate near the ceiling for the knee if none was measured
  there; at most :data:`AUTO_MAX_STEPS` steps.

Each step lasts ``--step-duration`` seconds (default :data:`DEFAULT_STEP_S`) or
``--step-requests`` requests, after a warm-up that is not measured (``--num-warmups``, else as
many requests as the step keeps in flight: C, or a second's worth of a rate). Steps draw their
prompts from one pool (the run's dataset, ``--num-prompts`` of them), each continuing where the
one before stopped and cycling when the pool runs out.

The server's metrics are scraped during the whole sweep (:mod:`.servermetrics`); each step's
result holds the samples of its own time. Times of ``ServerUpdate`` and ``StepResult.started_at``
are seconds from the sweep's start.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol, Sequence

from .capacity import (FAIL_MARGIN, SLO, CapacityAnswer, CurvePoint, Knee, Latency, SweepSpec, Verdict, answer_lines,
                       capacity_of, judge, knee_of, percentile_name, saturation)
from .metrics import is_good, summarize, tpot_of
from .options import changed
from .results import BenchResult, RequestRecord, RunSnapshot, _finite
from .servermetrics import SCRAPE_INTERVAL_S, ServerSample, scraper_for

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .client import BenchRequest
    from .engine import BenchSpec, TokenCounter
    from .options import RunOptions
    from .prepare import Prepared

DEFAULT_STEP_S = 30.0
#: the throughput step's streams when --max-concurrency is not given
THROUGHPUT_STREAMS = 256
AUTO_MAX_STEPS = 10
#: auto's rates between the synchronous rate and the ceiling, as fractions of the way up
SPACED = (0.25, 0.5, 0.75)
#: auto's rate near the ceiling for the knee, as a fraction of the ceiling
KNEE_PROBE = 0.95
#: bisection ends when the failing rate is within this fraction above the passing one
BISECT_TOLERANCE = 0.03
#: a concurrency step by duration is given this many requests per stream and second at most
REQUESTS_PER_STREAM_S = 20
#: a rate step's warm-up: a second's worth of requests, at most this many
MAX_RATE_WARMUPS = 256
_MAX_REQUESTS = 1_000_000  # options.MAX_REQUESTS


@dataclass(frozen=True)
class StepPlan:
    """What a step runs: ``kind`` concurrency (``value`` streams) or rate (``value`` req/s)."""

    kind: str
    value: float
    role: str = "step"  # step (explicit), synchronous, throughput, spaced, bisection, knee

    def text(self) -> str:
        if self.role == "synchronous":
            return "synchronous (1 stream)"
        if self.role == "throughput":
            return f"throughput ({self.value:g} streams)"
        return f"concurrency {self.value:g}" if self.kind == "concurrency" else f"rate {self.value:.3g} req/s"


# ---------------------------------------------------------------------- events
@dataclass(frozen=True)
class StepStarted:
    step: int  # 1-based
    plan: StepPlan
    requests: int  # at most this many are sent (a step by duration usually sends fewer)
    warmups: int


@dataclass(frozen=True)
class StepUpdate:
    """A snapshot (or, with ``emit_records``, a finished request) of the step that runs."""

    step: int
    event: RunSnapshot | RequestRecord


@dataclass(frozen=True)
class ServerUpdate:
    """A sample of the server's metrics, timed from the sweep's start."""

    sample: ServerSample


@dataclass(frozen=True)
class SweepNotice:
    """Something to say once (the server has no metrics, say)."""

    text: str


@dataclass(frozen=True)
class StepFigures:
    """What a step measured, as the sweep compares steps."""

    completed: int
    failed: int
    throughput: float  # req/s: vLLM's for closed loops; for rate steps the rate requests completed at (below)
    output_throughput: float  # tok/s (vLLM's)
    goodput: float | None  # req/s (vLLM's request_goodput), None without an SLO
    slo_met_share: float | None  # requests that met every SLO / requests sent (failed ones did not)
    latencies: tuple[Latency, ...]  # ttft, tpot (streamed), itl, e2el
    mean_in_flight: float
    client_bottleneck: bool

    def latency(self, metric: str) -> Latency | None:
        return next((lat for lat in self.latencies if lat.metric == metric), None)


@dataclass(frozen=True)
class StepResult:
    step: int
    plan: StepPlan
    load: float  # on the sweep's axis (auto: req/s; the synchronous step at its throughput, throughput inf)
    started_at: float  # seconds from the sweep's start to the step's measured run
    figures: StepFigures
    verdict: Verdict
    result: BenchResult

    @property
    def request_rate(self) -> float:
        """req/s at this load: the offered rate of a rate step, the throughput of a closed loop."""
        return self.plan.value if self.plan.kind == "rate" else self.figures.throughput

    @property
    def streams(self) -> float:
        """Concurrent streams: C of a closed loop, the mean in flight of a rate step."""
        return self.plan.value if self.plan.kind == "concurrency" else self.figures.mean_in_flight

    def point(self) -> CurvePoint:
        ttft, e2el = self.figures.latency("ttft"), self.figures.latency("e2el")
        return CurvePoint(self.step, self.load, self.figures.throughput, ttft.at_slo if ttft else 0.0,
                          e2el.at_slo if e2el else 0.0, self.verdict.passed)


@dataclass(frozen=True)
class SweepResult:
    spec: SweepSpec
    slo: SLO
    steps: tuple[StepResult, ...]
    capacity: CapacityAnswer | None
    knee: Knee | None
    stop_reason: str | None  # why it ended before its last planned step (None: it did not)
    partial: bool  # stopped from outside (Ctrl-C): the last step is partial
    setup: dict[str, Any]  # date, base_url, model_id, backend, label, step size, warm-up
    server_note: str | None = None  # why there is no server view

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def internal_errors(self) -> tuple[str, ...]:
        return tuple(e for s in self.steps for e in s.result.internal_errors)

    def answer(self) -> list[str]:
        return answer_lines(self.capacity, self.knee, self.slo, self.unit, self.slo.percentile)

    def to_json(self, detailed: bool = False) -> dict[str, Any]:
        """The sweep file: its setup, the answer, and every step with its vLLM-compatible result."""
        out: dict[str, Any] = {"tokdeck_sweep": 1, **self.setup, "sweep": str(self.spec), "unit": self.unit,
                               "slo": self.slo.to_json() if self.slo else None, "partial": self.partial,
                               "stop_reason": self.stop_reason, "answer": self.answer()}
        cap = self.capacity
        out["capacity"] = None if cap is None else {
            "step": cap.step, "load": cap.load, "request_rate": cap.request_rate, "streams": cap.streams,
            "broken_by": cap.broken_by}
        k = self.knee
        out["knee"] = None if k is None else {
            "step": k.step, "load": k.load, "throughput": k.throughput, "beyond_load": k.beyond_load,
            "latency_metric": k.latency_metric, "latency_growth": k.latency_growth,
            "throughput_growth": k.throughput_growth}
        out["server_note"] = self.server_note
        out["steps"] = [_step_json(s, self.slo, detailed) for s in self.steps]
        return _finite(out)

    def csv_columns(self) -> list[str]:
        p = percentile_name(self.slo.percentile)
        cols = ["step", "kind", "role", "load", "unit", "request_rate", "streams", "completed", "failed",
                "duration_s", "throughput", "vllm_request_throughput", "output_throughput", "goodput",
                "slo_met_share"]
        for m in ("ttft", "tpot", "itl", "e2el"):
            cols += [f"p50_{m}_ms", f"{p}_{m}_ms"]
        return cols + ["slo_met", "worst_slo_ratio", "verdict", "client_bottleneck", "server_peak_running",
                       "server_peak_waiting", "server_peak_kv_cache_usage"]

    def to_csv(self) -> str:
        """One row per step (empty cells where a figure is undefined)."""
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.csv_columns())

        def num(v: float | None, fmt: str = ".3f") -> str:
            return "" if v is None or not math.isfinite(v) else format(v, fmt)

        for s in self.steps:
            f = s.figures
            row: list[Any] = [s.step, s.plan.kind, s.plan.role, num(s.load, "g"), self.unit, num(s.request_rate),
                              num(s.streams), f.completed, f.failed, num(s.result.duration),
                              num(f.throughput), num(s.result.summary.request_throughput), num(f.output_throughput),
                              num(f.goodput), num(f.slo_met_share, ".4f")]
            for m in ("ttft", "tpot", "itl", "e2el"):
                lat = f.latency(m)
                row += [num(lat.p50) if lat else "", num(lat.at_slo) if lat else ""]
            passed = s.verdict.passed
            row += ["" if passed is None else int(passed), num(s.verdict.worst_ratio if self.slo else None),
                    s.verdict.text(), int(f.client_bottleneck)]
            view = s.result.server_metrics
            samples = view.samples if view is not None else ()
            for values in ([x.running for x in samples], [x.waiting for x in samples],
                           [x.kv_cache_usage for x in samples]):
                known = [v for v in values if v is not None]
                row.append(num(max(known), "g") if known else "")
            w.writerow(row)
        return buf.getvalue()


def _step_json(s: StepResult, slo: SLO, detailed: bool) -> dict[str, Any]:
    f = s.figures
    return {"step": s.step, "kind": s.plan.kind, "role": s.plan.role, "load": s.load, "value": s.plan.value,
            "request_rate": s.request_rate, "streams": s.streams, "started_at": s.started_at,
            "throughput": f.throughput, "goodput": f.goodput, "slo_met_share": f.slo_met_share,
            "latency_ms": {lat.metric: {"p50": lat.p50, percentile_name(slo.percentile): lat.at_slo}
                           for lat in f.latencies},
            "mean_in_flight": f.mean_in_flight, "client_bottleneck": f.client_bottleneck,
            "slo_met": s.verdict.passed, "worst_slo_ratio": s.verdict.worst_ratio, "verdict": s.verdict.text(),
            "result": s.result.to_vllm_json(detailed=detailed)}


@dataclass(frozen=True)
class SweepFinished:
    result: SweepResult


@dataclass(frozen=True)
class StepFinished:
    result: StepResult


SweepEvent = StepStarted | StepUpdate | ServerUpdate | SweepNotice | StepFinished | SweepFinished


# ---------------------------------------------------------------------- figures
def step_figures(result: BenchResult, kind: str, offered_rate: float | None, slo: SLO) -> StepFigures:
    """The figures of a step's result (latencies at the median and the SLO percentile)."""
    st = result.store
    rows = st.ok_rows()
    p = slo.percentile
    ttfts = [st.ttft[r] for r in rows]
    e2els = [st.e2el[r] for r in rows]
    outs = [st.out_tok[r] for r in rows]
    values: dict[str, Sequence[float]] = {"ttft": ttfts, "itl": st.itl, "e2el": e2els}
    if st.streamed:
        values["tpot"] = [t for t in (tpot_of(a, b, n) for a, b, n in zip(ttfts, e2els, outs)) if t is not None]
    lats = []
    for m in ("ttft", "tpot", "itl", "e2el"):
        if m in values:
            d = summarize(values[m], (50.0, p))
            lats.append(Latency(m, d.at(50.0), d.at(p)))
    s = result.summary
    throughput = s.request_throughput or 0.0
    if kind == "rate":
        throughput = served_rate(result) or throughput
    share = None
    limits = dict(slo.limits_ms)
    total = len(st)
    if slo and total:
        share = sum(1 for a, b, n in zip(ttfts, e2els, outs) if is_good(a, b, n, limits)) / total
    mean_e2el = math.fsum(e2els) / len(e2els) if e2els else 0.0
    in_flight = offered_rate * mean_e2el if offered_rate is not None else \
        (math.fsum(e2els) / result.duration if result.duration > 0 else 0.0)
    return StepFigures(completed=len(rows), failed=total - len(rows), throughput=throughput,
                       output_throughput=s.output_throughput or 0.0, goodput=s.request_goodput,
                       slo_met_share=share, latencies=tuple(lats), mean_in_flight=in_flight,
                       client_bottleneck=result.client_health.client_bottleneck)


def served_rate(result: BenchResult) -> float | None:
    """The rate requests completed at, between the first and the last tenth of the completions:
    the offered rate while the server keeps up, its own pace when a queue builds. vLLM's request
    throughput divides by the time from the first start to the last end, which for a short
    open-loop step counts the first answer's wait and the drain after the last arrival as load
    time (at 10 s of arrivals and 3 s answers, 23 % low). None below 20 completions."""
    st = result.store
    rows = st.ok_rows()
    if len(rows) < 20:
        return None
    ends = sorted(st.start[r] + st.e2el[r] for r in rows)
    lo, hi = len(ends) // 10, len(ends) - 1 - len(ends) // 10
    window = ends[hi] - ends[lo]
    return (hi - lo) / window if window > 0 else None


# ---------------------------------------------------------------------- plans
class _Planner(Protocol):
    def next(self, done: Sequence[StepResult]) -> tuple[StepPlan | None, str | None]: ...  # noqa: E704


class ExplicitPlanner:
    """The steps as listed; stops early on a step far off the SLO, or saturation."""

    def __init__(self, spec: SweepSpec) -> None:
        self.plans = [StepPlan(spec.kind, v) for v in spec.loads]

    def next(self, done: Sequence[StepResult]) -> tuple[StepPlan | None, str | None]:
        if len(done) >= len(self.plans):  # the last step ran: nothing was stopped early
            return None, None
        if done:
            last = done[-1]
            if last.verdict.far_off:
                return None, (f"step {last.step} ({last.plan.text()}) broke the SLO by more than "
                              f"{FAIL_MARGIN:g}×: {'; '.join(last.verdict.reasons)}; higher loads would only be worse")
            if len(done) >= 2:
                why = saturation(done[-2].point(), last.point())
                if why:
                    return None, f"step {last.step} ({last.plan.text()}) {why}"
        return self.plans[len(done)], None


class AutoPlanner:
    """``auto`` (see the module docstring)."""

    def __init__(self, slo: SLO, throughput_streams: int, max_steps: int = AUTO_MAX_STEPS) -> None:
        self.slo = slo
        self.streams = throughput_streams
        self.max_steps = max_steps

    def next(self, done: Sequence[StepResult]) -> tuple[StepPlan | None, str | None]:
        if not done:
            return StepPlan("concurrency", 1, "synchronous"), None
        sync = done[0]
        if len(done) == 1:
            if sync.verdict.passed is False:
                return None, f"even one request at a time broke the SLO: {'; '.join(sync.verdict.reasons)}"
            return StepPlan("concurrency", self.streams, "throughput"), None
        ceiling = done[1]
        low, high = sync.figures.throughput, ceiling.figures.throughput
        if len(done) == 2:
            if ceiling.verdict.passed:
                return None, f"the SLO held even at the ceiling ({ceiling.plan.text()})"
            if high <= low * (1 + BISECT_TOLERANCE):
                return None, (f"the throughput step got {high:.3g} req/s, no more than one stream at a time "
                              f"({low:.3g}): nothing to sweep between them")
        if len(done) >= self.max_steps:
            return None, None
        rates = [s for s in done[2:]]
        failing = [s.load for s in rates if s.verdict.passed is False]
        lowest_fail = min(failing) if failing else None
        for f in SPACED:
            rate = low + f * (high - low)
            if lowest_fail is not None and rate >= lowest_fail:
                break
            if not any(math.isclose(s.load, rate, rel_tol=1e-9) for s in rates):
                return StepPlan("rate", rate, "spaced"), None
        if self.slo:
            passing = [s.load for s in [sync, *rates] if s.verdict.passed and (lowest_fail is None or s.load < lowest_fail)]
            lo = max(passing) if passing else low
            hi = lowest_fail if lowest_fail is not None else high
            if hi - lo > BISECT_TOLERANCE * lo and len(done) < self.max_steps - 1:
                return StepPlan("rate", (lo + hi) / 2, "bisection"), None
        if not any(s.figures.throughput >= high / 1.1 for s in rates) and \
                not any(s.plan.role == "knee" for s in rates):
            return StepPlan("rate", KNEE_PROBE * high, "knee"), None
        return None, None


# ---------------------------------------------------------------------- running
class StepRunner(Protocol):
    """What runs one step: a BenchmarkRun, or another runner with the same three members."""

    @property
    def clock_origin(self) -> float: ...  # noqa: E704

    async def run(self, on_event: Callable[[Any], None] | None = None) -> BenchResult: ...  # noqa: E704

    def stop(self) -> None: ...  # noqa: E704


MakeRun = Callable[["BenchSpec", "Sequence[BenchRequest]", "TokenCounter"], StepRunner]


def sweep_slo(options: RunOptions) -> SLO:
    return SLO(tuple(options.goodput), options.slo_percentile)


class SweepRun:
    """A sweep over a prepared run (``prepared.options.sweep`` set). Use from the event loop
    that runs it; ``stop()`` stops the step that runs and the sweep (the result is partial)."""

    def __init__(self, prepared: Prepared, *, make_run: MakeRun | None = None, emit_records: bool = False,
                 scrape_interval: float = SCRAPE_INTERVAL_S) -> None:
        options = prepared.options
        if options.sweep is None:
            raise ValueError("the options name no sweep")
        self.prepared = prepared
        self.spec: SweepSpec = options.sweep
        self.slo = sweep_slo(options)
        self.emit_records = emit_records
        self.scrape_interval = scrape_interval
        self._make_run = make_run or self._benchmark_run
        self.planner: _Planner = ExplicitPlanner(self.spec) if self.spec.kind != "auto" else \
            AutoPlanner(self.slo, options.max_concurrency or THROUGHPUT_STREAMS)
        self.result: SweepResult | None = None
        self._stopped = False
        self._current: StepRunner | None = None
        self._emit: Callable[[SweepEvent], None] = lambda e: None

    def _benchmark_run(self, spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter) -> StepRunner:
        from .engine import BenchmarkRun

        return BenchmarkRun(spec, requests, counter, emit_records=self.emit_records)

    def stop(self) -> None:
        self._stopped = True
        if self._current is not None:
            self._current.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def events(self) -> AsyncIterator[SweepEvent]:
        """Run the sweep, yielding its events; ``self.result`` is set at the end."""
        from .engine import run_as_events

        return run_as_events(self.run, self.stop)

    async def run(self, on_event: Callable[[SweepEvent], None] | None = None) -> SweepResult:
        if on_event is not None:
            self._emit = on_event
        origin = perf_counter()
        noticed: list[str] = []

        def on_sample(sample: ServerSample) -> None:
            self._emit(ServerUpdate(replace(sample, t=sample.t - origin)))

        scraper = scraper_for(self.prepared, interval=self.scrape_interval, on_sample=on_sample)
        steps: list[StepResult] = []
        stop_reason: str | None = None
        if scraper is not None:
            scraper.start()
        try:
            cursor = 0
            while not self._stopped:
                plan, stop_reason = self.planner.next(steps)
                if plan is None:
                    break
                step = await self._run_step(len(steps) + 1, plan, cursor, origin, scraper)
                cursor += int(step.result.setup.get("dispatched") or 0) + step.result.warmup.get("requests", 0)
                steps.append(step)
                if scraper is not None and scraper.note and not noticed:
                    noticed.append(scraper.note)
                    self._emit(SweepNotice(scraper.note))
                self._emit(StepFinished(step))
        finally:
            if scraper is not None:
                await scraper.stop()
        if self._stopped:
            stop_reason = "interrupted: the last step is partial"
        if scraper is not None and scraper.note and not noticed:
            self._emit(SweepNotice(scraper.note))
        self.result = self._result(steps, stop_reason, scraper.note if scraper is not None else None)
        self._emit(SweepFinished(self.result))
        return self.result

    def _axis_load(self, plan: StepPlan, figures: StepFigures) -> float:
        if self.spec.kind != "auto":
            return plan.value
        if plan.role == "synchronous":
            return figures.throughput
        if plan.role == "throughput":
            return math.inf
        return plan.value

    async def _run_step(self, n: int, plan: StepPlan, cursor: int, origin: float, scraper: Any) -> StepResult:
        spec, requests, warmups = self.step_setup(plan, cursor)
        self._emit(StepStarted(n, plan, len(requests), warmups))
        run = self._make_run(spec, requests, self.prepared.counter)
        self._current = run
        begin = perf_counter()
        try:
            result = await run.run(lambda ev: self._emit(StepUpdate(n, ev)))
        finally:
            self._current = None
        if self._stopped and not result.partial:
            result = replace(result, partial=True)
        if scraper is not None:
            result = replace(result, server_metrics=scraper.view(run.clock_origin, begin, perf_counter()))
        figures = step_figures(result, plan.kind, plan.value if plan.kind == "rate" else None, self.slo)
        verdict = judge(figures.latencies, figures.completed, figures.failed, self.slo)
        return StepResult(step=n, plan=plan, load=self._axis_load(plan, figures),
                          started_at=run.clock_origin - origin, figures=figures, verdict=verdict, result=result)

    def step_setup(self, plan: StepPlan, cursor: int) -> tuple[BenchSpec, list[BenchRequest], int]:
        """The spec, prompts and warm-ups of a step (see the module docstring)."""
        o = self.prepared.options
        pool = self.prepared.requests
        seconds = o.step_duration if o.step_duration is not None else (None if o.step_requests else DEFAULT_STEP_S)
        if plan.kind == "concurrency":
            streams = int(plan.value)
            count = o.step_requests or streams * math.ceil(REQUESTS_PER_STREAM_S * (seconds or 0)) + streams
            warmups = streams
            changes: dict[str, Any] = {"request_rate": math.inf, "max_concurrency": streams,
                                       "duration": None if o.step_requests else seconds}
        else:
            count = o.step_requests or max(1, math.ceil(plan.value * (seconds or 0)))
            warmups = min(max(1, math.ceil(plan.value)), MAX_RATE_WARMUPS)
            changes = {"request_rate": plan.value, "max_concurrency": None, "duration": None,
                       "burstiness": o.burstiness if changed(o, "burstiness") else math.inf}
        if "num_warmups" in o.given:  # 0 too: no warm-up
            warmups = o.num_warmups
        count = min(count, _MAX_REQUESTS)
        requests = [pool[(cursor + i) % len(pool)] for i in range(count)]
        spec = replace(self.prepared.spec, num_warmups=warmups, ramp_up=None, **changes)
        return spec, requests, warmups

    def _result(self, steps: list[StepResult], stop_reason: str | None, note: str | None) -> SweepResult:
        points = [s.point() for s in steps]
        cap_point = capacity_of(points) if self.slo else None
        capacity = None
        if cap_point is not None:
            step = steps[cap_point.step - 1]
            broken = min((s for s in steps if s.verdict.passed is False), key=lambda s: s.load, default=None)
            capacity = CapacityAnswer(step=step.step, load=step.load if self.spec.kind != "auto" else step.request_rate,
                                      request_rate=step.request_rate, streams=step.streams,
                                      broken_by=broken.plan.text() if broken is not None else None)
        o = self.prepared.options
        spec = self.prepared.spec
        from .redact import redact_url

        setup = {"date": datetime.now().strftime("%Y%m%d-%H%M%S"), "backend": spec.backend, "label": spec.label,
                 "model_id": spec.model, "tokenizer_id": spec.tokenizer_id, "base_url": redact_url(spec.base_url),
                 "dataset_name": spec.dataset_name, "step_duration_s": o.step_duration,
                 "step_requests": o.step_requests, "seed": spec.seed}
        if o.step_duration is None and o.step_requests is None:
            setup["step_duration_s"] = DEFAULT_STEP_S
        return SweepResult(spec=self.spec, slo=self.slo, steps=tuple(steps), capacity=capacity,
                           knee=knee_of(points), stop_reason=stop_reason, partial=self._stopped, setup=setup,
                           server_note=note)


@dataclass(frozen=True)
class SweepPoint:
    """A finished step as the Bench pane draws it (live, or read back from a sweep file)."""

    step: int
    label: str  # "rate 42 req/s"
    throughput: float  # req/s
    goodput: float | None
    slo_met_share: float | None
    passed: bool | None
    ttft_ms: tuple[float, float] | None  # (p50, at the SLO percentile)
    tpot_ms: tuple[float, float] | None


def sweep_point(step: StepResult) -> SweepPoint:
    def pair(metric: str) -> tuple[float, float] | None:
        lat = step.figures.latency(metric)
        return None if lat is None else (lat.p50, lat.at_slo)

    f = step.figures
    return SweepPoint(step.step, step.plan.text(), f.throughput, f.goodput, f.slo_met_share, step.verdict.passed,
                      pair("ttft"), pair("tpot"))


class SweepThread:
    """A sweep on its own event loop in a daemon thread, for a UI whose own loop must not delay
    the steps' timestamps. Its events (no per-request records) and at the end the SweepResult
    (or the exception the sweep raised) arrive through ``queue``; ``stop()`` is thread-safe."""

    def __init__(self, prepared: Prepared, *, make_run: MakeRun | None = None) -> None:
        import queue
        import threading

        self.sweep = SweepRun(prepared, make_run=make_run)
        self.queue: queue.Queue = queue.Queue()
        self.dropped = 0  # as BenchmarkThread's: a sweep sends no records to drop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_pending = False
        self._thread = threading.Thread(target=self._main, name="tokdeck-sweep", daemon=True)

    def start(self) -> SweepThread:
        self._thread.start()
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            if self._stop_pending:
                self.sweep.stop()
            self.queue.put(loop.run_until_complete(self.sweep.run(self.queue.put)))
        except BaseException as exc:  # noqa: BLE001 - handed to the UI through the queue
            self.queue.put(exc)
        finally:
            loop.close()

    def stop(self) -> None:
        self._stop_pending = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.sweep.stop)
            except RuntimeError:  # the loop closed meanwhile: nothing left to stop
                pass


# ---------------------------------------------------------------------- files
def sweep_path(options: RunOptions, result: SweepResult) -> Path:
    """--result-dir/--result-filename, else ``LABEL-sweep-KIND-MODEL-DATE.json``."""
    from pathlib import Path

    from .prepare import file_part

    if options.result_filename:
        name = options.result_filename
    else:
        label = file_part(options.label or options.backend)
        model = file_part(str(result.setup["model_id"]).split("/")[-1])
        name = f"{label}-sweep-{result.spec.kind}-{model}-{result.setup['date']}.json"
    return Path(options.result_dir or ".") / name


def save_sweep(options: RunOptions, result: SweepResult) -> Path:
    """Write the sweep JSON atomically; its path."""
    from .prepare import write_json

    path = sweep_path(options, result)
    write_json(path, result.to_json(detailed=options.save_detailed), "the sweep")
    return path


def save_sweep_csv(path: str | Path, result: SweepResult) -> None:
    """Write one CSV row per step atomically."""
    from .prepare import write_csv

    write_csv(path, result.to_csv())
