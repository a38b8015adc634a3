"""The Bench pane (filled in by [bench-pane]); a placeholder until then."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static


class BenchPane(Container):
    """Load runs against OpenAI-compatible endpoints."""

    PANE_ID = "bench"
    TITLE = "Bench"

    def compose(self) -> ComposeResult:
        yield Static("The Bench pane is coming in [bench-pane].\n\n"
                     "Meanwhile: `tokdeck bench --help` runs benchmarks from the command line.",
                     classes="placeholder")
