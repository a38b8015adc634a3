"""Helpers for the simulator tests (a unique module name: tests/ folders share sys.path)."""

from __future__ import annotations

import json


def parse_sse(raw: bytes) -> tuple[list, bool]:
    """(list of decoded `data:` payloads, saw [DONE]); a malformed payload is kept as its raw string."""
    events, done = [], False
    for block in raw.decode("utf-8").split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        assert not done, "an event after [DONE]"
        if payload == "[DONE]":
            done = True
            continue
        try:
            events.append(json.loads(payload))
        except ValueError:
            events.append(payload)
    return events, done


def chat_body(text: str = "Hello there, simulator!", **extra) -> dict:
    return {"model": "tokdeck-sim", "messages": [{"role": "user", "content": text}], **extra}
