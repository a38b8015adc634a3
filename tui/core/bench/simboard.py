"""The simulator's own counters, shared by its worker processes: one row of numbers per worker.

Each worker writes only its own row (plain float64 stores, no lock); ``/health`` and ``/metrics``
of any worker add up every row, so whichever process a connection lands on, it reports the whole
server. One worker keeps its board in private memory; several share a file mapped by each
(:meth:`SimBoard.create` with ``shared=True``, :meth:`SimBoard.attach` in the others), which
the first worker removes once all have mapped it.

Write lateness (how far behind its TTFT/ITL schedule the server wrote a content chunk or a JSON
response) is kept as a histogram with 20 logarithmic buckets per decade from 0.01 ms to 100 s,
so percentiles over all workers can be merged; a percentile is given as its bucket's upper bound
(at most 12 % high; above 100 s, the maximum), the maximum exactly.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from bisect import bisect_left
from dataclasses import dataclass
from typing import Iterable

#: how a finished request ended, as counted on the board (``SimRecord.fault``, or "ok")
OUTCOMES = ("ok", "error", "cut", "malformed", "midstream_error", "bad_request", "client_gone", "cancelled")
#: upper bounds (ms) of the lateness buckets; one more bucket holds everything above the last
LATE_BOUNDS_MS = tuple(10 ** (e / 20) for e in range(-40, 101))

# the slots of a row
RUNNING, WAITING, PROMPT_TOKENS, GENERATION_TOKENS, FINISHED_STOP, FINISHED_LENGTH = range(6)
_OUTCOME0 = 6
LATE_COUNT = _OUTCOME0 + len(OUTCOMES)
LATE_SUM_MS = LATE_COUNT + 1
LATE_MAX_MS = LATE_COUNT + 2
_HIST0 = LATE_COUNT + 3
ROW_SLOTS = _HIST0 + len(LATE_BOUNDS_MS) + 1
_DOUBLE = 8


class BoardRow:
    """One worker's row. ``values`` is the raw float64 view, for the hot path (``values[GENERATION_TOKENS] += n``)."""

    __slots__ = ("values",)

    def __init__(self, values: memoryview[float]) -> None:
        self.values = values

    def set_batch(self, running: int, waiting: int) -> None:
        self.values[RUNNING] = running
        self.values[WAITING] = waiting

    def finished(self, outcome: str, finish_reason: str | None, prompt_tokens: int) -> None:
        v = self.values
        v[_OUTCOME0 + OUTCOMES.index(outcome)] += 1
        if finish_reason == "stop":
            v[FINISHED_STOP] += 1
        elif finish_reason == "length":
            v[FINISHED_LENGTH] += 1
        v[PROMPT_TOKENS] += prompt_tokens

    def add_lateness(self, late_ms: Iterable[float]) -> None:
        v = self.values
        n, total, worst = 0, 0.0, float(v[LATE_MAX_MS])
        for x in late_ms:
            v[_HIST0 + bisect_left(LATE_BOUNDS_MS, x)] += 1
            n += 1
            total += x
            if x > worst:
                worst = x
        v[LATE_COUNT] += n
        v[LATE_SUM_MS] += total
        v[LATE_MAX_MS] = worst

    def outcomes(self) -> dict[str, int]:
        return {name: int(self.values[_OUTCOME0 + i]) for i, name in enumerate(OUTCOMES) if self.values[_OUTCOME0 + i]}


@dataclass(frozen=True)
class BoardTotals:
    """Every worker's row added up (gauges and counters), at one moment."""

    running: int
    waiting: int
    prompt_tokens: int
    generation_tokens: int
    finished: dict[str, int]  # successful requests by finish_reason (stop, length)
    outcomes: dict[str, int]  # finished requests by outcome (OUTCOMES), only those that occurred
    late_ms: dict[str, float]  # {"writes", "mean", "p50", "p99", "max"}: every content chunk or JSON response


class SimBoard:
    """The rows of all workers. ``row(k)`` is worker k's; ``totals()`` adds them up."""

    def __init__(self, memory: mmap.mmap, workers: int, path: str | None) -> None:
        self.workers = workers
        self.path = path  # the shared file while it exists (None: private memory)
        self._memory = memory
        self._values = memoryview(memory).cast("d")
        self._rows = [BoardRow(self._values[k * ROW_SLOTS:(k + 1) * ROW_SLOTS]) for k in range(workers)]

    @classmethod
    def create(cls, workers: int = 1, shared: bool = False) -> "SimBoard":
        """A zeroed board; ``shared``: in a file that other processes can :meth:`attach`."""
        size = workers * ROW_SLOTS * _DOUBLE
        if not shared:
            return cls(mmap.mmap(-1, size), workers, None)
        fd, path = tempfile.mkstemp(prefix="tokdeck-sim-", suffix=".board")
        try:
            os.ftruncate(fd, size)
            memory = mmap.mmap(fd, size)
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        return cls(memory, workers, path)

    @classmethod
    def attach(cls, path: str, workers: int) -> "SimBoard":
        """Map the board another process created."""
        fd = os.open(path, os.O_RDWR)
        try:
            memory = mmap.mmap(fd, workers * ROW_SLOTS * _DOUBLE)
        finally:
            os.close(fd)
        return cls(memory, workers, None)

    def unlink(self) -> None:
        """Remove the shared file (every worker has mapped it; the mappings stay valid)."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def row(self, worker: int) -> BoardRow:
        return self._rows[worker]

    def totals(self) -> BoardTotals:
        sums = [0.0] * ROW_SLOTS
        worst = 0.0
        for row in self._rows:
            values = row.values.tolist()
            for i, x in enumerate(values):
                sums[i] += x
            worst = max(worst, values[LATE_MAX_MS])
        outcomes = {name: int(sums[_OUTCOME0 + i]) for i, name in enumerate(OUTCOMES) if sums[_OUTCOME0 + i]}
        return BoardTotals(
            running=int(sums[RUNNING]), waiting=int(sums[WAITING]), prompt_tokens=int(sums[PROMPT_TOKENS]),
            generation_tokens=int(sums[GENERATION_TOKENS]),
            finished={"stop": int(sums[FINISHED_STOP]), "length": int(sums[FINISHED_LENGTH])},
            outcomes=outcomes, late_ms=_late_summary(sums[_HIST0:], int(sums[LATE_COUNT]), sums[LATE_SUM_MS], worst))

    def close(self) -> None:
        self.unlink()
        for row in self._rows:
            row.values.release()
        self._rows = []
        self._values.release()
        self._memory.close()


def _late_summary(hist: list[float], count: int, total: float, worst: float) -> dict[str, float]:
    out: dict[str, float] = {"writes": count, "mean": round(total / count, 3) if count else 0.0}
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        out[name] = round(_bucket_quantile(hist, count, q, worst), 3)
    out["max"] = round(worst, 3)
    return out


def _bucket_quantile(hist: list[float], count: int, q: float, worst: float) -> float:
    """The upper bound of the bucket holding the q-quantile (never above the exact maximum)."""
    if not count:
        return 0.0
    rank = max(1.0, q * count)
    seen = 0.0
    for i, n in enumerate(hist):
        seen += n
        if seen >= rank:
            return min(LATE_BOUNDS_MS[i], worst) if i < len(LATE_BOUNDS_MS) else worst
    return worst


#: ``GET /metrics`` content type: Prometheus text format 0.0.4, which every scraper reads
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_metrics(totals: BoardTotals, model: str, max_batch: int | None) -> bytes:
    """Prometheus text exposition with vLLM's metric names and labels (``model_name``, ``engine``),
    so a scraper written for vLLM reads the simulator too."""
    labels = f'engine="0",model_name="{_label_value(model)}"'
    out: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{{{labels}{extra}}} {float(value)!r}" for extra, value in samples)

    family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
           [("", totals.running)])
    family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           [("", totals.waiting)])
    family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           [("", totals.running / max_batch if max_batch else 0.0)])
    family("vllm:request_success_total", "counter", "Count of successfully processed requests.",
           [(f',finished_reason="{reason}"', n) for reason, n in totals.finished.items()])
    family("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           [("", totals.prompt_tokens)])
    family("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
           [("", totals.generation_tokens)])
    return ("\n".join(out) + "\n").encode()


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
