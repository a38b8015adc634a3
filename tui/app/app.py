"""The tokdeck dashboard: three panes (Tokens, Bench, Data) in tabs, a help screen, palette commands.

``make_app()`` is the one factory used by ``tokdeck ui`` and by the tests. Each pane is a
self-contained container class in its own module listed in ``PANES``; the app only places
them in tabs and switches between them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from ..core.bench.options import RunOptions
from ..core.config import Config, load_config
from ..core.errors import ConfigError
from ..core.tokenizers import Registry, default_registry
from ..core.tokenizers.counting_client import CountingService, RemoteRegistry
from .bench import BenchPane
from .data import DataPane
from .messages import SendToBench
from .screens import HelpScreen
from .tokens import TokensPane

PANES = ("tokens", "bench", "data")

HELP_INTRO = """\
# tokdeck

Exact token counts from every offline tokenizer, endpoint benchmarks and JSONL datasets.
Everything works by keyboard; `tab` moves between the editor and the table, `ctrl+p` opens
the command palette (every action below is there too), `ctrl+q` quits.

The **Tokens** pane counts the editor's text with every enabled tokenizer as you type.
Rows say *loading…* until their tokenizer is ready and show its error if it fails. Counts
are exact (no BOS/EOS, no chat template) except the `estimate` row, whose Δ is its error
against the reference. A `…` after a count means that row is still catching up with your
last edit.

The **Bench** pane runs load tests: F2 sets a run up (profile, dataset, load), F5 starts it,
F6 stops it (what was measured is kept, marked partial), ctrl+s saves it as JSON with vLLM's
keys. F3 shows the run live; F4 lists this session's runs and saved result files (enter opens
one, space selects, F8 compares the selected runs with deltas). The "simulator" profile needs
no server at all.

The **Data** pane validates a JSONL dataset of any size: ctrl+o opens one (or `tokdeck ui
FILE.jsonl`), F6 cancels a scan (what was read is shown, marked incomplete). F2 shows the
summary and a histogram, F3 the errors and warnings (enter jumps to the line), F4 the record
browser (the selected record below it, messages as a conversation); ctrl+f filters it by text
or `field:value` (e.g. `role:tool`). F5 picks tokenizers for token statistics, F7 sends the
dataset to the Bench pane.
"""


def _keys_table(title: str, bindings: Iterable[Binding]) -> str:
    rows = [f"| `{b.key}` | {b.description or b.action} |" for b in bindings if isinstance(b, Binding)]
    return f"\n## {title}\n\n| key | action |\n|---|---|\n" + "\n".join(rows) + "\n"


class TokdeckApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tokdeck"
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help"),
        # ctrl+n works in every terminal; alt+digit only where the terminal sends it as Meta
        Binding("ctrl+n", "next_pane", "Next pane", id="app.next-pane", priority=True),
        Binding("alt+1", "show_pane('tokens')", "Tokens", id="app.pane-tokens", show=False),
        Binding("alt+2", "show_pane('bench')", "Bench", id="app.pane-bench", show=False),
        Binding("alt+3", "show_pane('data')", "Data", id="app.pane-data", show=False),
    ]

    def __init__(self, *, pane: str = "tokens", text: str = "", source: str | None = None,
                 data_path: Path | None = None, registry: Registry | None = None,
                 config: Config | None = None, bench_options: RunOptions | None = None, bench_start: bool = False,
                 sim_config=None, counting: CountingService | None = None):
        super().__init__()
        if pane not in PANES:
            raise ValueError(f"pane must be one of {', '.join(PANES)}")
        self.initial_pane = pane
        self.config_problem = None
        if config is None:
            try:
                config = load_config()
            except ConfigError as exc:  # shown in the UI; defaults meanwhile
                self.config_problem = str(exc)
                config = Config()
        self.config = config
        # the process-wide registry reads the config's aliases and paths: with a broken config,
        # one without them (the dashboard still opens and says what is wrong)
        self.registry = registry or (Registry() if self.config_problem else default_registry())
        # every count of the dashboard runs in the counting processes, started when first needed
        # (a service passed in is shared, e.g. by tests, and its owner closes it)
        self._owns_counting = counting is None
        self.counting = counting or CountingService(self.registry, self.config.tokens.counting_processes,
                                                       self.config.tokens.counting_nice)
        self.counting_registry: RemoteRegistry = self.counting.remote_registry()
        self.data_path = data_path
        self._text, self._source = text, source
        self._bench = {"run_options": bench_options, "start": bench_start, "sim_config": sim_config}
        self._pane_chosen = False  # set once a pane is shown; the deferred initial pane then gives way

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        with TabbedContent(initial=self.initial_pane, id="panes"):
            with TabPane("Tokens", id="tokens"):
                yield TokensPane(self.registry, self.counting, self.config, text=self._text, source=self._source,
                                 config_problem=self.config_problem)
            with TabPane("Bench", id="bench"):
                yield BenchPane(self.config, registry=self.counting_registry, config_problem=self.config_problem,
                                **self._bench)
            with TabPane("Data", id="data"):
                yield DataPane(self.data_path)
        yield Footer()

    @property
    def tokens(self) -> TokensPane:
        return self.query_one(TokensPane)

    @property
    def bench(self) -> BenchPane:
        return self.query_one(BenchPane)

    def action_next_pane(self) -> None:
        active = self.query_one("#panes", TabbedContent).active
        self.action_show_pane(PANES[(PANES.index(active) + 1) % len(PANES)] if active in PANES else PANES[0])

    def action_show_pane(self, pane: str) -> None:
        self._pane_chosen = True
        self.query_one("#panes", TabbedContent).active = pane  # the Tokens pane focuses its editor as it shows
        if pane == "bench":
            self.bench.focus_default()
        elif pane == "data":
            self.query_one(DataPane).focus_default()

    def on_mount(self) -> None:
        self.call_after_refresh(self._show_initial_pane)

    def _show_initial_pane(self) -> None:
        """Focus the initial pane after the first refresh, unless something (a dataset handed to Bench,
        a key) has chosen a pane before it: the later choice wins."""
        if not self._pane_chosen:
            self.action_show_pane(self.initial_pane)

    def on_unmount(self) -> None:
        if self._owns_counting:
            self.counting.close()  # the counting process is killed and reaped: none is left behind

    def on_send_to_bench(self, message: SendToBench) -> None:
        """The Data pane hands a dataset to the Bench pane."""
        self.action_show_pane("bench")
        self.bench.use_dataset(message.path, message.dataset_format)

    def action_help(self) -> None:
        text = (HELP_INTRO + _keys_table("Everywhere", self.BINDINGS) + _keys_table("Tokens pane", TokensPane.BINDINGS)
                + _keys_table("Bench pane", BenchPane.BINDINGS) + _keys_table("Data pane", DataPane.BINDINGS))
        self.push_screen(HelpScreen(text))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for pane in PANES:
            yield SystemCommand(f"Show the {pane.title()} pane", f"Switch to the {pane} pane",
                                partial(self.action_show_pane, pane))
        yield SystemCommand("Help", "Keys and how the panes work", self.action_help)
        for binding in TokensPane.BINDINGS:
            yield SystemCommand(f"Tokens: {binding.description}", f"key {binding.key}",
                                partial(self._tokens_action, binding.action))
        for binding in BenchPane.BINDINGS:
            yield SystemCommand(f"Bench: {binding.description}", f"key {binding.key}",
                                partial(self._bench_action, binding.action))
        for binding in DataPane.BINDINGS:
            yield SystemCommand(f"Data: {binding.description}", f"key {binding.key}",
                                partial(self._data_action, binding.action))

    async def _tokens_action(self, action: str) -> None:
        self.action_show_pane("tokens")
        await self.tokens.run_action(action)

    async def _bench_action(self, action: str) -> None:
        self.action_show_pane("bench")
        await self.bench.run_action(action)

    async def _data_action(self, action: str) -> None:
        self.action_show_pane("data")
        await self.query_one(DataPane).run_action(action)


def make_app(pane: str = "tokens", *, text: str = "", source: str | None = None, data_path: Path | None = None,
             registry: Registry | None = None, config: Config | None = None,
             bench_options: RunOptions | None = None, bench_start: bool = False, sim_config=None,
             counting: CountingService | None = None) -> TokdeckApp:
    """The dashboard, opened on ``pane`` with ``text`` in the Tokens editor.

    ``bench_options``: `tokdeck ui`'s run flags for the Bench pane's form; ``bench_start``
    starts that run at once; ``sim_config``: the built-in simulator's behaviour (tests); ``counting``: a
    counting service to share (tests; by default the app starts its own and closes it on exit)."""
    return TokdeckApp(pane=pane, text=text, source=source, data_path=data_path, registry=registry, config=config,
                      bench_options=bench_options, bench_start=bench_start, sim_config=sim_config,
                      counting=counting)
