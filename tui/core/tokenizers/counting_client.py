"""The UI's side of the counting processes: start them, send them edits, get counts back, restart them.

    service = CountingService(registry)         # nothing runs until it is needed; processes=1: one process
    doc = service.open_document(listener)       # listener(event) runs on a client thread
    doc.set_rows(ids)                           # the tokenizers that count this document (starts their processes)
    doc.reset(version, text, specials)          # the whole text (a new file)
    doc.edit(version, text, span)               # an edit: only the changed part travels
    doc.set_specials(version, policy)
    doc.request_window(version, tid, cursor, max_chars, limit)   # the token view's pieces
    reg = service.remote_registry()             # a Registry whose tokenizers run in their processes
    reg.get("qwen3").count_many(texts)          # blocking: from worker threads only
    service.close()                             # the processes are killed and reaped

Events (frozen dataclasses) reach a document's listener: ``TokenizerLoaded``, ``RowCounts``
(each row's count with the version it belongs to; per row never older than one delivered
before), ``TokenWindow``, ``ProcessStarted``, ``ProcessStopped`` (with the tokenizers of the
process that stopped), ``ProcessProblem``.

Two processes (``processes``, config ``[tokens] counting_processes``): building the tokenizers
holds a process's GIL (gemma3's tokenizer.json alone 1.2 s), so a cold start loads in two
processes at once, one per core (0.74x the time of one, median, on the shared 2-core machine at
load average 4-6: tests/perf/perf_tokens_incremental.py). Each tokenizer has one owner process, chosen when the service
first meets it: the largest files first, each to the process with the fewest bytes to load
(tokenizers of one file share it). Every document's text and edits go to every running process,
in order; each counts the document's rows it owns, loads and answers calls and token windows
for them, and is restarted alone when it dies. A process starts when it first owns a tokenizer.

Why a plain subprocess with two pipes rather than multiprocessing: ``fork`` is unsafe in a
process with threads (the TUI has several); ``spawn`` and ``forkserver`` start by importing
the parent's ``__main__`` again (the ``tokdeck`` script, pytest, a perf script) and leave the
child's stderr on the terminal until it redirects it itself. ``python -m`` runs only this
package, with stderr on a file from the first instruction (a Rust panic prints straight to
fd 2 and would garble the screen) and stdin/stdout on /dev/null (the protocol has its own
pipes, so a library that prints cannot corrupt a frame). The child gets its own process group:
a signal for the terminal's process group is the UI's alone. It stays in the UI's session, so
in the UI's scheduling group (Linux's autogroup is per session), where its background threads'
lower priority (``background_nice``, config ``[tokens] counting_nice``) yields the cores to the
UI and not to the machine's other processes. Measured on 2 cores, 1 MB document: in a session of
its own a thread's nice decides nothing against the UI, which waited up to 280 ms for a core
during a cold start (now at most 25-45 ms); the nice of its own group, which would decide, made
a cold start next to two busy processes take 25 s instead of 4.7 s (now 6-7 s against 5.8 s).
With ``background_nice`` 0 the child gets a session of its own, as before: a group's share of a
busy machine for itself, and the UI may wait for a core while it loads.

Faults: when a process dies (a crash, a kill, a protocol error), every open document hears
``ProcessStopped`` with the reason (exit status and the last line of its stderr) and the
tokenizers it owned, a new process starts in its place, and each document's rows (of those
tokenizers) and whole text are sent to it again. A process that died while
loading a tokenizer twice has that tokenizer blamed: it gets an error and is not loaded again.
A process alive but unresponsive (stopped, deadlocked) is found by a watchdog: when the
process has said nothing for OVERDUE_S since something was sent to it, it gets a ping; no
answer within PING_DEADLINE_S (LOAD_DEADLINE_S while it loads a tokenizer: a big load holds the
GIL there for seconds) and it is killed, which is then handled as a death.
More than MAX_RESTARTS deaths of one process within RESTART_WINDOW_S and the service gives up
on that one until ``start()``.
Calls waiting for a dead process raise TokenizerError. Sends never block the caller: a
sender thread writes (texts in pieces of ``wire.TEXT_PIECE`` characters); a reader thread
reads and delivers.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Callable, Sequence

from ..errors import TokenizerError
from . import wire
from .base import SPECIAL_POLICIES, SpecialPolicy, TokenCount, Tokenizer, TokenizerInfo
from .counting_process import BACKGROUND_NICE, CALLS, INLINE_DONE, LANE, PROTOCOL, TIKTOKEN_DONE
from .incremental import CountStats
from .pieces import TokenPiece, TokenPieces
from .registry import Registry

#: counting processes by default (the cold start loads in all at once; see the README's figures)
PROCESSES = 2
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0
#: deaths while loading one tokenizer after which it is blamed and never loaded again
LOAD_STRIKES = 2
#: silence after a request before the process is pinged, and how long the ping may wait for its
#: answer before the process counts as hung (while it loads a tokenizer: LOAD_DEADLINE_S; loading
#: gemma3 holds the process's GIL 1.2 s on a quiet machine, 4 s at load average 6)
OVERDUE_S = 1.0
PING_DEADLINE_S = 5.0
LOAD_DEADLINE_S = 30.0
WATCH_INTERVAL_S = 0.25
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding ``tui``


# ---------------------------------------------------------------------- events
@dataclass(frozen=True)
class TokenizerLoaded:
    tokenizer_id: str
    error: str | None
    seconds: float


@dataclass(frozen=True)
class RowCount:
    """One row's count of the document's version ``version``."""

    tokenizer_id: str
    version: int
    count: TokenCount
    stats: CountStats | None
    seconds: float


@dataclass(frozen=True)
class RowCounts:
    rows: tuple[RowCount, ...]
    #: counted as soon as their edit arrived (a keystroke's tiktoken family, then its other
    #: incremental rows), not later in a lane: worth drawing at once
    inline: bool = False


@dataclass(frozen=True)
class TokenWindow:
    """The tokens of ``text[start:end]`` of version ``version`` (``length``: the whole text's)."""

    request: int
    tokenizer_id: str
    version: int
    pieces: TokenPieces | None
    start: int
    end: int
    length: int
    error: str | None


@dataclass(frozen=True)
class ProcessStarted:
    pid: int


@dataclass(frozen=True)
class ProcessStopped:
    reason: str
    restarting: bool
    tokenizer_ids: tuple[str, ...]  # the tokenizers of the process that stopped


@dataclass(frozen=True)
class ProcessProblem:
    message: str


Event = TokenizerLoaded | RowCounts | TokenWindow | ProcessStarted | ProcessStopped | ProcessProblem
Listener = Callable[[Event], None]


# ---------------------------------------------------------------------- the process
class _Text:
    """A message whose last field is ``text[start:end]``, sent in pieces by the sender thread
    (so the caller neither copies nor pickles a megabyte)."""

    def __init__(self, head: tuple, text: str, start: int, end: int):
        self.head, self.text, self.start, self.end = head, text, start, end

    def frames(self):
        start, end = self.start, self.end
        while True:
            stop = min(end, start + wire.TEXT_PIECE)
            yield wire.encode((*self.head, self.text[start:stop], stop < end))
            if stop >= end:
                return
            start = stop


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.value = None

    def resolve(self, value=None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self.done.set()

    def wait(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class _Shard:
    """One of the service's counting processes over its lifetimes: the tokenizers it owns, the
    process running now, its deaths, what the running one said of its tokenizers, and the calls
    waiting for it. Changed under the service's lock."""

    def __init__(self, index: int):
        self.index = index
        self.tids: dict[str, None] = {}  # the tokenizers it owns, in the order they came
        self.files: set[str] = set()
        self.weight = 0  # bytes of tokenizer files to load
        self.child: _Child | None = None
        self.loaded: dict[str, dict] = {}  # by the running process: tid -> what it said about it
        self.load_errors: dict[str, str] = {}
        self.calls: dict[int, _Waiter] = {}
        self.loads: dict[str, list[_Waiter]] = {}
        self.deaths: list[float] = []
        self.stopped: str | None = None  # why the service gave up restarting it


class _Child:
    """One counting process, its pipes and the threads that talk to it."""

    def __init__(self, service: "CountingService", shard: _Shard):
        self.shard = shard
        to_child, self.to_child = os.pipe()
        self.from_child, from_parent = os.pipe()
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tui.core.tokenizers.counting_process", str(to_child), str(from_parent),
                 str(service.background_nice)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                pass_fds=(to_child, from_parent), env=env,
                # nice 0: a session (and so a scheduling group) of its own, as many CPU shares as
                # any other session on a busy machine, and none yielded to the UI
                **({"process_group": 0} if service.background_nice else {"start_new_session": True}))
        except BaseException:
            for fd in (self.to_child, self.from_child):
                os.close(fd)
            self.stderr.close()
            raise
        finally:
            os.close(to_child)
            os.close(from_parent)
        self.pid = self.proc.pid
        self.loading: str | None = None  # the tokenizer being loaded (a death is blamed on it)
        self.sent_at = 0.0  # monotonic times of the last request sent and of the last frame read
        self.heard_at = time.monotonic()
        self.pinged_at: float | None = None  # a ping waiting for its answer since then
        self.hung: str | None = None  # why the watchdog killed it
        self.ended = threading.Event()  # its pipe closed: the watchdog stops
        os.set_blocking(self.to_child, False)  # a write from the caller's thread must never wait
        self._queue: SimpleQueue = SimpleQueue()
        self._writing = threading.Lock()  # held while frames go into the pipe (never by a caller waiting)
        self._queued = 0  # items queued or being written by the sender thread
        self._queued_lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._send_loop, name=f"counting-send-{self.pid}", daemon=True).start()
        threading.Thread(target=service._read_loop, args=(self,), name=f"counting-read-{self.pid}",
                         daemon=True).start()
        threading.Thread(target=self._watch, name=f"counting-watch-{self.pid}", daemon=True).start()

    def send(self, item) -> None:
        """Never waits. A small message with nothing ahead of it is written at once (a keystroke's
        edit skips a thread hop, which cost milliseconds on a busy machine); the rest, and
        whatever the pipe does not take, goes through the sender thread, in order."""
        self.sent_at = time.monotonic()
        small = not isinstance(item, _Text) or item.end - item.start <= wire.TEXT_PIECE
        if small and self._writing.acquire(blocking=False):
            try:
                with self._queued_lock:
                    direct = self._queued == 0 and not self._closed
                if direct:
                    data = next(item.frames()) if isinstance(item, _Text) else wire.encode(item)
                    try:
                        written = os.write(self.to_child, data)
                    except BlockingIOError:
                        written = 0
                    except OSError:
                        return  # the process is gone: the reader sees the end of its pipe
                    if written < len(data):
                        self._enqueue(data[written:])  # first in the queue: nothing else was
                    return
            finally:
                self._writing.release()
        self._enqueue(item)

    def _enqueue(self, item) -> None:
        with self._queued_lock:
            self._queued += 1
        self._queue.put(item)

    def _send_loop(self) -> None:
        fd = self.to_child
        try:
            while (item := self._queue.get()) is not None:
                with self._writing:
                    if isinstance(item, bytes):
                        wire.write_all(fd, item)
                    else:
                        for frame in item.frames() if isinstance(item, _Text) else (wire.encode(item),):
                            wire.write_all(fd, frame)
                with self._queued_lock:
                    self._queued -= 1
        except OSError:
            pass  # the process is gone: the reader sees the end of its pipe and handles it
        finally:
            with self._writing:
                self._closed = True
                os.close(fd)

    def _watch(self) -> None:
        """Ping the process when an answer is overdue; kill it when the ping gets none in time."""
        pings = itertools.count(1)
        while not self.ended.wait(WATCH_INTERVAL_S):
            now = time.monotonic()
            if self.pinged_at is None:
                if self.heard_at < self.sent_at and now - self.sent_at > OVERDUE_S:
                    self.pinged_at = now
                    self.send(("ping", next(pings)))
                continue
            deadline = LOAD_DEADLINE_S if self.loading is not None else PING_DEADLINE_S
            if now - self.pinged_at > deadline:
                self.hung = (f"the counting process stopped answering (nothing for {now - self.heard_at:.0f} s, "
                             f"a ping unanswered)")
                self.kill()  # its reader sees the end of the pipe: handled as any death
                return

    def kill(self) -> int:
        """Stop the process now and reap it; its exit status."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        status = self.proc.wait()
        self._queue.put(None)  # the sender thread ends (and closes the pipe)
        return status

    def reason(self, status: int) -> str:
        if status < 0:
            try:
                how = f"was killed by {signal.Signals(-status).name}"
            except ValueError:
                how = f"was killed by signal {-status}"
        else:
            how = f"exited with status {status}"
        try:
            self.stderr.seek(0, os.SEEK_END)
            self.stderr.seek(max(0, self.stderr.tell() - (1 << 16)))
            lines = [ln.strip() for ln in self.stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            lines = []
        finally:
            self.stderr.close()
        words = _last_words(lines)
        return f"the counting process {how}" + (f": {words[:300]}" if words else "")


def _last_words(lines: list[str]) -> str | None:
    """The line of a dying process's stderr that says why: a fatal error (faulthandler), a Rust
    panic's message (the line after "panicked at"), else the last line (a Python traceback's)."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Fatal Python error"):
            return lines[i]
        if "panicked at" in lines[i]:
            return f"{lines[i]} {lines[i + 1]}" if i + 1 < len(lines) else lines[i]
    return lines[-1] if lines else None


class CountingService:
    """The counting processes, shared by everything in the dashboard that counts. Thread-safe."""

    def __init__(self, registry: Registry, processes: int = PROCESSES, background_nice: int = BACKGROUND_NICE):
        if processes < 1:
            raise ValueError(f"at least one counting process, not {processes}")
        if not 0 <= background_nice <= 19:
            raise ValueError(f"background_nice is 0 to 19, not {background_nice}")
        self.registry = registry
        self.background_nice = background_nice
        self._lock = threading.RLock()
        self._shards = [_Shard(i) for i in range(processes)]
        self._owners: dict[str, _Shard] = {}
        self._closed = False
        self._docs: dict[int, DocumentCounts] = {}
        self._doc_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._blamed: dict[str, str] = {}
        self._strikes: Counter[str] = Counter()
        self.started_pids: list[int] = []  # every process it started, newest last
        _SERVICES.add(self)

    # ------------------------------------------------------------------ life
    @property
    def pids(self) -> tuple[int, ...]:
        """The processes running now."""
        return tuple(shard.child.pid for shard in self._shards if shard.child is not None)

    def pid_of(self, tid: str) -> int | None:
        """The process that counts ``tid`` (None: none runs for it now)."""
        shard = self._owners.get(tid)
        child = shard.child if shard is not None else None
        return child.pid if child is not None else None

    @property
    def stopped(self) -> str | None:
        """Why the service gave up restarting a process (None: it has not)."""
        return next((shard.stopped for shard in self._shards if shard.stopped is not None), None)

    def start(self) -> None:
        """Start the processes that are not running (again, after the service gave up)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the counting service is closed")
            for shard in self._shards:
                if shard.child is None and shard.tids:
                    shard.deaths.clear()
                    shard.stopped = None
                    self._spawn(shard)

    def close(self) -> None:
        """Kill the processes and reap them; pending calls fail. For good: start() raises after."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            children = [shard.child for shard in self._shards if shard.child is not None]
            for shard in self._shards:
                shard.child = None
                self._fail_waiters(shard, "the counting service was closed")
        for child in children:
            child.kill()

    def _assign(self, tids: Sequence[str]) -> None:
        """(under the lock) an owner for each tokenizer that has none: the largest files first,
        each to the process with the fewest bytes to load (a file's tokenizers go together)"""
        weighed = [(tid, *self._file(tid)) for tid in dict.fromkeys(tids) if tid not in self._owners]
        for tid, path, size in sorted(weighed, key=lambda w: -w[2]):
            shard = next((s for s in self._shards if path in s.files), None) if path else None
            if shard is None:
                shard = min(self._shards, key=lambda s: s.weight)
                shard.weight += size
                if path:
                    shard.files.add(path)
            shard.tids[tid] = None
            self._owners[tid] = shard

    def _file(self, tid: str) -> tuple[str | None, int]:
        """The tokenizer's file and its size in bytes: what its load costs, roughly."""
        try:
            path = self.registry.info(tid).path
            return (str(path), Path(path).stat().st_size) if path else (None, 0)
        except (TokenizerError, OSError):  # its process reports the error when it loads it
            return None, 0

    def _owner(self, tid: str) -> _Shard:
        """(under the lock)"""
        self._assign([tid])
        return self._owners[tid]

    def _spawn(self, shard: _Shard) -> None:
        """(under the lock) a new process for ``shard``; everything open is sent to it again"""
        shard.loaded.clear()
        shard.load_errors.clear()
        try:
            child = shard.child = _Child(self, shard)
        except OSError as exc:  # no process can start (no memory, no executable): say so, do not retry
            shard.stopped = f"cannot start the counting process: {exc.strerror or exc}"
            self._fail_waiters(shard, shard.stopped)
            self._broadcast(ProcessStopped(shard.stopped, False, tuple(shard.tids)))
            return
        self.started_pids.append(child.pid)

        child.send(("hello", PROTOCOL, self.registry.settings()))
        if shard.loads:
            child.send(("load", list(shard.loads)))
        for doc in self._docs.values():
            doc._send_all(child)

    def _running(self, shard: _Shard) -> _Child | None:
        """(under the lock) the shard's running process, started if it owns a tokenizer. None: it
        owns none, the service is closed or gave up on it (documents heard why), or the process
        was just started, and so was sent every document as it is now."""
        if shard.child is None and shard.tids and shard.stopped is None and not self._closed:
            self._spawn(shard)
            return None
        return shard.child

    def _send(self, shard: _Shard, item) -> None:
        """(under the lock) a request to the shard's running process, starting it first if needed"""
        self._running(shard)
        if shard.child is not None:
            shard.child.send(item)

    def _usable(self, shard: _Shard) -> None:
        """(under the lock) raise TokenizerError when no process will answer"""
        if self._closed:
            raise TokenizerError("the counting service was closed")
        if shard.stopped is not None:
            raise TokenizerError(shard.stopped)

    # ------------------------------------------------------------------ reading
    def _read_loop(self, child: _Child) -> None:
        reader = wire.FrameReader(child.from_child)
        reason = None
        try:
            while True:
                messages = reader.read()
                child.heard_at, child.pinged_at = time.monotonic(), None
                for message in messages:
                    self._dispatch(child, message)
        except EOFError:
            pass
        except Exception as exc:  # wire.ProtocolError, or a message of the wrong shape
            reason = f"the counting process broke the protocol: {type(exc).__name__}: {exc}"
        finally:
            os.close(child.from_child)
            child.ended.set()
        status = child.kill()
        died = child.reason(status)
        self._ended(child, reason or child.hung or died)

    def _dispatch(self, child: _Child, message) -> None:
        if not isinstance(message, tuple) or not message:
            raise wire.ProtocolError(f"not a message: {type(message).__name__}")
        kind = message[0]
        shard = child.shard
        if kind == "counts":
            _, doc_id, version, rows, stage = message
            if stage not in (LANE, TIKTOKEN_DONE, INLINE_DONE):
                raise wire.ProtocolError(f"unknown counts stage {stage!r}")
            doc = self._docs.get(doc_id)
            if doc is not None:
                doc._counts(shard, int(version), rows, stage)
        elif kind == "loading":
            _, tid = message
            child.loading = tid
        elif kind == "loaded":
            _, tid, error, seconds, meta = message
            child.loading = None
            with self._lock:
                if error is None:
                    shard.loaded[tid] = dict(meta)
                else:
                    shard.load_errors[tid] = str(error)
                waiters = shard.loads.pop(tid, [])
                docs = list(self._docs.values())
            for waiter in waiters:
                waiter.resolve(meta, None if error is None else TokenizerError(str(error)))
            event = TokenizerLoaded(tid, None if error is None else str(error), float(seconds))
            for doc in docs:
                doc._deliver(event)
        elif kind == "window":
            doc = self._docs.get(message[1])
            if doc is not None:
                doc._window(message)
        elif kind == "reply":
            _, request, error, value = message
            caller = shard.calls.pop(request, None)
            if caller is not None:
                caller.resolve(value, None if error is None else _call_error(*error))
        elif kind == "resync":
            _, doc_id, _version = message
            with self._lock:
                doc = self._docs.get(doc_id)
                if doc is not None and shard.child is child:
                    doc._send_text(child)
        elif kind == "ready":
            _, pid, protocol = message
            if protocol != PROTOCOL:
                raise wire.ProtocolError(f"the process speaks protocol {protocol!r}, not {PROTOCOL}")
            self._broadcast(ProcessStarted(int(pid)))
        elif kind == "problem":
            _, text = message
            self._broadcast(ProcessProblem(str(text)))
        elif kind == "pong":
            pass  # what it proves (the process answers) was noted when its frame was read
        else:
            raise wire.ProtocolError(f"unknown message {kind!r}")

    def _broadcast(self, event: Event) -> None:
        for doc in list(self._docs.values()):
            doc._deliver(event)

    def _ended(self, child: _Child, reason: str) -> None:
        """A process is gone: unless it was closed on purpose, say so and start another in its place."""
        shard = child.shard
        with self._lock:
            if shard.child is not child:
                return  # closed, or already replaced
            shard.child = None
            self._fail_waiters(shard, reason)
            blamed = child.loading
            newly_blamed = None
            if blamed is not None:
                self._strikes[blamed] += 1
                if self._strikes[blamed] >= LOAD_STRIKES:
                    self._blamed[blamed] = f"{blamed}: {reason} while loading it, {LOAD_STRIKES} times"
                    newly_blamed = TokenizerLoaded(blamed, self._blamed[blamed], 0.0)
            now = time.monotonic()
            shard.deaths = [t for t in shard.deaths if now - t < RESTART_WINDOW_S] + [now]
            restarting = len(shard.deaths) <= MAX_RESTARTS
            if not restarting:
                shard.stopped = reason
            tids = tuple(shard.tids)
        self._broadcast(ProcessStopped(reason, restarting, tids))
        if newly_blamed is not None:
            self._broadcast(newly_blamed)
        if restarting:
            with self._lock:
                if shard.child is None and not self._closed:
                    self._spawn(shard)

    def _fail_waiters(self, shard: _Shard, reason: str) -> None:
        """(under the lock) every call and load waiting for the shard's process fails"""
        waiting = [*shard.calls.values(), *(w for ws in shard.loads.values() for w in ws)]
        shard.calls.clear()
        shard.loads.clear()
        for waiter in waiting:
            waiter.resolve(error=TokenizerError(reason))

    # ------------------------------------------------------------------ documents
    def open_document(self, listener: Listener) -> "DocumentCounts":
        with self._lock:
            if self._closed:
                raise RuntimeError("the counting service is closed")
            doc = DocumentCounts(self, next(self._doc_ids), listener)
            self._docs[doc.id] = doc
            for shard in self._shards:
                self._running(shard)
        return doc

    # ------------------------------------------------------------------ tokenizers for the other panes
    def remote_registry(self) -> "RemoteRegistry":
        return RemoteRegistry(self)

    def load(self, tid: str) -> dict:
        """Load ``tid`` in its process (blocking); what it said about it. TokenizerError if it cannot."""
        with self._lock:
            if tid in self._blamed:
                raise TokenizerError(self._blamed[tid])
            shard = self._owner(tid)
            if tid in shard.loaded:
                return shard.loaded[tid]
            if tid in shard.load_errors:
                raise TokenizerError(shard.load_errors[tid])
            self._usable(shard)
            waiter = _Waiter()
            shard.loads.setdefault(tid, []).append(waiter)
            self._send(shard, ("load", [tid]))
        return waiter.wait()

    def call(self, tid: str, method: str, *args):
        """``tokenizer.method(*args)`` run in its process (blocking)."""
        if method not in CALLS:
            raise ValueError(f"not a counting-process call: {method}")
        with self._lock:
            shard = self._owner(tid)
            self._usable(shard)
            request = next(self._request_ids)
            waiter = shard.calls[request] = _Waiter()
            self._send(shard, ("call", request, tid, method, args))
        return waiter.wait()


def _call_error(kind: str, message: str) -> Exception:
    if kind == "NotImplementedError":
        return NotImplementedError(message)
    if kind == "ValueError":
        return ValueError(message)
    return TokenizerError(message)


class DocumentCounts:
    """One document counted in the processes. Methods are for one thread (the UI's); events
    arrive on the client's reader threads."""

    def __init__(self, service: CountingService, doc_id: int, listener: Listener):
        self.id = doc_id
        self._service = service
        self._listener = listener
        self.rows: tuple[str, ...] = ()
        self.text = ""
        self.version = 0
        self.specials: SpecialPolicy = "literal"
        self._newest: dict[str, int] = {}
        self._window_requests = itertools.count(1)
        self._closed = False
        self._arrived = threading.Condition()  # the newest version a counts frame came for, and its rows
        self._arrived_version = 0
        self._arrived_rows: list[RowCount] = []
        #: by stage (TIKTOKEN_DONE, INLINE_DONE), by shard: the newest version whose inline counts of that stage came
        self._inline: dict[int, dict[int, int]] = {TIKTOKEN_DONE: {}, INLINE_DONE: {}}

    def set_rows(self, ids: Sequence[str]) -> None:
        service = self._service
        with service._lock:
            self.rows = tuple(dict.fromkeys(ids))
            service._assign(self.rows)
            known: dict[str, str | None] = {}  # what the processes know already (loaded for another document, or failed)
            for tid in self.rows:
                shard = service._owners[tid]
                if tid in service._blamed or tid in shard.loaded or tid in shard.load_errors:
                    known[tid] = service._blamed.get(tid) or shard.load_errors.get(tid)
            # the processes given up before (one that cannot start now says so itself)
            stopped = [ProcessStopped(shard.stopped, False, tuple(shard.tids)) for shard in service._shards
                       if shard.stopped is not None]
            for shard in service._shards:
                child = service._running(shard)
                if child is not None:
                    child.send(("rows", self.id, self._rows_for(shard)))
        for tid, error in known.items():
            self._deliver(TokenizerLoaded(tid, error, 0.0))
        for event in stopped:
            self._deliver(event)

    def reset(self, version: int, text: str, specials: SpecialPolicy | None = None) -> None:
        """The whole text as version ``version`` (a new document, a file loaded)."""
        if specials is not None and specials not in SPECIAL_POLICIES:
            raise ValueError(f"unknown special-token policy {specials!r}")
        service = self._service
        with service._lock:
            self.text, self.version = text, version
            if specials is not None:
                self.specials = specials
            for shard in service._shards:
                child = service._running(shard)
                if child is not None:
                    self._send_text(child)

    def edit(self, version: int, text: str, span: tuple[int, int] | None) -> None:
        """The text after an edit: it shares its first ``p`` and last ``s`` characters with the
        previous version (``span`` = (p, s); None: unknown). Only the rest is sent."""
        if span is None or version != self.version + 1:
            self.reset(version, text)
            return
        old = len(self.text)
        p = min(span[0], old, len(text))
        s = min(span[1], old - p, len(text) - p)
        service = self._service
        edit = _Text(("edit", self.id, version, p, s, len(text)), text, p, len(text) - s)
        with service._lock:
            self.text, self.version = text, version
            for shard in service._shards:
                child = service._running(shard)
                if child is not None:
                    child.send(edit)

    def set_specials(self, version: int, policy: SpecialPolicy) -> None:
        if policy not in SPECIAL_POLICIES:
            raise ValueError(f"unknown special-token policy {policy!r}")
        if version != self.version + 1:
            self.reset(version, self.text, policy)
            return
        service = self._service
        with service._lock:
            self.version, self.specials = version, policy
            for shard in service._shards:
                child = service._running(shard)
                if child is not None:
                    child.send(("specials", self.id, version, policy))

    def wait_for_counts(self, version: int, timeout: float, stage: int = INLINE_DONE) -> list[RowCount]:
        """Wait (at most ``timeout``) for the counts of ``version`` the processes make as soon as
        the edit arrives: a keystroke's incremental rows (``stage`` INLINE_DONE), or only their
        first frame, the tiktoken family's (TIKTOKEN_DONE); the rows of that version here by then.
        They are delivered to the listener too."""
        running = [shard.index for shard in self._service._shards if shard.child is not None]
        came = self._inline[stage]
        with self._arrived:
            self._arrived.wait_for(lambda: all(came.get(i, 0) >= version for i in running), timeout)
            return [row for row in self._arrived_rows if row.version == version]

    def request_window(self, version: int, tid: str, cursor: int, max_chars: int, limit: int) -> int:
        """Ask for the tokens around ``cursor`` (a TokenWindow event answers); the request's number."""
        request = next(self._window_requests)
        service = self._service
        with service._lock:
            service._send(service._owner(tid), ("window", self.id, request, version, tid, cursor, max_chars, limit))
        return request

    def close(self) -> None:
        service = self._service
        with service._lock:
            self._closed = True
            service._docs.pop(self.id, None)
            for shard in service._shards:
                if shard.child is not None:
                    shard.child.send(("close", self.id))

    # ------------------------------------------------------------------ the client's side
    def _rows_for(self, shard: _Shard) -> list[str]:
        """(under the service's lock) the rows the shard's process counts"""
        return [tid for tid in self.rows if tid in shard.tids and tid not in self._service._blamed]

    def _send_text(self, child: _Child) -> None:
        child.send(_Text(("doc", self.id, self.version, self.specials), self.text, 0, len(self.text)))

    def _send_all(self, child: _Child) -> None:
        child.send(("rows", self.id, self._rows_for(child.shard)))
        if self.version:
            self._send_text(child)

    def _deliver(self, event: Event) -> None:
        if not self._closed:
            self._listener(event)

    def _counts(self, shard: _Shard, version: int, rows, stage: int) -> None:
        out = []
        for tid, chars, tokens, error, exact, stats, seconds in rows:
            if version < self._newest.get(tid, 0):
                continue  # a count of an older version arrived after a newer one: never shown
            self._newest[tid] = version
            count = TokenCount(tid, None if error is not None else int(tokens), int(chars), bool(exact),
                               None if error is None else str(error))
            out.append(RowCount(tid, version, count, CountStats(*stats) if stats is not None else None,
                                float(seconds)))
        with self._arrived:
            if version > self._arrived_version:
                self._arrived_version, self._arrived_rows = version, []
            if version == self._arrived_version:
                self._arrived_rows += out
            if stage != LANE:  # INLINE_DONE comes after TIKTOKEN_DONE: both stages are done
                for done in (TIKTOKEN_DONE, INLINE_DONE)[:stage]:
                    came = self._inline[done]
                    came[shard.index] = max(came.get(shard.index, 0), version)
                self._arrived.notify_all()
        if out:
            self._deliver(RowCounts(tuple(out), stage != LANE))

    def _window(self, message) -> None:
        _, _, request, version, tid, start, end, length, pieces, total, error = message
        found = None
        if pieces is not None:
            found = TokenPieces(tid, tuple(TokenPiece(int(i), str(t), str(k)) for i, t, k in pieces), int(total),
                                end - start)
        self._deliver(TokenWindow(request, tid, version, found, start, end, length,
                                  None if error is None else str(error)))


# ---------------------------------------------------------------------- tokenizers for the other panes
class RemoteTokenizer(Tokenizer):
    """A Tokenizer whose work runs in the counting process. Each method blocks until the
    process answers: call it from worker threads, never the UI's."""

    def __init__(self, service: CountingService, info: TokenizerInfo, meta: dict):
        self.info = info
        self._service = service
        self.has_vocab = bool(meta["has_vocab"])
        self.cut_rule = meta["cut_rule"]
        self._vocab_size = int(meta["vocab_size"])
        self._special_ids: frozenset[int] | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def count(self, text: str, specials: SpecialPolicy = "literal") -> int:
        return self.count_many([text], specials)[0]

    def count_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[int]:
        return self._service.call(self.id, "count_many", list(texts), specials)

    def encode(self, text: str, specials: SpecialPolicy = "literal") -> list[int]:
        return self.encode_many([text], specials)[0]

    def encode_many(self, texts: Sequence[str], specials: SpecialPolicy = "literal") -> list[list[int]]:
        return self._service.call(self.id, "encode_many", list(texts), specials)

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        return self._service.call(self.id, "token_bytes", list(ids))

    def special_ids(self) -> frozenset[int]:
        if self._special_ids is None:
            self._special_ids = frozenset(self._service.call(self.id, "special_ids"))
        return self._special_ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._service.call(self.id, "decode", list(ids))


class RemoteRegistry:
    """What the Bench pane's preparation and the Data pane's token pass use of a Registry, with
    ``get`` loading in the counting process and returning a RemoteTokenizer. Names resolve
    locally: that reads folders and small heads, not tokenizers."""

    def __init__(self, service: CountingService):
        self._service = service
        self._local = service.registry

    @property
    def aliases(self) -> dict[str, str]:
        return self._local.aliases

    def info(self, tokenizer_id: str) -> TokenizerInfo:
        return self._local.info(tokenizer_id)

    def ids(self, include_discovered: bool = True) -> list[str]:
        return self._local.ids(include_discovered)

    def get(self, tokenizer_id: str) -> RemoteTokenizer:
        info = self._local.info(tokenizer_id)
        return RemoteTokenizer(self._service, info, self._service.load(tokenizer_id))


_SERVICES: weakref.WeakSet[CountingService] = weakref.WeakSet()


@atexit.register
def _close_services() -> None:
    """No counting process outlives its UI, even one left open by mistake."""
    for service in list(_SERVICES):
        service.close()
