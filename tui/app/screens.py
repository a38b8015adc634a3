"""Modal dialogs: help, open a file, choose tokenizers, pick the budget model."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, SelectionList
from textual.widgets.selection_list import Selection

from ..core.tokenizers import TokenizerInfo


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Markdown(self.text)
            yield Button("Close", id="close", variant="primary")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class OpenFileScreen(ModalScreen[str | None]):
    """Asks for a path and returns it; the caller reads the file and reports errors."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="open.cancel")]

    def __init__(self, initial: str = ""):
        super().__init__()
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Open a UTF-8 text file into the editor:")
            yield Input(self.initial, placeholder="path/to/file.txt", id="path")
            with Horizontal(classes="buttons"):
                yield Button("Open", id="open", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#open")
    def _submit(self) -> None:
        path = self.query_one("#path", Input).value.strip()
        if path:
            self.dismiss(path)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TokenizerPickerScreen(ModalScreen[tuple[str, ...] | None]):
    """Choose the enabled tokenizers; returns the ids in list order, or None if cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="picker.cancel"),
                Binding("ctrl+s", "save", "Save", id="picker.save")]

    def __init__(self, infos: list[TokenizerInfo], enabled: tuple[str, ...]):
        super().__init__()
        self.infos = infos
        self.enabled = enabled

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Label("Tokenizers to count with (space toggles, ctrl+s saves):")
            yield SelectionList[str](*[
                Selection(f"{i.id}  [dim]{i.source}{' · ' + i.error if i.error else ''}[/]", i.id, i.id in self.enabled)
                for i in self.infos
            ], id="tokenizers")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        self.dismiss(tuple(i.id for i in self.infos if i.id in chosen))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class BudgetChoice:
    model: str
    reserved_output: int


class BudgetScreen(ModalScreen[BudgetChoice | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="budget.cancel")]

    def __init__(self, model: str, reserved: int):
        super().__init__()
        self.model, self.reserved = model, reserved

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Budget model (e.g. gpt-4o, Qwen/Qwen3-8B, claude-sonnet-4):")
            yield Input(self.model, id="model")
            yield Label("Output tokens to reserve:")
            yield Input(str(self.reserved), id="reserved", type="integer")
            yield Label("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Use", id="use", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#use")
    def _submit(self) -> None:
        model = self.query_one("#model", Input).value.strip()
        reserved = self.query_one("#reserved", Input).value.strip() or "0"
        if not model:
            self.query_one("#problem", Label).update("give a model name")
            return
        self.dismiss(BudgetChoice(model, max(0, int(reserved))))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
