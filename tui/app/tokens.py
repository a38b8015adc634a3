"""The Tokens pane: an editor, live counts from every enabled tokenizer, the token view and a budget.

Tokenizers load once the pane is first shown, in a background worker, cheapest first and
each in a pause in typing; each row says "loading…" until its own is ready.

Every row counts through an ``IncrementalCounter``, told what each edit changed by an
``EditLog`` fed from the editor (no comparing of megabyte texts). A keystroke in a big
document re-encodes a block or two, so the tiktoken-family rows (no lock, ~0.1 ms each) are
counted right in the edit handler and redrawn with the edit itself. Everything else runs in
three thread workers ("lanes", latest edit wins): tiktoken-family rows for edits too big to
count inline, the other incremental (HF) rows, and the rows counted whole, which wait for a
pause in typing on big documents. Lane results come back as messages carrying core
dataclasses and are drawn in one batch per FLUSH_INTERVAL_S.
"""

from __future__ import annotations

import gc
import sys
import time
from functools import partial
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Static, TextArea
from textual.worker import Worker, WorkerState, get_current_worker

from ..core.config import Config, replace_section, save_config
from ..core.errors import TokdeckError, TokenizerError
from ..core.tokenizers import Registry, TokenCount, resolve_model
from ..core.tokenizers.context import Budget, context_window, parse_overrides
from ..core.tokenizers.incremental import UNCHANGED, CountStats, EditLog, IncrementalCounter, window_bounds
from ..core.tokenizers.pieces import TokenPieces, token_pieces
from .screens import BudgetChoice, BudgetScreen, OpenFileScreen, TokenizerPickerScreen
from .widgets import BudgetBar, Editor, TokenView
from .widgets.counts_table import Column, CountsTable

#: whole-count rows wait this long after the last edit on documents larger than WHOLE_DEBOUNCE_CHARS
WHOLE_DEBOUNCE_S = 0.3
WHOLE_DEBOUNCE_CHARS = 100_000
#: the token view tokenizes at most this many characters around the cursor and shows this many tokens
VIEW_CHARS = 20_000
#: the table is redrawn at most this often while lane results stream in (a row costs ~0.1 ms)
FLUSH_INTERVAL_S = 0.02
#: loading a tokenizer stops the UI for up to a second (its tokenizer.json or rank table is
#: parsed in Rust holding the GIL): each load waits for this long a pause in typing
LOAD_WHEN_IDLE_S = 0.5
#: the edit handler counts a tiktoken-family row itself when that needs at most this many
#: characters encoded (a keystroke: one block, tens of microseconds), within this time in all
INLINE_CHARS = 8_000
INLINE_BUDGET_S = 0.008
SOFT_WRAP_CHARS = 200_000
#: the interpreter's thread switch interval while the pane runs: count workers wait for the GIL
#: up to this long each time the UI thread is busy drawing (Python's default is 5 ms)
SWITCH_INTERVAL_S = 0.001
#: a full garbage collection this often while the pane is shown. Textual leaves every line it
#: draws in a reference cycle (a Strip caches its own division), ~2,000 objects a keystroke here;
#: left to the automatic full collections they are freed tens of thousands at a time, 50-120 ms
#: with the UI stopped. Collected every half second: a few milliseconds each time.
GC_INTERVAL_S = 0.5
LANES = ("tiktoken", "incremental", "whole")
VIEW_TOKENS = 4_000
COLUMNS = (("tokenizer", "tokenizer"), ("tokens", "tokens"), ("cpt", "chars/tok"), ("delta", "Δ ref"),
           ("pct", "Δ %"), ("note", "note"))
NUMERIC = {"tokens", "cpt", "delta", "pct"}
WIDTHS = {"tokens": 9, "cpt": 9, "delta": 8, "pct": 7, "note": 26}


@dataclass(frozen=True)
class Loaded:
    tokenizer_id: str
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Counted:
    tokenizer_id: str
    generation: int
    count: TokenCount
    stats: CountStats | None
    seconds: float


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class TokensPane(Container):
    """Live token counts of the editor's text."""

    PANE_ID = "tokens"
    TITLE = "Tokens"

    BINDINGS = [
        Binding("ctrl+o", "open_file", "Open", id="tokens.open-file"),
        Binding("ctrl+t", "toggle_view", "Tokens/Editor", id="tokens.toggle-view"),
        Binding("f2", "toggle_ids", "Ids", id="tokens.toggle-ids"),
        Binding("f3", "toggle_whitespace", "Whitespace", id="tokens.toggle-whitespace"),
        Binding("f4", "toggle_specials", "Specials", id="tokens.toggle-specials"),
        Binding("f5", "choose_tokenizers", "Tokenizers", id="tokens.choose-tokenizers"),
        Binding("f9", "set_reference", "Set ref", id="tokens.set-reference"),
        Binding("f8", "choose_budget", "Budget", id="tokens.choose-budget"),
    ]

    class TokenizerLoaded(Message):
        def __init__(self, result: Loaded):
            super().__init__()
            self.result = result

    class CountReady(Message):
        def __init__(self, result: Counted):
            super().__init__()
            self.result = result

    class LaneDone(Message):
        def __init__(self, lane: str):
            super().__init__()
            self.lane = lane

    class PiecesReady(Message):
        def __init__(self, pieces: TokenPieces | None, caption: str):
            super().__init__()
            self.pieces = pieces
            self.caption = caption

    def __init__(self, registry: Registry, config: Config, *, text: str = "", source: str | None = None,
                 config_problem: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.registry = registry
        self.config = config
        self.config_problem = config_problem
        tokens = config.tokens
        self.enabled: tuple[str, ...] = tuple(tokens.enabled or registry.ids(include_discovered=False))
        self.reference = tokens.reference
        self.specials = tokens.specials if tokens.specials in ("literal", "parse") else "literal"
        self.budget_model = tokens.budget_model
        self.reserved_output = tokens.reserved_output
        self._initial_text = text
        self._source = source
        self.text = text
        self._bytes = 0
        self._lines = 0
        self.edits = EditLog()  # one version per edit; counters learn from it what changed
        self.generation = 0  # the version the pane shows (an edit, or a policy switch)
        self._started = False
        self.show_ids = False
        self.show_whitespace = False
        self.counters: dict[str, IncrementalCounter] = {}
        self.errors: dict[str, str] = {}
        self.counts: dict[str, Counted] = {}
        self._requested: set[str] = set()
        self._counting: set[str] = set()
        self._recount: set[str] = set()
        self._flush_pending = False
        self._flushed_at = 0.0
        self._whole_timer: Timer | None = None
        self._gc_timer: Timer | None = None
        self._view_timer: Timer | None = None
        self._budget_tokenizer: str | None = None
        self._budget_problem: str | None = None
        self._overrides: dict[str, int] = {}
        self.painted_at: float | None = None
        self.changed_at: float | None = None  # when the last edit reached the pane (perf script)
        #: when each row's cell first showed the count of the current version (perf script)
        self.updated_at: dict[str, tuple[int, float]] = {}
        self._shown: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="editor", id="top"):
            # soft-wrapping a megabyte costs about a second up front (every line measured): big
            # documents open unwrapped
            yield Editor(self._initial_text, id="editor", soft_wrap=len(self._initial_text) < SOFT_WRAP_CHARS,
                         show_line_numbers=False)
            yield TokenView(id="token-view")
        yield Static("", id="doc-info", markup=False)
        yield BudgetBar(id="budget")
        yield CountsTable(id="counts")

    def on_mount(self) -> None:
        editor = self.query_one("#editor", Editor)
        self._note_normalised(self.text, editor.text)
        self.text = editor.text  # what is counted is what the editor holds
        self.generation = self.edits.record(editor.take_span())
        self._measure(self.text, None)
        self._rebuild_rows()
        self._update_info()
        if self.config_problem:
            self.notify(self.config_problem, title="config not loaded", severity="error", timeout=10)

    def on_show(self) -> None:
        """The pane opens: the editor (or the table under the token view) takes focus unless
        something in the pane has it; the first time, tokenizers start loading."""
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.query_one("#counts" if self._view_visible() else "#editor").focus()
        if self._gc_timer is None:
            self._gc_timer = self.set_interval(GC_INTERVAL_S, self._collect_garbage)
        self._gc_timer.resume()
        if not self._started:
            self._started = True
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            self._resolve_budget()
            self.call_after_refresh(self._after_first_paint)

    def _collect_garbage(self) -> None:
        gc.collect()

    def on_hide(self) -> None:
        if self._gc_timer is not None:
            self._gc_timer.pause()

    def _after_first_paint(self) -> None:
        # loading holds the GIL for a while (tokenizer.json and tiktoken ranks are parsed in
        # Rust without releasing it): start it once the first frame is on screen
        self.painted_at = time.perf_counter()
        self._load(self._wanted_ids())

    def _wanted_ids(self) -> list[str]:
        ids = list(self.enabled)
        if self._budget_tokenizer and self._budget_tokenizer not in ids:
            ids.append(self._budget_tokenizer)
        return ids

    def _rebuild_rows(self) -> None:
        table = self.query_one("#counts", CountsTable)
        widths = {**WIDTHS, "tokenizer": max([14, *map(len, self.enabled)])}
        table.set_columns([Column(key, label, widths[key], key in NUMERIC) for key, label in COLUMNS])
        table.set_rows({tid: [tid, "loading…", "", "", "", ""] for tid in self.enabled})
        self._shown: dict[tuple[str, str], str] = {}
        self._flush()

    # ------------------------------------------------------------------ loading
    @work(thread=True, exit_on_error=False, group="load", description="load tokenizers")
    def _load(self, ids: list[str]) -> None:
        """Load tokenizers one at a time, cheap formats first, each in a pause in typing; report
        each as it is ready. (Two at a time finished no sooner: the parsing that takes the time
        holds the GIL, and two such holds in a row stopped the UI for up to 2 s instead of 1.3.)"""
        worker = get_current_worker()
        todo = [tid for tid in ids if tid not in self._requested]
        self._requested.update(todo)

        def weight(tid: str) -> tuple[int, int]:  # cheap formats first, then small files first
            try:
                info = self.registry.info(tid)
                size = Path(info.path).stat().st_size if info.path else 0
            except (TokenizerError, OSError):
                return 0, 0
            return {"estimate": 0, "tiktoken": 1, "tekken": 2}.get(info.format, 3), size

        def one(tid: str) -> Loaded:
            while (self.changed_at is not None and time.perf_counter() - self.changed_at < LOAD_WHEN_IDLE_S
                   and not worker.is_cancelled):
                time.sleep(0.05)
            started = time.perf_counter()
            try:
                self.registry.get(tid)
                return Loaded(tid, None, time.perf_counter() - started)
            except TokenizerError as exc:
                return Loaded(tid, str(exc), time.perf_counter() - started)
            except Exception as exc:  # a broken user file must only break its own row
                return Loaded(tid, f"{tid}: {type(exc).__name__}: {exc}", time.perf_counter() - started)

        for tid in sorted(todo, key=weight):
            if worker.is_cancelled:
                return
            self.post_message(self.TokenizerLoaded(one(tid)))

    @on(TokenizerLoaded)
    def _loaded(self, message: TokenizerLoaded) -> None:
        result = message.result
        if result.tokenizer_id not in self._wanted_ids():
            return  # disabled while it was loading
        if result.error:
            self.errors[result.tokenizer_id] = result.error
        else:
            tok = self.registry.get(result.tokenizer_id)
            self.counters[result.tokenizer_id] = IncrementalCounter(tok, self.specials)
            self._schedule(result.tokenizer_id)
        self._request_flush()
        if result.tokenizer_id == self.selected_id() and self._view_visible():
            self._request_pieces()
        if all(tid in self.counters or tid in self.errors for tid in self._wanted_ids()):
            # The loaded tokenizers and the document's structures live as long as the app:
            # keep them out of every full collection (walking them all took ~0.1 s with the UI
            # stopped), so the half-second ones (GC_INTERVAL_S) see only what is new.
            gc.freeze()

    # ------------------------------------------------------------------ counting
    @on(TextArea.Changed, "#editor")
    def _edited(self, event: TextArea.Changed) -> None:
        editor = self.query_one("#editor", Editor)
        old, self.text = self.text, editor.text
        span = editor.take_span()
        self.generation = self.edits.record(span)
        self.changed_at = time.perf_counter()
        self._measure(old, span)
        self._update_info()
        self._count_inline()
        big = len(self.text) > WHOLE_DEBOUNCE_CHARS
        for lane in LANES if not big else LANES[:2]:
            self._schedule_lane(lane)
        if big:
            if self._whole_timer is not None:
                self._whole_timer.stop()
            self._whole_timer = self.set_timer(WHOLE_DEBOUNCE_S, self._schedule_whole)
        self._flush()
        if self._view_visible():
            self._request_pieces()

    def _measure(self, old: str, span: tuple[int, int] | None) -> None:
        """The document's size in bytes and lines, from what the edit changed."""
        text = self.text
        if span is None:
            self._bytes = _utf8_len(text)
        else:
            p = min(span[0], len(old), len(text))
            s = min(span[1], len(old) - p, len(text) - p)
            self._bytes += _utf8_len(text[p:len(text) - s]) - _utf8_len(old[p:len(old) - s])
        self._lines = self.query_one("#editor", Editor).document.line_count if text else 0

    def _schedule_whole(self) -> None:
        self._schedule_lane("whole")

    def _lane(self, counter: IncrementalCounter) -> str:
        stats = counter.stats
        # no cut rule, or a document with (almost) no cut points for it: counting is a full
        # encode either way, so it waits for a pause in typing with the whole-count rows
        if not counter.incremental or (stats is not None and stats.blocks < 4 and len(self.text) > WHOLE_DEBOUNCE_CHARS):
            return "whole"
        return "tiktoken" if counter.tokenizer.info.format in ("tiktoken", "tekken") else "incremental"

    def _count_inline(self) -> None:
        """Count the tiktoken-family rows here and now when the edit is small.

        Their encoders take no lock and release the GIL, and a keystroke costs each about a
        tenth of a millisecond: cheaper than handing it to a thread and back. Rows busy in a
        lane, edits needing more than INLINE_CHARS encoded, and rows past INLINE_BUDGET_S are
        left to the lane.
        """
        started = time.perf_counter()
        for counter in list(self.counters.values()):
            if self._lane(counter) != "tiktoken" or counter.version is None:
                continue
            if time.perf_counter() - started > INLINE_BUDGET_S:
                break
            self._store(self._count_one(counter, self.text, self.generation, INLINE_CHARS))

    def _count_one(self, counter: IncrementalCounter, text: str, generation: int, max_chars: int | None = None,
                   cancelled=None) -> Counted | None:
        """One row's count of version ``generation`` (None: not counted, see IncrementalCounter.count)."""
        started = time.perf_counter()
        tid = counter.tokenizer.id
        try:
            if max_chars is not None:  # inline: never wait for a lane that has this row
                n = counter.count(text, version=generation, edits=self.edits, max_chars=max_chars, wait=False)
            else:
                n = counter.count(text, cancelled, version=generation, edits=self.edits)
        except Exception as exc:  # a tokenizer failing on some text fails its row, not the app
            count = TokenCount(tid, None, len(text), counter.tokenizer.info.exact,
                               error=f"{tid}: {type(exc).__name__}: {exc}")
        else:
            if n is None:
                return None
            count = TokenCount(tid, n, len(text), counter.tokenizer.info.exact)
        return Counted(tid, generation, count, counter.stats, time.perf_counter() - started)

    def _schedule(self, tid: str) -> None:
        self._schedule_lane(self._lane(self.counters[tid]))

    def _schedule_lane(self, lane: str) -> None:
        """Count a lane's rows now, or as soon as its running count finishes (latest edit wins).

        Three lanes, one thread each: tiktoken-family rows (edits too big to count inline), the
        other incremental rows, and the rows counted whole. Few threads keep the GIL hand-offs
        few; separate lanes keep a slow row from holding up a fast one.
        """
        if lane in self._counting:
            self._recount.add(lane)
            return
        generation = self.generation
        counters = [c for c in self.counters.values() if self._lane(c) == lane and
                    not (c.tokenizer.id in self.counts and self.counts[c.tokenizer.id].generation == generation)]
        if not counters:
            return
        self._counting.add(lane)
        # an explicit description: Textual would otherwise repr() the callable, document included
        self.run_worker(partial(self._count_lane, lane, counters, self.text, generation), thread=True,
                        exclusive=True, exit_on_error=False, group=f"count-{lane}", name=f"count {lane}",
                        description=f"count {lane} (edit {generation})")

    def _count_lane(self, lane: str, counters: list[IncrementalCounter], text: str, generation: int) -> None:
        worker = get_current_worker()

        def stale() -> bool:  # a newer edit or the app closing: stop, the next run resumes from the cache
            return worker.is_cancelled or self.generation != generation

        for counter in counters:
            if stale():
                break
            result = self._count_one(counter, text, generation, cancelled=stale)
            if result is not None:
                self.post_message(self.CountReady(result))
        self.post_message(self.LaneDone(lane))

    @on(CountReady)
    def _counted(self, message: CountReady) -> None:
        self._store(message.result)
        self._request_flush()

    def _store(self, result: Counted | None) -> None:
        if result is None:
            return  # stopped for a newer edit, or left to a lane
        tid = result.tokenizer_id
        if tid not in self.counters:
            return  # disabled meanwhile
        previous = self.counts.get(tid)
        if result.count.error:
            self.errors[tid] = result.count.error
        elif previous is None or result.generation >= previous.generation:
            self.counts[tid] = result
            self.errors.pop(tid, None)

    @on(LaneDone)
    def _lane_done(self, message: LaneDone) -> None:
        self._counting.discard(message.lane)
        if message.lane in self._recount:
            self._recount.discard(message.lane)
            self._schedule_lane(message.lane)

    def settled(self) -> bool:
        """True when every loaded row has counted the current text (for tests and the perf script)."""
        if len(self.counters) + len(self.errors) < len(set(self._wanted_ids())):
            return False
        return all(tid in self.errors or (tid in self.counts and self.counts[tid].generation == self.generation)
                   for tid in self.counters)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug in a background task: say so (the rows it owned keep their last values)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.name}: {type(error).__name__}: {error}", title="background task failed",
                        severity="error", timeout=10)
            if event.worker.group.startswith("count-"):
                self._counting.discard(event.worker.group.removeprefix("count-"))

    # ------------------------------------------------------------------ drawing
    def _request_flush(self) -> None:
        """Redraw the table once for any number of results: now if idle, else after FLUSH_INTERVAL_S."""
        if self._flush_pending:
            return
        self._flush_pending = True
        wait = FLUSH_INTERVAL_S - (time.perf_counter() - self._flushed_at)
        if wait <= 0.001:
            self.call_later(self._flush)
        else:
            self.set_timer(wait, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        now = self._flushed_at = time.perf_counter()
        table = self.query_one("#counts", CountsTable)
        ref = self.counts.get(self.reference)
        ref_n = ref.count.tokens if ref and ref.generation == self.generation else None
        for tid in self.enabled:
            values = self._row(tid, ref_n)
            for (key, _), value in zip(COLUMNS[1:], values):
                if self._shown.get((tid, key)) != value:
                    self._shown[(tid, key)] = value
                    table.update_cell(tid, key, value)
            result = self.counts.get(tid)
            if result is not None and result.generation == self.generation \
                    and self.updated_at.get(tid, (None,))[0] != self.generation:
                self.updated_at[tid] = (self.generation, now)
        self._update_budget()

    def _row(self, tid: str, ref_n: int | None) -> tuple[str, str, str, str, str]:
        if tid in self.errors:
            return "error", "", "", "", self.errors[tid]
        if tid not in self.counters:
            return "loading…", "", "", "", ""
        result = self.counts.get(tid)
        if result is None:
            return "counting…", "", "", "", ""
        n = result.count.tokens
        stale = result.generation != self.generation
        tokens = f"{n:,}" + ("…" if stale else "")
        cpt = f"{result.count.chars_per_token:.2f}" if result.count.chars_per_token else "-"
        delta = pct = ""
        if ref_n is not None and tid != self.reference:
            delta = f"{n - ref_n:+,}"
            pct = f"{(n - ref_n) / ref_n:+.1%}" if ref_n else ""
        notes = []
        if tid == self.reference:
            notes.append("reference")
        if not result.count.exact:
            notes.append("estimate: Δ is its error")
        elif self.registry.info(tid).approximate:
            notes.append("approximate")
        return tokens, cpt, delta, pct, ", ".join(notes)

    def _update_info(self) -> None:
        size = f"{len(self.text):,} chars · {self._bytes:,} bytes · {self._lines:,} lines"
        parts = [size, f"specials: {self.specials}", f"ref: {self.reference}"]
        if self._source:
            parts.insert(0, self._source)
        # one line of fixed size: no layout pass (a reflow of the whole screen per keystroke)
        self.query_one("#doc-info", Static).update("  ·  ".join(parts), layout=False)

    # ------------------------------------------------------------------ budget
    def _resolve_budget(self) -> None:
        self._budget_tokenizer, self._budget_problem = None, None
        try:
            self._overrides = parse_overrides(self.config.tokens.context_windows)
        except TokdeckError as exc:
            self._overrides = {}
            self.notify(str(exc), severity="error")
        try:
            self._budget_tokenizer = resolve_model(self.budget_model, self.registry).tokenizer_id
        except TokenizerError as exc:
            self._budget_problem = str(exc)
        self._update_budget()

    def _update_budget(self) -> None:
        bar = self.query_one("#budget", BudgetBar)
        label = f"{self.budget_model} → {self._budget_tokenizer or '?'}"
        if self._budget_problem:
            bar.show(label, None, self._budget_problem)
            return
        window = context_window(self.budget_model, self._overrides)
        if window is None:
            bar.show(label, None, "context window unknown: add it to [tokens] context_windows")
            return
        tid = self._budget_tokenizer
        if tid in self.errors:
            bar.show(label, None, self.errors[tid])
            return
        result = self.counts.get(tid)
        if result is None:
            bar.show(label, None)
            return
        bar.show(label, Budget(result.count.tokens, window.tokens, self.reserved_output))

    # ------------------------------------------------------------------ token view
    def selected_id(self) -> str | None:
        table = self.query_one("#counts", CountsTable)
        if not self.enabled or table.row_count == 0:
            return None
        row = min(table.cursor_row, len(self.enabled) - 1)
        return self.enabled[max(row, 0)]

    def _view_visible(self) -> bool:
        return self.query_one("#top", ContentSwitcher).current == "token-view"

    @on(CountsTable.RowHighlighted, "#counts")
    def _row_highlighted(self) -> None:
        if self._view_visible():
            self._request_pieces(now=True)

    def _request_pieces(self, now: bool = False) -> None:
        if self._view_timer is not None:
            self._view_timer.stop()
            self._view_timer = None
        if now:
            self.call_later(self._compute_pieces)
        else:
            self._view_timer = self.set_timer(0.15, self._compute_pieces)

    def _compute_pieces(self) -> None:
        tid = self.selected_id()
        editor = self.query_one("#editor", Editor)
        self._pieces_worker(tid, self.text, editor.cursor_offset())

    @work(thread=True, exclusive=True, exit_on_error=False, group="pieces", description="token view")
    def _pieces_worker(self, tid: str | None, text: str, cursor: int) -> None:
        if tid is None:
            self.post_message(self.PiecesReady(None, "no tokenizer selected"))
            return
        counter = self.counters.get(tid)
        if counter is None:
            reason = self.errors.get(tid, "loading…")
            self.post_message(self.PiecesReady(None, f"{tid}: {reason}"))
            return
        tok = counter.tokenizer
        if not tok.has_vocab:
            self.post_message(self.PiecesReady(None, f"{tid} is a character estimate: it has no tokens to show"))
            return
        start, end = window_bounds(text, tok.cut_rule, cursor, VIEW_CHARS)
        pieces = token_pieces(tok, text[start:end], self.specials, VIEW_TOKENS)
        caption = f"{tid}: {pieces.total:,} tokens"
        if (start, end) != (0, len(text)):
            caption += f" in characters {start:,}–{end:,} around the cursor (of {len(text):,})"
        if pieces.truncated:
            caption += f"; showing the first {len(pieces.pieces):,}"
        caption += f"  ·  F2 ids {'on' if self.show_ids else 'off'} · F3 whitespace " \
                   f"{'on' if self.show_whitespace else 'off'} · ctrl+t back to the editor"
        self.post_message(self.PiecesReady(pieces, caption))

    @on(PiecesReady)
    def _pieces_ready(self, message: PiecesReady) -> None:
        view = self.query_one("#token-view", TokenView)
        view.set_options(show_ids=self.show_ids, show_whitespace=self.show_whitespace)
        view.show(message.pieces, message.caption)

    # ------------------------------------------------------------------ actions
    def action_toggle_view(self) -> None:
        switcher = self.query_one("#top", ContentSwitcher)
        if switcher.current == "editor":
            switcher.current = "token-view"
            self._request_pieces(now=True)
            self.query_one("#counts", CountsTable).focus()
        else:
            switcher.current = "editor"
            self.query_one("#editor", TextArea).focus()

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        self._refresh_view_options()

    def action_toggle_whitespace(self) -> None:
        self.show_whitespace = not self.show_whitespace
        self._refresh_view_options()

    def _refresh_view_options(self) -> None:
        self.query_one("#token-view", TokenView).set_options(show_ids=self.show_ids,
                                                             show_whitespace=self.show_whitespace)
        self.notify(f"token ids {'on' if self.show_ids else 'off'}, "
                    f"whitespace {'visible' if self.show_whitespace else 'plain'}", timeout=2)
        if self.query_one("#top", ContentSwitcher).current == "token-view":
            self._request_pieces(now=True)

    def action_toggle_specials(self) -> None:
        self.set_specials("parse" if self.specials == "literal" else "literal")

    def set_specials(self, policy: str) -> None:
        self.specials = policy
        self.counters = {tid: IncrementalCounter(c.tokenizer, policy) for tid, c in self.counters.items()}
        self.counts.clear()
        self.generation = self.edits.record(UNCHANGED)
        self._save(specials=policy)
        self._update_info()
        for lane in LANES:
            self._schedule_lane(lane)
        self._flush()
        self.notify(f"special tokens: {policy}", timeout=2)

    def action_set_reference(self) -> None:
        tid = self.selected_id()
        if tid is None:
            return
        self.reference = tid
        self._save(reference=tid)
        self._update_info()
        self._flush()

    def action_choose_tokenizers(self) -> None:
        self._gather_infos()

    @work(thread=True, exit_on_error=False, group="infos")
    def _gather_infos(self) -> None:
        infos = self.registry.infos()  # discovery reads folders: off the UI thread
        self.app.call_from_thread(self._open_picker, infos)

    def _open_picker(self, infos) -> None:
        def chosen(ids: tuple[str, ...] | None) -> None:
            if ids is None:
                return
            self.set_enabled(ids)

        self.app.push_screen(TokenizerPickerScreen(infos, self.enabled), chosen)

    def set_enabled(self, ids: tuple[str, ...]) -> None:
        self.enabled = tuple(ids)
        self._save(enabled=self.enabled)
        wanted = set(self._wanted_ids())
        for table in (self.counters, self.counts, self.errors):
            for tid in [t for t in table if t not in wanted]:
                del table[tid]
        self._requested &= wanted
        self._rebuild_rows()
        self._load(self._wanted_ids())

    def action_choose_budget(self) -> None:
        def chosen(choice: BudgetChoice | None) -> None:
            if choice is not None:
                self.set_budget(choice.model, choice.reserved_output)

        self.app.push_screen(BudgetScreen(self.budget_model, self.reserved_output), chosen)

    def set_budget(self, model: str, reserved: int) -> None:
        self.budget_model, self.reserved_output = model, reserved
        self._save(budget_model=model, reserved_output=reserved)
        self._resolve_budget()
        self._load(self._wanted_ids())

    def action_open_file(self) -> None:
        screen = OpenFileScreen()

        def chosen(path: str | None) -> None:
            if path:
                self._read_file(path)

        self.app.push_screen(screen, chosen)

    @work(thread=True, exit_on_error=False, group="open", description="open a file")
    def _read_file(self, path: str) -> None:
        from ..core.paths import read_text_file  # strict UTF-8, BOM dropped, one-line errors

        try:
            text = read_text_file(Path(path).expanduser())
        except TokdeckError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="cannot open", severity="error")
            return
        self.app.call_from_thread(self.load_text, text, path)

    def load_text(self, text: str, source: str | None = None) -> None:
        self._source = source
        editor = self.query_one("#editor", TextArea)
        editor.load_text(text)  # posts TextArea.Changed
        self._note_normalised(text, editor.text)

    def _note_normalised(self, original: str, edited: str) -> None:
        """TextArea keeps one newline style per document (CRLF if the text has any) and treats
        U+2028, U+0085 and other line separators as newlines: say so when that changed the text."""
        if original != edited:
            self.notify("The editor normalised this text's line endings; counts are of the text as shown "
                        "(`tokdeck count FILE` counts the file byte for byte).", title="line endings",
                        severity="warning", timeout=8)

    # ------------------------------------------------------------------ config
    def _save(self, **changes) -> None:
        self.config = replace_section(self.config, "tokens", **changes)
        if self.config_problem:
            return  # never overwrite a config file we could not read
        try:
            save_config(self.config)
        except OSError as exc:
            self.notify(f"cannot save the config: {exc}", severity="error")
