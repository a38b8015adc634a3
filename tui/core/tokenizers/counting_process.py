"""The counting process: the tokenizers and each document's incremental counts, away from the UI.

Loading a tokenizer (a tokenizer.json or tiktoken rank table is parsed in Rust holding the GIL,
up to about a second) and counting a whole document stop every thread of their process. Here
they stop nothing on screen. ``counting_client.CountingService`` starts this module as
``python -m tui.core.tokenizers.counting_process IN_FD OUT_FD [NICE]``: messages arrive on IN_FD and
leave on OUT_FD as :mod:`wire` frames; stdin and stdout are /dev/null (a library that prints
cannot corrupt a frame) and stderr is a file only the client reads (Rust panics, faulthandler).
When IN_FD closes (the UI quit, or died) the process exits.

Messages in, each a tuple (kind first; ``doc`` numbers a document, ``version`` its edits):
  ("hello", PROTOCOL, registry settings)             first, once
  ("rows", doc, ids)                                 the tokenizers that count the document
  ("doc", doc, version, specials, piece, more)       its whole text, in pieces (``more``: pieces follow)
  ("edit", doc, version, p, s, length, piece, more)  new = text[:p] + inserted + text[len(text)-s:]
  ("specials", doc, version, policy)
  ("window", doc, request, version, tid, cursor, max_chars, limit)   the tokens around the cursor
  ("close", doc)
  ("load", ids)                                      load (for calls), count nothing
  ("call", request, tid, method, args)               a Tokenizer method (CALLS), for the other panes
  ("ping", n)                                        are you there? (the client's liveness check)
Messages out:
  ("ready", pid, PROTOCOL)
  ("loading", tid)                                   before each load (a crash is then blamed on it)
  ("loaded", tid, error, seconds, meta)
  ("counts", doc, version, [(tid, chars, tokens, error, exact, stats, seconds), ...], stage)
                                                     stage: LANE for a lane's counts; an edit's inline counts
                                                     are two frames, sent even empty: the tiktoken family's
                                                     (TIKTOKEN_DONE), then the other incremental rows' (INLINE_DONE)
  ("window", doc, request, version, tid, start, end, length, pieces, total, error)
  ("reply", request, error, value)                   error: None or (exception type, message)
  ("resync", doc, version)                           an edit that does not fit the text: send it whole
  ("problem", text)                                  a bug here, reported; the process goes on
  ("pong", n)                                        here

Threads: the main thread reads messages (a burst at once), applies the edits and counts the
incremental rows of a keystroke inline, the tiktoken family first, each result frame sent as
soon as it is ready. Per document, three lane threads (the design the pane used in-process)
count what inline counting leaves: tiktoken-family rows for big edits, the other incremental
rows, and the rows counted whole, which wait for a pause in typing on big documents. A newer
version stops a lane's count between batches (blocks encoded so far are kept). One thread
loads tokenizers, cheapest first, and two answer calls and token windows.

Priority: the loader, the lanes and the call threads (and Rust's thread pool, which the loader
starts before its first load: ``start_rust_threads``) run NICE (default 10) above the main
thread (on Linux, where a thread's nice is its own). The process
stays in the UI's session, so in the UI's scheduling group (autogroup, or the session's cgroup):
the bulk work yields the cores to the UI, whose key presses then wait for no load or count,
and not to the machine's other processes. A keystroke's inline counts keep the main thread's
priority.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from pathlib import Path

from ..errors import TokenizerError
from . import wire
from .base import SPECIAL_POLICIES, SpecialPolicy, Tokenizer, first_line
from .incremental import UNCHANGED, CountStats, EditLog, IncrementalCounter, window_bounds
from .pieces import token_pieces
from .registry import Registry

PROTOCOL = 2
#: the stage a "counts" frame reports: a lane's counts, or an edit's inline counts so far
LANE, TIKTOKEN_DONE, INLINE_DONE = 0, 1, 2
#: Tokenizer methods a call may run (their arguments are plain data)
CALLS = ("count_many", "encode_many", "token_bytes", "decode", "special_ids")
#: whole-count rows wait this long after the last edit on documents larger than WHOLE_DEBOUNCE_CHARS
WHOLE_DEBOUNCE_S = 0.3
WHOLE_DEBOUNCE_CHARS = 100_000
#: a row is counted inline when that needs at most this many characters encoded (a keystroke:
#: one block, tens of microseconds); the inline counts of one edit stop after INLINE_BUDGET_S
INLINE_CHARS = 8_000
INLINE_BUDGET_S = 0.008
#: the switch interval here: the main thread gets the GIL back within this from a lane or a load
#: thread running Python code (the default 5 ms would add up to that to a keystroke's counts)
SWITCH_INTERVAL_S = 0.001
#: how much lower the background threads' priority is (nice), unless the client says otherwise
BACKGROUND_NICE = 10
LANES = ("tiktoken", "incremental", "whole")


class Output:
    """Frames to the client, from any thread."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, message) -> None:
        data = wire.encode(message)
        try:
            with self._lock:
                wire.write_all(self.fd, data)
        except OSError:
            os._exit(0)  # the client is gone: nobody is left to count for


def counted_whole(stats: CountStats | None, length: int) -> bool:
    """Whether a row's counts are full encodes of a document of ``length`` characters: no cut
    rule, or a big document with (almost) no cut points for it (e.g. an r50k rule on CRLF text).
    Such rows wait for a pause in typing."""
    return stats is not None and (stats.whole or (stats.blocks < 4 and length > WHOLE_DEBOUNCE_CHARS))


def _lane(counter: IncrementalCounter, length: int) -> str:
    if not counter.incremental or counted_whole(counter.stats, length):
        return "whole"
    return "tiktoken" if counter.tokenizer.info.format in ("tiktoken", "tekken") else "incremental"


def _never() -> bool:
    return False


def _count_one(counter: IncrementalCounter, text: str, version: int, edits: EditLog, *, max_chars: int | None = None,
               wait: bool = True, cancelled=_never) -> tuple | None:
    """One row's count of ``version`` as sent in a "counts" message; None: not counted now."""
    started = time.perf_counter()
    tok = counter.tokenizer
    try:
        n = counter.count(text, cancelled, version=version, edits=edits, max_chars=max_chars, wait=wait)
    except BaseException as exc:  # a tokenizer failing on some text (a Rust panic is a BaseException) fails its row
        return (tok.id, len(text), None, f"{tok.id}: {type(exc).__name__}: {first_line(exc)}", tok.info.exact, None,
                time.perf_counter() - started)
    if n is None:
        return None
    stats = astuple(counter.stats) if counter.stats is not None else None
    return tok.id, len(text), n, None, tok.info.exact, stats, time.perf_counter() - started


class Document:
    """One document's text, versions and counters. The main thread changes it under ``lock``."""

    def __init__(self, doc_id: int, out: Output, background_nice: int = BACKGROUND_NICE):
        self.id = doc_id
        self.out = out
        self.background_nice = background_nice  # the lanes' (lower_priority)
        self.lock = threading.Lock()
        self.text = ""
        self.version = 0
        self.specials: SpecialPolicy = "literal"
        self.edits = EditLog()
        self.rows: tuple[str, ...] = ()
        self.counters: dict[str, IncrementalCounter] = {}
        self.changed_at = 0.0
        self.awaiting_text = False  # an edit did not fit: edits wait for the whole text
        self._pieces: list[str] = []
        self.lanes = {name: Lane(self, name) for name in LANES}

    def take_piece(self, piece: str, more: bool) -> str | None:
        """The whole text of a message sent in pieces, once its last piece is here."""
        self._pieces.append(piece)
        if more:
            return None
        text = "".join(self._pieces)
        self._pieces = []
        return text

    def add_counter(self, tok: Tokenizer) -> None:
        with self.lock:
            if tok.id in self.rows and tok.id not in self.counters:
                self.counters[tok.id] = IncrementalCounter(tok, self.specials)

    def kick(self) -> None:
        for lane in self.lanes.values():
            lane.kick()

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.stop()

    def send_counts(self, version: int, rows: list[tuple], stage: int = LANE) -> None:
        """``stage``: LANE, or an edit's inline frame (TIKTOKEN_DONE, INLINE_DONE: sent even empty)."""
        if rows or stage != LANE:
            self.out.send(("counts", self.id, version, rows, stage))


class Lane:
    """A thread counting one lane's rows of a document: latest version wins."""

    def __init__(self, doc: Document, name: str):
        self.doc = doc
        self.name = name
        self._cond = threading.Condition()
        self._pending = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        with self._cond:
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"lane-{self.name}-{self.doc.id}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        doc = self.doc
        lower_priority(doc.background_nice)
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                self._pending = False
                if self.name == "whole":  # wait for a pause in typing on a big document
                    while not self._stopped and len(doc.text) > WHOLE_DEBOUNCE_CHARS:
                        wait = doc.changed_at + WHOLE_DEBOUNCE_S - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    if self._stopped:
                        return
            with doc.lock:
                text, version, edits = doc.text, doc.version, doc.edits
                counters = [c for c in doc.counters.values() if c.version != version
                            and _lane(c, len(text)) == self.name] if version else []  # 0: no text yet

            def stale() -> bool:  # a newer version: stop, the next run resumes from the block cache
                return doc.version != version or self._stopped

            for counter in counters:
                if stale():
                    break
                try:
                    row = _count_one(counter, text, version, edits, cancelled=stale)
                    doc.send_counts(version, [row] if row else [])
                except Exception as exc:  # a bug: say so, keep counting
                    doc.out.send(("problem", f"lane {self.name}: {type(exc).__name__}: {exc}"))


def lower_priority(nice: int) -> None:
    """This thread's nice value raised by ``nice`` (Linux: per thread; elsewhere nothing, since
    ``setpriority`` would take the thread id for a process id). Threads it starts inherit it."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass  # a sandbox that forbids it: the default priority


def start_rust_threads() -> None:
    """Start the thread pool of the Hugging Face tokenizers' batch encodes (Rust's rayon), which
    starts on first use with the priority of the thread that uses it first: call this from a
    background thread before any tokenizer is loaded, or a keystroke's inline count on the main
    thread would start it at the UI's priority, for every whole-document count after."""
    try:
        from tokenizers import Tokenizer, models

        Tokenizer(models.WordLevel({"a": 0}, unk_token="a")).encode_batch(["a", "a"])
    except Exception:  # no tokenizers library, or no pool (TOKENIZERS_PARALLELISM=false): nothing to start
        pass


class Server:
    """Everything the main thread does with the messages."""

    def __init__(self, registry: Registry, out: Output, background_nice: int = BACKGROUND_NICE):
        self.background_nice = background_nice
        self.registry = registry
        self.out = out
        self.tokenizers: dict[str, Tokenizer] = {}
        self.failed: dict[str, str] = {}
        self.docs: dict[int, Document] = {}
        self._to_load: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._queued: set[str] = set()
        self._calls = ThreadPoolExecutor(2, thread_name_prefix="call", initializer=lower_priority,
                                         initargs=(background_nice,))
        threading.Thread(target=self._loader, name="loader", daemon=True).start()

    # ------------------------------------------------------------------ messages
    def serve(self, reader: wire.FrameReader, first: list) -> None:
        messages = first
        while True:
            edited: dict[int, Document] = {}
            for message in messages:
                try:
                    self.handle(message, edited)
                except Exception as exc:  # a bad message or a bug: report it, keep serving
                    self.out.send(("problem", f"{type(exc).__name__}: {exc}"))
            for doc in edited.values():
                self.count_edit(doc)
            try:
                messages = reader.read()
            except EOFError:
                return

    def handle(self, message, edited: dict[int, Document]) -> None:
        if not isinstance(message, tuple) or not message:
            raise wire.ProtocolError(f"not a message: {type(message).__name__}")
        kind = message[0]
        if kind == "rows":
            _, doc_id, ids = message
            doc = self._doc(doc_id)
            with doc.lock:
                doc.rows = tuple(ids)
                doc.counters = {tid: c for tid, c in doc.counters.items() if tid in doc.rows}
            for tid in doc.rows:
                if tid in self.tokenizers:
                    doc.add_counter(self.tokenizers[tid])
            self.load(doc.rows)
            doc.kick()
        elif kind == "doc":
            _, doc_id, version, specials, piece, more = message
            doc = self._doc(doc_id)
            text = doc.take_piece(piece, more)
            if text is not None:
                self._check_policy(specials)
                with doc.lock:
                    doc.text, doc.version, doc.changed_at = text, version, time.monotonic()
                    doc.edits = EditLog(version - 1)
                    doc.edits.record(None)
                    doc.awaiting_text = False
                    self._set_specials(doc, specials)
                edited[doc_id] = doc
        elif kind == "edit":
            _, doc_id, version, p, s, length, piece, more = message
            doc = self._doc(doc_id)
            inserted = doc.take_piece(piece, more)
            if inserted is not None and not doc.awaiting_text:
                with doc.lock:
                    old = doc.text
                    fits = (version == doc.edits.version + 1 and p >= 0 and s >= 0 and p + s <= len(old)
                            and p + len(inserted) + s == length)
                    if fits:
                        doc.text = old[:p] + inserted + old[len(old) - s:]
                        doc.version, doc.changed_at = doc.edits.record((p, s)), time.monotonic()
                    else:
                        doc.awaiting_text = True
                if fits:
                    edited[doc_id] = doc
                else:
                    self.out.send(("resync", doc_id, version))
        elif kind == "specials":
            _, doc_id, version, policy = message
            doc = self._doc(doc_id)
            self._check_policy(policy)
            if not doc.awaiting_text:
                with doc.lock:
                    if version != doc.edits.version + 1:
                        doc.awaiting_text = True
                    else:
                        doc.version, doc.changed_at = doc.edits.record(UNCHANGED), time.monotonic()
                        self._set_specials(doc, policy)
                if doc.awaiting_text:
                    self.out.send(("resync", doc_id, version))
                else:
                    edited[doc_id] = doc
        elif kind == "window":
            _, doc_id, request, version, tid, cursor, max_chars, limit = message
            doc = self._doc(doc_id)
            with doc.lock:
                text, specials = doc.text, doc.specials
            self._calls.submit(self._window, doc_id, request, version, tid, text, specials, cursor, max_chars, limit)
        elif kind == "close":
            _, doc_id = message
            closed = self.docs.pop(doc_id, None)
            if closed is not None:
                closed.close()
        elif kind == "load":
            _, ids = message
            self.load(ids)
        elif kind == "call":
            _, request, tid, method, args = message
            self._calls.submit(self._call, request, tid, method, args)
        elif kind == "ping":
            _, n = message
            self.out.send(("pong", n))
        else:
            raise wire.ProtocolError(f"unknown message {kind!r}")

    def _doc(self, doc_id: int) -> Document:
        doc = self.docs.get(doc_id)
        if doc is None:
            doc = self.docs[doc_id] = Document(doc_id, self.out, self.background_nice)
        return doc

    @staticmethod
    def _check_policy(policy: object) -> None:
        if policy not in SPECIAL_POLICIES:
            raise wire.ProtocolError(f"unknown special-token policy {policy!r}")

    @staticmethod
    def _set_specials(doc: Document, policy: SpecialPolicy) -> None:
        """(under doc.lock) every counter starts over with the new policy"""
        if policy != doc.specials:
            doc.specials = policy
            doc.counters = {tid: IncrementalCounter(c.tokenizer, policy) for tid, c in doc.counters.items()}

    def count_edit(self, doc: Document) -> None:
        """The rows a keystroke costs little, counted here and sent at once, the tiktoken family
        first (their encoders take no lock; ~0.1 ms each on one block). Rows busy in a lane,
        edits needing more than INLINE_CHARS encoded, and rows past INLINE_BUDGET_S go to the lanes."""
        started = time.perf_counter()
        with doc.lock:
            text, version, edits = doc.text, doc.version, doc.edits
            counters = list(doc.counters.values())
        for lane in ("tiktoken", "incremental"):
            rows: list[tuple] = []
            for counter in counters:
                if _lane(counter, len(text)) != lane or counter.version is None:
                    continue
                if time.perf_counter() - started > INLINE_BUDGET_S:
                    break
                row = _count_one(counter, text, version, edits, max_chars=INLINE_CHARS, wait=False)
                if row is not None:
                    rows.append(row)
            # sent even empty: the UI waits a few milliseconds for them, to draw them with the edit
            doc.send_counts(version, rows, TIKTOKEN_DONE if lane == "tiktoken" else INLINE_DONE)
        doc.kick()

    # ------------------------------------------------------------------ loading
    def load(self, ids) -> None:
        """Queue the tokenizers not loaded yet: cheap formats first, then small files first."""
        todo = [tid for tid in ids if tid not in self._queued]
        self._queued.update(todo)
        for tid in sorted(todo, key=self._weight):
            self._to_load.put(tid)

    def _weight(self, tid: str) -> tuple[int, int]:
        try:
            info = self.registry.info(tid)
            size = Path(info.path).stat().st_size if info.path else 0
        except (TokenizerError, OSError):
            return 0, 0
        return {"estimate": 0, "tiktoken": 1, "tekken": 2}.get(info.format, 3), size

    def _loader(self) -> None:
        lower_priority(self.background_nice)
        if self.background_nice:
            start_rust_threads()  # before the first load: no tokenizer can count before it
        while True:
            tid = self._to_load.get()
            self.out.send(("loading", tid))
            started = time.perf_counter()
            tok, error = None, None
            try:
                tok = self.registry.get(tid)
            except TokenizerError as exc:
                error = str(exc)
            except BaseException as exc:  # a broken file must only break its own row (a Rust panic included)
                error = f"{tid}: {type(exc).__name__}: {first_line(exc)}"
            seconds = time.perf_counter() - started
            meta = None
            if tok is not None:
                self.tokenizers[tid] = tok
                meta = {"format": tok.info.format, "cut_rule": tok.cut_rule, "has_vocab": tok.has_vocab,
                        "vocab_size": tok.vocab_size, "exact": tok.info.exact}
            else:
                assert error is not None, "both excepts that leave tok None set error"
                self.failed[tid] = error
            self.out.send(("loaded", tid, error, seconds, meta))
            if tok is not None:
                for doc in list(self.docs.values()):
                    if tid in doc.rows:
                        doc.add_counter(tok)
                        doc.kick()
            if self._to_load.empty():
                # what is loaded lives as long as the process: keep it out of every full collection
                gc.freeze()

    def _tokenizer(self, tid: str) -> Tokenizer:
        tok = self.tokenizers.get(tid)
        if tok is None:
            if tid in self.failed:
                raise TokenizerError(self.failed[tid])
            tok = self.registry.get(tid)  # a call for a tokenizer not loaded yet: loaded once, here
        return tok

    # ------------------------------------------------------------------ calls
    def _call(self, request: int, tid: str, method: str, args: tuple) -> None:
        reply: tuple[object, ...]
        try:
            if method not in CALLS:
                raise wire.ProtocolError(f"unknown call {method!r}")
            tok = self._tokenizer(tid)
            value = getattr(tok, method)(*args)
            if method == "special_ids":
                value = sorted(value)
            reply = ("reply", request, None, value)
        except BaseException as exc:  # the caller gets the error (a Rust panic included)
            reply = ("reply", request, (type(exc).__name__, first_line(exc)), None)
        self.out.send(reply)

    def _window(self, doc_id: int, request: int, version: int, tid: str, text: str, specials: SpecialPolicy,
                cursor: int, max_chars: int, limit: int) -> None:
        start, end, total = 0, 0, 0
        pieces: list[tuple[int, str, str]] | None = None
        error: str | None = None
        try:
            tok = self._tokenizer(tid)
            if not tok.has_vocab:
                error = f"{tid} is a character estimate: it has no tokens to show"
            else:
                start, end = window_bounds(text, tok.cut_rule, cursor, max_chars)
                found = token_pieces(tok, text[start:end], specials, limit)
                pieces = [(p.id, p.text, p.kind) for p in found.pieces]
                total = found.total
        except BaseException as exc:
            error = f"{tid}: {type(exc).__name__}: {first_line(exc)}"
        self.out.send(("window", doc_id, request, version, tid, start, end, len(text), pieces, total, error))


def main(argv: list[str]) -> None:
    in_fd, out_fd = int(argv[0]), int(argv[1])
    background_nice = int(argv[2]) if len(argv) > 2 else BACKGROUND_NICE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c belongs to the UI; it closes this process itself
    faulthandler.enable()  # a crash's traceback goes to stderr, where the client reads its last line
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    out = Output(out_fd)
    reader = wire.FrameReader(in_fd)
    try:
        messages = reader.read()
    except EOFError:
        os._exit(0)
    hello = messages.pop(0)
    if not (isinstance(hello, tuple) and len(hello) == 3 and hello[0] == "hello" and hello[1] == PROTOCOL):
        out.send(("problem", f"expected hello with protocol {PROTOCOL}, got {hello!r:.200}"))
        os._exit(2)
    server = Server(Registry.from_settings(hello[2]), out, background_nice)
    out.send(("ready", os.getpid(), PROTOCOL))
    try:
        server.serve(reader, messages)
    except wire.ProtocolError as exc:
        out.send(("problem", f"protocol error: {exc}"))
    # the client closed the pipe: exit now, not after the threads' running encodes
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
