"""A run spread over workers: processes on this machine, or Ray actors beyond it (``ray_backend``).

    run = WorkersRun(spec, requests, counter, LocalWorkers(4))    # or RayWorkers(address, 4)
    async for item in run.events():     # RequestRecord and RunSnapshot, as from BenchmarkRun
        ...
    result = run.result                 # BenchResult, as from BenchmarkRun

One Python event loop can time a few hundred streams honestly; past that its lateness goes into
TTFT and ITL. A run with workers puts the load on several loops: each worker runs today's engine
(``BenchmarkRun``) on its own loop in its own process, and the coordinator (this process) only
deals out the work and merges what comes back. ``WorkersRun`` is a ``BenchmarkRun``, so its
events, its result, ``stop()``, ``events()`` and ``BenchmarkThread(run=...)`` are the same.

Dealing (``schedule``). The coordinator computes the arrival schedule once and deals out (index,
due) pairs, so the union of the workers' schedules is exactly the single-process schedule, due
times counting from one common start. ``--max-concurrency`` and the warm-ups are split between
the workers (the shares add up). A closed loop (rate inf with a cap) is pulled instead: a worker
holds its slots plus a small prefetch and asks for more as it sends, so no worker sits idle
while another has a backlog.

Timing. Each worker times its own requests with its own monotonic clock and counts output tokens
locally when the server sends no usage (the tokenizer is loaded in the worker, by id). Only
durations cross processes. The common start is one instant: on one machine CLOCK_MONOTONIC is
shared by every process; a Ray actor elsewhere gets it translated into its own clock by an offset
estimated from the fastest of a few round trips, so its start times line up without a shift.

Merging. Every ~0.25 s each worker sends a batch: its finished requests as compact rows
(``RequestRecord.to_row``), its live figures and its event-loop lag samples. The coordinator
merges raw records (percentiles and ``--save-detailed`` need every value): the live view, the
summary, the saved JSON and the client-health verdict are those of one process, with in-flight
requests and chunks/s summed over the workers, the loop lag the worst worker's, and the run
flagged when any worker's loop was too late.

Accounting. Every request a worker was given ends in a record from it, or as cancelled or never
sent by its own count at the end. A worker that dies (or fails) mid-run: the requests it held that
were due later than its death go to the others; those it held that may have been sent become
failed records ("worker 2 died: killed by SIGKILL"), never vanish. A worker lost before the start
stops the run with a one-line error. ``stop()`` stops every worker, which cancel their requests
in flight; a worker that does not stop in time is killed. No worker outlives the run.

Messages are tuples, the first item their kind. Coordinator to worker: SETUP (WorkerSetup), WORK
(a list of (index, due, prompt)), END (no more work), START (the common start in the worker's
clock), STOP. Worker to coordinator: READY (warm-ups done), BATCH, WANT (pulled runs: how many
more), DONE (WorkerFinal) and FAILED (a one-line reason). Local workers use a socket pair with
length-prefixed pickles: both ends are this program, nothing else can write to it.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, replace
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from ..errors import TokdeckError
from .arrivals import arrival_times
from .client import BenchRequest, internal_error
from .engine import BenchmarkRun, BenchSpec, Event, Scheduled, TokenCounter, _p50_p99
from .metrics import percentile
from .options import RunOptions, validate_workers
from .results import RequestRecord, RunSnapshot
from .schedule import MAX_WORKERS, Dealer, concurrency_shares, prefetch, pulled, shares

if TYPE_CHECKING:  # pragma: no cover
    import multiprocessing.context

    from .prepare import Prepared
    from .ray_backend import RayWorkers
    from .results import BenchResult
    from .sweep import MakeRun

SETUP, WORK, END, START, STOP = "setup", "work", "end", "start", "stop"
READY, BATCH, WANT, DONE, FAILED = "ready", "batch", "want", "done", "failed"

LOOKAHEAD_S = 1.0  # timed runs: requests go to their worker this long before they are due
FEED_INTERVAL_S = 0.1
START_MARGIN_S = 0.05  # from "all ready" to the common start: time for START to reach every worker
STOP_TIMEOUT_S = 10.0  # after stop(): a worker not done by then is killed
START_TIMEOUT_S = 120.0  # set-up, tokenizer and warm-ups of the slowest worker


class WorkerGone(Exception):
    """The worker's channel ended: the message says why ("died: killed by SIGKILL")."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs before its first request."""

    index: int
    spec: BenchSpec  # with this worker's share of --max-concurrency and of the warm-ups; the key inside
    warmups: tuple[BenchRequest, ...]  # prompts of its warm-up requests
    tokenizer_id: str  # for local output counts, loaded in the worker when first needed
    token_source: str  # the label of those counts ("tokenizer:<id>")
    prefetch: int  # pulled runs: requests kept beyond the slots (0: timed)


@dataclass(frozen=True)
class WorkerFinal:
    """A worker's own account at its end (its records came in its batches)."""

    dispatched: int
    cancelled: int
    warmup: dict[str, int]
    usage_ignored: dict[str, int]
    internal_errors: tuple[str, ...]
    stopped_by: str | None
    duration: float  # from the common start to its last request's end
    cpu_s: float  # its CPU time during the measured run


# ---------------------------------------------------------------------- the worker's side
class CounterById(TokenCounter):
    """A ``TokenCounter`` that loads its tokenizer by id on the first count: a worker whose
    server reports usage (most do) never spends the time (0.3 s and more) or the memory. The
    engine counts in a thread, so the load never runs on the worker's event loop; a tokenizer
    that cannot be loaded fails the requests that needed it ("counting output tokens failed")."""

    def __init__(self, tokenizer_id: str, source: str) -> None:  # no super().__init__: nothing loaded yet
        self.tokenizer_id, self.source = tokenizer_id, source
        self.tokenizer = None
        self._lock = threading.Lock()

    def count_many(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            if self.tokenizer is None:
                from ..tokenizers import default_registry

                self.tokenizer = default_registry().get(self.tokenizer_id)
        return super().count_many(texts)


class Worker:
    """One worker, in its own process or Ray actor: runs a ``BenchmarkRun`` for the coordinator.

    The transport calls :meth:`receive` with each message (on the worker's loop) and gives
    ``send``, which must not block. ``clock_skew`` pretends this worker's clock is off by that
    many seconds, as another machine's is (tests of the offset estimate)."""

    def __init__(self, send: Callable[[tuple], None], clock_skew: float = 0.0) -> None:
        self._send = send
        self._skew = clock_skew
        self._work: asyncio.Queue[Scheduled | None] = asyncio.Queue()
        self._origin: asyncio.Future[float] | None = None
        self._run: BenchmarkRun | None = None
        self._rows: list[tuple] = []
        self._lag_sent = 0
        self._prefetch = 0
        self._wanted = 0
        self._holding = False
        self._stopped = False
        self._cpu0 = 0.0
        self.task: asyncio.Task | None = None
        self.done = asyncio.Event()  # DONE or FAILED was sent (or it never got a SETUP and was stopped)

    def clock(self) -> float:
        """This worker's clock, as the coordinator sees it (``perf_counter`` + the skew)."""
        return perf_counter() + self._skew

    async def finished(self) -> None:
        """Until DONE or FAILED is sent (or a STOP came before any SETUP)."""
        await self.done.wait()
        if self.task is not None:
            await self.task

    def receive(self, message: tuple) -> None:
        kind = message[0]
        if kind == WORK:
            items = message[1]
            self._wanted = max(0, self._wanted - len(items))
            for item in items:
                self._work.put_nowait(item)
            self._want()
        elif kind == END:
            self._work.put_nowait(None)
        elif kind == START:
            if self._origin is not None and not self._origin.done():
                self._origin.set_result(message[1] - self._skew)
        elif kind == SETUP:
            self.task = asyncio.ensure_future(self._main(message[1]))
        elif kind == STOP:
            self._stopped = True
            if self._run is not None:
                self._run.stop()
            if self._origin is not None and not self._origin.done():
                self._origin.set_result(perf_counter())
            if self.task is None:
                self.done.set()

    async def _main(self, setup: WorkerSetup) -> None:
        try:
            self._prefetch = setup.prefetch
            counter = CounterById(setup.tokenizer_id, setup.token_source)
            self._run = BenchmarkRun(setup.spec, setup.warmups, counter, schedule=self._items(), start_at=self._ready)
            if self._stopped:
                self._run.stop()
            result = await self._run.run(self._on_event)
            self._send((DONE, self._final(result)))
        except Exception as exc:  # noqa: BLE001 - the coordinator reports it (one line)
            self._send((FAILED, internal_error(exc)))
        finally:
            self.done.set()

    def _final(self, result: BenchResult) -> WorkerFinal:
        return WorkerFinal(
            dispatched=result.setup["dispatched"], cancelled=result.cancelled, warmup=dict(result.warmup),
            usage_ignored=dict(result.usage_ignored), internal_errors=tuple(result.internal_errors),
            stopped_by=result.setup["stopped_by"] if result.setup["stopped_by"] != "stop" else None,
            duration=result.duration, cpu_s=time.process_time() - self._cpu0)

    async def _ready(self) -> float:
        """The engine's ``start_at``: report ready, wait for the common start (in our clock)."""
        self._origin = asyncio.get_running_loop().create_future()
        if not self._stopped:
            self._send((READY,))
            await self._origin
        self._cpu0 = time.process_time()
        return self._origin.result() if self._origin.done() else perf_counter()

    async def _items(self):
        """The engine's ``schedule``: the requests as the coordinator hands them over. Between a
        yield and the next step the engine holds the request it got, waiting for its time or a slot."""
        work = self._work
        while True:
            self._holding = False  # the engine came back: the last request went out
            self._want()
            item = await work.get()
            if item is None:
                return
            self._holding = True
            self._want()
            yield item

    def _want(self) -> None:
        """Pulled runs: ask for what the prefetch lacks - the requests waiting here, the one the
        engine holds included - one ask at a time (its answer brings the next ask)."""
        short = self._prefetch - self._work.qsize() - self._holding
        if short > 0 and not self._wanted:
            self._wanted = short
            self._send((WANT, short))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestRecord):
            self._rows.append(event.to_row())
            return
        lag = self._run.loop_lag if self._run is not None else array("d")
        samples, self._lag_sent = lag[self._lag_sent:].tobytes(), len(lag)
        rows, self._rows = self._rows, []
        self._send((BATCH, rows, event.dispatched, event.in_flight, event.chunks_per_s, event.loop_lag_ms, samples))


# ---------------------------------------------------------------------- transports
class WorkerChannel(Protocol):
    """The coordinator's end of one worker's connection."""

    def send(self, message: tuple) -> None:
        """Queue a message to the worker (never blocks; a gone worker drops it)."""

    async def receive(self) -> tuple:
        """The worker's next message; WorkerGone when there is none to come."""


class WorkerBackend(Protocol):
    """Where the workers run: ``LocalWorkers`` (processes) or ``ray_backend.RayWorkers``."""

    count: int
    transport: str  # "processes" or "ray": the saved result says which

    async def open(self) -> list[WorkerChannel]:
        """Start (or reach) the workers; TokdeckError (one line) when they cannot be."""

    async def clock_offsets(self) -> list[float]:
        """Each worker's clock minus ours (``perf_counter``), in seconds."""

    async def close(self) -> None:
        """End every worker (killing those still running): none outlives this."""

    def close_now(self) -> None:
        """The blocking form of :meth:`close`, for a caller with no event loop (or whose run never started)."""


def _frame(message: tuple) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> tuple | None:
    """The next message, None at the end of the stream."""
    try:
        (size,) = struct.unpack("!I", await reader.readexactly(4))
        return pickle.loads(await reader.readexactly(size))  # our own process on a private socket pair
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def exit_reason(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is None:
        return "closed its connection"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


class _ProcessChannel:
    def __init__(self, process: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.process, self._reader, self._writer = process, reader, writer

    def send(self, message: tuple) -> None:
        if not self._writer.is_closing():
            self._writer.write(_frame(message))

    async def receive(self) -> tuple:
        message = await _read_frame(self._reader)
        if message is None:
            # the process is ending or has ended: give it a moment to say how
            await asyncio.get_running_loop().run_in_executor(None, self.process.join, 2.0)
            raise WorkerGone(f"died: {exit_reason(self.process.exitcode)}")
        return message

    def close(self) -> None:
        self._writer.close()


def _context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """forkserver where there is one (a fork of a clean server process: fast, and the engine's
    imports are done once, in the server), else spawn; never a plain fork of this process, whose
    threads (the dashboard's) would not survive it."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # no effect once the server runs
        return ctx
    return multiprocessing.get_context("spawn")


class _StderrWithoutFileno:
    """``stream`` with no file number, for multiprocessing's resource tracker to leave alone."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (the first worker would). It hands its child
    ``sys.stderr.fileno()``; under Textual, ``sys.stderr`` is a capture whose ``fileno()`` is -1,
    and the start fails ("bad value(s) in fds_to_keep"). Such a stream is hidden from it meanwhile
    (the child keeps the process's own stderr)."""
    from multiprocessing import resource_tracker

    stream = sys.stderr
    try:
        usable = stream is None or stream.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = True  # the tracker skips a stream without a file number
    if usable:
        resource_tracker.ensure_running()
        return
    sys.stderr = _StderrWithoutFileno(stream)
    try:
        resource_tracker.ensure_running()
    finally:
        if isinstance(sys.stderr, _StderrWithoutFileno):
            sys.stderr = stream


def _process_main(sock: socket.socket) -> None:
    """A worker process: serve one run over ``sock``, then exit."""
    # the terminal's Ctrl-C and hang-up reach the whole process group: the coordinator handles
    # them and stops the workers itself (SIGTERM still ends a worker, as a death)
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    from .sim import _raise_nofile_limit

    _raise_nofile_limit()
    asyncio.run(_serve(sock))


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = Worker(lambda message: None if writer.is_closing() else writer.write(_frame(message)))

    async def read() -> None:
        while (message := await _read_frame(reader)) is not None:
            worker.receive(message)
        worker.receive((STOP,))  # the coordinator is gone: stop, nothing will hear the result

    reading = asyncio.create_task(read())
    await worker.finished()
    try:
        await writer.drain()
    except ConnectionError:
        pass
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    writer.close()


class LocalWorkers:
    """``count`` worker processes on this machine.

    :meth:`start` begins starting them in a thread and returns at once, so a caller that starts
    them before it prepares the run overlaps their start-up (the first one boots the fork
    server: 0.3-1 s) with its own work; :meth:`open` waits for them (and starts them if needed).
    :attr:`pids` is known once :meth:`open` returned."""

    transport = "processes"

    def __init__(self, count: int) -> None:
        if not 1 <= count <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}")
        self.count = count
        self._processes: list[Any] = []
        self._sockets: list[socket.socket] = []
        self._channels: list[_ProcessChannel] = []
        self._launcher: threading.Thread | None = None
        self._launch_error: str | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def start(self) -> LocalWorkers:
        if self._launcher is None:
            self._launcher = threading.Thread(target=self._launch, name="tokdeck-worker-launcher", daemon=True)
            self._launcher.start()
        return self

    def _launch(self) -> None:
        ctx = _context()
        try:
            _start_resource_tracker()
            for w in range(self.count):
                ours, theirs = socket.socketpair()
                self._sockets.append(ours)
                process = ctx.Process(target=_process_main, args=(theirs,), name=f"tokdeck-worker-{w + 1}",
                                      daemon=True)
                try:
                    process.start()
                finally:
                    theirs.close()
                self._processes.append(process)
        except Exception as exc:  # noqa: BLE001 - e.g. no processes left: one line from open()
            self._launch_error = f"cannot start worker processes: {getattr(exc, 'strerror', None) or exc}"

    async def open(self) -> list[WorkerChannel]:
        self.start()
        assert self._launcher is not None
        await asyncio.get_running_loop().run_in_executor(None, self._launcher.join)
        if self._launch_error is not None:
            raise TokdeckError(self._launch_error)
        for process, sock in zip(self._processes, self._sockets):
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            self._channels.append(_ProcessChannel(process, reader, writer))
        return list(self._channels)

    async def clock_offsets(self) -> list[float]:
        return [0.0] * self.count  # CLOCK_MONOTONIC: one clock for every process of a machine

    async def close(self) -> None:
        for channel in self._channels:
            channel.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._end_all)

    def close_now(self) -> None:
        """The blocking form of :meth:`close`, for a caller with no event loop."""
        for sock in self._sockets:
            sock.close()
        self._end_all()

    def _end_all(self) -> None:
        if self._launcher is not None:
            self._launcher.join()
        deadline = time.monotonic() + 5.0
        for p in self._processes:  # done workers exit by themselves
            p.join(max(0.0, deadline - time.monotonic()))
        self._kill_all()

    def _kill_all(self) -> None:
        for p in self._processes:
            if p.pid is not None and p.is_alive():
                p.kill()
        for p in self._processes:
            if p.pid is not None:
                p.join(5.0)


# ---------------------------------------------------------------------- the coordinator
class WorkersRun(BenchmarkRun):
    """A benchmark run whose requests are sent by ``workers`` (see the module doc).

    The arguments are ``BenchmarkRun``'s; ``counter``'s tokenizer is loaded in each worker by
    its id. ValueError when ``spec.max_concurrency`` is below the number of workers."""

    def __init__(self, spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter | None = None,
                 workers: WorkerBackend | None = None, *, emit_records: bool = True) -> None:
        super().__init__(spec, requests, counter, emit_records=emit_records)
        if workers is None:
            raise ValueError("no workers given")
        self.workers = workers
        n = workers.count
        self._slots = concurrency_shares(spec.max_concurrency, n)
        self._pull = pulled(spec.max_concurrency, spec.request_rate)
        self._dealer: Dealer | None = None
        self._channels: list[WorkerChannel] = []
        self._offsets = [0.0] * n
        self._stats = [(0, 0, 0.0, 0.0)] * n  # latest (dispatched, in flight, chunks/s, loop lag ms)
        self._lags = [array("d") for _ in range(n)]
        self._received = [0] * n  # records merged from each worker
        self._finals: list[WorkerFinal | None] = [None] * n
        self._lost: dict[int, str] = {}  # worker -> why it is gone
        self._lost_failed = [0] * n  # requests failed because their worker was lost
        self._ready = 0
        self._started = False
        self._all_ready: asyncio.Event | None = None
        self._all_done: asyncio.Event | None = None
        self._startup_error: str | None = None

    # ------------------------------------------------------------------ run
    async def run(self, on_event: Callable[[Event], None] | None = None) -> BenchResult:
        self._loop = asyncio.get_running_loop()
        self._stop_ev = asyncio.Event()
        if self._stop_requested:
            self._stop_ev.set()
        self._all_ready, self._all_done = asyncio.Event(), asyncio.Event()
        if on_event is not None:
            self._emit = on_event
        readers: list[asyncio.Task] = []
        try:
            self._channels = await self.workers.open()
            readers = [asyncio.create_task(self._read(w, ch)) for w, ch in enumerate(self._channels)]
            await self._coordinate()
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await self.workers.close()
        if self._startup_error is not None:
            raise TokdeckError(self._startup_error)
        assert self.result is not None
        return self.result

    async def _coordinate(self) -> None:
        spec, n, requests = self.spec, self.workers.count, self.requests
        times = arrival_times(len(requests), spec.request_rate, spec.burstiness, spec.seed, spec.ramp_up)
        dealer = self._dealer = Dealer(times, n, pull=self._pull, limit=spec.duration)
        warmups = shares(spec.num_warmups, n)
        counter = self.counter
        for w, channel in enumerate(self._channels):
            slots = self._slots[w]
            ahead = prefetch(slots) if self._pull and slots else 0
            channel.send((SETUP, WorkerSetup(
                index=w, spec=replace(spec, max_concurrency=slots, num_warmups=warmups[w]),
                warmups=tuple(requests[i % len(requests)] for i in range(warmups[w])),
                tokenizer_id=counter.tokenizer.id, token_source=counter.source, prefetch=ahead)))
            self._hand(w, dealer.take(w, (slots or 0) + ahead) if self._pull else dealer.due_by(w, LOOKAHEAD_S))
        self._offsets = await self.workers.clock_offsets()
        if not await self._wait_ready():
            return
        self._start()
        feeder = asyncio.create_task(self._feed())
        snapshots = asyncio.create_task(self._snapshotter())
        stopper = asyncio.create_task(self._stopped_event().wait())
        assert self._all_done is not None
        done = asyncio.create_task(self._all_done.wait())
        await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            self._stop_workers()
            try:
                await asyncio.wait_for(asyncio.shield(done), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                for w in range(n):
                    if self._finals[w] is None and w not in self._lost:
                        self._lose(w, f"did not stop within {STOP_TIMEOUT_S:g} s")
        for task in (feeder, snapshots, stopper, done):
            task.cancel()
        outcomes = await asyncio.gather(feeder, snapshots, stopper, done, return_exceptions=True)
        self._note_crashes(outcomes[:2], ["work feeder", "snapshotter"])
        self._conclude()

    async def _wait_ready(self) -> bool:
        """Until every worker is ready (True), or a stop or a lost worker ends the run first."""
        assert self._all_ready is not None
        ready = asyncio.create_task(self._all_ready.wait())
        stopper = asyncio.create_task(self._stopped_event().wait())
        await asyncio.wait({ready, stopper}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        stopper.cancel()
        await asyncio.gather(ready, stopper, return_exceptions=True)
        if self._startup_error is not None:
            return False
        if not self._all_ready.is_set() and not self._stop_requested:
            self._startup_error = f"the workers were not ready within {START_TIMEOUT_S:g} s"
            return False
        if self._stop_requested:  # before the start: the workers end their warm-ups, nothing is sent
            self._stop_workers()
            assert self._all_done is not None
            try:
                await asyncio.wait_for(self._all_done.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
            self._conclude()
            return False
        return True

    def _start(self) -> None:
        t0 = perf_counter() + START_MARGIN_S
        for w, channel in enumerate(self._channels):
            channel.send((START, t0 + self._offsets[w]))
        self._cpu0 = time.process_time()
        self._t0 = self._wall_prev = t0
        self._started = True

    def _stopped_event(self) -> asyncio.Event:
        assert self._stop_ev is not None  # set by run()
        return self._stop_ev

    def _stop_workers(self) -> None:
        if self._dealer is not None:
            self._dealer.stop()
        for w, channel in enumerate(self._channels):
            if self._finals[w] is None and w not in self._lost:
                channel.send((STOP,))

    # ------------------------------------------------------------------ handing out work
    def _hand(self, w: int, items: list[tuple[int, float]]) -> None:
        if items:
            requests = self.requests
            self._channels[w].send((WORK, [(i, due, requests[i]) for i, due in items]))
        self._end_exhausted()

    def _end_exhausted(self) -> None:
        """END to every worker that will get nothing more."""
        dealer = self._dealer
        assert dealer is not None
        for w, channel in enumerate(self._channels):
            if not dealer.ended[w] and dealer.alive[w] and dealer.exhausted(w):
                dealer.ended[w] = True
                channel.send((END,))

    async def _feed(self) -> None:
        """Timed runs: each worker's requests ``LOOKAHEAD_S`` before they are due; with
        ``--duration``, nothing more once it is over (pulled runs too)."""
        dealer = self._dealer
        assert dealer is not None
        limit = self.spec.duration
        while True:
            elapsed = perf_counter() - self._t0
            if limit is not None and elapsed >= limit:
                dealer.stop()
                self._end_exhausted()
                return
            if not self._pull:
                for w in range(self.workers.count):
                    if dealer.alive[w] and not dealer.ended[w]:
                        self._hand(w, dealer.due_by(w, elapsed + LOOKAHEAD_S))
            await asyncio.sleep(FEED_INTERVAL_S)

    # ------------------------------------------------------------------ what workers say
    async def _read(self, w: int, channel: WorkerChannel) -> None:
        try:
            while True:
                message = await channel.receive()
                kind = message[0]
                if kind == BATCH:
                    self._merge(w, message)
                elif kind == WANT:
                    self._on_want(w, message[1])
                elif kind == READY:
                    self._ready += 1
                    if self._ready == self.workers.count and self._all_ready is not None:
                        self._all_ready.set()
                elif kind == DONE:
                    self._on_done(w, message[1])
                    return
                elif kind == FAILED:
                    raise WorkerGone(f"failed: {message[1]}")
        except WorkerGone as gone:
            self._lose(w, str(gone))
        except Exception as exc:  # noqa: BLE001 - a fault of ours: that worker's requests fail, the run goes on
            self._lose(w, f"could not be read: {internal_error(exc)}")

    def _on_want(self, w: int, count: int) -> None:
        dealer = self._dealer
        if dealer is None or self._stop_requested:
            return
        self._hand(w, dealer.take(w, count))

    def _merge(self, w: int, message: tuple) -> None:
        _, rows, dispatched, in_flight, chunks_per_s, lag_ms, samples = message
        dealer = self._dealer
        assert dealer is not None
        if w in self._lost:  # given up on (it did not stop in time): its requests are failed already
            return
        for row in rows:
            rec = RequestRecord.from_row(row)
            if not dealer.finished(w, rec.index):
                self._internal_errors.append(f"worker {w + 1} reported request {rec.index}, which it was not given")
                continue
            self._received[w] += 1
            self._record(rec)
        self._stats[w] = (dispatched, in_flight, chunks_per_s, lag_ms)
        self._lags[w].frombytes(samples)

    def _on_done(self, w: int, final: WorkerFinal) -> None:
        assert self._dealer is not None
        self._dealer.release(w)  # what it still held was cancelled or never sent, by its own count
        self._finals[w] = final
        self._stats[w] = (final.dispatched, 0, 0.0, 0.0)
        if final.dispatched != self._received[w] + final.cancelled:
            self._internal_errors.append(
                f"accounting: worker {w + 1} sent {final.dispatched:,} request(s) but {self._received[w]:,} "
                f"records and {final.cancelled:,} cancellations came back")
        self._internal_errors.extend(f"worker {w + 1}: {e}" for e in final.internal_errors)
        self._check_done()

    def _lose(self, w: int, why: str) -> None:
        """Worker ``w`` is gone (``why``: "died: killed by SIGKILL")."""
        if w in self._lost or self._finals[w] is not None:
            return
        self._lost[w] = why
        if not self._started:
            if not self._stop_requested:
                self._startup_error = f"worker {w + 1} {why}"
                if self._all_ready is not None:
                    self._all_ready.set()
            self._check_done()
            return
        assert self._dealer is not None
        lost = self._dealer.lost(w, perf_counter() - self._t0, margin=0.05)
        reason = f"worker {w + 1} {why}"
        for index, due in lost.failed:
            self._record(self._failed_record(index, due, 0.0, 0.0, reason))
        self._lost_failed[w] = len(lost.failed)
        self._stats[w] = (self._received[w] + len(lost.failed), 0, 0.0, 0.0)
        self._end_exhausted()
        self._check_done()

    def _check_done(self) -> None:
        if all(f is not None or w in self._lost for w, f in enumerate(self._finals)) and self._all_done is not None:
            self._all_done.set()

    # ------------------------------------------------------------------ live view and result
    def _snapshot(self, done: bool = False, elapsed: float | None = None) -> RunSnapshot:
        el = elapsed if elapsed is not None else perf_counter() - self._t0
        dispatched = sum(s[0] for s in self._stats)
        live = [s for w, s in enumerate(self._stats) if self._finals[w] is None and w not in self._lost]
        self._dispatched = dispatched
        return RunSnapshot(
            elapsed=el, planned=len(self.requests), dispatched=dispatched, completed=self._completed,
            failed=self._failed, in_flight=sum(s[1] for s in live), total_input_tokens=self._tot_in,
            total_output_tokens=self._tot_out,
            request_throughput=self._completed / el if el > 0 else 0.0,
            output_throughput=self._tot_out / el if el > 0 else 0.0, chunks_per_s=sum(s[2] for s in live),
            recent_ttft_ms=_p50_p99(self._recent_ttft), recent_tpot_ms=_p50_p99(self._recent_tpot),
            recent_itl_ms=_p50_p99(self._recent_itl), loop_lag_ms=max((s[3] for s in live), default=0.0), done=done)

    def _conclude(self) -> None:
        """Totals from the workers' accounts, the checks, the result and the last snapshot."""
        n = self.workers.count
        finals = [f for f in self._finals if f is not None]
        self._dispatched = sum(f.dispatched for f in finals) + sum(
            self._received[w] + self._lost_failed[w] for w in self._lost)
        self._cancelled = sum(f.cancelled for f in finals)
        self._warmup = {"requests": self.spec.num_warmups,
                        "failed": sum(f.warmup.get("failed", 0) for f in finals)}
        self._usage_ignored = sum((Counter(f.usage_ignored) for f in finals), Counter())
        dealer = self._dealer
        if (dealer is not None and dealer.truncated) or any(f.stopped_by == "duration" for f in finals):
            self._stopped_by = "duration"
        # the verdict is the worst worker's: its loop lag against the merged TTFT and ITL
        self._lag = max(self._lags, key=_p99)
        if len(set(self.store.index)) != len(self.store):
            self._internal_errors.append("accounting: a request was recorded twice")
        unsent = dealer.undealt() if dealer is not None else 0
        partial = self._stop_requested
        if self._started and len(self._lost) == n and unsent and not self._stop_requested:
            partial = True
            self._internal_errors.append(f"every worker was lost ({'; '.join(self._lost.values())}): "
                                         f"{unsent:,} request(s) were never sent")
        self._check_accounting()
        ends = [f.duration for f in finals]
        ends.extend(self.store.start[r] + self.store.e2el[r] for r in range(len(self.store)))
        duration = max(ends, default=0.0) if self._started else 0.0
        wall = perf_counter() - self._t0 if self._started else 0.0
        cpu = time.process_time() - self._cpu0 + sum(f.cpu_s for f in finals) if self._started else 0.0
        self.result = self._build_result(duration, partial, cpu / wall if wall > 0 else 0.0)
        self.result.setup["workers"] = n
        self.result.setup["worker_transport"] = self.workers.transport
        self._emit_safely(self._snapshot(done=True, elapsed=duration))


def _p99(samples: Sequence[float]) -> float:
    return percentile(sorted(samples), 99.0) if samples else -1.0


def worker_backend(options: RunOptions) -> LocalWorkers | RayWorkers | None:
    """The workers ``options`` ask for (``--workers``, ``--ray-address``, ``--ray-resource``), local
    ones already starting, so that their start-up overlaps the preparation of the run; None when
    this process sends (``--workers 1``, today's path). TokdeckError (one line) when the options
    cannot have them. The caller ends them: ``WorkersRun`` does, ``close_now()`` if no run starts."""
    validate_workers(options)
    if options.ray_address is not None:
        from .ray_backend import RayWorkers

        return RayWorkers(options.ray_address, options.workers, options.ray_resource)
    if options.workers > 1:
        return LocalWorkers(options.workers).start()
    return None


def make_run(prep: Prepared, workers: WorkerBackend | None, *, emit_records: bool = True) -> BenchmarkRun:
    """The run of ``prep``: in this process without workers, else spread over ``workers``."""
    if workers is None:
        return BenchmarkRun(prep.spec, prep.requests, prep.counter, emit_records=emit_records)
    return WorkersRun(prep.spec, prep.requests, prep.counter, workers, emit_records=emit_records)


def step_runs(options: RunOptions, *, emit_records: bool = False) -> "MakeRun | None":
    """How a sweep makes each step's run when ``options`` ask for workers: every step spread over
    workers of its own (a run ends its workers), started with the step; a step of fewer streams
    than workers runs in this process. None without workers."""
    if options.workers <= 1 and options.ray_address is None:
        return None

    def make(spec: BenchSpec, requests: Sequence[BenchRequest], counter: TokenCounter) -> BenchmarkRun:
        if spec.max_concurrency is not None and spec.max_concurrency < options.workers:
            return BenchmarkRun(spec, requests, counter, emit_records=emit_records)
        return WorkersRun(spec, requests, counter, worker_backend(options), emit_records=emit_records)

    return make


def workers_note(backend: WorkerBackend) -> str:
    """One line for the user: where the requests go out from."""
    pids = getattr(backend, "pids", None)
    if pids:
        return f"{backend.count} worker processes (pids {', '.join(map(str, pids))})"
    return f"{backend.count} Ray actor(s)"

