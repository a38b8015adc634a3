"""The counting process's frames: plain data round-trips; anything else read from a pipe is a
ProtocolError (or the end of the stream), never another exception and never code run."""

from __future__ import annotations

import os
import pickle
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.tokenizers import wire

PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=5),
    max_leaves=20)


def _read_all(data: bytes) -> list:
    """Every message a FrameReader gets from a pipe carrying ``data`` (written by another thread)."""
    r, w = os.pipe()

    def write():
        try:
            wire.write_all(w, data)
        finally:
            os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    reader = wire.FrameReader(r)
    out = []
    try:
        while True:
            out += reader.read()
    except EOFError:
        pass
    finally:
        os.close(r)
        writer.join()
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(PLAIN, min_size=1, max_size=8))
def test_plain_messages_round_trip_through_a_pipe(messages):
    assert _read_all(b"".join(wire.encode(m) for m in messages)) == messages


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_a_protocol_error_or_the_end_of_the_stream(data):
    try:
        _read_all(data)
    except wire.ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_a_well_framed_garbage_payload_is_a_protocol_error(payload):
    try:
        wire.decode(payload)
    except wire.ProtocolError:
        pass


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("obj", [Exploit(), wire.ProtocolError("x"), {1, 2}.__class__, print])
def test_a_frame_naming_a_class_or_function_is_refused(obj):
    with pytest.raises(wire.ProtocolError, match="only plain data"):
        wire.decode(pickle.dumps(obj))


def test_a_huge_length_is_refused_before_any_allocation():
    with pytest.raises(wire.ProtocolError, match="frame of"):
        _read_all(struct.pack("<I", wire.MAX_FRAME + 1) + b"x")


def test_a_truncated_frame_is_the_end_of_the_stream():
    assert _read_all(wire.encode(("a", 1)) + wire.encode(("b", 2))[:-3]) == [("a", 1)]
