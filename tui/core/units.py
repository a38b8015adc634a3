"""Units shown to people, one way everywhere (the CLI reports and the dashboard agree)."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """A byte size in decimal units (kB = 1000 B, as `ls --si` and MB/s figures): "812 B", "3.6 KB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)  # pragma: no cover
