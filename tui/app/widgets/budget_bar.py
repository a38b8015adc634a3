"""A one-line fill bar: the prompt's tokens plus reserved output against a context window."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...core.tokenizers.context import Budget


class BudgetBar(Static):
    """Redrawn on every count update: always one line, so never a layout pass."""

    DEFAULT_CSS = """
    BudgetBar { height: 1; }
    """

    def show(self, label: str, budget: Budget | None, problem: str | None = None) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(label + " ", style="bold")
        if budget is None:
            line.append(problem or "…", style="dim" if problem is None else "yellow")
            self.update(line, layout=False)
            return
        width = 20
        used = min(width, round(width * budget.tokens / budget.window)) if budget.window else 0
        reserved = min(width - used, max(1 if budget.reserved else 0, round(width * budget.reserved / budget.window)))
        colour = "red" if budget.over else ("yellow" if budget.fraction > 0.8 else "green")
        line.append("▕")
        line.append("█" * used, style=colour)
        line.append("▒" * reserved, style="dim " + colour)
        line.append("░" * (width - used - reserved), style="dim")
        line.append("▏ ")
        line.append(f"{budget.tokens:,} + {budget.reserved:,} reserved / {budget.window:,} "
                    f"({budget.fraction:.0%})")
        if budget.over:
            line.append(f"  over by {-budget.remaining:,}", style="bold red")
        else:
            line.append(f"  {budget.remaining:,} left", style="dim")
        self.update(line, layout=False)
