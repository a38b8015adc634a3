"""The Tokens pane: an editor, live counts from every enabled tokenizer, the token view and a budget.

The counting happens in the counting process (``tui.core.tokenizers.counting_client``), which
the pane starts when it is first shown: the UI process never loads a tokenizer or encodes a
text (loading one holds the GIL for up to a second, a whole-text count for hundreds of
milliseconds, and both stopped the screen). The pane sends each edit as the editor's edit span
(only the changed text travels) and draws the counts that come back, each with the version of
the document it belongs to: a row whose newest count is of an older version shows ``…``.
Results are drawn in one batch per FLUSH_INTERVAL_S. The token view's pieces come from the
process too. If it dies, the rows say so until the restarted process has counted them again.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Static, TextArea

from ..core.config import Config, replace_section, save_config
from ..core.errors import TokdeckError, TokenizerError
from ..core.tokenizers import Registry, resolve_model
from ..core.tokenizers.context import Budget, context_window, parse_overrides
from ..core.tokenizers.counting_client import (TIKTOKEN_DONE, CountingService, DocumentCounts, Event, ProcessProblem,
                                               ProcessStopped, RowCount, RowCounts, TokenizerLoaded, TokenWindow)
from .screens import BudgetChoice, BudgetScreen, OpenFileScreen, TokenizerPickerScreen
from .widgets import BudgetBar, Editor, TokenView
from .widgets.counts_table import Column, CountsTable

#: the token view tokenizes at most this many characters around the cursor and shows this many tokens
VIEW_CHARS = 20_000
#: the table is redrawn at most this often while results stream in (a row costs ~0.1 ms)
FLUSH_INTERVAL_S = 0.02
#: an edit waits at most this long for the tiktoken family's counts, which the counting processes
#: make first as soon as it arrives (back within a millisecond or two), so that they are drawn with
#: the edit itself; arriving later, they would wait for the editor's own redraw of the edit (10-30 ms
#: on a megabyte). The other incremental rows (Hugging Face encodes, a few milliseconds more) are
#: not waited for: they follow in the next redraw rather than hold up the first
#: (tests/perf/perf_tokens_incremental.py: keystroke -> tiktoken rows, -> every incremental row)
EDIT_WAIT_S = 0.004
SOFT_WRAP_CHARS = 200_000
#: the interpreter's thread switch interval while the pane runs: the counting client's reader
#: thread waits for the GIL up to this long each time the UI thread is busy drawing, before it
#: can hand a result over (Python's default is 5 ms)
SWITCH_INTERVAL_S = 0.001
#: a full garbage collection this often while the pane is shown. Textual leaves every line it
#: draws in a reference cycle (a Strip caches its own division), ~2,000 objects a keystroke here;
#: left to the automatic full collections they are freed tens of thousands at a time, 50-120 ms
#: with the UI stopped. Collected every half second: a few milliseconds each time.
GC_INTERVAL_S = 0.5
VIEW_TOKENS = 4_000
COLUMNS = (("tokenizer", "tokenizer"), ("tokens", "tokens"), ("cpt", "chars/tok"), ("delta", "Δ ref"),
           ("pct", "Δ %"), ("note", "note"))
NUMERIC = {"tokens", "cpt", "delta", "pct"}
WIDTHS = {"tokens": 9, "cpt": 9, "delta": 8, "pct": 7, "note": 26}


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

    class Counting(Message):
        """An event of the counting process (posted from the client's reader thread)."""

        def __init__(self, event: Event):
            super().__init__()
            self.event = event

    def __init__(self, registry: Registry, counting: CountingService, config: Config, *, text: str = "",
                 source: str | None = None, config_problem: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.registry = registry
        self.counting = counting
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
        self.doc: DocumentCounts | None = None  # this document in the counting process, once shown
        self.generation = 0  # the version the pane shows: one per edit or policy switch
        self._started = False
        self.show_ids = False
        self.show_whitespace = False
        self.loaded: set[str] = set()  # rows whose tokenizer the counting process has loaded
        self.errors: dict[str, str] = {}
        self.counts: dict[str, RowCount] = {}
        self.interrupted: dict[str, str] = {}  # rows not yet counted again since the process stopped: why
        self._flush_pending = False
        self._flushed_at = 0.0
        self._gc_timer: Timer | None = None
        self._view_timer: Timer | None = None
        self._window_request = 0  # the token view's latest request to the counting process
        self._window_shown = 0  # the request whose answer the token view shows
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
        editor.take_span()
        self.generation += 1
        self._measure(self.text, None)
        self._rebuild_rows()
        self._update_info()
        if self.config_problem:
            self.notify(self.config_problem, title="config not loaded", severity="error", timeout=10)

    def on_show(self) -> None:
        """The pane opens: the editor (or the table under the token view) takes focus unless
        something in the pane has it; the first time, the counting starts."""
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

    def on_unmount(self) -> None:
        if self.doc is not None:
            self.doc.close()

    def _after_first_paint(self) -> None:
        # the process starts once the first frame is on screen; the whole text goes to it in
        # pieces from the client's sender thread
        self.painted_at = time.perf_counter()
        self.doc = self.counting.open_document(lambda event: self.post_message(self.Counting(event)))
        self.doc.set_rows(self._wanted_ids())
        self.doc.reset(self.generation, self.text, self.specials)
        # the widgets and the document's lines live as long as the app: keep them out of every
        # full collection, so the half-second ones (GC_INTERVAL_S) see only what is new
        gc.freeze()

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

    # ------------------------------------------------------------------ counting
    @on(TextArea.Changed, "#editor")
    def _edited(self, event: TextArea.Changed) -> None:
        editor = self.query_one("#editor", Editor)
        old, self.text = self.text, editor.text
        span = editor.take_span()
        self.generation += 1
        self.changed_at = time.perf_counter()
        self._measure(old, span)
        self._update_info()
        if self.doc is not None:
            self.doc.edit(self.generation, self.text, span)
            self._store(self.doc.wait_for_counts(self.generation, EDIT_WAIT_S, TIKTOKEN_DONE))
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

    @on(Counting)
    def _counting_event(self, message: Counting) -> None:
        event = message.event
        wanted = set(self._wanted_ids())
        if isinstance(event, RowCounts):
            self._store(event.rows)
            if event.inline and any(row.version == self.generation for row in event.rows):
                self._flush_now()  # the current edit's counts that came after its own redraw
            else:
                self._request_flush()
        elif isinstance(event, TokenizerLoaded):
            tid = event.tokenizer_id
            if tid not in wanted:
                return
            if event.error:
                self.errors[tid] = event.error
                self.interrupted.pop(tid, None)
            else:
                self.loaded.add(tid)
            self._request_flush()
            if tid == self.selected_id() and self._view_visible():
                self._request_pieces(now=True)
        elif isinstance(event, TokenWindow):
            self._show_window(event)
        elif isinstance(event, ProcessStopped):
            stopped = wanted.intersection(event.tokenizer_ids)  # the other process's rows go on
            self.loaded -= stopped
            for tid in stopped:
                self.errors.pop(tid, None)  # the new process reports its own
                self.interrupted.pop(tid, None)
                if event.restarting:
                    self.interrupted[tid] = f"{event.reason}; restarting"
                else:
                    self.errors[tid] = f"{event.reason}; choosing tokenizers (F5) starts it again"
            self.notify(event.reason + ("; restarting it" if event.restarting else ""), title="counting process",
                        severity="warning" if event.restarting else "error", timeout=8)
            self._flush()
        elif isinstance(event, ProcessProblem):
            self.notify(event.message, title="counting process", severity="error", timeout=10)

    def _store(self, rows) -> None:
        wanted = set(self._wanted_ids())
        for row in rows:
            tid = row.tokenizer_id
            if tid not in wanted:
                continue  # disabled meanwhile
            self.interrupted.pop(tid, None)
            self.loaded.add(tid)
            if row.count.error:
                self.errors[tid] = row.count.error
            else:
                self.counts[tid] = row  # never older than the row's last: the client drops those
                self.errors.pop(tid, None)

    def settled(self) -> bool:
        """True when every row has counted the current text or has an error (tests, perf script)."""
        return not self.interrupted and all(
            tid in self.errors or (tid in self.counts and self.counts[tid].version == self.generation)
            for tid in self._wanted_ids())

    # ------------------------------------------------------------------ drawing
    def _request_flush(self) -> None:
        """Redraw the table once for any number of results: now if idle, else FLUSH_INTERVAL_S
        after the last redraw for results (an edit's own redraw does not delay its first results)."""
        if self._flush_pending:
            return
        self._flush_pending = True
        wait = FLUSH_INTERVAL_S - (time.perf_counter() - self._flushed_at)
        if wait <= 0.001:
            self.call_later(self._flush_results)
        else:
            self.set_timer(wait, self._flush_results)

    def _flush_results(self) -> None:
        self._flush_pending = False
        self._flush_now()

    def _flush_now(self) -> None:
        self._flushed_at = time.perf_counter()
        self._flush()

    def _flush(self) -> None:
        now = time.perf_counter()
        table = self.query_one("#counts", CountsTable)
        ref = self.counts.get(self.reference)
        ref_n = ref.count.tokens if ref and ref.version == self.generation else None
        for tid in self.enabled:
            values = self._row(tid, ref_n)
            for (key, _), value in zip(COLUMNS[1:], values):
                if self._shown.get((tid, key)) != value:
                    self._shown[(tid, key)] = value
                    table.update_cell(tid, key, value)
            result = self.counts.get(tid)
            if result is not None and result.version == self.generation \
                    and self.updated_at.get(tid, (None,))[0] != self.generation:
                self.updated_at[tid] = (self.generation, now)
        self._update_budget()

    def _row(self, tid: str, ref_n: int | None) -> tuple[str, str, str, str, str]:
        if tid in self.errors:
            return "error", "", "", "", self.errors[tid]
        result = self.counts.get(tid)
        if result is None:
            return "counting…" if tid in self.loaded else "loading…", "", "", "", self.interrupted.get(tid, "")
        n = result.count.tokens
        stale = result.version != self.generation
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
        if tid in self.interrupted:
            notes.append(self.interrupted[tid])
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
        view = self.query_one("#token-view", TokenView)
        view.set_options(show_ids=self.show_ids, show_whitespace=self.show_whitespace)
        if tid is None:
            view.show(None, "no tokenizer selected")
        elif tid in self.errors:
            view.show(None, f"{tid}: {self.errors[tid]}")
        elif tid not in self.loaded or self.doc is None:
            view.show(None, f"{tid}: loading…")
        else:
            cursor = self.query_one("#editor", Editor).cursor_offset()
            self._window_request = self.doc.request_window(self.generation, tid, cursor, VIEW_CHARS, VIEW_TOKENS)

    def view_settled(self) -> bool:
        """True when the token view shows the answer to its latest request (tests)."""
        return self._window_shown == self._window_request

    def _show_window(self, window: TokenWindow) -> None:
        if window.request != self._window_request:
            return  # a newer request is on its way
        self._window_shown = window.request
        view = self.query_one("#token-view", TokenView)
        view.set_options(show_ids=self.show_ids, show_whitespace=self.show_whitespace)
        tid, pieces = window.tokenizer_id, window.pieces
        if pieces is None:
            view.show(None, f"{tid}: {window.error}" if not window.error.startswith(tid) else window.error)
            return
        caption = f"{tid}: {pieces.total:,} tokens"
        if (window.start, window.end) != (0, window.length):
            caption += f" in characters {window.start:,}–{window.end:,} around the cursor (of {window.length:,})"
        if pieces.truncated:
            caption += f"; showing the first {len(pieces.pieces):,}"
        caption += f"  ·  F2 ids {'on' if self.show_ids else 'off'} · F3 whitespace " \
                   f"{'on' if self.show_whitespace else 'off'} · ctrl+t back to the editor"
        view.show(pieces, caption)

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
        self.counts.clear()
        self.generation += 1
        if self.doc is not None:
            self.doc.set_specials(self.generation, policy)
        self._save(specials=policy)
        self._update_info()
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
        for table in (self.counts, self.errors, self.interrupted):
            for tid in [t for t in table if t not in wanted]:
                del table[tid]
        self._rebuild_rows()
        self._send_rows()

    def _send_rows(self) -> None:
        if self.doc is not None:
            if self.counting.stopped is not None:  # it gave up restarting: a user's choice tries again
                self.errors.clear()
                self.counting.start()
                self._flush()
            self.doc.set_rows(self._wanted_ids())

    def action_choose_budget(self) -> None:
        def chosen(choice: BudgetChoice | None) -> None:
            if choice is not None:
                self.set_budget(choice.model, choice.reserved_output)

        self.app.push_screen(BudgetScreen(self.budget_model, self.reserved_output), chosen)

    def set_budget(self, model: str, reserved: int) -> None:
        self.budget_model, self.reserved_output = model, reserved
        self._save(budget_model=model, reserved_output=reserved)
        self._resolve_budget()
        self._send_rows()

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
