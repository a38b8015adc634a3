"""Where records come from: a regular file, or a stream read once (a pipe, a FIFO, ``-`` for stdin).

A regular file is read by byte ranges and may be read again (detection, worker processes, the
token pass, the Data pane's index). A stream is read once, front to back: the head that
format detection reads is kept (``Replay``) and served again to the scan, which then computes
everything in that one pass. Devices (a terminal, ``/dev/zero``) are refused: they are not
datasets and some never end.

``FileState`` is a regular file's identity and size at one moment; comparing the one taken
before a scan with one taken after it tells whether the file changed while it was read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import TokdeckError

STDIN = "-"


def _not_a_file(path: str, mode: int) -> str | None:
    """Why a file of this mode cannot be scanned, or None for a regular file or a pipe."""
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"{path}: is a folder, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{path}: is a device, not a file or a pipe"
    if stat.S_ISSOCK(mode):
        return f"{path}: is a socket, not a file or a pipe"
    return f"{path}: is not a regular file"


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise TokdeckError(f"{path}: no such file") from None
    except OSError as exc:
        raise TokdeckError(f"{path}: {exc.strerror or exc}") from None


def is_stream(path: str) -> bool:
    """Whether ``path`` is read as a stream (``-`` or a pipe); TokdeckError (one line) when it
    can be read neither as a file nor as a stream. Opens nothing (opening a FIFO waits for a writer)."""
    if path == STDIN:
        try:
            st = os.fstat(0)
        except OSError:
            raise TokdeckError("-: stdin is closed") from None
        if stat.S_ISCHR(st.st_mode) and os.isatty(0):
            raise TokdeckError("-: stdin is a terminal: pipe a dataset in (cat FILE | tokdeck inspect -) or give FILE")
        if stat.S_ISSOCK(st.st_mode):  # stdin from a socket (inetd, ssh): a stream like a pipe
            return True
        why = _not_a_file("stdin", st.st_mode)
        if why:
            raise TokdeckError(why)
        return True
    st = _stat(path)
    why = _not_a_file(path, st.st_mode)
    if why:
        raise TokdeckError(why)
    return stat.S_ISFIFO(st.st_mode)


def check_readable(path: str) -> int:
    """The size of the regular file ``path``; TokdeckError (one line) when it is not one or cannot be read."""
    st = _stat(path)
    why = _not_a_file(path, st.st_mode)
    if why is None and stat.S_ISFIFO(st.st_mode):
        why = f"{path}: is a pipe, not a regular file (only `tokdeck inspect` reads pipes, in one pass)"
    if why:
        raise TokdeckError(why)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise TokdeckError(f"{path}: {exc.strerror or exc}") from None
    return st.st_size


def open_stream(path: str) -> BinaryIO:
    """The stream ``path`` (``-``: stdin, left open when closed) opened for reading. Buffered: a
    read of 4 MB then returns 4 MB (a pipe hands out 64 KB at a time; whole chunks run faster)."""
    if path == STDIN:
        return open(0, "rb", closefd=False)
    try:
        return open(path, "rb")
    except OSError as exc:
        raise TokdeckError(f"{path}: {exc.strerror or exc}") from None


class Replay:
    """A stream whose beginning can be read again.

    Until ``rewind(keep=False)``, everything read is kept, and each ``rewind()`` serves it again
    from the start; after it, the kept bytes are served once more and then dropped. Format
    detection reads a bounded head, so what is kept is bounded too. Counts the bytes and the
    newlines that the last pass read (``bytes``, ``lines``); ``keep=False`` from the start only
    counts (a regular file read once).
    """

    def __init__(self, raw: BinaryIO, keep: bool = True):
        self.raw = raw
        self.kept = bytearray()
        self.pos = 0
        self.keeping = keep
        self.bytes = self.newlines = 0
        self.last = b""

    def rewind(self, keep: bool = True) -> "Replay":
        self.pos = 0
        self.keeping = keep
        self.bytes = self.newlines = 0
        self.last = b""
        return self

    def read(self, n: int) -> bytes:
        if self.pos < len(self.kept):
            with memoryview(self.kept) as view:
                data = bytes(view[self.pos:self.pos + n])
            self.pos += len(data)
            if not self.keeping and self.pos >= len(self.kept):
                self.kept, self.pos = bytearray(), 0
        else:
            data = self.raw.read(n)
            if self.keeping and data:
                self.kept += data
                self.pos += len(data)
        if data:
            self.bytes += len(data)
            self.newlines += data.count(b"\n")
            self.last = data[-1:]
        return data

    def drain(self, chunk: int = 4 << 20) -> None:
        """Read the rest (counting its bytes and lines)."""
        while self.read(chunk):
            pass

    @property
    def lines(self) -> int:
        """Physical lines read so far (a last line without a newline counts)."""
        return self.newlines + (1 if self.bytes and self.last != b"\n" else 0)


@dataclass(frozen=True)
class FileState:
    """A regular file's identity, size and modification time at one moment."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "FileState | None":
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def change_since(self, path: str, during: str = "the scan") -> str | None:
        """How ``path`` differs from this state now (a sentence), or None when it does not."""
        now = FileState.of(path)
        if now is None:
            return f"the file was deleted during {during}"
        if (now.dev, now.ino) != (self.dev, self.ino):
            return f"the file was replaced during {during}"
        if now.size != self.size:
            return f"the file changed during {during}: {self.size:,} bytes when it started, {now.size:,} at the end"
        if now.mtime_ns != self.mtime_ns:
            return f"the file was modified during {during} (same size)"
        return None
