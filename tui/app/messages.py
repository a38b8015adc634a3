"""Messages that cross panes. The app routes them; panes never reach into each other."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class SendToBench(Message):
    """The Data pane hands a dataset to the Bench pane (the app switches panes and forwards it)."""

    def __init__(self, path: Path, dataset_format: str | None) -> None:
        super().__init__()
        self.path = path
        #: the format the Data pane detected or the user chose (tui.core.datasets names), if known
        self.dataset_format = dataset_format
