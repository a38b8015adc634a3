"""Runs to look back at: session results and saved result files, opened and compared.

- ``RunData``: one finished run as the dashboard shows it: a name, where it came from, its
  summary and client health (the dataclasses of a result), per-request series when known,
  statistics per metric.
- ``from_result(result, name)``: a run of this session (exact statistics from its records).
- ``load_result_file(path)``: tokdeck's JSON or ``vllm bench serve --save-result`` JSON
  (including vLLM's old ``"request_goodput:"`` key). Per-request series come from the detailed
  arrays (``ttfts``, ``output_lens``, ``latencies`` - for vLLM's files TTFT plus the ``itls`` -,
  optional ``start_times`` and ``errors``); without them only the summary numbers are known.
- ``load_sweep_file(path)`` / ``sweep_from_dict``: a saved sweep (``tokdeck bench --sweep ...
  --save-result``, key ``"tokdeck_sweep"``) as ``SweepData``: its points, answer and server view.
- ``load_history_file(path)``: either, by the file's own key.
- ``list_result_files(folder)``: the JSON files of a folder, newest first, sweeps marked.
- ``compare(runs)``: one row per metric, each run's value and its delta against the first run.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import orjson

from ..errors import TokdeckError
from ..paths import read_file_bytes
from .capacity import percentile_name
from .metrics import METRICS, summarize, tpot_of
from .results import BenchResult, ClientHealth, Summary
from .servermetrics import ServerSample
from .sweep import StepPlan, SweepPoint

STAT_PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True)
class MetricStats:
    """Mean and percentiles of one metric, in ms (None where the source does not say)."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    count: int | None = None


@dataclass(frozen=True)
class RunSeries:
    """Per-request values in dispatch order. Times in seconds; ``start`` None when not recorded."""

    ok: array
    ttft: array
    e2el: array
    output_tokens: array
    start: array | None = None

    def __len__(self) -> int:
        return len(self.ok)


@dataclass(frozen=True)
class RunData:
    name: str
    source: str  # "session" or the file path
    summary: Summary = field(repr=False)
    stats: dict[str, MetricStats | None] = field(repr=False)
    series: RunSeries | None = field(default=None, repr=False)
    kind: str = "tokdeck"  # whose result: "tokdeck" or "vllm" (no client health)
    model_id: str | None = None
    num_prompts: int | None = None
    partial: bool = False
    client_health: ClientHealth | None = None
    error_reasons: dict[str, int] = field(default_factory=dict, repr=False)
    internal_errors: tuple[str, ...] = ()
    server: tuple[ServerSample, ...] = field(default=(), repr=False)  # the server's view, from the run's start

    def value(self, figure: str) -> float | None:
        """A figure of the summary (``request_throughput``, ...), None when unknown or not finite."""
        v = getattr(self.summary, figure)
        return float(v) if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------------- building
def _stats_of(values: Sequence[float]) -> MetricStats | None:
    if not values:
        return None
    s = summarize(values, STAT_PERCENTILES)
    return MetricStats(s.mean, s.at(50.0), s.at(90.0), s.at(99.0), s.count)


def _stats_from_summary(summary: Summary, metric: str) -> MetricStats | None:
    m = summary.metric(metric)
    if m is None:
        return None
    p50 = m.percentile(50.0)
    p50 = p50 if p50 is not None else m.median
    mean, p90, p99 = m.mean, m.percentile(90.0), m.percentile(99.0)
    if mean is None and p50 is None and p90 is None and p99 is None:
        return None
    return MetricStats(mean, p50, p90, p99)


def _series_stats(series: RunSeries, itls: Sequence[float] | None) -> dict[str, MetricStats | None]:
    rows = [i for i in range(len(series)) if series.ok[i]]
    ttft = [series.ttft[i] for i in rows]
    e2el = [series.e2el[i] for i in rows]
    tpot = [t for t in (tpot_of(series.ttft[i], series.e2el[i], series.output_tokens[i]) for i in rows)
            if t is not None]
    return {"ttft": _stats_of(ttft), "tpot": _stats_of(tpot), "e2el": _stats_of(e2el),
            "itl": _stats_of(itls) if itls is not None else None}


def from_result(result: BenchResult, name: str) -> RunData:
    """A run of this session, with exact statistics from its records."""
    store = result.store
    order = store.order()
    series = RunSeries(ok=array("b", (store.ok[r] for r in order)), ttft=array("d", (store.ttft[r] for r in order)),
                       e2el=array("d", (store.e2el[r] for r in order)),
                       output_tokens=array("q", (store.out_tok[r] for r in order)),
                       start=array("d", (store.start[r] for r in order)))
    return RunData(name=name, source="session", summary=result.summary, stats=_series_stats(series, store.itl),
                   series=series, model_id=result.setup["model_id"], num_prompts=result.setup["num_prompts"],
                   partial=result.partial, client_health=result.client_health,
                   error_reasons=dict(result.error_reasons), internal_errors=result.internal_errors,
                   server=result.server_metrics.samples if result.server_metrics is not None else ())


def _number_list(data: dict, key: str, n: int | None) -> list[float] | None:
    v = data.get(key)
    if not isinstance(v, list) or (n is not None and len(v) != n):
        return None
    out = []
    for x in v:
        if x is None:
            x = 0.0
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return None
        out.append(float(x))
    return out


def run_from_dict(data: dict[str, Any], name: str, source: str) -> RunData:
    """A RunData from a result's JSON (tokdeck's or vLLM's keys); what is not of its type is unknown."""
    summary = Summary.from_json(data)
    ttfts = _number_list(data, "ttfts", None)
    series = None
    itls: list[float] | None = None
    if ttfts is not None:
        n = len(ttfts)
        raw_itls = data.get("itls")
        if not (isinstance(raw_itls, list) and len(raw_itls) == n):
            raw_itls = None
        e2el = _number_list(data, "latencies", n)
        if e2el is None and raw_itls is not None:  # vLLM keeps no latencies: TTFT + the gaps
            e2el = [t + sum(x for x in row if isinstance(x, (int, float))) if isinstance(row, list) else t
                    for t, row in zip(ttfts, raw_itls)]
        outs = _number_list(data, "output_lens", n)
        if e2el is not None and outs is not None:
            errors = data.get("errors")
            if isinstance(errors, list) and len(errors) == n:
                ok = [not e for e in errors]
            else:
                ok = [o > 0 for o in outs]
            start = _number_list(data, "start_times", n)
            series = RunSeries(ok=array("b", ok), ttft=array("d", ttfts), e2el=array("d", e2el),
                               output_tokens=array("q", (int(o) for o in outs)),
                               start=array("d", start) if start is not None else None)
            if raw_itls is not None:
                itls = [float(x) for i, row in enumerate(raw_itls) if ok[i] and isinstance(row, list)
                        for x in row if isinstance(x, (int, float))]
    if series is not None:
        stats = _series_stats(series, itls)
        for m in METRICS:  # ITL without per-request arrays: the file's own numbers
            if stats[m] is None:
                stats[m] = _stats_from_summary(summary, m)
    else:
        stats = {m: _stats_from_summary(summary, m) for m in METRICS}
    model_id, num_prompts = data.get("model_id"), data.get("num_prompts")
    reasons, internal = data.get("error_reasons"), data.get("internal_errors")
    return RunData(
        name=name, source=source, summary=summary, stats=stats, series=series,
        kind="tokdeck" if "client_health" in data else "vllm",
        model_id=model_id if isinstance(model_id, str) else None,
        num_prompts=num_prompts if isinstance(num_prompts, int) and not isinstance(num_prompts, bool) else None,
        partial=data.get("partial") is True, client_health=ClientHealth.from_json(data.get("client_health")),
        error_reasons={k: v for k, v in reasons.items() if isinstance(v, int) and not isinstance(v, bool)}
        if isinstance(reasons, dict) else {},
        internal_errors=tuple(e for e in internal if isinstance(e, str)) if isinstance(internal, list) else (),
        server=tuple(server_samples(data.get("server_metrics"), 0.0)))


# ---------------------------------------------------------------------- saved sweeps
@dataclass(frozen=True)
class SweepData:
    """A saved sweep as History lists, draws and overlays it. Server samples are timed from the
    sweep's start (each step's own samples shifted by the step's ``started_at``)."""

    name: str
    source: str  # the file path
    sweep: str  # its spec: "auto", "rate=1,2,4"
    percentile: float  # the SLO percentile
    limits_ms: tuple[tuple[str, float], ...]  # the SLO's limits given
    points: tuple[SweepPoint, ...]
    answer: tuple[str, ...]  # the capacity answer's lines, as saved
    knee_throughput: float | None  # req/s
    capacity_rate: float | None  # req/s
    samples: tuple[ServerSample, ...] = field(repr=False)
    partial: bool = False
    stop_reason: str | None = None
    model_id: str | None = None


def _number(v: Any, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite JSON number within [low, high], else None (bools are not numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) and low <= v <= high else None


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _latency_pair(latency: dict, metric: str, percentile: str) -> tuple[float, float] | None:
    values = _dict(latency.get(metric))
    p50, at_slo = _number(values.get("p50"), 0.0), _number(values.get(percentile), 0.0)
    return None if p50 is None or at_slo is None else (p50, at_slo)


def _step_point(raw: Any, index: int, percentile: str) -> SweepPoint:
    if not isinstance(raw, dict):
        raise ValueError(f"step {index} is not an object")
    number = raw.get("step")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"step {index} has no step number")
    throughput = _number(raw.get("throughput"), 0.0)
    if throughput is None:
        raise ValueError(f"step {number} has no throughput")
    kind, value, role = raw.get("kind"), _number(raw.get("value"), 0.0), raw.get("role")
    label = StepPlan(kind, value, role if isinstance(role, str) else "step").text() \
        if kind in ("concurrency", "rate") and value is not None else f"step {number}"
    passed = raw.get("slo_met")
    latency = _dict(raw.get("latency_ms"))
    return SweepPoint(number, label, throughput, _number(raw.get("goodput"), 0.0),
                      _number(raw.get("slo_met_share"), 0.0, 1.0), passed if isinstance(passed, bool) else None,
                      _latency_pair(latency, "ttft", percentile), _latency_pair(latency, "tpot", percentile))


def server_samples(view: Any, offset: float | None) -> list[ServerSample]:
    """The samples of a saved server view (``ServerView.to_json``), ``offset`` added to their
    times; none where the columns are not sound, None where a value is not."""
    columns = _dict(_dict(view).get("samples"))
    times = columns.get("t")
    if offset is None or not isinstance(times, list):
        return []

    def column(name: str) -> list:
        values = columns.get(name)
        return values if isinstance(values, list) and len(values) == len(times) else [None] * len(times)

    out = []
    for t, running, waiting, usage in zip(times, column("running"), column("waiting"), column("kv_cache_usage")):
        t = _number(t)
        if t is None:
            continue
        counts = [int(c) if c is not None and c == int(c) else None
                  for c in (_number(running, 0.0, 1e9), _number(waiting, 0.0, 1e9))]
        out.append(ServerSample(offset + t, counts[0], counts[1], _number(usage, 0.0, 1.0)))
    return out


def sweep_from_dict(data: dict[str, Any], name: str, source: str) -> SweepData:
    """A SweepData from a sweep file's JSON; ValueError (one line) when its steps are not sound."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise ValueError("no steps")
    slo = _dict(data.get("slo"))
    percentile = _number(slo.get("percentile"), 0.0, 100.0) or 99.0
    p_name = percentile_name(percentile)
    points = tuple(_step_point(raw, i, p_name) for i, raw in enumerate(steps, 1))
    samples = sorted((s for raw in steps if isinstance(raw, dict)  # on the sweep's timeline
                      for s in server_samples(_dict(raw.get("result")).get("server_metrics"),
                                              _number(raw.get("started_at")))), key=lambda s: s.t)
    limits = tuple((m, ms) for m in ("ttft", "tpot", "e2el")
                   if (ms := _number(slo.get(f"{m}_ms"), 0.0)) is not None)
    answer, spec = data.get("answer"), data.get("sweep")
    stop, model = data.get("stop_reason"), data.get("model_id")
    return SweepData(
        name=name, source=source, sweep=spec if isinstance(spec, str) else "?", percentile=percentile,
        limits_ms=limits, points=points,
        answer=tuple(line for line in answer if isinstance(line, str)) if isinstance(answer, list) else (),
        knee_throughput=_number(_dict(data.get("knee")).get("throughput"), 0.0),
        capacity_rate=_number(_dict(data.get("capacity")).get("request_rate"), 0.0), samples=tuple(samples),
        partial=data.get("partial") is True, stop_reason=stop if isinstance(stop, str) else None,
        model_id=model if isinstance(model, str) else None)


def _read_json(path: str | Path) -> Any:
    raw = read_file_bytes(path)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TokdeckError(f"{path}: not JSON ({' '.join(str(exc).split())})") from None


def _run_of(data: Any, path: str | Path) -> RunData:
    p = Path(path).expanduser()
    if not isinstance(data, dict) or not any(k in data for k in ("completed", "request_throughput", "mean_ttft_ms")):
        raise TokdeckError(f"{path}: not a benchmark result (no completed/request_throughput keys)")
    return run_from_dict(data, p.stem, str(p))


def _sweep_of(data: Any, path: str | Path) -> SweepData:
    p = Path(path).expanduser()
    if not isinstance(data, dict) or "tokdeck_sweep" not in data:
        raise TokdeckError(f"{path}: not a sweep (no tokdeck_sweep key)")
    try:
        return sweep_from_dict(data, p.stem, str(p))
    except ValueError as exc:
        raise TokdeckError(f"{path}: not a sound sweep file: {exc}") from None


def load_result_file(path: str | Path) -> RunData:
    """Open a saved result (tokdeck's or vLLM's JSON); one-line TokdeckError when it is not one."""
    return _run_of(_read_json(path), path)


def load_sweep_file(path: str | Path) -> SweepData:
    """Open a saved sweep; one-line TokdeckError when it is not one."""
    return _sweep_of(_read_json(path), path)


def load_history_file(path: str | Path) -> RunData | SweepData:
    """Open what History lists: a sweep (its ``tokdeck_sweep`` key) or a run's result."""
    data = _read_json(path)
    if isinstance(data, dict) and "tokdeck_sweep" in data:
        return _sweep_of(data, path)
    return _run_of(data, path)


#: a sweep file says so in its first key; this much of a file's start is read to tell
SWEEP_MARK_BYTES = 256


@dataclass(frozen=True)
class ResultFile:
    path: Path
    mtime: float
    size: int
    sweep: bool = False  # a saved sweep (``"tokdeck_sweep"`` at its start)


def _is_sweep_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return b'"tokdeck_sweep"' in f.read(SWEEP_MARK_BYTES)
    except OSError:
        return False


def list_result_files(folder: str | Path, limit: int = 500) -> list[ResultFile]:
    """The ``*.json`` files of ``folder`` (not recursive), newest first; [] when it does not exist."""
    out = []
    try:
        entries = list(Path(folder).expanduser().glob("*.json"))
    except OSError:
        return []
    for p in entries:
        try:
            st = p.stat()
        except OSError:
            continue
        if p.is_file():
            out.append(ResultFile(p, st.st_mtime, st.st_size))
    out.sort(key=lambda f: f.mtime, reverse=True)
    return [replace(f, sweep=_is_sweep_file(f.path)) for f in out[:limit]]


# ---------------------------------------------------------------------- comparing
#: (key, label, lower is better) in table order; stats rows come from RunData.stats
COMPARE_KEYS: tuple[tuple[str, str, bool], ...] = (
    ("completed", "completed", False),
    ("failed", "failed", True),
    ("duration", "duration (s)", True),
    ("request_throughput", "requests/s", False),
    ("request_goodput", "goodput (req/s)", False),
    ("output_throughput", "output tok/s", False),
    ("total_token_throughput", "total tok/s", False),
    ("max_output_tokens_per_s", "peak output tok/s", False),
)
STAT_FIELDS = ("mean", "p50", "p90", "p99")


@dataclass(frozen=True)
class CompareRow:
    label: str
    values: tuple[float | None, ...]  # one per run
    deltas: tuple[float | None, ...]  # value - first run's (None for the first run or unknown)
    percents: tuple[float | None, ...]  # delta / first run's, in %
    lower_is_better: bool


def _row(label: str, values: list[float | None], lower: bool) -> CompareRow:
    base = values[0]
    deltas: list[float | None] = [None]
    pcts: list[float | None] = [None]
    for v in values[1:]:
        if v is None or base is None:
            deltas.append(None)
            pcts.append(None)
        else:
            deltas.append(v - base)
            pcts.append((v - base) / base * 100.0 if base else None)
    return CompareRow(label, tuple(values), tuple(deltas), tuple(pcts), lower)


def compare(runs: Sequence[RunData]) -> list[CompareRow]:
    """Rows of every metric known for at least one run; deltas against ``runs[0]``."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    rows = []
    for key, label, lower in COMPARE_KEYS:
        values = [r.value(key) for r in runs]
        if any(v is not None for v in values):
            rows.append(_row(label, values, lower))
    for m in METRICS:
        for f in STAT_FIELDS:
            values = [getattr(r.stats.get(m), f) if r.stats.get(m) is not None else None for r in runs]
            if any(v is not None for v in values):
                rows.append(_row(f"{m.upper()} {f} (ms)", values, True))
    return rows
