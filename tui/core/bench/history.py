"""Runs to look back at: session results and saved result files, opened and compared.

- ``RunData``: one finished run as the dashboard shows it: a name, where it came from, its
  summary and client health (the dataclasses of a result), per-request series when known,
  statistics per metric.
- ``from_result(result, name)``: a run of this session (exact statistics from its records).
- ``load_result_file(path)``: tokdeck's JSON or ``vllm bench serve --save-result`` JSON
  (including vLLM's old ``"request_goodput:"`` key). Per-request series come from the detailed
  arrays (``ttfts``, ``output_lens``, ``latencies`` - for vLLM's files TTFT plus the ``itls`` -,
  optional ``start_times`` and ``errors``); without them only the summary numbers are known.
- ``list_result_files(folder)``: the JSON files of a folder, newest first.
- ``compare(runs)``: one row per metric, each run's value and its delta against the first run.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import orjson

from ..errors import TokdeckError
from ..paths import read_file_bytes
from .metrics import METRICS, summarize, tpot_of
from .results import BenchResult, ClientHealth, Summary

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
                   error_reasons=dict(result.error_reasons), internal_errors=result.internal_errors)


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
        internal_errors=tuple(e for e in internal if isinstance(e, str)) if isinstance(internal, list) else ())


def load_result_file(path: str | Path) -> RunData:
    """Open a saved result (tokdeck's or vLLM's JSON); one-line TokdeckError when it is not one."""
    p = Path(path).expanduser()
    raw = read_file_bytes(path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TokdeckError(f"{path}: not JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or not any(k in data for k in ("completed", "request_throughput", "mean_ttft_ms")):
        raise TokdeckError(f"{path}: not a benchmark result (no completed/request_throughput keys)")
    return run_from_dict(data, p.stem, str(p))


@dataclass(frozen=True)
class ResultFile:
    path: Path
    mtime: float
    size: int


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
    return out[:limit]


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
