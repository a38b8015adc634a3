"""The Bench pane: configure a load run, watch it live, look back at and compare runs.

Four views in a switcher: Setup (the run form), Run (live or opened run: progress, statistics,
charts, the server's own view, errors, client health; or a sweep's curve), History (runs and
sweeps of this session, saved result and sweep files) and, in the Run view, the comparison of
several runs with deltas (or of sweeps, overlaid).

Threads: the engine runs in a ``BenchmarkThread`` (its own thread and event loop, so renders never
delay its timestamps; the server's metrics are scraped on that loop too); preparing a run (GET
/v1/models, tokenizer, prompts) and opening or saving files run in thread workers. A 0.25 s timer drains the engine's queue into a ``LiveRun`` (bounded
buffers) and updates the widgets; the charts are rebuilt at most every ``CHART_EVERY_S`` and only
when the data changed.
"""

from __future__ import annotations

import math
import queue as _queue
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, ContentSwitcher, DataTable, Input, Label, ProgressBar, Select, Static

from ..core.bench import prepare as bench_prep
from ..core.bench.history import (RunData, SweepData, compare, from_result, list_result_files, load_history_file,
                                  load_sweep_file)
from ..core.bench.live import LiveRun, series_curves
from ..core.bench.metrics import METRICS
from ..core.bench.options import (FILE_DATASETS, FORM_DEFAULTS, FORM_ROWS, OPTION, PROFILE_OPTIONS, OptionSpec,
                                  RunOptions, as_text, parse_headers, with_form_defaults)
from ..core.bench.results import BenchResult, RunSnapshot
from ..core.bench.servermetrics import ServerSample, scraper_for
from ..core.bench.workers import WorkerBackend, make_run, step_runs, worker_backend
from ..core.config import COMMAND_LINE_PROFILE, SIMULATOR_PROFILE, Config, Profile
from ..core.endpoint import resolve_api_key, shown_url
from ..core.errors import TokdeckError
from ..core.paths import data_dir
from .widgets.bench_charts import BenchCharts, ServerChart, keep_sample
from .widgets.sweep_view import SweepCurve, SweepView

DRAIN_EVERY_S = 0.25
CHART_EVERY_S = 0.5
DRAIN_MAX = 50_000  # items taken from the engine's queue per tick (the rest waits for the next)
#: a run waits (up to this long) for other panes' background threads, such as a Data pane scan: they
#: hold the GIL in long stretches, which would delay the engine's timestamps (tokenizers load and
#: count in the counting process, which holds no GIL of this one)
QUIET_WAIT_S = 30.0
#: the GIL switch interval while a run goes on (Python's default is 5 ms). The simulator and the
#: engine keep their threads busy; with 5 ms every wake-up of the UI thread could wait that long
#: for the GIL, and a key passes several of them: measured 200 ms from key to action at 40,000
#: chunks/s, 3 ms with 1 ms (tests/perf/perf_bench_pane_lag.py)
RUN_SWITCH_INTERVAL_S = 0.001
CHARTS_PER_TICK = 2  # plot builds per drain tick: each plot is rebuilt at most every 0.5 s
DISCOVER_TIMEOUT_S = 10.0  # "Discover models" gives up after this long without data
MAX_MODELS_LISTED = 1000  # a Select of more options would take seconds to build
VIEWS = ("setup", "run", "history")
STAT_COLUMNS = ("metric", "mean", "p50", "p90", "p99")
COUNT_ROWS = ("completed", "failed")
HISTORY_COLUMNS = ("sel", "run", "from", "done", "req/s", "out tok/s", "TTFT p99", "note")

PROFILE_HELP = """\
Profiles come from the config ({path}):

  [[profiles]]
  name = "gpu1"
  base_url = "http://gpu1:8000"
  model = "qwen3-8b"               # optional: else the server's first
  api_key_env = "GPU1_KEY"         # or api_key = "..." (file is 0600)
  headers = {{ "X-Team" = "ml" }}
  # backend = "openai" for /v1/completions; insecure, ca_bundle, timeout_s

"simulator" runs the built-in simulated server (a process of its own): no set-up at all."""


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:,.{digits}f}"


def _key_source(profile: Profile) -> str:
    """Where the API key of a run to ``profile`` comes from, never the key itself."""
    key = resolve_api_key(profile.api_key_env, profile.api_key)
    if key.variable is None:
        return "key: stored in the config (••••••)"
    return f"key: {key.source} ({'set' if key.value else 'not set'})"


def _field_id(spec: OptionSpec) -> str:
    return "bench-" + spec.flag[2:]


@dataclass
class SessionRun:
    """A run of this session: the result (to save) and what the views draw."""

    number: int
    result: BenchResult
    data: RunData
    options: RunOptions
    saved_to: Path | None = None


class HistoryTable(DataTable):
    BINDINGS = [Binding("space", "toggle_select", "Select", id="bench.select")]

    class Toggled(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def action_toggle_select(self) -> None:
        if self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            self.post_message(self.Toggled(key))


class BenchPane(Container):
    """Load runs against OpenAI-compatible endpoints (or the built-in simulator), live."""

    PANE_ID = "bench"
    TITLE = "Bench"

    DEFAULT_CSS = """
    BenchPane { layout: vertical; }
    BenchPane #bench-views { height: 1fr; }
    BenchPane .form-row { height: 1; }
    BenchPane .form-row Label { width: 16; }
    BenchPane .form-row Input, BenchPane .form-row Select { width: 1fr; }
    BenchPane #bench-dataset-name { width: 14; }
    BenchPane #bench-buttons { height: 1; margin-bottom: 1; }
    BenchPane #bench-buttons Button { margin-right: 1; }
    BenchPane #bench-profile-info, BenchPane #bench-status { color: $text-muted; }
    BenchPane #bench-config-problem { color: $error; }
    BenchPane #bench-config-problem.-ok { display: none; }
    BenchPane #bench-progress { height: 1; }
    BenchPane #bench-health.-warn { color: $warning; text-style: bold; }
    BenchPane #bench-stats { height: auto; max-height: 30; }
    BenchPane #bench-errors { color: $text-muted; }
    BenchPane #bench-errors.-errors { color: $error; }
    BenchPane #bench-history { height: 1fr; }
    BenchPane #bench-server { height: 12; }
    BenchPane .-hidden { display: none; }
    """

    BINDINGS = [
        Binding("f5", "start", "Start", id="bench.start"),
        Binding("f6", "stop", "Stop", id="bench.stop"),
        Binding("ctrl+s", "save", "Save", id="bench.save"),
        Binding("f2", "show_view('setup')", "Setup", id="bench.view-setup"),
        Binding("f3", "show_view('run')", "Run", id="bench.view-run"),
        Binding("f4", "show_view('history')", "History", id="bench.view-history"),
        Binding("f7", "discover", "Models", id="bench.discover"),
        Binding("f8", "compare", "Compare", id="bench.compare"),
    ]

    class Prepared(Message):
        def __init__(self, outcome: bench_prep.Prepared | str, workers: WorkerBackend | None = None) -> None:
            super().__init__()
            self.outcome = outcome  # the run ready to start, or why it cannot
            self.workers = workers  # its worker processes (or Ray actors), started; None: the run's own thread

    class Finished(Message):
        def __init__(self, run: SessionRun) -> None:
            super().__init__()
            self.run = run

    class Opened(Message):
        def __init__(self, items: list[RunData | SweepData], folder: Path | None, error: str | None) -> None:
            super().__init__()
            self.items, self.folder, self.error = items, folder, error

    def __init__(self, config: Config, *, registry=None, config_problem: str | None = None,
                 run_options: RunOptions | None = None, start: bool = False, sim_config=None,
                 result_dir: Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.registry = registry
        self.config_problem = config_problem
        # the command line's, the form's own defaults for the rest
        self.options = with_form_defaults(run_options if run_options is not None else RunOptions())
        self.start_at_mount = start
        self.sim_config = sim_config
        self.result_dir = Path(result_dir or self.options.result_dir or data_dir() / "results")
        self.profiles: dict[str, Profile | None] = {SIMULATOR_PROFILE: None}
        o = self.options
        if o.base_url:
            self.profiles[COMMAND_LINE_PROFILE] = Profile(
                name=COMMAND_LINE_PROFILE, base_url=o.base_url, backend=o.backend, model=o.model,
                api_key_env=o.api_key_env, headers=dict(parse_headers(o.header)), insecure=o.insecure,
                ca_bundle=o.ca_bundle)
        for p in config.profiles:
            self.profiles[p.name] = p
        self.thread = None  # the BenchmarkThread of the run going on
        self.sim = None
        self.live: LiveRun | None = None
        self.run_options: RunOptions | None = None  # those of the run going on
        self.preparing = False
        self._cancel_launch = False
        self.session: list[SessionRun] = []
        self.sweeps: list[tuple[SweepCurve, Any]] = []  # this session's: (as drawn, SweepResult)
        self._noticed = False  # the server's "no server view" said (once a run or sweep)
        self.server_samples: list[ServerSample] = []  # the run's server view, live
        self._server_dirty = False  # samples came since the server chart was drawn
        self.files: dict[str, RunData | SweepData | Path] = {}  # history key -> opened run or sweep, or a file
        self.selected: list[str] = []  # history keys, in selection order
        self.shown: list[RunData] = []  # the run(s) the Run view shows when no run goes on
        self.status = ""
        self._drawn_version = -1
        self._stats_at = 0.0
        self._switch_interval: float | None = None
        self._shown_text: dict[str, str] = {}
        self._stats_mode = ""
        self._timer = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="setup", id="bench-views"):
            with VerticalScroll(id="setup"):
                yield Static(self.config_problem or "", id="bench-config-problem", markup=False,
                             classes="" if self.config_problem else "-ok")
                for row in FORM_ROWS:
                    with Horizontal(classes="form-row"):
                        yield Label(row[0].label or "")
                        for spec in row:
                            yield self._form_field(spec)
                    if row[0].name == "profile":
                        yield Static("", id="bench-profile-info", markup=False)
                with Horizontal(id="bench-buttons"):
                    yield Button("Start F5", id="bench-start", variant="primary", compact=True)
                    yield Button("Stop F6", id="bench-stop", compact=True)
                    yield Button("Save ^S", id="bench-save", compact=True)
                    yield Button("Models F7", id="bench-discover", compact=True)
                yield Static(PROFILE_HELP.format(path=self.config.path or "config.toml"), id="bench-help",
                             markup=False)
            with VerticalScroll(id="run"):
                yield Static("No run yet: F2 sets one up, F5 starts it.", id="bench-title", markup=False)
                yield ProgressBar(id="bench-progress", show_eta=False)
                yield Static("", id="bench-throughput", markup=False)
                yield Static("", id="bench-health", markup=False)
                yield DataTable(id="bench-stats", cursor_type="row", zebra_stripes=True)
                yield SweepView(id="bench-sweep-view", classes="-hidden")
                yield BenchCharts(id="bench-charts")
                yield ServerChart(id="bench-server", classes="-hidden")
                yield Static("", id="bench-errors", markup=False)
            with Vertical(id="history"):
                yield Input(placeholder=f"result file or folder to open (enter) - default {self.result_dir}",
                            id="bench-history-path", compact=True)
                yield HistoryTable(id="bench-history", cursor_type="row", zebra_stripes=True)
                yield Static("enter opens a run or sweep · space selects · F8 compares the selected runs (or sweeps)",
                             id="bench-history-help", markup=False)
        yield Static("", id="bench-status", markup=False)

    def _form_field(self, spec: OptionSpec) -> Select | Input:
        """The form's field of a run option, showing the command line's value: a Select when the
        option has choices (the profiles, the server's models, the spec's), else an Input."""
        o = self.options
        if spec.choices is None:
            return Input(as_text(getattr(o, spec.name)), placeholder=spec.hint, id=_field_id(spec), compact=True)
        if spec.name == "profile":
            choices: tuple[str, ...] = tuple(self.profiles)
            value = (o.profile if o.profile in self.profiles
                     else COMMAND_LINE_PROFILE if o.base_url else SIMULATOR_PROFILE)
        else:
            choices, value = spec.choices, getattr(o, spec.name)  # models: F7 fills them
        return Select([(c, c) for c in choices], value=value if value in choices else Select.NULL,
                      allow_blank=bool(spec.hint), prompt=spec.hint or "Select", id=_field_id(spec), compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#bench-history", HistoryTable)
        for col in HISTORY_COLUMNS:
            table.add_column(col, key=col)
        self._profile_changed()
        if self.options.model:
            self._set_models([self.options.model], select=self.options.model)
        self._timer = self.set_interval(DRAIN_EVERY_S, self._tick, pause=True)
        self._scan_folder(self.result_dir, quiet=True)
        if self.config_problem:
            self._say(f"config not loaded: {self.config_problem}")
        for warning in self.config.warnings:
            self._say(f"warning: {warning}")
            self.notify(warning, title="config", severity="warning", timeout=10)
        if self.start_at_mount:
            self.call_after_refresh(self.action_start)

    def focus_default(self) -> None:
        view = self.query_one("#bench-views", ContentSwitcher).current
        target = {"setup": "#bench-profile", "run": "#run", "history": "#bench-history"}[view or "setup"]
        self.query_one(target).focus()

    def _say(self, text: str) -> None:
        self.status = text
        self.query_one("#bench-status", Static).update(text)

    # ------------------------------------------------------------------ form
    @on(Select.Changed, "#bench-profile")
    def _profile_changed(self) -> None:
        name = self.query_one("#bench-profile", Select).value
        profile = self.profiles.get(name)
        info = self.query_one("#bench-profile-info", Static)
        if profile is None:
            info.update("built-in simulator on a free loopback port (simulated timings, not a real server)")
            self._set_models([], select=None)
            return
        info.update(f"{shown_url(profile.base_url)} · {profile.backend} · {_key_source(profile)}"
                    + (" · TLS not verified" if profile.insecure else ""))
        models = [profile.model] if profile.model else []
        self._set_models(models, select=profile.model)

    def _set_models(self, models: list[str], select: str | None) -> None:
        sel = self.query_one("#bench-model", Select)
        sel.set_options([(m, m) for m in models])
        if select in models:
            sel.value = select

    def use_dataset(self, path: Path, dataset_format: str | None) -> None:
        """A dataset handed over by the Data pane: fill the form's dataset fields."""
        self.query_one("#bench-dataset-path", Input).value = str(path)
        self.query_one("#bench-dataset-name", Select).value = "sharegpt" if dataset_format == "sharegpt" else "custom"
        self.action_show_view("setup")
        self._say(f"dataset from the Data pane: {path} ({dataset_format or 'format unknown'})")

    def form_options(self) -> tuple[RunOptions, Profile | None]:
        """The run's options: the command line's with the form's values, and the config profile
        selected (None: the simulator, or the command line's endpoint). ValueError names the field."""
        values: dict[str, Any] = {}
        for row in FORM_ROWS:
            for spec in row:
                if spec.name == "profile":
                    continue
                field = self.query_one(f"#{_field_id(spec)}")
                if isinstance(field, Select):
                    values[spec.name] = field.value if isinstance(field.value, str) else None
                elif isinstance(field, Input):
                    values[spec.name] = spec.from_text(field.value)
        if values["dataset_name"] not in FILE_DATASETS:
            values["dataset_path"] = None  # a path left in the box does not go with random or sonnet
        given = self.options.given | frozenset(values)
        if values.get("sweep") is not None:
            # the form's own defaults size a single run; a sweep sizes its steps itself
            kept = {n for n, v in FORM_DEFAULTS.items() if values.get(n) == v and n not in self.options.given}
            values.update({n: OPTION[n].default for n in kept})
            given -= kept
        options = replace(self.options, **values, profile=None, given=given)
        profile = self.profiles.get(self.query_one("#bench-profile", Select).value)
        if profile is None:
            return replace(options, base_url=None), None
        if profile.name == COMMAND_LINE_PROFILE:
            return options, None
        # the endpoint is the profile's whole: the command line's key variable, headers or TLS
        # settings were meant for another one
        return replace(options.without(PROFILE_OPTIONS), profile=profile.name), profile

    # ------------------------------------------------------------------ run
    def action_start(self) -> None:
        if self.thread is not None or self.preparing:
            self.notify("a run is going on: F6 stops it", severity="warning")
            return
        try:
            options, profile = self.form_options()
        except ValueError as exc:
            self.notify(str(exc), title="cannot start", severity="error")
            self._say(str(exc))
            return
        self.preparing = True
        self._say("preparing: checking the endpoint, loading the tokenizer, making the prompts…")
        self._prepare(options, profile)

    @work(thread=True, exit_on_error=False, group="bench-prepare")
    def _prepare(self, options: RunOptions, profile: Profile | None) -> None:
        workers = None
        try:
            workers = worker_backend(options)  # local ones start while the run is prepared
            prep = bench_prep.prepare(options, profile=profile, registry=self.registry, sim_config=self.sim_config)
        except Exception as exc:  # noqa: BLE001 - shown in the pane, never a crash
            if workers is not None:
                workers.close_now()
            self.post_message(self.Prepared(str(exc) if isinstance(exc, TokdeckError)
                                            else f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.Prepared(prep, workers))

    @on(Prepared)
    def _prepared(self, message: Prepared) -> None:
        if isinstance(message.outcome, str):
            self.preparing = False
            self.notify(message.outcome, title="cannot start the run", severity="error", timeout=10)
            self._say(message.outcome)
            return
        self._launch(message.outcome, message.workers, time.monotonic())

    def _others_busy(self) -> bool:
        return any(w.is_running and not (w.group or "").startswith("bench") for w in self.app.workers)

    def _launch(self, prep: bench_prep.Prepared, workers: WorkerBackend | None, since: float) -> None:
        from ..core.bench.engine import BenchmarkThread

        if self._cancel_launch:
            self._cancel_launch = self.preparing = False
            self._discard(prep, workers)
            self._say("the run was cancelled before it started")
            return
        if self._others_busy() and time.monotonic() - since < QUIET_WAIT_S:
            self._say("waiting for background work (another pane's) to finish, so it does not distort the timings…")
            self.set_timer(0.2, lambda: self._launch(prep, workers, since))
            return
        self.preparing = False
        self.sim = prep.sim
        self.run_options = prep.options
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(RUN_SWITCH_INTERVAL_S)
        self._show_sweep(prep.options.sweep is not None)
        if prep.options.sweep is not None:
            if workers is not None:  # each step has workers of its own (a run ends its workers)
                workers.close_now()
            self._launch_sweep(prep)
            return
        self.live = LiveRun(len(prep.requests))
        self.server_samples, self._server_dirty, self._noticed = [], False, False
        self.query_one("#bench-server").add_class("-hidden")
        # scraped on the run's own loop, as the command line does: nothing on the UI thread
        self.thread = BenchmarkThread.of(make_run(prep, workers), scraper=scraper_for(prep)).start()
        self._drawn_version = -1
        self.shown = []
        self._set_text("#bench-title", 
            f"Run {len(self.session) + 1}: {prep.description}")
        progress = self.query_one("#bench-progress", ProgressBar)
        progress.update(total=len(prep.requests), progress=0)
        self._stats_table("stats")
        self.query_one("#run", VerticalScroll).scroll_home(animate=False)
        self._say("running: F6 stops (keeps what was measured), F3 shows the run")
        self.action_show_view("run")
        self._timer.resume()

    def action_stop(self) -> None:
        if self.thread is None and self.preparing:
            self._cancel_launch = True
            self._say("cancelling…")
            return
        if self.thread is None:
            self.notify("no run is going on", severity="warning")
            return
        self.thread.stop()
        self._say("stopping: cancelling the requests in flight…")

    # ------------------------------------------------------------------ sweeps
    def _show_sweep(self, sweep: bool) -> None:
        """The Run view shows a sweep's view, or a run's statistics and charts."""
        self.query_one(SweepView).set_class(not sweep, "-hidden")
        for selector in ("#bench-stats", "#bench-charts", "#bench-progress"):
            self.query_one(selector).set_class(sweep, "-hidden")
        if sweep:  # a sweep draws the server's view in its own view
            self.query_one("#bench-server").add_class("-hidden")

    def _launch_sweep(self, prep: bench_prep.Prepared) -> None:
        from ..core.bench.sweep import SweepThread

        self.live = None
        self.thread = SweepThread(prep, make_run=step_runs(prep.options)).start()
        self.shown = []
        self._noticed = False
        self._set_text("#bench-title", f"Sweep {len(self.sweeps) + 1} ({prep.options.sweep}): {prep.description}")
        slo = self.thread.sweep.slo
        self.query_one(SweepView).show([SweepCurve(
            f"sweep {len(self.sweeps) + 1}", percentile=f"p{slo.percentile:g}",
            limits_ms={m: ms for m, ms in slo.limits_ms})])
        self.query_one("#run", VerticalScroll).scroll_home(animate=False)
        self._say("sweeping: F6 stops (keeps the steps measured), F3 shows the curve")
        self.action_show_view("run")
        self._timer.resume()

    def _tick_sweep(self) -> None:
        """Drain the sweep's events into its view; the plots rebuild at most every CHART_EVERY_S."""
        from ..core.bench.sweep import (ServerUpdate, StepFinished, StepStarted, StepUpdate, SweepFinished,
                                        SweepNotice, SweepResult, sweep_point)

        view = self.query_one(SweepView)
        end = None
        for _ in range(DRAIN_MAX):
            try:
                item = self.thread.queue.get_nowait()
            except _queue.Empty:
                break
            if isinstance(item, (SweepResult, BaseException)):
                end = item
                break
            if isinstance(item, StepStarted):
                self._set_text("#bench-throughput", f"step {item.step}: {item.plan.text()} (starting)")
            elif isinstance(item, StepUpdate) and isinstance(item.event, RunSnapshot):
                snap = item.event
                self._set_text("#bench-throughput",
                               f"step {item.step}: {snap.completed:,} done · {snap.failed:,} failed · "
                               f"{snap.in_flight:,} in flight · {snap.request_throughput:,.2f} req/s · "
                               f"{snap.elapsed:,.1f} s")
            elif isinstance(item, StepFinished):
                view.add_point(sweep_point(item.result))
            elif isinstance(item, ServerUpdate):
                view.add_sample(item.sample)
            elif isinstance(item, SweepNotice) and not self._noticed:
                self._noticed = True  # said once
                self._set_text("#bench-health", item.text)
            elif isinstance(item, SweepFinished):
                r = item.result
                lines = r.answer() + ([f"stopped: {r.stop_reason}"] if r.stop_reason else [])
                view.finish(lines, r.knee.throughput if r.knee else None)
        now = time.monotonic()
        if end is not None or now - self._stats_at >= CHART_EVERY_S:
            self._stats_at = now
            view.redraw()
        if end is not None:
            self._end_sweep(end)

    def _end_sweep(self, end) -> None:
        self._timer.pause()
        self.thread = None
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        sim, self.sim = self.sim, None
        if sim is not None:
            self._stop_sim(sim)  # waits for its process: not on the UI thread
        if isinstance(end, BaseException):
            msg = str(end) if isinstance(end, TokdeckError) else f"{type(end).__name__}: {end}"
            self.notify(msg, title="the sweep failed", severity="error", timeout=10)
            self._say(f"the sweep failed: {msg}")
            return
        curve = self.query_one(SweepView).curves[-1]
        self.sweeps.append((curve, end))
        cap = end.capacity
        self._add_sweep_row(f"sweep-{len(self.sweeps)}", f"{curve.name} ({end.spec})", "this session", curve.points,
                            cap.request_rate if cap else None)
        state = "stopped: partial" if end.partial else "finished"
        self._say(f"sweep {len(self.sweeps)} {state}: {len(end.steps)} step(s); {end.answer()[0]}")
        if self.run_options is not None and self.run_options.saves_result:
            self._save_sweep(self.run_options, end)

    @work(thread=True, exit_on_error=False, group="bench-save")
    def _save_sweep(self, options: RunOptions, result) -> None:
        from ..core.bench.sweep import save_sweep

        options = replace(options, result_dir=options.result_dir or str(self.result_dir))
        try:
            path = save_sweep(options, result)
        except TokdeckError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="cannot save", severity="error")
            return
        self.app.call_from_thread(self._say, f"sweep saved to {path}")

    def _add_sweep_row(self, key: str, name: str, origin: str, points, capacity_rate: float | None,
                       partial: bool = False) -> None:
        """A sweep's History row: marked as a sweep, with its steps, best throughput and capacity."""
        table = self.query_one("#bench-history", HistoryTable)
        best = max((p.throughput for p in points), default=None)
        note = f"capacity {_fmt(capacity_rate, 2)} req/s" if capacity_rate is not None else "no capacity"
        cells = ["✓" if key in self.selected else "", name, origin, f"{len(points)} steps", _fmt(best, 2), "", "",
                 note + (" partial" if partial else "")]
        if key in table.rows:
            for col, cell in zip(HISTORY_COLUMNS, cells):
                table.update_cell(key, col, cell)
        else:
            table.add_row(*cells, key=key)

    def _add_sweep_file_row(self, sweep: SweepData) -> None:
        self._add_sweep_row(sweep.source, f"{sweep.name} ({sweep.sweep})", "sweep file", sweep.points,
                            sweep.capacity_rate, sweep.partial)

    def _is_sweep(self, key: str) -> bool:
        return key.startswith("sweep-") or isinstance(self.files.get(key), SweepData)

    def _sweep_curve(self, key: str) -> SweepCurve:
        """A session sweep's curve as drawn, or a new one of a sweep file."""
        if key.startswith("sweep-"):
            return self.sweeps[int(key.split("-", 1)[1]) - 1][0]
        sweep = self.files[key]
        return SweepCurve(sweep.name, percentile=f"p{sweep.percentile:g}", limits_ms=dict(sweep.limits_ms),
                          points=list(sweep.points), samples=list(sweep.samples),
                          answer=[*sweep.answer, *([f"stopped: {sweep.stop_reason}"] if sweep.stop_reason else [])],
                          knee_throughput=sweep.knee_throughput)

    def _tick(self) -> None:
        """Drain the engine's queue into the live buffers and redraw what changed."""
        from ..core.bench.sweep import SweepThread

        if isinstance(self.thread, SweepThread):
            self._tick_sweep()
            return
        bt, live = self.thread, self.live
        if bt is None or live is None:
            return
        end = None
        for _ in range(DRAIN_MAX):
            try:
                item = bt.queue.get_nowait()
            except _queue.Empty:
                break
            if isinstance(item, (BenchResult, BaseException)):
                end = item
                break
            if isinstance(item, ServerSample):
                keep_sample(self.server_samples, item)
                self._server_dirty = True
                continue
            live.add(item)
        note = bt.scraper.note if bt.scraper is not None else None
        if note and not self._noticed:
            self._noticed = True  # said once
            self._say(note)
        self._draw_live()
        if end is not None:
            self._end_run(end)

    def _set_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed, re-laying the screen out only when its height may.

        A layout of the whole screen took tens of ms of the UI thread during a run, and the status
        lines change on every drain tick; a line that stays one line keeps its size.
        """
        old = self._shown_text.get(selector)
        if old == text:
            return
        self._shown_text[selector] = text
        static = self.query_one(selector, Static)
        width = static.content_size.width
        one_line = old is not None and "\n" not in old + text and max(cell_len(old), cell_len(text)) <= width
        static.update(text, layout=not one_line)

    def _draw_live(self) -> None:
        live = self.live
        charts = self.query_one(BenchCharts)
        if live.version == self._drawn_version:
            charts.redraw(CHARTS_PER_TICK)  # finish the builds of the last data
            return
        self._drawn_version = live.version
        snap = live.snapshot
        if snap is not None:
            self.query_one("#bench-progress", ProgressBar).update(progress=snap.completed + snap.failed)
            self._set_text("#bench-throughput",
                           f"{snap.completed:,} done · {snap.failed:,} failed · {snap.in_flight:,} in flight · "
                           f"{snap.request_throughput:,.2f} req/s · {snap.output_throughput:,.0f} out tok/s · "
                           f"{snap.chunks_per_s:,.0f} chunks/s now · {snap.elapsed:,.1f} s")
            warning = live.lag_warning()
            self._set_text("#bench-health", warning or f"client: event-loop lag ≤ {live.worst_lag_ms:.1f} ms lately")
            self.query_one("#bench-health", Static).set_class(warning is not None, "-warn")
        self._draw_errors(live.errors, list(live.latest_errors))
        now = time.monotonic()
        if now - self._stats_at >= CHART_EVERY_S:  # percentiles sort samples, plots build: 2 Hz
            self._stats_at = now
            self._fill_stats(live.stats())
            if self._server_dirty:
                self._server_dirty = False
                self._draw_server([("live", self.server_samples)])
            if not charts.pending:
                charts.show([("live", live.curves(charts.points))])
        charts.redraw(CHARTS_PER_TICK)

    def _draw_server(self, views: list[tuple[str, list[ServerSample] | tuple[ServerSample, ...]]]) -> None:
        """The server's view of the run(s) shown, or no chart when none has one."""
        chart = self.query_one("#bench-server", ServerChart)
        views = [(name, samples) for name, samples in views if samples]
        chart.set_class(not views, "-hidden")
        if views:
            chart.draw(views)

    def _end_run(self, end) -> None:
        self._timer.pause()
        bt, self.thread = self.thread, None
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        sim, self.sim = self.sim, None
        if isinstance(end, BaseException):
            if sim is not None:
                self._stop_sim(sim)  # waits for its process: not on the UI thread
            msg = str(end) if isinstance(end, TokdeckError) else f"{type(end).__name__}: {end}"
            self.notify(msg, title="the run failed", severity="error", timeout=10)
            self._say(f"the run failed: {msg}")
            return
        if bt.dropped:
            self._say(f"{bt.dropped:,} records were not drawn (the view fell behind); the result is complete")
        self._finish(end, self.run_options, sim)

    @work(thread=True, exit_on_error=False, group="bench-sim-stop")
    def _stop_sim(self, sim) -> None:
        sim.stop()

    @work(thread=True, exit_on_error=False, group="bench-sim-stop")
    def _discard(self, prep: bench_prep.Prepared, workers: WorkerBackend | None) -> None:
        """A prepared run that will not start: its workers and simulator end (they wait for processes)."""
        if workers is not None:
            workers.close_now()
        if prep.sim is not None:
            prep.sim.stop()

    @work(thread=True, exit_on_error=False, group="bench-finish")
    def _finish(self, result: BenchResult, options: RunOptions, sim=None) -> None:
        if sim is not None:  # its lateness goes into the result's client health, then it stops
            result = sim.with_lateness(result)
            sim.stop()
        number = len(self.session) + 1
        name = f"run {number}" + (" (partial)" if result.partial else "")
        run = SessionRun(number, result, from_result(result, name), options)  # exact statistics: off the UI
        if options.saves_result:
            try:
                run.saved_to = bench_prep.save_result(options, result)
            except TokdeckError as exc:
                self.app.call_from_thread(self.notify, str(exc), title="cannot save", severity="error")
        if options.csv:  # --csv from the command line, as `tokdeck bench` writes it
            try:
                bench_prep.save_csv(options.csv, result)
            except TokdeckError as exc:
                self.app.call_from_thread(self.notify, str(exc), title="cannot save the CSV", severity="error")
        self.post_message(self.Finished(run))

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        run = message.run
        self.session.append(run)
        if run.saved_to is not None:
            self.files[str(run.saved_to)] = run.data
        self._add_history_row(f"session-{run.number}", run.data, "this session")
        self.show_runs([run.data])
        r = run.result
        where = f"; saved to {run.saved_to}" if run.saved_to else "; ctrl+s saves it"
        state = "stopped: partial result" if r.partial else "finished"
        self._say(f"run {run.number} {state}: {r.completed:,} done, {r.failed:,} failed in {r.duration:.1f} s{where}")
        for problem in run.result.internal_errors:  # e.g. requests neither completed nor failed
            self.notify(problem, title="internal error: the figures are incomplete", severity="error", timeout=30)
            self._say(f"run {run.number}: INTERNAL ERROR: {problem}")

    # ------------------------------------------------------------------ showing runs
    def _stats_table(self, mode: str, runs: list[RunData] | None = None) -> DataTable:
        table = self.query_one("#bench-stats", DataTable)
        key = mode + "|" + "|".join(r.name for r in runs or ())
        if key != self._stats_mode:
            self._stats_mode = key
            table.clear(columns=True)
            if mode == "stats":
                for col in STAT_COLUMNS:
                    table.add_column(col if col == "metric" else Text(col + " ms", justify="right"), key=col)
                for m in METRICS:
                    table.add_row(m.upper(), "", "", "", "", key=m)
            else:
                table.add_column("metric", key="metric")
                for i, r in enumerate(runs):
                    name = r.name if len(r.name) <= 28 else r.name[:27] + "…"
                    table.add_column(name if i == 0 else f"{name} (Δ, %)", key=f"run{i}")
        return table

    def _fill_stats(self, stats) -> None:
        table = self._stats_table("stats")
        for m in METRICS:
            st = stats.get(m)
            for col in STAT_COLUMNS[1:]:
                text = _fmt(getattr(st, col) if st is not None else None, 2)
                if str(table.get_cell(m, col)) != text:
                    table.update_cell(m, col, Text(text, justify="right"), update_width=True)

    def _draw_errors(self, reasons: dict[str, int], latest: list[tuple[int, str]],
                     internal: tuple[str, ...] = ()) -> None:
        errors = self.query_one("#bench-errors", Static)
        if not reasons and not internal:
            self._set_text("#bench-errors", "errors: none")
            errors.set_class(False, "-errors")
            return
        lines = [f"INTERNAL ERROR: {problem}" for problem in internal]
        if reasons:
            lines.append("errors: " + " · ".join(f"{n:,}× {reason[:60]}" for reason, n in
                                                 sorted(reasons.items(), key=lambda kv: -kv[1])[:6]))
        lines += [f"  request {i}: {reason[:100]}" for i, reason in latest]
        self._set_text("#bench-errors", "\n".join(lines))
        errors.set_class(True, "-errors")

    def show_runs(self, runs: list[RunData]) -> None:
        """The Run view shows one finished run, or compares several (deltas against the first)."""
        self._show_sweep(False)
        self.shown = list(runs)
        self.query_one("#run", VerticalScroll).scroll_home(animate=False)
        charts = self.query_one(BenchCharts)
        curves = [(r.name, series_curves(r.series, charts.points)) for r in runs if r.series is not None]
        charts.show(curves)
        charts.redraw()
        self._draw_server([(r.name, r.server) for r in runs])
        progress = self.query_one("#bench-progress", ProgressBar)
        if len(runs) == 1:
            r = runs[0]
            done, failed = r.summary.completed or 0, r.summary.failed or 0
            self._set_text("#bench-title",
                           f"{r.name} · {Path(r.source).name} · {r.model_id or '?'} · {r.kind} result"
                           + (" · PARTIAL (stopped)" if r.partial else ""))
            progress.update(total=r.num_prompts or (done + failed) or 1, progress=done + failed)
            self._set_text("#bench-throughput",
                           f"{done:,} done · {failed:,} failed · {_fmt(r.value('request_throughput'), 2)} req/s · "
                           f"{_fmt(r.value('output_throughput'), 0)} out tok/s · total "
                           f"{_fmt(r.value('total_token_throughput'), 0)} tok/s · goodput "
                           f"{_fmt(r.value('request_goodput'), 2)} req/s · {_fmt(r.value('duration'), 1)} s")
            health = r.client_health
            warning = health.warning if health else None
            text = warning or (f"client: event-loop lag p99 {_fmt(health.event_loop_lag_ms.p99, 2)} ms (bottleneck "
                               f"above {_fmt(health.lag_limit_ms, 1)} ms), CPU {_fmt(health.client_cpu_percent, 0)} %"
                               if health else "client health: not recorded (vLLM result)")
            self._set_text("#bench-health", text)
            self.query_one("#bench-health", Static).set_class(bool(warning), "-warn")
            self._fill_stats(r.stats)
            self._draw_errors(r.error_reasons, [], r.internal_errors)
            if r.series is None:
                self._set_text("#bench-errors", 
                    "no per-request data in this file (saved without details): charts are empty")
        else:
            self._set_text("#bench-title", 
                "Comparing " + " · ".join(r.name for r in runs) + f" (deltas against {runs[0].name})")
            progress.update(total=1, progress=1)
            self._set_text("#bench-throughput", "")
            self._set_text("#bench-health", "")
            self._set_text("#bench-errors", "")
            table = self._stats_table("compare", runs)
            table.clear()
            for row in compare(runs):
                digits = 0 if row.label in COUNT_ROWS else 2
                cells = [row.label, Text(_fmt(row.values[0], digits), justify="right")]
                for v, d, pct in zip(row.values[1:], row.deltas[1:], row.percents[1:]):
                    if v is None:
                        cells.append(Text("-", justify="right"))
                        continue
                    text = _fmt(v, digits)
                    style = ""
                    if d is not None:
                        text += f" ({d:+,.{digits}f}" + (f", {pct:+.1f}%)" if pct is not None else ")")
                        better = d < 0 if row.lower_is_better else d > 0
                        style = "green" if better and d else ("red" if d else "")
                    cells.append(Text(text, style=style, justify="right"))
                table.add_row(*cells)
        self.action_show_view("run")

    # ------------------------------------------------------------------ saving
    def action_save(self) -> None:
        run = self._session_run_shown()
        if run is None:
            self.notify("nothing to save: finish or stop a run of this session first", severity="warning")
            return
        self._save(run)

    def _session_run_shown(self) -> SessionRun | None:
        if len(self.shown) == 1:
            for run in self.session:
                if run.data is self.shown[0]:
                    return run
        return self.session[-1] if self.session and not self.shown else None

    @work(thread=True, exit_on_error=False, group="bench-save")
    def _save(self, run: SessionRun) -> None:
        # per-request arrays: an opened file draws its charts again
        options = replace(run.options, save_detailed=True, result_dir=run.options.result_dir or str(self.result_dir))
        try:
            path = bench_prep.save_result(options, run.result)
        except TokdeckError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="cannot save", severity="error")
            return
        run.saved_to = path
        self.app.call_from_thread(self._saved, run)

    def _saved(self, run: SessionRun) -> None:
        path = run.saved_to
        self._say(f"saved to {path}")
        self.notify(f"saved to {path}", timeout=4)
        self.files[str(path)] = run.data  # listed once: as the session's run
        self._add_history_row(f"session-{run.number}", run.data, "this session")

    # ------------------------------------------------------------------ history
    def _add_history_row(self, key: str, data: RunData | None, origin: str, path: Path | None = None) -> None:
        table = self.query_one("#bench-history", HistoryTable)
        if data is None:
            cells = ["", path.name if path else key, origin, "", "", "", "", "not opened"]
        else:
            ttft = data.stats.get("ttft")
            cells = ["✓" if key in self.selected else "", data.name, origin,
                     f"{data.summary.completed or 0:,}", _fmt(data.value("request_throughput"), 2),
                     _fmt(data.value("output_throughput"), 0), _fmt(ttft.p99 if ttft else None, 1),
                     self._note(key, data)]
        if key in table.rows:
            for col, cell in zip(HISTORY_COLUMNS, cells):
                table.update_cell(key, col, cell)
        else:
            table.add_row(*cells, key=key)

    def _note(self, key: str, data: RunData) -> str:
        notes = ["partial"] if data.partial else []
        if data.series is None:
            notes.append("no details")
        if key.startswith("session-") and self.session[int(key.split("-", 1)[1]) - 1].saved_to is not None:
            notes.append("saved")
        return " ".join(notes)

    def _history_run(self, key: str) -> RunData | None:
        if key.startswith("session-"):
            return self.session[int(key.split("-", 1)[1]) - 1].data
        item = self.files.get(key)
        return item if isinstance(item, RunData) else None

    @on(Input.Submitted, "#bench-history-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        self.open_path(Path(text).expanduser() if text else self.result_dir)

    def open_path(self, path: Path) -> None:
        """Open a result file (shown at once) or list a folder's JSON files in the history."""
        if path.is_dir():
            self._scan_folder(path)
        else:
            self._open_files([path], show=True)

    @work(thread=True, exit_on_error=False, group="bench-scan")
    def _scan_folder(self, folder: Path, quiet: bool = False) -> None:
        files = list_result_files(folder)
        opened: dict[str, SweepData] = {}  # sweeps are listed with their capacity: opened now
        for f in files:
            if f.sweep and not isinstance(self.files.get(str(f.path)), SweepData):
                try:
                    opened[str(f.path)] = load_sweep_file(f.path)
                except TokdeckError:
                    pass  # listed unopened: enter says what is wrong with it
        self.app.call_from_thread(self._listed, folder, files, opened, quiet)

    def _listed(self, folder: Path, files, opened: dict[str, SweepData], quiet: bool) -> None:
        for f in files:
            key = str(f.path)
            item = opened.get(key)
            if isinstance(item, SweepData):
                self.files[key] = item
                self._add_sweep_file_row(item)
            elif key not in self.files:
                self.files[key] = f.path
                self._add_history_row(key, None, "sweep file" if f.sweep else "file", path=f.path)
        if not quiet:
            sweeps = sum(f.sweep for f in files)
            self._say(f"{len(files)} result file(s) in {folder}" + (f", {sweeps} of them sweeps" if sweeps else ""))

    @work(thread=True, exit_on_error=False, group="bench-open")
    def _open_files(self, paths: list[Path], show: bool = False) -> None:
        items, errors = [], []
        for p in paths:
            try:
                items.append(load_history_file(p))
            except TokdeckError as exc:
                errors.append(str(exc))
        self.post_message(self.Opened(items if show else [], None, "; ".join(errors) or None))
        if not show:
            self.app.call_from_thread(self._opened_quietly, items)

    def _opened_quietly(self, items: list[RunData | SweepData]) -> None:
        for item in items:
            self._keep_opened(item)

    def _keep_opened(self, item: RunData | SweepData) -> None:
        self.files[item.source] = item
        if isinstance(item, SweepData):
            self._add_sweep_file_row(item)
        else:
            self._add_history_row(item.source, item, "file")

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        if message.error:
            self.notify(message.error, title="cannot open", severity="error", timeout=8)
            self._say(message.error)
        for item in message.items:
            self._keep_opened(item)
        runs = [r for r in message.items if isinstance(r, RunData)]
        sweeps = [s.source for s in message.items if isinstance(s, SweepData)]
        if runs:
            self.show_runs(runs)
        elif sweeps:
            self.show_sweeps(sweeps)
        if message.items:
            self._say(f"opened {', '.join(Path(r.source).name for r in message.items)}")

    @on(DataTable.RowSelected, "#bench-history")
    def _history_enter(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if self._is_sweep(key):
            self.show_sweeps([key])
            return
        run = self._history_run(key)
        if run is not None:
            self.show_runs([run])
        else:
            self._open_files([Path(key)], show=True)

    @on(HistoryTable.Toggled)
    def _toggled(self, message: HistoryTable.Toggled) -> None:
        key = message.key
        if key in self.selected:
            self.selected.remove(key)
        else:
            self.selected.append(key)
        self.query_one("#bench-history", HistoryTable).update_cell(key, "sel", "✓" if key in self.selected else "")
        if key not in self.session_keys() and not key.startswith("sweep-") \
                and not isinstance(self.files.get(key), (RunData, SweepData)):
            self._open_files([Path(key)])  # opened in the background, ready for F8
        self._say(f"{len(self.selected)} run(s) selected: F8 compares them")

    def session_keys(self) -> set[str]:
        return {f"session-{r.number}" for r in self.session}

    def show_sweeps(self, keys: list[str]) -> None:
        """The Run view shows a sweep (of this session or a file), or overlays several with their answers."""
        curves = [self._sweep_curve(k) for k in keys]
        self._show_sweep(True)
        view = self.query_one(SweepView)
        view.show(curves)
        view.redraw()
        self._set_text("#bench-title", ("Comparing " if len(curves) > 1 else "") + " · ".join(c.name for c in curves))
        self._set_text("#bench-throughput", "")
        self.action_show_view("run")

    def action_compare(self) -> None:
        sweeps = [k for k in self.selected if self._is_sweep(k)]
        if sweeps:
            if len(sweeps) < 2 or len(sweeps) != len(self.selected):
                self.notify("select two or more sweeps (and no runs) to compare sweeps", severity="warning")
                return
            self.show_sweeps(sweeps)
            return
        runs = [r for r in (self._history_run(k) for k in self.selected) if r is not None]
        if len(runs) < 2:
            self.notify("select two or more runs in the History view (space), opened ones", severity="warning")
            self.action_show_view("history")
            return
        self.show_runs(runs)

    # ------------------------------------------------------------------ other actions
    def action_show_view(self, view: str) -> None:
        self.query_one("#bench-views", ContentSwitcher).current = view
        self.focus_default()

    def action_discover(self) -> None:
        profile = self.profiles.get(self.query_one("#bench-profile", Select).value)
        if profile is None:
            from ..core.bench.sim import SimConfig

            model = (self.sim_config or SimConfig()).model
            self._set_models([model], select=model)
            self._say(f"the simulator serves any model name; it calls itself {model}")
            return
        self._say(f"asking {shown_url(profile.base_url)} for its models…")
        self._discover(profile)

    @work(thread=True, exclusive=True, exit_on_error=False, group="bench-discover")
    def _discover(self, profile: Profile) -> None:
        import asyncio

        from ..core.bench.models import list_models

        try:  # the key as a run would send it, checked the same way
            headers = bench_prep.auth_headers(profile.base_url, tuple(profile.headers.items()),
                                              resolve_api_key(profile.api_key_env, profile.api_key))
            models = asyncio.run(list_models(profile.base_url, headers, min(profile.timeout_s, DISCOVER_TIMEOUT_S),
                                             profile.insecure, profile.ca_bundle))
        except Exception as exc:  # noqa: BLE001 - every failure is told: the status must never stay "asking…"
            msg = str(exc) if isinstance(exc, TokdeckError) else f"{type(exc).__name__}: {exc}"
            self.app.call_from_thread(self._discover_failed, msg)
            return
        self.app.call_from_thread(self._discovered, models)

    def _discover_failed(self, msg: str) -> None:
        self.notify(msg, title="cannot list models", severity="error")
        self._say(msg)

    def _discovered(self, models: list[str]) -> None:
        shown = models[:MAX_MODELS_LISTED]
        self._set_models(shown, select=shown[0] if shown else None)
        more = f" (the first {MAX_MODELS_LISTED:,} are listed)" if len(models) > MAX_MODELS_LISTED else ""
        self._say(f"{len(models):,} model(s){more}: {', '.join(shown[:5])}" if models else "the server lists no models")

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        action = {"bench-start": self.action_start, "bench-stop": self.action_stop,
                  "bench-save": self.action_save, "bench-discover": self.action_discover}.get(event.button.id)
        if action:
            action()

    def on_unmount(self) -> None:
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
        if self.thread is not None:
            self.thread.stop()
        if self.sim is not None:
            self.sim.stop()
