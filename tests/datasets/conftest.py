"""Fixtures for the dataset tests: write small JSONL files line by line."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def write_lines(tmp_path):
    """write_lines([...], name) -> path; str items are written as is, others json.dumps'ed; bytes raw."""

    def write(lines, name="data.jsonl", newline=b"\n", final_newline=True):
        path = tmp_path / name
        out = []
        for item in lines:
            if isinstance(item, bytes):
                out.append(item)
            elif isinstance(item, str):
                out.append(item.encode("utf-8"))
            else:
                out.append(json.dumps(item, ensure_ascii=False).encode("utf-8"))
        data = newline.join(out) + (newline if final_newline and out else b"")
        path.write_bytes(data)
        return str(path)

    return write
