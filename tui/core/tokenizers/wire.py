"""The counting process's wire format: length-prefixed frames of plain data.

A frame is a 4-byte little-endian length and that many bytes, a pickle of plain values only:
tuples, lists, dicts, sets, str, bytes, int, float, bool and None. The reader refuses a pickle
that names any class or function, so a frame carries data and never code, whichever process
wrote it; a length over MAX_FRAME is a broken stream, not an allocation. Every message is a
tuple whose first item says what it is (see ``counting_process`` and ``counting_client``).
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct

MAX_FRAME = 1 << 28  # 256 MB: far above any message (texts travel in pieces of TEXT_PIECE characters)
#: a long text is sent in pieces of this many characters, so no single write or pickle is long
TEXT_PIECE = 1 << 16
_HEADER = struct.Struct("<I")
_READ_SIZE = 1 << 18


class ProtocolError(Exception):
    """A frame that is not a well-formed message: the other side is broken."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise ProtocolError(f"a frame names {module}.{name}: only plain data may cross")


def encode(message) -> bytes:
    payload = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes):
    try:
        return _PlainUnpickler(io.BytesIO(payload)).load()
    except ProtocolError:
        raise
    except Exception as exc:  # any malformed pickle: UnpicklingError, EOFError, ValueError, ...
        raise ProtocolError(f"unreadable frame: {type(exc).__name__}: {exc}") from None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte, waiting while the pipe is full (without the GIL), blocking fd or not."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class FrameReader:
    """Reads messages from a pipe: ``read()`` blocks for at least one, then takes every
    message already waiting too (so bursts are handled together). Raises EOFError at the end
    of the stream and ProtocolError for a broken one."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()
        self._eof = False

    def read(self) -> list:
        messages = self._parse()
        while not messages and not self._eof:
            self._fill()
            messages = self._parse()
        while not self._eof and select.select([self.fd], [], [], 0)[0]:
            self._fill()
            messages += self._parse()
        if not messages:
            raise EOFError("the other side closed the pipe")
        return messages

    def _fill(self) -> None:
        chunk = os.read(self.fd, _READ_SIZE)
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def _parse(self) -> list:
        messages = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, offset)
            if size > MAX_FRAME:
                raise ProtocolError(f"a frame of {size:,} bytes (at most {MAX_FRAME:,})")
            end = offset + _HEADER.size + size
            if len(buffer) < end:
                break
            messages.append(decode(bytes(buffer[offset + _HEADER.size:end])))
            offset = end
        if offset:
            del buffer[:offset]
        return messages
