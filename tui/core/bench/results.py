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
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterator

from .metrics import (DEFAULT_PERCENTILE_METRICS, DEFAULT_PERCENTILES, is_good, peak_concurrency,
                      peak_output_tokens_per_s, percentile_word, summarize, tpot_of)

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


def compute_summary(store: RecordStore, duration: float, percentile_metrics=DEFAULT_PERCENTILE_METRICS,
                    percentiles=DEFAULT_PERCENTILES, goodput: dict[str, float] | None = None) -> dict[str, Any]:
    """vLLM's result numbers (keys as ``vllm bench serve`` writes them) from the store."""
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
    out: dict[str, Any] = {
        "duration": duration,
        "completed": len(rows),
        "failed": len(store) - len(rows),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(rows) / dur if rows else 0.0,
        "request_goodput": (good / dur if rows else 0.0) if good is not None else None,
        "output_throughput": total_out / dur if rows else 0.0,
        "total_token_throughput": (total_in + total_out) / dur if rows else 0.0,
        "max_output_tokens_per_s": peak_output_tokens_per_s(starts, ttfts, e2els, lambda i: store.itls(rows[i])),
        "max_concurrent_requests": peak_concurrency(starts, e2els),
    }
    values = {"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els}
    for m in percentile_metrics:
        s = summarize(values[m], percentiles)
        out[f"mean_{m}_ms"] = s["mean"]
        out[f"median_{m}_ms"] = s["median"]
        out[f"std_{m}_ms"] = s["std"]
        for p, v in s["percentiles"]:
            out[f"p{percentile_word(p)}_{m}_ms"] = v
    return out


@dataclass(frozen=True)
class BenchResult:
    """The final result of a run (complete, or partial after a stop)."""

    setup: dict[str, Any]  # date, backend, model_id, tokenizer_id, num_prompts, request_rate, ...
    summary: dict[str, Any]  # compute_summary(): vLLM's numbers
    percentile_metrics: tuple[str, ...]
    percentiles: tuple[float, ...]
    goodput: dict[str, float] | None
    token_sources: dict[str, dict[str, int]]
    client_health: dict[str, Any]
    error_reasons: dict[str, int]
    partial: bool
    cancelled: int
    warmup: dict[str, int]
    store: RecordStore = field(repr=False, compare=False)
    usage_ignored: dict[str, int] = field(default_factory=dict)  # why the server's usage was not believed
    #: faults of the engine itself, e.g. requests neither completed, failed nor cancelled
    internal_errors: tuple[str, ...] = ()

    # --- convenience
    @property
    def completed(self) -> int:
        return self.summary["completed"]

    @property
    def failed(self) -> int:
        return self.summary["failed"]

    @property
    def duration(self) -> float:
        return self.summary["duration"]

    def records(self) -> Iterator[RequestRecord]:
        """Every request in dispatch order."""
        for row in self.store.order():
            yield self.store.record(row)

    # --- export
    def to_vllm_json(self, detailed: bool = False) -> dict[str, Any]:
        """vLLM's result keys (``--save-result``), then tokdeck's; ``detailed`` adds the arrays."""
        out: dict[str, Any] = dict(self.setup)
        s = self.summary
        for key in ("duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
                    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
                    "max_output_tokens_per_s", "max_concurrent_requests"):
            out[key] = s[key]
        for m in self.percentile_metrics:
            for k in (f"mean_{m}_ms", f"median_{m}_ms", f"std_{m}_ms"):
                out[k] = s[k]
            for p in self.percentiles:
                k = f"p{percentile_word(p)}_{m}_ms"
                out[k] = s[k]
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
        out["client_health"] = self.client_health
        out["error_reasons"] = self.error_reasons
        out["usage_ignored"] = self.usage_ignored
        out["warmup"] = self.warmup
        out["internal_errors"] = list(self.internal_errors)
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
