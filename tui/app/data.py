"""The Data pane: validate and explore a local JSONL dataset of any size.

Three views (F2 summary, F3 problems, F4 records) over one file. Threads, each an exclusive
worker group so the latest request wins:

- ``data-scan``: the core's structure pass (``scan``), posting progress; F6 cancels it through
  a ``threading.Event`` and the report of what was read so far is shown, marked incomplete.
- ``data-index``: the line index (``LineIndex``) the record browser reads rows through.
- ``data-tokens``: the token pass (``scan_tokens``) for the tokenizers chosen with F5, after the
  structure pass; merged into the report with ``ScanReport.with_tokens``.
- ``data-search``: the filter (``search_lines``), streaming matching line numbers to the browser.
- ``data-export``: "Send to Bench" for a file the Bench pane cannot read as it is.

Workers never touch widgets: they post messages carrying the core's dataclasses, and the
handlers below own every state change (each message carries the generation it belongs to, so
results of a superseded file or search are dropped).
"""

from __future__ import annotations

import threading
import time
from array import array
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, ContentSwitcher, DataTable, Input, Label, ProgressBar, Select, Static
from textual_plotext import PlotextPlot

from ..core.datasets import (FORMATS, LineIndex, ScanProgress, ScanReport, TokenReport, check_readable, export, scan,
                             scan_tokens)
from ..core.datasets.search import Query, SearchBatch, parse_query, search_lines
from ..core.errors import TokdeckError
from ..core.paths import data_dir
from ..core.units import human_bytes as _size
from .messages import SendToBench
from .screens import TokenizerPickerScreen
from .widgets.data_browser import DETAIL_BYTES, DetailView, RecordBrowser, conversation_text

#: problems listed in the table at most (the rest are counted: "N more")
MAX_ROWS = 1000
#: Data formats the Bench pane's loaders read as they are, and the bench dataset name for each
BENCH_NAMES = {"openai-chat": "custom", "message-list": "custom", "prompt": "custom", "sharegpt": "sharegpt"}
VIEWS = ("summary", "problems", "records")


def bench_plan(report: ScanReport) -> tuple[str, str | None]:
    """How Send to Bench hands this file over: ("as-is", format), ("export", None) or ("no", reason).

    The Bench loaders stop at the first unreadable line and know only vLLM's custom and ShareGPT
    shapes, so a file with invalid records or another format is first exported to ``prompt``
    (its valid records, vLLM's custom format)."""
    fmt = report.format.format
    if fmt == "unknown":
        return "no", "the format is unknown: open it again with a format chosen"
    if not report.complete:
        return "no", f"the report is incomplete ({report.incomplete_reason}): rescan the whole file first (ctrl+r)"
    if not report.valid:
        return "no", "no valid records to benchmark with"
    if fmt in BENCH_NAMES and not report.invalid:
        return "as-is", fmt
    return "export", None


def summary_text(r: ScanReport) -> Text:
    """The report's summary for the pane (the `tokdeck inspect` report's content, compacted)."""
    g, s, c = r.format, r.stats, r.checks
    out = Text()
    out.append(f"{Path(r.path).name}", style="bold")
    out.append(f"  {g.format}", style="bold cyan")
    out.append(f" · {g.container} · {g.how}")
    out.append(("; UTF-8 BOM" if g.bom else "") + ("; CRLF" if g.crlf else "") + "\n")
    if not r.complete:
        out.append(f"INCOMPLETE ({r.incomplete_reason}): counts so far\n", style="bold yellow")
    out.append(f"{r.records:,} records: ")
    out.append(f"{r.valid:,} valid", style="green")
    out.append(", ")
    out.append(f"{r.invalid:,} invalid", style="red" if r.invalid else "")
    out.append(f"; {s.lines:,} lines, {_size(s.bytes)}, {s.blank_lines:,} blank; {r.elapsed:.2f} s"
               + (f", {r.workers} processes" if r.workers > 1 else "") + "\n")
    if r.error_total:
        out.append(f"errors {r.error_total:,}: ", style="red")
        out.append(", ".join(f"{k} {n:,}" for k, n in sorted(r.error_counts.items(), key=lambda kv: -kv[1])) + "\n")
    else:
        out.append("errors: none\n", style="green")
    if r.warning_total:
        out.append(f"warnings {r.warning_total:,}: ", style="yellow")
        out.append(", ".join(f"{k} {n:,}" for k, n in sorted(r.warning_counts.items(), key=lambda kv: -kv[1])) + "\n")
    else:
        out.append("warnings: none\n")
    if s.roles:
        label = "role" if s.turns else "field"
        out.append(f"\n{label:<14}{'count':>9}{'chars':>13}{'mean':>9}{'max':>10}\n", style="bold")
        for role, v in s.roles.items():
            out.append(f"{role[:13]:<14}{v.messages:>9,}{v.chars:>13,}{v.mean_chars:>9,.0f}{v.max_chars:>10,}\n")
    if s.turns:
        t = s.turns
        out.append(f"messages per record: min {t.min}, mean {t.mean:.1f}, p50 {t.p50}, p90 {t.p90}, max {t.max}\n")
    if s.output_tokens:
        t = s.output_tokens
        out.append(f"declared output_tokens: min {t.min:,}, mean {t.mean:,.0f}, p50 {t.p50:,}, max {t.max:,}\n")
    how = ("estimated (CJK/1.5 + other/4 chars; F5 picks a tokenizer)" if c.estimated and c.tokenizer_id == "estimate"
           else f"from {c.tokenizer_id}" + (" (approximate)" if c.estimated else ""))
    out.append(f"\nchecks, token counts {how}\n", style="bold")
    if c.vllm_dropped is not None:
        if c.vllm_dropped:
            reasons = ", ".join(f"{k} {n:,}" for k, n in c.vllm_reasons.items())
            lines = ", ".join(map(str, c.vllm_lines[:8])) + (" …" if len(c.vllm_lines) > 8 else "")
            note = "" if g.format == "sharegpt" else " (after conversion)"
            out.append(f"  vLLM's ShareGPT loader would drop {c.vllm_dropped:,}{note}: {reasons}; lines {lines}\n")
        else:
            out.append("  vLLM's ShareGPT loader keeps every valid record\n")
    if c.context_length:
        out.append(f"  over the context length {c.context_length:,}: {c.over_context:,}\n")
    if c.duplicate_prompts:
        ex = ", ".join(f"line {a} = line {b}" for a, b in c.duplicate_examples[:4])
        out.append(f"  duplicate prompts: {c.duplicate_prompts:,} ({ex})\n")
    else:
        out.append("  duplicate prompts: none\n")
    for tid, t in r.tokens.items():
        out.append(f"\ntokens: {tid}" + ("" if t.exact else " (estimate)") + ", raw text\n", style="bold")
        if t.error:
            out.append(f"  failed: {t.error}\n", style="red")
            continue
        out.append(f"{'':<10}{'min':>8}{'mean':>10}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}{'total':>13}\n")
        answer = "answer*" if t.answer_source == "output_tokens" else "answer"
        for name, sm in (("prompt", t.prompt), (answer, t.answer)):
            if sm:
                out.append(f"{name:<10}{sm.min:>8,}{sm.mean:>10,.1f}{sm.p50:>8,}{sm.p90:>8,}{sm.p99:>8,}"
                           f"{sm.max:>9,}{sm.total:>13,}\n")
        if t.answer_source == "output_tokens":
            out.append("  * declared output_tokens\n", style="dim")
    return out


def plot_series(r: ScanReport) -> tuple[str, list[tuple[str, list[str], list[int]]]]:
    """(title, [(series name, bin labels, counts)]) for the histogram: token lengths of the first
    tokenizer's prompts and answers when known, else messages per record or declared output tokens.
    Bins come from the core's histograms (at most 20 a series): the plot never grows with the file."""
    for tid, t in r.tokens.items():
        if t.error:
            continue
        series = [(name, [str(e) for e in sm.histogram.edges[:-1]], list(sm.histogram.counts))
                  for name, sm in (("prompt", t.prompt), ("answer", t.answer)) if sm]
        if series:
            return f"{tid} tokens: records per length bin", series
    s = r.stats
    if s.turns:
        return "messages per record", [("records", [str(e) for e in s.turns.histogram.edges[:-1]],
                                        list(s.turns.histogram.counts))]
    if s.output_tokens:
        h = s.output_tokens.histogram
        return "declared output_tokens", [("records", [str(e) for e in h.edges[:-1]], list(h.counts))]
    return "", []


class OpenDatasetScreen(ModalScreen[tuple[str, str | None] | None]):
    """Asks for a dataset path and (optionally) its format; returns (path, format or None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="data.open-cancel")]

    def __init__(self, initial: str = "", format: str | None = None):
        super().__init__()
        self.initial, self.format = initial, format

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Open a JSONL dataset (or a JSON array file):")
            yield Input(self.initial, placeholder="path/to/data.jsonl", id="data-open-path")
            yield Label("Format (detected from the content unless chosen):")
            select = Select([(f, f) for f in FORMATS], prompt="detect", id="data-open-format")
            if self.format:
                select.value = self.format
            yield select
            with Horizontal(classes="buttons"):
                yield Button("Open", id="open", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#open")
    def _submit(self) -> None:
        path = self.query_one("#data-open-path", Input).value.strip()
        fmt = self.query_one("#data-open-format", Select).value
        if path:
            self.dismiss((path, str(fmt) if isinstance(fmt, str) else None))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class DataPane(Container):
    """JSONL dataset inspection. ``path``: the file given on the command line, if any."""

    PANE_ID = "data"
    TITLE = "Data"

    DEFAULT_CSS = """
    DataPane { layout: vertical; height: 1fr; }
    DataPane #data-status { height: 1; padding: 0 1; color: $text-muted; }
    DataPane #data-progress { height: 1; padding: 0 1; }
    DataPane #data-progress.hidden { display: none; }
    DataPane #data-views { height: 1fr; }
    DataPane #data-summary-view { height: 1fr; }
    DataPane #data-summary { padding: 0 1; height: auto; }
    DataPane #data-hists { height: 14; }
    DataPane #data-hists PlotextPlot { width: 1fr; }
    DataPane #data-problems-note { height: 1; padding: 0 1; color: $text-muted; }
    DataPane #data-problems { height: 1fr; }
    DataPane #data-search { height: 1; border: none; padding: 0 1; }
    DataPane #data-browser { height: 1fr; min-height: 4; }
    DataPane #data-detail { height: 1fr; min-height: 4; border-top: solid $primary-darken-2; padding: 0 1; }
    DataPane #data-records-note { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("ctrl+o", "open", "Open", id="data.open"),
        Binding("f2", "show_view('summary')", "Summary", id="data.view-summary"),
        Binding("f3", "show_view('problems')", "Problems", id="data.view-problems"),
        Binding("f4", "show_view('records')", "Records", id="data.view-records"),
        Binding("ctrl+f", "search", "Search", id="data.search"),
        Binding("f5", "choose_tokenizers", "Tokenizers", id="data.tokenizers"),
        Binding("f6", "cancel", "Cancel", id="data.cancel"),
        Binding("f7", "send_to_bench", "To Bench", id="data.send-bench"),
        Binding("ctrl+r", "rescan", "Rescan", id="data.rescan"),
    ]

    # ------------------------------------------------------------ messages (posted by workers)
    class Scanned(Message):
        def __init__(self, gen: int, item: ScanProgress | ScanReport | TokenReport | None, error: str | None = None):
            super().__init__()
            self.gen, self.item, self.error = gen, item, error

    class Indexed(Message):
        def __init__(self, gen: int, index: LineIndex | None, lines: int, error: str | None = None):
            super().__init__()
            self.gen, self.index, self.lines, self.error = gen, index, lines, error

    class Searched(Message):
        def __init__(self, gen: int, batch: SearchBatch | None, error: str | None = None):
            super().__init__()
            self.gen, self.batch, self.error = gen, batch, error

    class Exported(Message):
        def __init__(self, path: Path | None, error: str | None = None):
            super().__init__()
            self.path, self.error = path, error

    def __init__(self, path: Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.format: str | None = None  # the user's override, else detected
        self.gen = 0  # the open file's generation: messages of older ones are dropped
        self.search_gen = 0
        self.report: ScanReport | None = None
        self.structure: ScanReport | None = None  # the report before any token pass
        self.progress: ScanProgress | None = None
        self.index: LineIndex | None = None
        self.tokenizers: tuple[str, ...] = ()
        self.query: Query | None = None
        self.search_done = True
        self.scanning = False
        self.tokenizing = False
        self._cancel = threading.Event()
        self._search_cancel = threading.Event()
        self._detail_timer = None
        self._plotted: object = None  # the series last drawn (the plot is rebuilt only when they change)
        self._problem_lines: list[int] = []
        self._issues_by_line: dict[int, list] = {}

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("ctrl+o opens a dataset", id="data-status", markup=False)
        yield ProgressBar(total=100, show_eta=False, id="data-progress", classes="hidden")
        with ContentSwitcher(initial="data-summary-view", id="data-views"):
            with VerticalScroll(id="data-summary-view"):
                yield Static("No dataset open. ctrl+o opens one; `tokdeck ui FILE.jsonl` opens it here.",
                             id="data-summary", markup=False)
                with Horizontal(id="data-hists"):
                    yield PlotextPlot(id="data-hist")
                    yield PlotextPlot(id="data-hist-answer")
            with Vertical(id="data-problems-view"):
                yield Static("", id="data-problems-note", markup=False)
                yield DataTable(id="data-problems", cursor_type="row", zebra_stripes=True)
            with Vertical(id="data-records-view"):
                yield Input(placeholder="ctrl+f: filter by text, or field:value (e.g. role:tool); enter runs, "
                                        "escape clears", id="data-search")
                yield Static("", id="data-records-note", markup=False)
                yield RecordBrowser(id="data-browser")
                yield DetailView(id="data-detail")

    def on_mount(self) -> None:
        table = self.query_one("#data-problems", DataTable)
        table.add_column("line", key="line", width=8)
        table.add_column("severity", key="severity", width=8)
        table.add_column("kind", key="kind", width=18)
        table.add_column("message", key="message")
        self.query_one("#data-hists").display = False
        path, self.path = self.path, None  # set again once it opens
        if path is not None:
            self.open(path)

    def focus_default(self) -> None:
        view = self.query_one("#data-views", ContentSwitcher).current or "data-summary-view"
        target = {"data-summary-view": "#data-summary-view", "data-problems-view": "#data-problems",
                  "data-records-view": "#data-browser"}[view]
        self.query_one(target).focus()

    @property
    def browser(self) -> RecordBrowser:
        return self.query_one("#data-browser", RecordBrowser)

    def _status(self, text: str) -> None:
        self.query_one("#data-status", Static).update(text)

    # ------------------------------------------------------------ opening and scanning
    def action_open(self) -> None:
        def chosen(result) -> None:
            if result:
                path, fmt = result
                self.open(Path(path).expanduser(), fmt)

        self.app.push_screen(OpenDatasetScreen(str(self.path or ""), self.format), chosen)

    def open(self, path: Path, format: str | None = None) -> None:
        """Scan ``path`` (and index it for the browser); problems are notified, never raised."""
        path = Path(path)
        try:
            check_readable(str(path))  # never opens a pipe: that would wait for a writer, UI frozen
        except TokdeckError as exc:
            self.notify(str(exc), title="cannot open", severity="error")
            return
        self.path, self.format = path, format
        self.gen += 1
        self.report = self.structure = self.progress = self.index = None
        self._plotted = None
        self._cancel_search()
        self.query = None
        self.query_one("#data-search", Input).value = ""
        self.browser.set_index(None)
        self._fill_problems()
        self.query_one("#data-summary", Static).update(f"Scanning {path} …")
        self.query_one("#data-hists").display = False
        self._start_scan()
        self._build_index(self.gen, str(path))

    def action_rescan(self) -> None:
        if self.path is None:
            self.notify("no dataset open: ctrl+o opens one", severity="warning")
            return
        self.open(self.path, self.format)

    def _start_scan(self) -> None:
        self._cancel.set()  # a scan still running for the previous file stops at its next batch
        self._cancel = threading.Event()
        self.scanning, self.tokenizing = True, False
        self._show_progress(0.0)
        self._status(f"scanning {self.path} …  (F6 cancels)")
        self._scan(self.gen, str(self.path), self.format, self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="data-scan")
    def _scan(self, gen: int, path: str, format: str | None, cancel: threading.Event) -> None:
        try:
            for item in scan(path, format=format, cancel=cancel, time_budget=0.1):
                self.post_message(self.Scanned(gen, item))
        except TokdeckError as exc:
            self.post_message(self.Scanned(gen, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a scan failure is shown, never a crash
            self.post_message(self.Scanned(gen, None, f"{type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="data-tokens")
    def _tokens(self, gen: int, path: str, format: str, tokenizers: tuple[str, ...], expected: int,
                cancel: threading.Event) -> None:
        try:
            for item in scan_tokens(path, list(tokenizers), format=format, cancel=cancel, time_budget=0.1,
                                    registry=self.app.counting_registry, expected_records=expected):
                self.post_message(self.Scanned(gen, item))
        except TokdeckError as exc:
            self.post_message(self.Scanned(gen, None, str(exc)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(self.Scanned(gen, None, f"{type(exc).__name__}: {exc}"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="data-index")
    def _build_index(self, gen: int, path: str) -> None:
        try:
            for item in LineIndex.building(path, cancel=lambda: gen != self.gen, time_budget=0.2):
                if isinstance(item, LineIndex):
                    self.post_message(self.Indexed(gen, item, len(item)))
                else:
                    self.post_message(self.Indexed(gen, None, item.lines))
        except OSError as exc:
            self.post_message(self.Indexed(gen, None, 0, f"{path}: {exc.strerror or exc}"))

    def _show_progress(self, fraction: float | None) -> None:
        bar = self.query_one("#data-progress", ProgressBar)
        bar.set_class(fraction is None, "hidden")
        if fraction is not None:
            bar.update(progress=round(fraction * 100, 1))

    @on(Scanned)
    def _on_scanned(self, message: Scanned) -> None:
        if message.gen != self.gen:
            return
        item = message.item
        if message.error:
            self.scanning = self.tokenizing = False
            self._show_progress(None)
            self._status(f"cannot scan: {message.error}")
            self.query_one("#data-summary", Static).update(f"cannot scan {self.path}: {message.error}")
            self.notify(message.error, title="scan failed", severity="error")
        elif isinstance(item, ScanProgress):
            self.progress = item
            self._show_progress(item.fraction)
            what = "tokens" if item.phase == "tokens" else "scanning"
            self._status(f"{what}: {item.fraction:.0%} of {_size(item.bytes_total)} · {item.records:,} records · "
                         f"{item.errors:,} errors · {item.warnings:,} warnings · {item.elapsed:.1f} s  (F6 cancels)")
        elif isinstance(item, ScanReport):
            self.scanning = False
            self.structure = item
            self._show_report(item)
            if self.tokenizers and item.complete:
                self._start_tokens()
        elif isinstance(item, TokenReport):
            self.tokenizing = False
            if self.structure is not None:
                self._show_report(self.structure.with_tokens(item))

    def _start_tokens(self) -> None:
        r = self.structure
        if r is None or r.format.format == "unknown":
            self.notify("token statistics need a known format: open the file with a format chosen", timeout=4)
            return
        self._cancel = threading.Event()
        self.tokenizing = True
        self._show_progress(0.0)
        self._status(f"counting tokens with {', '.join(self.tokenizers)} …  (F6 cancels)")
        self._tokens(self.gen, r.path, r.format.format, self.tokenizers, r.valid, self._cancel)

    def _show_report(self, r: ScanReport) -> None:
        self.report = r
        self._show_progress(None)
        state = "" if r.complete else f"  INCOMPLETE ({r.incomplete_reason})"
        self._status(f"{r.format.format} · {r.records:,} records · {r.valid:,} valid · {r.invalid:,} invalid · "
                     f"{r.error_total:,} errors · {r.warning_total:,} warnings{state}")
        self.query_one("#data-summary", Static).update(summary_text(r))
        self._plot(r)
        self._fill_problems()
        self._records_note()

    def _plot(self, r: ScanReport) -> None:
        title, series = plot_series(r)
        self.query_one("#data-hists").display = bool(series)
        key = (title, tuple((n, tuple(c)) for n, _, c in series))
        if not series or key == self._plotted:
            return
        self._plotted = key
        # prompt and answer have their own bins: one chart each, side by side
        for k, plot_id in enumerate(("#data-hist", "#data-hist-answer")):
            plot = self.query_one(plot_id, PlotextPlot)
            plot.display = k < len(series)
            if k >= len(series):
                continue
            name, labels, counts = series[k]
            plt = plot.plt
            plt.clear_figure()
            plt.title(title if len(series) == 1 else f"{title.split(':')[0]}: {name}")
            plt.bar(labels, counts, color=("cyan", "green")[k % 2])
            plot.refresh()

    def action_cancel(self) -> None:
        if self.scanning or self.tokenizing:
            self._cancel.set()
            self._status("cancelling …")
        elif not self.search_done:
            self._cancel_search()
            self._records_note()
        else:
            self.notify("nothing is running", severity="information", timeout=2)

    # ------------------------------------------------------------ tokenizers
    def action_choose_tokenizers(self) -> None:
        registry = self.app.registry
        infos = [i for i in registry.infos() if not i.error]

        def chosen(ids) -> None:
            if ids is None:
                return
            self.tokenizers = tuple(ids)
            if not ids:
                if self.structure is not None:
                    self._show_report(self.structure)
                return
            if self.structure is not None and self.structure.complete and not self.scanning:
                self._start_tokens()
            elif self.path is None:
                self.notify("the token pass runs once a dataset is open", timeout=3)

        self.app.push_screen(TokenizerPickerScreen(infos, self.tokenizers), chosen)

    # ------------------------------------------------------------ problems
    def _fill_problems(self) -> None:
        table = self.query_one("#data-problems", DataTable)
        table.clear()
        r = self.report
        note = self.query_one("#data-problems-note", Static)
        self._problem_lines = []
        self._issues_by_line = {}
        if r is None:
            note.update("")
            return
        issues = sorted(r.errors + r.warnings, key=lambda i: (i.line is None, i.line or 0))
        self._issues_by_line = {}
        for i in issues:
            if i.line is not None:
                self._issues_by_line.setdefault(i.line, []).append(i)
        shown = issues[:MAX_ROWS]
        for i in shown:
            where = "file" if i.line is None else f"{i.line}" + (f":{i.column}" if i.column else "")
            sev = Text(i.severity, style="red" if i.severity == "error" else "yellow")
            table.add_row(where, sev, i.kind, i.message)
            self._problem_lines.append(i.line or 0)
        more = r.error_total + r.warning_total - len(shown)
        note.update(f"{r.error_total:,} errors, {r.warning_total:,} warnings"
                    + (f"; {more:,} more not listed" if more > 0 else "")
                    + ("; enter shows the line in the record browser" if shown else ""))

    @on(DataTable.RowSelected, "#data-problems")
    def _problem_selected(self, event: DataTable.RowSelected) -> None:
        line = self._problem_lines[event.cursor_row] if event.cursor_row < len(self._problem_lines) else 0
        if line:
            self.show_line(line)

    def show_line(self, line: int) -> None:
        """The record browser, on ``line`` (the filter is cleared when it hides the line)."""
        self.action_show_view("records")
        browser = self.browser
        if browser.index is None:
            self.notify("the line index is still being built", timeout=2)
            return
        if not browser.goto_line(line):
            self._cancel_search()
            self.query = None
            self.query_one("#data-search", Input).value = ""
            browser.set_filter(None)
            browser.goto_line(line)
            self._records_note()

    # ------------------------------------------------------------ views
    def action_show_view(self, view: str) -> None:
        self.query_one("#data-views", ContentSwitcher).current = f"data-{view}-view"
        self.focus_default()

    # ------------------------------------------------------------ the record browser
    @on(Indexed)
    def _on_indexed(self, message: Indexed) -> None:
        if message.gen != self.gen:
            return
        if message.error:
            self.notify(message.error, title="cannot index", severity="error")
            return
        if message.index is None:
            self.query_one("#data-records-note", Static).update(f"indexing lines … {message.lines:,}")
            return
        self.index = message.index
        self.browser.set_index(message.index)
        if self.query is not None:  # a search typed before the index was ready: show its lines now
            self.search(self.query_one("#data-search", Input).value)
        self._records_note()

    def _records_note(self) -> None:
        note = self.query_one("#data-records-note", Static)
        browser = self.browser
        if self.index is None:
            note.update("indexing lines …" if self.path else "no dataset open")
            return
        parts = [f"{len(self.index):,} lines"]
        if self.report is not None and self.report.format.container == "json-array":
            parts.append("one JSON array file: rows are its physical lines, not records")
        if self.query is not None:
            found = browser.row_count
            parts.append(f"filter {self.query.describe()}: {found:,} matching lines"
                         + ("" if self.search_done else " so far, searching … (F6 stops)"))
        note.update(" · ".join(parts))

    @on(RecordBrowser.Moved)
    def _moved(self, message: RecordBrowser.Moved) -> None:
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(0.05, lambda: self._show_detail(message.line))

    def _show_detail(self, line: int | None) -> None:
        detail = self.query_one("#data-detail", DetailView)
        if line is None or self.index is None:
            detail.show(Text())
            return
        start, end = self.index.span(line)
        raw = self.index.read_line(line, DETAIL_BYTES)
        detail.show(conversation_text(line, raw, truncated=end - start > DETAIL_BYTES,
                                      issues=self._issues_by_line.get(line, ())))

    # ------------------------------------------------------------ search
    def action_search(self) -> None:
        self.action_show_view("records")
        self.query_one("#data-search", Input).focus()

    @on(Input.Submitted, "#data-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)
        self.browser.focus()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#data-search", Input).has_focus:
            event.stop()
            self.search("")
            self.browser.focus()

    def search(self, text: str) -> None:
        """Filter the browser to the lines matching ``text`` (empty: show every line again)."""
        self._cancel_search()
        self.query = parse_query(text)
        browser = self.browser
        if self.query is None or self.path is None:
            browser.set_filter(None)
            self._records_note()
            return
        self.search_gen += 1
        self._search_cancel = threading.Event()
        self.search_done = False
        browser.set_filter(array("q"))
        self._records_note()
        self._search(self.search_gen, str(self.path), self.query, self._search_cancel)

    def _cancel_search(self) -> None:
        self._search_cancel.set()
        self.search_done = True

    @work(thread=True, exclusive=True, exit_on_error=False, group="data-search")
    def _search(self, gen: int, path: str, query: Query, cancel: threading.Event) -> None:
        try:
            for batch in search_lines(path, query, cancel=cancel, time_budget=0.1):
                self.post_message(self.Searched(gen, batch))
        except OSError as exc:
            self.post_message(self.Searched(gen, None, f"{path}: {exc.strerror or exc}"))

    @on(Searched)
    def _on_searched(self, message: Searched) -> None:
        if message.gen != self.search_gen or self.query is None:
            return
        if message.error:
            self.search_done = True
            self.notify(message.error, title="search failed", severity="error")
        else:
            if message.batch.lines:
                self.browser.extend_filter(message.batch.lines)
            self.search_done = message.batch.done
        self._records_note()

    # ------------------------------------------------------------ Send to Bench
    def action_send_to_bench(self) -> None:
        r = self.structure  # a cancelled token pass does not make the file less usable
        if r is None or self.scanning:
            self.notify("open a dataset and let its scan finish first", severity="warning")
            return
        plan, detail = bench_plan(r)
        if plan == "no":
            self.notify(f"cannot send to Bench: {detail}", severity="warning")
        elif plan == "as-is":
            self.post_message(SendToBench(Path(r.path), detail))
        else:
            out = data_dir() / "bench-datasets" / f"{Path(r.path).stem}.prompt.jsonl"
            self._status(f"exporting the valid records to {out} (vLLM custom format) for the Bench pane …")
            tokenizer = self.tokenizers[0] if self.tokenizers else None
            self._export(r.path, r.format.format, out, tokenizer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="data-export")
    def _export(self, path: str, format: str, out: Path, tokenizer: str | None) -> None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            export(path, str(out), "prompt", format=format, tokenizer=tokenizer, registry=self.app.counting_registry)
        except (TokdeckError, OSError) as exc:
            self.post_message(self.Exported(None, str(exc)))
            return
        self.post_message(self.Exported(out))

    @on(Exported)
    def _on_exported(self, message: Exported) -> None:
        if message.error or message.path is None:
            self.notify(f"export failed: {message.error}", severity="error")
            return
        self._status(f"sent {message.path} (the valid records as vLLM's custom format) to the Bench pane")
        self.post_message(SendToBench(message.path, "prompt"))

    # ------------------------------------------------------------ for tests and the perf script
    def settled(self) -> bool:
        return not self.scanning and not self.tokenizing and self.search_done and (
            self.path is None or (self.report is not None and self.index is not None))

    def wait_hint(self) -> str:
        return f"scanning={self.scanning} tokenizing={self.tokenizing} search_done={self.search_done} " \
               f"report={self.report is not None} index={self.index is not None} at {time.monotonic():.1f}"
