"""What a benchmark run produces: per-request records, live snapshots and the final result.

- ``RequestRecord``: one finished request, streamed out as it completes.
- ``RunSnapshot``: periodic aggregates for live plots (counts, throughput so far, recent
  TTFT/TPOT/ITL percentiles, client health).
- ``BenchResult``: the final result, with vLLM's keys (``to_vllm_json``) plus ours, and CSV.
- ``RecordStore``: compact per-request storage (``array`` per metric, ITLs flattened with
  offsets): ~85 bytes per request plus 4 per ITL, so 100,000 requests stay small.
"""

from __future__ import annotations

import csv
import io
import math
import re
from array import array
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .metrics import (DEFAULT_PERCENTILE_METRICS, DEFAULT_PERCENTILES, METRICS, is_good, peak_concurrency,
                      peak_output_tokens_per_s, percentile_word, summarize, tpot_of)

if TYPE_CHECKING:  # pragma: no cover
    from .servermetrics import ServerView

OK, FAILED = 1, 0


def error_reason(error: str) -> str:
    """The reason a failed request is grouped under: its error without the part that differs from
    request to request (the text of a malformed chunk or body: "malformed stream chunk: delta is
    a string: {...}" counts under "malformed stream chunk: delta is a string")."""
    if error.startswith(("malformed stream chunk: ", "malformed response: ")):
        return ": ".join(error.split(": ", 2)[:2])
    return error


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request. Times in seconds; ``start_time`` counts from the run's start."""

    index: int  # position in the dispatch order
    ok: bool
    error: str  # "" when ok
    start_time: float
    ttft: float  # 0.0 when failed
    e2el: float
    itls: tuple[float, ...]
    input_tokens: int
    output_tokens: int
    input_source: str  # "usage" | "tokenizer:<id>" | "estimate"
    output_source: str
    queue_time: float  # waiting for a --max-concurrency slot
    schedule_lag: float  # how late it started against its planned arrival, queue time excluded
    chunks: int  # output-carrying chunks received
    text: str | None = None  # generated text, kept only when asked
    streamed: bool = True  # False for --no-stream: the answer came whole, so there is no TPOT

    @property
    def tpot(self) -> float | None:
        return tpot_of(self.ttft, self.e2el, self.output_tokens) if self.ok and self.streamed else None

    def to_row(self) -> tuple:
        """The record as a plain tuple with the ITLs packed as bytes, the form a worker process sends
        it in (no field names, no per-float overhead); :meth:`from_row` turns it back."""
        return (self.index, self.ok, self.error, self.start_time, self.ttft, self.e2el,
                array("d", self.itls).tobytes(), self.input_tokens, self.output_tokens, self.input_source,
                self.output_source, self.queue_time, self.schedule_lag, self.chunks, self.text, self.streamed)

    @classmethod
    def from_row(cls, row: tuple) -> "RequestRecord":
        (index, ok, error, start, ttft, e2el, itls, in_tok, out_tok, in_src, out_src, queue, lag, chunks, text,
         streamed) = row
        return cls(index=index, ok=ok, error=error, start_time=start, ttft=ttft, e2el=e2el,
                   itls=tuple(array("d", itls)), input_tokens=in_tok, output_tokens=out_tok, input_source=in_src,
                   output_source=out_src, queue_time=queue, schedule_lag=lag, chunks=chunks, text=text,
                   streamed=streamed)


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """Aggregates at one moment of a run (emitted every ~0.25 s), for live views."""

    elapsed: float
    planned: int
    dispatched: int
    completed: int
    failed: int
    in_flight: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float  # completed / elapsed
    output_throughput: float  # output tokens of completed requests / elapsed
    chunks_per_s: float  # output chunks received over the last interval (live tokens/s proxy)
    recent_ttft_ms: tuple[float, float] | None  # (p50, p99) over the last completed requests
    recent_tpot_ms: tuple[float, float] | None
    recent_itl_ms: tuple[float, float] | None
    loop_lag_ms: float  # worst event-loop lag over the last interval
    warmup: bool = False
    done: bool = False


class RecordStore:
    """Per-request arrays in completion order; ``order()`` gives dispatch order."""

    def __init__(self, keep_texts: bool = False, streamed: bool = True) -> None:
        self.streamed = streamed
        self.index = array("q")
        self.ok = array("b")
        self.start = array("d")
        self.ttft = array("d")
        self.e2el = array("d")
        self.queue = array("d")
        self.lag = array("d")
        self.in_tok = array("q")
        self.out_tok = array("q")
        self.in_src = array("b")
        self.out_src = array("b")
        self.chunks = array("q")
        self.itl = array("f")  # float32: sub-microsecond resolution below 1 s, half the memory
        self.itl_off = array("q", [0])
        self.errors: dict[int, str] = {}  # row -> reason, failures only
        self.texts: list[str] | None = [] if keep_texts else None
        self.sources: list[str] = []
        self._source_ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _src(self, label: str) -> int:
        i = self._source_ids.get(label)
        if i is None:
            i = self._source_ids[label] = len(self.sources)
            self.sources.append(label)
        return i

    def add(self, r: RequestRecord) -> None:
        """Append one record, all or nothing: a value an array cannot hold (an integer past 64 bits)
        raises with every array as it was, so rows never shift against each other."""
        row, n_itl = len(self.index), len(self.itl)
        try:
            self._append(row, r)
        except BaseException:
            for arr in (self.index, self.ok, self.start, self.ttft, self.e2el, self.queue, self.lag, self.in_tok,
                        self.out_tok, self.in_src, self.out_src, self.chunks):
                del arr[row:]
            del self.itl[n_itl:]
            del self.itl_off[row + 1:]
            self.errors.pop(row, None)
            if self.texts is not None:
                del self.texts[row:]
            raise

    def _append(self, row: int, r: RequestRecord) -> None:
        self.index.append(r.index)
        self.ok.append(1 if r.ok else 0)
        self.start.append(r.start_time)
        self.ttft.append(r.ttft)
        self.e2el.append(r.e2el)
        self.queue.append(r.queue_time)
        self.lag.append(r.schedule_lag)
        self.in_tok.append(r.input_tokens)
        self.out_tok.append(r.output_tokens)
        self.in_src.append(self._src(r.input_source))
        self.out_src.append(self._src(r.output_source))
        self.chunks.append(r.chunks)
        self.itl.extend(r.itls)
        self.itl_off.append(len(self.itl))
        if not r.ok:
            self.errors[row] = r.error
        if self.texts is not None:
            self.texts.append(r.text or "")

    def itls(self, row: int) -> array:
        return self.itl[self.itl_off[row]:self.itl_off[row + 1]]

    def record(self, row: int) -> RequestRecord:
        return RequestRecord(
            index=self.index[row], ok=bool(self.ok[row]), error=self.errors.get(row, ""),
            start_time=self.start[row], ttft=self.ttft[row], e2el=self.e2el[row],
            itls=tuple(self.itls(row)), input_tokens=self.in_tok[row], output_tokens=self.out_tok[row],
            input_source=self.sources[self.in_src[row]], output_source=self.sources[self.out_src[row]],
            queue_time=self.queue[row], schedule_lag=self.lag[row], chunks=self.chunks[row],
            text=self.texts[row] if self.texts is not None else None, streamed=self.streamed)

    def order(self) -> list[int]:
        """Rows sorted by dispatch index."""
        return sorted(range(len(self.index)), key=self.index.__getitem__)

    def ok_rows(self) -> list[int]:
        return [i for i in range(len(self.ok)) if self.ok[i]]

    def source_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"input": {}, "output": {}}
        for row in self.ok_rows():
            for key, arr in (("input", self.in_src), ("output", self.out_src)):
                label = self.sources[arr[row]]
                out[key][label] = out[key].get(label, 0) + 1
        return out


def _number(value: Any) -> float | None:
    """A JSON number as a float (null, NaN written as null, and anything else: None)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


@dataclass(frozen=True)
class MetricSummary:
    """One metric's statistics in ms: vLLM's ``mean_/median_/std_/pNN_{metric}_ms`` keys (None
    where a saved result does not say)."""

    metric: str  # ttft, tpot, itl or e2el
    mean: float | None
    median: float | None
    std: float | None
    percentiles: tuple[tuple[float, float | None], ...]  # (p, value)

    def percentile(self, p: float) -> float | None:
        return dict(self.percentiles).get(p)


@dataclass(frozen=True)
class Summary:
    """vLLM's result numbers. A run fills every one (``request_goodput`` only with SLOs); a saved
    result read back has None where the file does not say (older vLLM files have no ``failed``)."""

    duration: float | None
    completed: int | None
    failed: int | None
    total_input_tokens: int | None
    total_output_tokens: int | None
    request_throughput: float | None
    request_goodput: float | None
    output_throughput: float | None
    total_token_throughput: float | None
    max_output_tokens_per_s: float | None
    max_concurrent_requests: int | None
    metrics: tuple[MetricSummary, ...] = ()  # the --percentile-metrics, in their order

    def metric(self, name: str) -> MetricSummary | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_json(self) -> dict[str, Any]:
        """vLLM's keys: the figures, then per metric mean, median, std and each percentile."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metrics"}
        for m in self.metrics:
            out[f"mean_{m.metric}_ms"] = m.mean
            out[f"median_{m.metric}_ms"] = m.median
            out[f"std_{m.metric}_ms"] = m.std
            for p, v in m.percentiles:
                out[f"p{percentile_word(p)}_{m.metric}_ms"] = v
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        """The summary of a saved result, tokdeck's or vLLM's (its old ``"request_goodput:"`` key too)."""
        goodput = data["request_goodput"] if "request_goodput" in data else data.get("request_goodput:")  # vLLM < 0.6
        metrics = []
        for m in METRICS:
            pattern = re.compile(rf"p(\d+(?:\.\d+)?)_{m}_ms")
            percentiles = tuple((float(found.group(1)), _number(v)) for k, v in data.items()
                                if (found := pattern.fullmatch(k)))
            if percentiles or any(f"{s}_{m}_ms" in data for s in ("mean", "median", "std")):
                metrics.append(MetricSummary(m, _number(data.get(f"mean_{m}_ms")), _number(data.get(f"median_{m}_ms")),
                                             _number(data.get(f"std_{m}_ms")), percentiles))
        return cls(
            duration=_number(data.get("duration")), completed=_count(data.get("completed")),
            failed=_count(data.get("failed")), total_input_tokens=_count(data.get("total_input_tokens")),
            total_output_tokens=_count(data.get("total_output_tokens")),
            request_throughput=_number(data.get("request_throughput")), request_goodput=_number(goodput),
            output_throughput=_number(data.get("output_throughput")),
            total_token_throughput=_number(data.get("total_token_throughput")),
            max_output_tokens_per_s=_number(data.get("max_output_tokens_per_s")),
            max_concurrent_requests=_count(data.get("max_concurrent_requests")), metrics=tuple(metrics))


def compute_summary(store: RecordStore, duration: float, percentile_metrics=DEFAULT_PERCENTILE_METRICS,
                    percentiles=DEFAULT_PERCENTILES, goodput: dict[str, float] | None = None) -> Summary:
    """vLLM's result numbers from the store."""
    rows = store.ok_rows()
    dur = duration if duration > 0 else float("nan")
    ttfts = [store.ttft[r] for r in rows]
    e2els = [store.e2el[r] for r in rows]
    outs = [store.out_tok[r] for r in rows]
    total_in = sum(store.in_tok[r] for r in rows)
    total_out = sum(outs)
    tpots = [t for t in (tpot_of(a, b, n) for a, b, n in zip(ttfts, e2els, outs)) if t is not None] \
        if store.streamed else []
    itls = store.itl  # failed requests keep no ITLs, so these are the successful ones
    good = None
    if goodput:
        good = sum(1 for a, b, n in zip(ttfts, e2els, outs) if is_good(a, b, n, goodput))
    starts = [store.start[r] for r in rows]
    values: dict[str, Sequence[float]] = {"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els}
    metrics = []
    for m in percentile_metrics:
        s = summarize(values[m], percentiles)
        metrics.append(MetricSummary(m, s.mean, s.median, s.std, percentiles=s.percentiles))
    return Summary(
        duration=duration,
        completed=len(rows),
        failed=len(store) - len(rows),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=len(rows) / dur if rows else 0.0,
        request_goodput=(good / dur if rows else 0.0) if good is not None else None,
        output_throughput=total_out / dur if rows else 0.0,
        total_token_throughput=(total_in + total_out) / dur if rows else 0.0,
        max_output_tokens_per_s=peak_output_tokens_per_s(starts, ttfts, e2els, lambda i: store.itls(rows[i])),
        max_concurrent_requests=peak_concurrency(starts, e2els),
        metrics=tuple(metrics))


@dataclass(frozen=True)
class Spread:
    """mean, p99 and max of a client-side delay, in ms."""

    mean: float
    p99: float
    max: float


@dataclass(frozen=True)
class Lateness:
    """How late a simulator wrote against its own schedule, in ms, over ``writes`` writes."""

    writes: float
    mean: float
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class SimulatorHealth:
    """The built-in simulator's lateness (its /health) and the limit it is held to (simproc.judge_lateness)."""

    late_ms: Lateness
    limit_ms: float
    late: bool


@dataclass(frozen=True)
class ClientHealth:
    """How much the client itself may have distorted the timings (see engine.client_health)."""

    event_loop_lag_ms: Spread
    schedule_lag_ms: Spread
    client_queue_time_ms: Spread
    client_cpu_percent: float
    lag_limit_ms: float
    client_bottleneck: bool
    warning: str | None = None
    simulator: SimulatorHealth | None = None  # runs against the built-in simulator

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.simulator is None:  # the key only where there was a built-in simulator
            del out["simulator"]
        return out

    @classmethod
    def from_json(cls, data: Any) -> ClientHealth | None:
        """Client health as a result file holds it (a null number: NaN); None when it is not that shape."""
        if not isinstance(data, dict):
            return None

        def number(value: Any) -> float:
            found = _number(value)
            return math.nan if found is None else found

        def spread(value: Any) -> Spread | None:
            if not isinstance(value, dict):
                return None
            return Spread(number(value.get("mean")), number(value.get("p99")), number(value.get("max")))

        loop, schedule, queue = (spread(data.get(k)) for k in ("event_loop_lag_ms", "schedule_lag_ms",
                                                                "client_queue_time_ms"))
        bottleneck, warning = data.get("client_bottleneck"), data.get("warning")
        if loop is None or schedule is None or queue is None or not isinstance(bottleneck, bool) \
                or not isinstance(warning, (str, type(None))):
            return None
        sim = data.get("simulator")
        simulator = None
        if isinstance(sim, dict) and isinstance(sim.get("late_ms"), dict) and isinstance(sim.get("late"), bool):
            late = sim["late_ms"]
            simulator = SimulatorHealth(Lateness(*(number(late.get(k)) for k in ("writes", "mean", "p50", "p99", "max"))),
                                        number(sim.get("limit_ms")), sim["late"])
        return cls(loop, schedule, queue, number(data.get("client_cpu_percent")), number(data.get("lag_limit_ms")),
                   bottleneck, warning, simulator)


@dataclass(frozen=True)
class BenchResult:
    """The final result of a run (complete, or partial after a stop)."""

    setup: dict[str, Any]  # date, backend, model_id, tokenizer_id, num_prompts, request_rate, ...
    summary: Summary  # compute_summary(): vLLM's numbers
    goodput: dict[str, float] | None
    token_sources: dict[str, dict[str, int]]
    client_health: ClientHealth
    error_reasons: dict[str, int]
    partial: bool
    cancelled: int
    warmup: dict[str, int]
    store: RecordStore = field(repr=False, compare=False)
    usage_ignored: dict[str, int] = field(default_factory=dict)  # why the server's usage was not believed
    #: faults of the engine itself, e.g. requests neither completed, failed nor cancelled
    internal_errors: tuple[str, ...] = ()
    #: the server's own metrics during the run (None: not scraped, --no-server-metrics)
    server_metrics: ServerView | None = None

    # --- convenience
    @property
    def completed(self) -> int:
        return self.summary.completed or 0

    @property
    def failed(self) -> int:
        return self.summary.failed or 0

    @property
    def duration(self) -> float:
        return self.summary.duration or 0.0

    def records(self) -> Iterator[RequestRecord]:
        """Every request in dispatch order."""
        for row in self.store.order():
            yield self.store.record(row)

    # --- export
    def to_vllm_json(self, detailed: bool = False) -> dict[str, Any]:
        """vLLM's result keys (``--save-result``), then tokdeck's; ``detailed`` adds the arrays."""
        out: dict[str, Any] = dict(self.setup)
        out.update(self.summary.to_json())
        if detailed:
            st = self.store
            order = st.order()
            out["input_lens"] = [st.in_tok[r] for r in order]
            out["output_lens"] = [st.out_tok[r] if st.ok[r] else 0 for r in order]
            out["ttfts"] = [st.ttft[r] for r in order]
            out["itls"] = [list(st.itls(r)) for r in order]
            out["latencies"] = [st.e2el[r] for r in order]
            out["start_times"] = [st.start[r] for r in order]
            out["queue_times"] = [st.queue[r] for r in order]
            if st.texts is not None:
                out["generated_texts"] = [st.texts[r] for r in order]
            out["errors"] = [st.errors.get(r, "") for r in order]
        # tokdeck's own keys
        out["partial"] = self.partial
        out["cancelled"] = self.cancelled
        out["goodput_slos_ms"] = dict(self.goodput) if self.goodput else None
        out["token_count_sources"] = self.token_sources
        out["client_health"] = self.client_health.to_json()
        out["error_reasons"] = self.error_reasons
        out["usage_ignored"] = self.usage_ignored
        out["warmup"] = self.warmup
        out["internal_errors"] = list(self.internal_errors)
        if self.server_metrics is not None:
            out["server_metrics"] = self.server_metrics.to_json()
        return _finite(out)

    CSV_COLUMNS = ("index", "ok", "error", "start_time_s", "input_tokens", "input_source", "output_tokens",
                   "output_source", "ttft_ms", "tpot_ms", "e2el_ms", "itl_mean_ms", "itl_max_ms", "chunks",
                   "queue_time_ms", "schedule_lag_ms")

    def to_csv(self) -> str:
        """One row per request (dispatch order); times in ms, empty cells where undefined."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.CSV_COLUMNS)

        def ms(v):
            return "" if v is None else f"{v * 1000:.3f}"

        for r in self.records():
            itls = r.itls
            w.writerow([r.index, int(r.ok), r.error, f"{r.start_time:.6f}", r.input_tokens, r.input_source,
                        r.output_tokens if r.ok else "", r.output_source if r.ok else "",
                        ms(r.ttft) if r.ok else "", ms(r.tpot), ms(r.e2el) if r.ok else "",
                        ms(sum(itls) / len(itls)) if itls else "", ms(max(itls)) if itls else "",
                        r.chunks, ms(r.queue_time), ms(r.schedule_lag)])
        return buf.getvalue()


def _finite(obj):
    """JSON has no NaN/inf: turn them into null (request_rate "inf" is a string already)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
