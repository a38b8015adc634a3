"""Reusable widgets: they render core dataclasses and emit messages, nothing more."""

from .budget_bar import BudgetBar
from .editor import Editor
from .token_view import TokenView

__all__ = ["BudgetBar", "Editor", "TokenView"]
