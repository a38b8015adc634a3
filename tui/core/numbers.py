"""Numbers people type (flags, the Bench pane's fields) and numbers read from the config: one rule
per kind of number, one wording for every refusal.

    RATE = NumberRule(float, lo=0, lo_open=True, inf_ok=True)
    RATE.parse("4")        # 4.0
    RATE.parse("fast")     # ValueError: 'fast' is not a number
    RATE.parse("0")        # ValueError: must be > 0 (or inf), not 0
    RATE.problem(0.0)      # "must be > 0 (or inf)" (the config adds ", not 0.0")

NaN never passes, nor infinity unless ``inf_ok``. ``argparse_type(rule.parse)`` is the same
parser as an argparse ``type=`` (argparse would replace the message by "invalid value").
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
N = TypeVar("N", int, float)


@dataclass(frozen=True)
class NumberRule(Generic[N]):
    """What a number may be: whole or not, its bounds (inclusive unless open), infinity allowed."""

    kind: type[N]
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    inf_ok: bool = False
    #: the words after "must be", where the generated ones would not say enough ("a port number ...")
    need: str | None = None

    @property
    def description(self) -> str:
        """What the number must be: "between 1 and 1,000,000", "a finite number > 0", "in [0, 1)"."""
        if self.need is not None:
            return self.need
        whole = self.kind is int
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            if whole:
                return f"between {lo:,} and {hi:,}"
            return f"in {'(' if self.lo_open else '['}{lo:g}, {hi:g}{')' if self.hi_open else ']'}"
        if lo is None:
            return "a whole number" if whole else "a finite number"
        bound = f"{'>' if self.lo_open else '>='} {lo:,}" if whole else f"{'>' if self.lo_open else '>='} {lo:g}"
        if whole:
            return bound
        return f"{bound} (or inf)" if self.inf_ok else f"a finite number {bound}"

    def problem(self, value: float) -> str | None:
        """"must be ..." when ``value`` breaks the rule, else None."""
        if math.isnan(value) or (math.isinf(value) and not self.inf_ok):
            return f"must be {self.description}"
        lo, hi = self.lo, self.hi
        if lo is not None and (value < lo or (self.lo_open and value == lo)):
            return f"must be {self.description}"
        if hi is not None and (value > hi or (self.hi_open and value == hi)):
            return f"must be {self.description}"
        return None

    def parse(self, text: str) -> N:
        """The number ``text`` says; ValueError (one line, quoting ``text``) when it breaks the rule."""
        try:
            value = self.kind(text)
        except ValueError:  # also digits past Python's int-from-text limit
            raise ValueError(f"{text!r} is not a {'whole ' if self.kind is int else ''}number") from None
        problem = self.problem(value)
        if problem:
            raise ValueError(f"{problem}, not {text}")
        return value


def argparse_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse ``type=``: its ValueError message is shown as it is."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return typed


#: a TCP port; 0 lets the system pick a free one
PORT = NumberRule(int, lo=0, hi=65535, need="a port number from 0 to 65535 (0: any free port)")
#: a seed: any whole number a saved result can hold (JSON numbers of 64 bits)
SEED = NumberRule(int, lo=-(1 << 63), hi=(1 << 63) - 1)
