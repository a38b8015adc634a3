"""The Data pane (filled in by [data]); a placeholder until then."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static


class DataPane(Container):
    """JSONL dataset inspection. ``path``: the file given on the command line, if any."""

    PANE_ID = "data"
    TITLE = "Data"

    def __init__(self, path: Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path = path

    def compose(self) -> ComposeResult:
        lines = ["The Data pane is coming in [data].", ""]
        if self.path is not None:
            lines.append(f"File to inspect: {self.path}")
        lines.append("Meanwhile: `tokdeck inspect --help` inspects datasets from the command line.")
        yield Static("\n".join(lines), classes="placeholder", markup=False)
