"""Small helpers shared by command modules (no heavy imports)."""

from __future__ import annotations

import sys


def read_text_arg(path: str | None) -> str:
    """Text from FILE, or stdin for '-' (or when stdin is piped and no FILE is given).

    Decoded as strict UTF-8; a leading BOM is dropped (it is encoding metadata, not text).
    """
    from ..core.errors import TokdeckError
    from ..core.paths import MAX_READ_BYTES, decode_text, read_text_file
    from ..core.units import human_bytes

    if path not in (None, "-"):
        return read_text_file(path)
    if path is None and sys.stdin.isatty():
        raise TokdeckError("give a FILE, or pipe text in (use - for stdin)")
    data = sys.stdin.buffer.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        raise TokdeckError(f"stdin: more than {human_bytes(MAX_READ_BYTES)}, more than tokdeck reads whole")
    return decode_text(data, "stdin")


def print_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset(), file=None) -> None:
    """A plain aligned table for terminals and logs."""
    file = file or sys.stdout
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(row):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    print(fmt(headers), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in rows:
        print(fmt(row), file=file)
