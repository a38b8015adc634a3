"""The load engine: dispatch requests on vLLM's schedule, time them, stream results out.

    spec = BenchSpec(base_url="http://gpu1:8000", model="qwen3-8b", ...)
    run = BenchmarkRun(spec, requests, counter)
    async for item in run.events():      # RequestRecord as each finishes, RunSnapshot every 0.25 s
        ...
    result = run.result                  # BenchResult (partial=True after run.stop())

    result = await run_benchmark(spec, requests, counter, on_event=print)   # callback form
    with BenchmarkThread(spec, requests, counter) as bt: ...                # own thread + loop

Measuring from inside a UI: a render on the event loop that timestamps chunks delays the
timestamps, so a UI runs the engine with ``BenchmarkThread`` (its own thread and event loop)
and only draws what comes out of its queue.

Load: arrivals per ``arrivals.arrival_times``; ``max_concurrency`` is a semaphore taken by the
dispatcher in arrival order (what vLLM's per-task semaphore amounts to), so only that many
request tasks exist at once and 100,000 requests stay bounded. Per request the engine records
its client queue time (waiting for a slot) and its schedule lag (how much later than planned it
was sent, queue time excluded: the client's own slowness). A ticker measures event-loop lag
(oversleep of a 10 ms sleep). One aiohttp session and connector serve every request
(no connection limit: the semaphore is the limit).

Accounting: every request dispatched ends completed, failed (with a reason) or, after a stop,
cancelled. A fault inside one request's handling fails that request ("internal error: ...") and
the run goes on. At the end the engine checks ``dispatched == completed + failed + cancelled``;
a violation, or a helper task that crashed, is never dropped: it goes into
``BenchResult.internal_errors`` (the summary, the JSON, the CLI's exit status 70, the pane).
Reasons and kept texts pass through a ``Redactor``: the API key and header values never reach
a result.
"""

from __future__ import annotations

import asyncio
import gc
import math
import queue as _queue
import ssl
import sys
import threading
import time
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from time import perf_counter
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Sequence

import aiohttp

from ..errors import TokdeckError
from .arrivals import arrival_times
from .client import (DEFAULT_ENDPOINTS, BenchRequest, Outcome, build_body, internal_error, send_plain,
                     send_streaming)
from .metrics import DEFAULT_PERCENTILE_METRICS, DEFAULT_PERCENTILES, percentile, summarize
from .redact import Redactor, clip, redact_url, url_password
from .servermetrics import MetricsScraper, ServerSample, run_with_server_view
from .results import (BenchResult, ClientHealth, RecordStore, RequestRecord, RunSnapshot, Spread, compute_summary,
                      error_reason)

#: the event-loop lag above which the client, not the server, limited the run: the p99 lag
#: exceeds the larger of 1 ms and the smaller of 5 % of the median TTFT and 25 % of the median
#: ITL (a late loop adds its lag to TTFT and ITL samples one for one).
LAG_FLOOR_MS = 1.0
LAG_TTFT_SHARE = 0.05
LAG_ITL_SHARE = 0.25
LOOP_TICK_S = 0.010
#: aiohttp writes a request inside ``session.post()`` from Python 3.12 (an eager task); before,
#: from a task of its own one loop iteration later, and a new connection takes several
#: iterations on any version. Requests due together (a burst, a closed-loop wave) that were all
#: created at once would take all their ``st`` first and send afterwards, adding up to N x the
#: set-up time to every TTFT (+30-50 ms at 64-256 streams). So the dispatcher yields after each
#: request that may not be sent at once - every request before 3.12, one needing a new connection
#: after - and the wait moves before ``st``, where it shows as schedule lag.
EAGER_WRITES = sys.version_info >= (3, 12)
RECENT = 256  # completed requests in the live percentiles
REASON_LIMIT = 300  # characters of a failure reason kept
#: the source label of counts made locally because the server's usage could not be believed
INVALID_USAGE = " (invalid usage ignored)"


@dataclass(frozen=True)
class BenchSpec:
    """Everything that defines a run except the prompts and the tokenizer."""

    base_url: str
    model: str
    backend: str = "openai-chat"
    endpoint: str | None = None  # default per backend
    request_rate: float = math.inf
    burstiness: float = 1.0
    max_concurrency: int | None = None
    num_warmups: int = 0
    duration: float | None = None  # stop dispatching after this many seconds
    seed: int = 0
    ramp_up: tuple[str, float, float] | None = None  # (linear|exponential, start rps, end rps)
    stream: bool = True
    ignore_eos: bool = False
    temperature: float | None = None
    extra_body: dict | None = None
    headers: tuple[tuple[str, str], ...] = ()
    api_key: str | None = field(default=None, repr=False)
    insecure: bool = False
    ca_bundle: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float | None = 600.0
    keep_texts: bool = False
    percentile_metrics: tuple[str, ...] = DEFAULT_PERCENTILE_METRICS
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    goodput: dict[str, float] | None = None
    snapshot_interval: float = 0.25
    label: str | None = None
    dataset_name: str | None = None
    tokenizer_id: str | None = None

    @property
    def url(self) -> str:
        return endpoint_url(self.base_url, self.endpoint or DEFAULT_ENDPOINTS[self.backend])


def endpoint_url(base_url: str, endpoint: str) -> str:
    """base + endpoint; a base that already ends in /v1 is accepted for /v1/... endpoints."""
    base = base_url.rstrip("/")
    if not endpoint.startswith("/"):
        endpoint = "/" + endpoint
    if base.endswith("/v1") and endpoint.startswith("/v1/"):
        base = base[:-3]
    return base + endpoint


class TokenCounter:
    """Counts output (and prompt) tokens locally when the server sends no usage."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        fmt = getattr(getattr(tokenizer, "info", None), "format", "estimate")
        self.source = "estimate" if fmt == "estimate" else f"tokenizer:{tokenizer.id}"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self.tokenizer.count_many(list(texts), "literal")


def ssl_setting(url: str, insecure: bool, ca_bundle: str | None):
    if not url.startswith("https"):
        return None
    if insecure:
        return False
    try:
        return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise TokdeckError(f"--ca-bundle {ca_bundle}: cannot load the certificates: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None


def make_session(spec: BenchSpec) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ssl=ssl_setting(spec.base_url, spec.insecure,
                                                                                  spec.ca_bundle),
                                     keepalive_timeout=60, enable_cleanup_closed=False)
    # no sock_read: aiohttp would re-arm a timer on every chunk (~10 % of the client's CPU per
    # chunk); the engine's watchdog enforces spec.read_timeout from each request's last read
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=spec.connect_timeout,
                                    sock_read=None)
    # read_bufsize: the stream buffer limit; SSE lines of long chunks must not stall on it
    return aiohttp.ClientSession(connector=connector, timeout=timeout, read_bufsize=1 << 20,
                                 auto_decompress=True, trust_env=False)


def request_headers(spec: BenchSpec) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if spec.stream else "application/json"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    for k, v in spec.headers:  # a given header replaces ours whatever its case (one Authorization, not two)
        for same in [h for h in headers if h.lower() == k.lower()]:
            del headers[same]
        headers[k] = v
    return headers


Event = RequestRecord | RunSnapshot
#: a request to send: its index in the run, when it is due (seconds from the start) and the prompt
Scheduled = tuple[int, float, BenchRequest]



async def run_as_events(run: Callable[[Callable[[Any], None]], Coroutine[Any, Any, Any]],
                        stop: Callable[[], None]) -> AsyncIterator[Any]:
    """The events ``run(on_event)`` emits, as an async iterator: a crash is re-raised at the end;
    a consumer that leaves early stops the run (its outcome stays where ``run`` puts it)."""
    q: asyncio.Queue = asyncio.Queue()
    done = object()
    task = asyncio.create_task(run(q.put_nowait))
    task.add_done_callback(lambda _t: q.put_nowait(done))
    try:
        while True:
            item = await q.get()
            if item is done:
                break
            yield item
        task.result()  # re-raise a crash
    finally:
        if not task.done():
            stop()
        # the consumer left early: a crash has no one to go to
        await asyncio.gather(task, return_exceptions=True)

class BenchmarkRun:
    """One benchmark run. Use from the event loop that runs it (``BenchmarkThread`` for others).

    A worker of a run spread over processes (``workers``) gives two more things: ``schedule``,
    the requests to send as they come (index, due, prompt; it ends when the worker's share
    does), instead of every one of ``requests`` on the arrival process (``requests`` then only
    serves the warm-ups); and ``start_at``, awaited after the warm-ups, which returns the
    ``perf_counter()`` instant every worker starts from (the common origin of due and start times).
    """

    def __init__(self, spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter | None = None,
                 *, emit_records: bool = True, schedule: AsyncIterable[Scheduled] | None = None,
                 start_at: Callable[[], Awaitable[float]] | None = None) -> None:
        if not requests and (schedule is None or spec.num_warmups):
            raise ValueError("no requests to send")
        self.spec = spec
        self.requests = requests
        self._schedule = schedule
        self._start_at = start_at
        if counter is None:
            from ..tokenizers import default_registry

            counter = TokenCounter(default_registry().get("estimate"))
        self.counter = counter
        self.emit_records = emit_records
        self.result: BenchResult | None = None
        self._stop_requested = False
        # no loop needed to make them: an asyncio.Event binds to the loop that first waits on it
        self._stop_ev = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emit: Callable[[Event], None] = lambda e: None
        self.store = RecordStore(keep_texts=spec.keep_texts, streamed=spec.stream)
        self._inflight: dict[asyncio.Task, Outcome] = {}
        self._watched: dict[asyncio.Task, Outcome] = {}  # every request in flight, warm-ups too
        self._conns = 0  # the most requests in flight so far: connections the pool has opened
        self._sem: asyncio.Semaphore | None = None
        self._freed: deque[float] = deque()
        self._dispatched = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._tot_in = 0
        self._tot_out = 0
        self._chunks_done = 0
        self._t0 = 0.0
        self._t_last_end = 0.0
        self._lag = array("d")
        self._lag_recent = 0.0
        self._recent_ttft: deque[float] = deque(maxlen=RECENT)
        self._recent_tpot: deque[float] = deque(maxlen=RECENT)
        self._recent_itl: deque[float] = deque(maxlen=RECENT * 8)
        self._pending_count: list[tuple[RequestRecord, str]] = []
        self._count_wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._dispatch_done = False
        self._warmup = {"requests": 0, "failed": 0}
        self._stopped_by: str | None = None
        self._cpu0 = 0.0
        self._wall_prev = 0.0
        self._chunks_prev = 0
        self._redactor = Redactor([spec.api_key, url_password(spec.base_url), *(v for _, v in spec.headers)])
        self._usage_ignored: Counter[str] = Counter()  # why a request's usage was not believed
        self._internal_errors: list[str] = []  # faults of the engine itself (see the module doc)

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Stop dispatching and cancel requests in flight; the result is marked partial.

        Call from the run's own event loop (``BenchmarkThread.stop`` is the thread-safe form)."""
        self._stop_requested = True
        self._stop_ev.set()

    @property
    def stopped(self) -> bool:
        return self._stop_requested

    @property
    def loop_lag(self) -> array:
        """Every event-loop lag sample so far (seconds; one per 10 ms tick of the measured run)."""
        return self._lag

    @property
    def clock_origin(self) -> float:
        """``time.perf_counter()`` when the measured run started (0 before): every record's
        ``start_time`` counts from it, so ``clock_origin + start_time`` is the absolute moment
        just before the POST (CLOCK_MONOTONIC on Linux, comparable across processes)."""
        return self._t0

    def events(self) -> AsyncIterator[Event]:
        """Run the benchmark, yielding records and snapshots; ``self.result`` is set at the end."""
        return run_as_events(self.run, self.stop)

    async def run(self, on_event: Callable[[Event], None] | None = None) -> BenchResult:
        """Run to the end (or until ``stop()``); returns the result (also in ``self.result``)."""
        self._loop = asyncio.get_running_loop()
        if on_event is not None:
            self._emit = on_event
        session = make_session(self.spec)
        self._headers = request_headers(self.spec)
        self._url = self.spec.url
        # as vLLM does: objects alive now (dataset, tokenizers) leave the collector's scans, which
        # keeps full collections - pauses that delay chunk timestamps - short during the run
        gc.collect()
        gc.freeze()
        watchdog = asyncio.create_task(self._watchdog())
        try:
            if self.spec.num_warmups > 0 and not self._stop_requested:
                await self._run_warmups(session)
            await self._run_main(session, watchdog)
        finally:
            watchdog.cancel()
            gc.unfreeze()
            await asyncio.gather(watchdog, return_exceptions=True)
            await session.close()
        assert self.result is not None  # _run_main sets it, or raised
        return self.result

    def _note_crashes(self, outcomes: Sequence[Any], names: Sequence[str]) -> None:
        """Keep what helper tasks raised (a cancellation is how they end, not a crash)."""
        for name, outcome in zip(names, outcomes):
            if isinstance(outcome, Exception):
                self._internal_errors.append(f"the {name} crashed: {internal_error(outcome)}")

    # ------------------------------------------------------------------ requests
    def _body(self, req: BenchRequest) -> bytes:
        s = self.spec
        return build_body(s.backend, s.model, req, stream=s.stream, ignore_eos=s.ignore_eos,
                          temperature=s.temperature, extra=s.extra_body)

    async def _send(self, session, req: BenchRequest, out: Outcome) -> Outcome:
        body = self._body(req)
        if self.spec.stream:
            return await send_streaming(session, self._url, body, self._headers, out, self.spec.read_timeout)
        return await send_plain(session, self._url, body, self._headers, out, self.spec.read_timeout)

    async def _run_warmups(self, session) -> None:
        n = self.spec.num_warmups
        sem = asyncio.Semaphore(self.spec.max_concurrency or n)

        async def one(i: int) -> Outcome:
            async with sem:
                out = Outcome()
                task = asyncio.current_task()
                assert task is not None, "a coroutine run by create_task"
                self._watched[task] = out
                self._conns = max(self._conns, len(self._watched))
                try:
                    return await self._send(session, self.requests[i % len(self.requests)], out)
                except asyncio.CancelledError:
                    if not out.timed_out:
                        raise
                    return out
                finally:
                    self._watched.pop(task, None)

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        stopper = asyncio.create_task(self._stop_ev.wait())
        gathered = asyncio.gather(*tasks, return_exceptions=True)
        either: set[asyncio.Future[Any]] = {gathered, stopper}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
        if not gathered.done():
            for t in tasks:
                t.cancel()
            await asyncio.gather(gathered, return_exceptions=True)
        outs = [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
        self._warmup = {"requests": n, "failed": sum(1 for o in outs if not o.ok) + (n - len(outs))}

    async def _run_main(self, session, watchdog: asyncio.Task) -> None:
        spec = self.spec
        if self._schedule is not None:
            items = self._schedule
        else:
            items = self._planned(arrival_times(len(self.requests), spec.request_rate, spec.burstiness, spec.seed,
                                                spec.ramp_up))
        self._sem = asyncio.Semaphore(spec.max_concurrency) if spec.max_concurrency else None
        self._freed = deque([0.0] * (spec.max_concurrency or 0))  # when each free slot became free
        origin = None
        if self._start_at is not None:
            origin = await self._start_at()
            if origin > perf_counter():
                await asyncio.sleep(origin - perf_counter())
        self._cpu0 = time.process_time()
        self._t0 = self._wall_prev = perf_counter() if origin is None else origin
        helpers = [asyncio.create_task(self._lag_ticker()), asyncio.create_task(self._snapshotter())]
        counter_task = asyncio.create_task(self._counter_loop())
        dispatcher = asyncio.create_task(self._dispatch(session, items))
        stopper = asyncio.create_task(self._stop_ev.wait())
        idle = asyncio.create_task(self._wait_idle(dispatcher))
        await asyncio.wait({idle, stopper}, return_when=asyncio.FIRST_COMPLETED)
        partial = False
        if not idle.done():  # stopped
            partial = True
            dispatcher.cancel()
            tasks = list(self._inflight)
            for t in tasks:
                t.cancel()
            outcomes = await asyncio.gather(dispatcher, *tasks, return_exceptions=True)
            self._note_crashes(outcomes[:1], ["dispatcher"])  # request tasks report through _reap
            idle.cancel()
            end = perf_counter()
        else:
            end = self._t_last_end or perf_counter()
            stopper.cancel()
            # stopped before anything was sent (e.g. during the warm-up): nothing ran to the end
            partial = self._stop_requested and self._dispatched < len(self.requests)
        self._note_crashes(await asyncio.gather(idle, stopper, return_exceptions=True), ["dispatcher", "stop waiter"])
        wall = perf_counter() - self._t0
        cpu = time.process_time() - self._cpu0
        self._count_wake.set()
        # count the outputs of requests without usage
        self._note_crashes(await asyncio.gather(counter_task, return_exceptions=True), ["token counter"])
        if self._pending_count:  # finished while the counter was shutting down (or after it crashed)
            batch, self._pending_count = self._pending_count, []
            self._record_counted(batch, self._count(batch))
        for h in helpers:
            h.cancel()
        self._note_crashes(await asyncio.gather(*helpers, return_exceptions=True), ["lag ticker", "snapshotter"])
        if watchdog.done():  # it only ends early by crashing
            self._note_crashes(await asyncio.gather(watchdog, return_exceptions=True), ["read-timeout watchdog"])
        self._check_accounting()
        duration = max(end - self._t0, 0.0)
        self.result = self._build_result(duration, partial, cpu / wall if wall > 0 else 0.0)
        self._emit_safely(self._snapshot(done=True, elapsed=duration))

    def _check_accounting(self) -> None:
        """Every dispatched request must have ended completed, failed or cancelled; never pass silently."""
        ended = self._completed + self._failed + self._cancelled
        if ended != self._dispatched or len(self.store) != self._completed + self._failed:
            self._internal_errors.append(
                f"accounting: {self._dispatched:,} request(s) sent but {self._completed:,} completed, "
                f"{self._failed:,} failed and {self._cancelled:,} cancelled ({len(self.store):,} recorded): "
                f"{self._dispatched - ended:,} unaccounted for; the figures are incomplete")

    async def _wait_idle(self, dispatcher: asyncio.Task) -> None:
        await dispatcher
        self._dispatch_done = True
        if self._inflight:
            await self._idle.wait()

    async def _planned(self, times: list[float]) -> AsyncIterator[Scheduled]:
        """Every request at its time on the arrival process."""
        for i, req in enumerate(self.requests):
            yield i, times[i], req

    async def _dispatch(self, session, items: AsyncIterable[Scheduled]) -> None:
        t0 = self._t0
        sem = self._sem
        limit = self.spec.duration
        async for i, due, req in items:
            if self._stop_requested:
                break
            if limit is not None and due >= limit:
                self._stopped_by = "duration"
                break
            wait = t0 + due - perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if limit is not None and perf_counter() - t0 >= limit:
                self._stopped_by = "duration"
                break
            queue_time = 0.0
            if sem is not None:
                await sem.acquire()
                # the slot this request takes became free at the oldest release not yet taken:
                # waiting past its due time until then is queue time, any later delay is ours
                freed = self._freed.popleft()
                if freed > due:
                    queue_time = freed - due
            out = Outcome()
            task = asyncio.create_task(self._request(session, i, req, due, queue_time, out))
            task.add_done_callback(self._reap)
            self._inflight[task] = self._watched[task] = out
            self._dispatched += 1
            # let this request send before the next one takes its ``st`` (see EAGER_WRITES)
            busy = len(self._watched)
            new_conn = busy > self._conns
            if new_conn:
                self._conns = busy
            if new_conn or not EAGER_WRITES or not self._dispatched % 256:
                await asyncio.sleep(0)

    async def _request(self, session, i: int, req: BenchRequest, due: float, queue_time: float,
                       out: Outcome) -> None:
        try:
            await self._send(session, req, out)
        except asyncio.CancelledError:
            if not out.timed_out:
                self._cancelled += 1
                raise
            # cancelled by the watchdog: a failed request (out.error says why), not a stop
        except Exception as exc:  # noqa: BLE001 - a fault of ours fails this request, not the run
            out.error = internal_error(exc)
        finally:
            task = asyncio.current_task()
            assert task is not None, "a coroutine run by create_task"
            self._inflight.pop(task, None)
            self._watched.pop(task, None)
            if self._sem is not None:
                self._freed.append(perf_counter() - self._t0)
                self._sem.release()
            if self._dispatch_done and not self._inflight:
                self._idle.set()
        t_end = perf_counter()
        if t_end > self._t_last_end:
            self._t_last_end = t_end
        self._finish(i, req, due, queue_time, out)

    def _reap(self, task: asyncio.Task) -> None:
        """Done-callback of every request task: its outcome is always retrieved. A task cancelled
        before its first step never ran its ``finally``: it is counted as cancelled here. An
        exception that escaped ``_request`` is a bug; it is kept for the accounting check."""
        if task.cancelled():
            if self._inflight.pop(task, None) is not None:
                self._watched.pop(task, None)
                self._cancelled += 1
            return
        exc = task.exception()
        if exc is not None:
            self._internal_errors.append(f"a request task crashed: {internal_error(exc)}")

    def _finish(self, i: int, req: BenchRequest, due: float, queue_time: float, out: Outcome) -> None:
        start = out.st - self._t0
        lag = max(start - due - queue_time, 0.0)
        try:
            self._finish_outcome(i, req, start, lag, queue_time, out)
        except Exception as exc:  # noqa: BLE001 - the request still ends, as failed
            self._record(self._failed_record(i, start, lag, queue_time, internal_error(exc)))

    def _failed_record(self, i: int, start: float, lag: float, queue_time: float, error: str) -> RequestRecord:
        return RequestRecord(index=i, ok=False, error=error, start_time=start, ttft=0.0, e2el=0.0, itls=(),
                             input_tokens=0, output_tokens=0, input_source="", output_source="",
                             queue_time=queue_time, schedule_lag=lag, chunks=0,
                             text="" if self.spec.keep_texts else None, streamed=self.spec.stream)

    def _usage_problem(self, req: BenchRequest, out: Outcome) -> str | None:
        """Why the server's usage for this request cannot be believed (None: it can, or there is none)."""
        if out.bad_usage is not None:
            return out.bad_usage
        if out.completion_tokens == 0 and out.ok:
            return "usage.completion_tokens is 0 although output arrived"
        if out.prompt_tokens == 0 and req.input_len:
            return "usage.prompt_tokens is 0 for a non-empty prompt"
        return None

    def _finish_outcome(self, i: int, req: BenchRequest, start: float, lag: float, queue_time: float,
                        out: Outcome) -> None:
        src_local = self.counter.source
        ok = out.ok
        prompt_tokens, completion_tokens = out.prompt_tokens, out.completion_tokens
        bad_usage = self._usage_problem(req, out) if ok else None  # a failed request's counts are not used
        if bad_usage is not None:
            self._usage_ignored[bad_usage] += 1
            prompt_tokens = completion_tokens = None
            src_local += INVALID_USAGE
        if prompt_tokens is not None:
            in_tok, in_src = prompt_tokens, "usage"
        else:
            in_tok, in_src = (req.input_len or 0), src_local
        text = out.text if (self.spec.keep_texts or (ok and completion_tokens is None)) else None
        out_tok, out_src = 0, ""
        if ok:
            out_tok, out_src = (completion_tokens, "usage") if completion_tokens is not None else (0, src_local)
        redact = self._redactor.redact
        error = "" if ok else redact(clip(out.error or "failed", REASON_LIMIT))
        kept = redact(text or "") if self.spec.keep_texts else None
        rec = RequestRecord(
            index=i, ok=ok, error=error, start_time=start,
            ttft=out.ttft if ok else 0.0, e2el=out.e2el if ok else 0.0, itls=tuple(out.itls) if ok else (),
            input_tokens=in_tok, output_tokens=out_tok, input_source=in_src, output_source=out_src,
            queue_time=queue_time, schedule_lag=lag, chunks=out.chunks, text=kept, streamed=self.spec.stream)
        if ok and completion_tokens is None:
            self._pending_count.append((rec, text or ""))
            self._count_wake.set()
        else:
            self._record(rec)

    def _record(self, rec: RequestRecord) -> None:
        try:
            self.store.add(rec)  # all or nothing: a failure leaves the store as it was
        except Exception as exc:  # noqa: BLE001 - a value the store cannot hold: the request fails
            rec = self._failed_record(rec.index, rec.start_time, rec.schedule_lag, rec.queue_time,
                                      internal_error(exc))
            self.store.add(rec)
        if rec.ok:
            self._completed += 1
            self._tot_in += rec.input_tokens
            self._tot_out += rec.output_tokens
            self._chunks_done += rec.chunks
            self._recent_ttft.append(rec.ttft)
            tpot = rec.tpot
            if tpot is not None:
                self._recent_tpot.append(tpot)
            self._recent_itl.extend(rec.itls)
        else:
            self._failed += 1
            self._chunks_done += rec.chunks
        if self.emit_records:
            self._emit_safely(rec)

    def _emit_safely(self, event: Event) -> None:
        """Hand an event to the consumer; a consumer that raises loses its view, not the run."""
        try:
            self._emit(event)
        except Exception as exc:  # noqa: BLE001
            if not any(e.startswith("delivering events") for e in self._internal_errors):
                self._internal_errors.append(f"delivering events to the caller failed: {internal_error(exc)}")

    def _count(self, batch: list[tuple[RequestRecord, str]]) -> list[int] | Exception:
        """Local output counts of a batch, or what counting raised."""
        try:
            counts = self.counter.count_many([t for _, t in batch])
            if len(counts) != len(batch):
                raise ValueError(f"{len(counts)} counts for {len(batch)} texts")
            return counts
        except Exception as exc:  # noqa: BLE001 - those requests fail below; the run goes on
            return exc

    def _record_counted(self, batch: list[tuple[RequestRecord, str]], counts: list[int] | Exception) -> None:
        if isinstance(counts, Exception):
            reason = internal_error(counts)
            for rec, _ in batch:
                self._record(self._failed_record(rec.index, rec.start_time, rec.schedule_lag, rec.queue_time,
                                                 f"counting output tokens failed: {reason}"))
            return
        for (rec, _), n in zip(batch, counts):
            self._record(_with_output(rec, n))

    async def _counter_loop(self) -> None:
        """Counts output tokens of requests without usage, in batches, off the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            await self._count_wake.wait()
            self._count_wake.clear()
            while self._pending_count:
                batch, self._pending_count = self._pending_count, []
                try:
                    counts = await loop.run_in_executor(None, self._count, batch)
                except Exception as exc:  # noqa: BLE001 - e.g. no executor left: these requests fail
                    counts = exc
                self._record_counted(batch, counts)
            if self._dispatch_done and not self._inflight or self._stop_requested:
                if not self._pending_count:
                    return

    async def _watchdog(self) -> None:
        """Fails requests that received nothing for ``read_timeout`` seconds."""
        limit = self.spec.read_timeout
        if not limit:
            return
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            now = perf_counter()
            for task, out in list(self._watched.items()):
                if out.st and now - max(out.st, out.last_read) > limit and not out.timed_out:
                    out.timed_out = True
                    out.error = f"timed out (no data for {limit:g} s)"
                    task.cancel()

    # ------------------------------------------------------------------ health + snapshots
    async def _lag_ticker(self) -> None:
        lag = self._lag
        while True:
            t = perf_counter()
            await asyncio.sleep(LOOP_TICK_S)
            late = perf_counter() - t - LOOP_TICK_S
            late = late if late > 0 else 0.0
            lag.append(late)
            if late > self._lag_recent:
                self._lag_recent = late

    async def _snapshotter(self) -> None:
        interval = self.spec.snapshot_interval
        while True:
            await asyncio.sleep(interval)
            self._emit_safely(self._snapshot())

    def _snapshot(self, done: bool = False, elapsed: float | None = None) -> RunSnapshot:
        now = perf_counter()
        el = elapsed if elapsed is not None else now - self._t0
        chunks = self._chunks_done + sum(o.chunks for o in self._inflight.values())
        dt = now - self._wall_prev
        cps = (chunks - self._chunks_prev) / dt if dt > 0 else 0.0
        self._wall_prev, self._chunks_prev = now, chunks
        lag_ms = self._lag_recent * 1000.0
        self._lag_recent = 0.0
        return RunSnapshot(
            elapsed=el, planned=len(self.requests), dispatched=self._dispatched, completed=self._completed,
            failed=self._failed, in_flight=len(self._inflight), total_input_tokens=self._tot_in,
            total_output_tokens=self._tot_out,
            request_throughput=self._completed / el if el > 0 else 0.0,
            output_throughput=self._tot_out / el if el > 0 else 0.0, chunks_per_s=cps,
            recent_ttft_ms=_p50_p99(self._recent_ttft), recent_tpot_ms=_p50_p99(self._recent_tpot),
            recent_itl_ms=_p50_p99(self._recent_itl), loop_lag_ms=lag_ms, done=done)

    # ------------------------------------------------------------------ result
    def _build_result(self, duration: float, partial: bool, cpu_share: float) -> BenchResult:
        spec = self.spec
        store = self.store
        summary = compute_summary(store, duration, spec.percentile_metrics, spec.percentiles, spec.goodput)
        health = client_health(self._lag, store, cpu_share)
        reasons = Counter(error_reason(e) for e in store.errors.values())
        redact = self._redactor.redact
        rate = spec.request_rate
        setup: dict[str, Any] = {
            "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
            "endpoint_type": spec.backend,
            "backend": spec.backend,
            "label": spec.label,
            "model_id": spec.model,
            "tokenizer_id": spec.tokenizer_id,
            "num_prompts": len(self.requests),
            "request_rate": rate if rate < math.inf else "inf",
            "burstiness": spec.burstiness,
            "max_concurrency": spec.max_concurrency,
        }
        if spec.ramp_up is not None:
            setup["ramp_up_strategy"], setup["ramp_up_start_rps"], setup["ramp_up_end_rps"] = spec.ramp_up
        setup["base_url"] = redact_url(spec.base_url)
        setup["endpoint"] = spec.endpoint or DEFAULT_ENDPOINTS[spec.backend]
        setup["dataset_name"] = spec.dataset_name
        setup["seed"] = spec.seed
        setup["stream"] = spec.stream
        setup["dispatched"] = self._dispatched
        setup["stopped_by"] = "stop" if partial else self._stopped_by
        return BenchResult(
            setup=setup, summary=summary, goodput=dict(spec.goodput) if spec.goodput else None,
            token_sources=store.source_counts(), client_health=health,
            error_reasons=dict(reasons.most_common()), partial=partial, cancelled=self._cancelled,
            warmup=dict(self._warmup), store=store, usage_ignored=dict(self._usage_ignored.most_common()),
            internal_errors=tuple(redact(clip(e, 500)) for e in self._internal_errors))


def _with_output(rec: RequestRecord, n: int) -> RequestRecord:
    return replace(rec, output_tokens=n)


def _p50_p99(values) -> tuple[float, float] | None:
    if not values:
        return None
    s = sorted(values)
    return percentile(s, 50) * 1000.0, percentile(s, 99) * 1000.0


def lag_limit_ms(median_ttft_ms: float, median_itl_ms: float) -> float:
    """The p99 event-loop lag above which the client distorted the timings (see module constants)."""
    shares = [x for x in (median_ttft_ms * LAG_TTFT_SHARE if median_ttft_ms > 0 else None,
                          median_itl_ms * LAG_ITL_SHARE if median_itl_ms > 0 else None) if x is not None]
    return max(LAG_FLOOR_MS, min(shares)) if shares else LAG_FLOOR_MS


def client_health(loop_lag: Sequence[float], store: RecordStore, cpu_share: float) -> ClientHealth:
    """Event-loop lag, schedule lag and client queue time (mean/p99/max, ms) and the verdict."""
    def spread(values: Sequence[float]) -> Spread:
        s = summarize(values, (99.0,))
        return Spread(s.mean, s.at(99.0), s.max)

    rows = store.ok_rows()
    ttft_med = summarize([store.ttft[r] for r in rows], ()).median
    itls: list[float] = []
    for r in rows[-2000:]:
        itls.extend(store.itls(r))
    itl_med = summarize(itls, ()).median
    loop = spread(loop_lag)
    limit = lag_limit_ms(ttft_med, itl_med)
    bottleneck = loop.p99 > limit
    warning = None
    if bottleneck:
        warning = (f"the client was the bottleneck: its event loop ran up to {loop.p99:.1f} ms late "
                   f"(p99; limit {limit:.1f} ms), which inflates TTFT and ITL; use fewer concurrent "
                   "requests or run tokdeck on another machine")
    return ClientHealth(event_loop_lag_ms=loop, schedule_lag_ms=spread(store.lag),
                        client_queue_time_ms=spread(store.queue), client_cpu_percent=round(cpu_share * 100.0, 1),
                        lag_limit_ms=limit, client_bottleneck=bottleneck, warning=warning)


async def run_benchmark(spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter | None = None,
                        on_event: Callable[[Event], None] | None = None, *, emit_records: bool = True,
                        stop: asyncio.Event | None = None) -> BenchResult:
    """Callback form: run to the end (or until ``stop`` is set) and return the result."""
    run = BenchmarkRun(spec, requests, counter, emit_records=emit_records)
    if stop is None:
        return await run.run(on_event)

    async def stop_when_set() -> None:
        await stop.wait()
        run.stop()

    waiter = asyncio.create_task(stop_when_set())
    try:
        return await run.run(on_event)
    finally:
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)


# ---------------------------------------------------------------------- thread runner
class BenchmarkThread:
    """Runs a benchmark on its own event loop in a daemon thread.

    Records and snapshots arrive through ``queue`` (a thread-safe ``queue.Queue``; records are
    dropped — and counted in ``dropped`` — when the consumer falls more than ``max_queue``
    behind; snapshots and the result never are). ``stop()`` is thread-safe; ``join()`` returns
    the ``BenchResult`` (partial after a stop) or raises what the run raised.
    """

    def __init__(self, spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter | None = None,
                 *, emit_records: bool = True, max_queue: int = 100_000) -> None:
        self._attach(BenchmarkRun(spec, requests, counter, emit_records=emit_records), max_queue)

    @classmethod
    def of(cls, run: BenchmarkRun, *, max_queue: int = 100_000, scraper: MetricsScraper | None = None
           ) -> "BenchmarkThread":
        """A thread for a run made elsewhere, e.g. a ``workers.WorkersRun`` (the same events come out).
        With ``scraper`` the server's metrics are scraped on the run's loop: its samples from the
        run's start come through the queue too (``ServerSample``, times from the run's start), its
        ``note`` says why there are none, and the result holds the view."""
        thread = cls.__new__(cls)
        thread._attach(run, max_queue, scraper)
        return thread

    def _attach(self, run: BenchmarkRun, max_queue: int, scraper: MetricsScraper | None = None) -> None:
        self.run = run
        self.scraper = scraper
        if scraper is not None:
            scraper.on_sample = self._server_sample
        self.queue: _queue.Queue = _queue.Queue()
        self.max_queue = max_queue
        self.dropped = 0
        self.result: BenchResult | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop_pending = False
        self._thread = threading.Thread(target=self._main, name="tokdeck-bench", daemon=True)

    def start(self) -> "BenchmarkThread":
        self._thread.start()
        self._started.wait()
        return self

    def _put(self, item) -> None:
        if isinstance(item, RequestRecord) and self.queue.qsize() >= self.max_queue:
            self.dropped += 1
            return
        self.queue.put(item)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._started.set()
        try:
            if self._stop_pending:
                self.run.stop()
            self.result = loop.run_until_complete(run_with_server_view(self.run, self._put, self.scraper))
            self.queue.put(self.result)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in join()
            self.error = exc
            self.queue.put(exc)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _server_sample(self, sample: ServerSample) -> None:
        origin = self.run.clock_origin
        if origin:  # a warm-up's samples are in the result only
            self.queue.put(replace(sample, t=sample.t - origin))

    def stop(self) -> None:
        """Stop dispatching, cancel requests in flight (thread-safe); the result is partial."""
        self._stop_pending = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.run.stop)
            except RuntimeError:  # the loop closed meanwhile: nothing left to stop
                pass

    def join(self, timeout: float | None = None) -> BenchResult | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self.error is not None:
            raise self.error
        return self.result

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "BenchmarkThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self.stop()
        self._thread.join()
