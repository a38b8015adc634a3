"""Helpers for the counting-process tests: an event recorder, waiting, and `ps`."""

from __future__ import annotations

import subprocess
import threading
import time


class Recorder:
    """A document listener that keeps every event and each row's newest count."""

    def __init__(self):
        self.events = []
        self.latest = {}
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        from tui.core.tokenizers.counting_client import RowCounts

        with self._lock:
            self.events.append(event)
            if isinstance(event, RowCounts):
                for row in event.rows:
                    self.latest[row.tokenizer_id] = row

    def of(self, kind) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    def rows(self) -> list:
        from tui.core.tokenizers.counting_client import RowCounts

        return [row for e in self.of(RowCounts) for row in e.rows]

    def counted(self, ids, version: int) -> bool:
        """True when every row of ``ids`` has a count (or an error) of ``version``."""
        with self._lock:
            return all(tid in self.latest and self.latest[tid].version == version for tid in ids)


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout:.0f} s for {what}")
        time.sleep(0.005)


def alive(pid: int) -> bool:
    """Whether `ps` lists the process (a zombie waiting to be reaped counts as gone)."""
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(out) and not out.startswith("Z")
