"""Tokens pane on a 1 MB mixed-language document, all bundled tokenizers enabled, through the real app.

Run: /work/.venv-dev/bin/python tests/perf/perf_tokens_incremental.py [--keys N] [--mb SIZE]

What it measures (the app runs headless under Textual's Pilot, same event loop and threads as
in a terminal; only the terminal output itself is not written):
- first paint: from creating the app to the first screen refresh with the 1 MB text loaded
  (tokenizers still loading in the background); also from the process start, imports included;
- cold settle: until every row shows the full count of the 1 MB document;
- keystroke-to-updated-count: a key press typed at a random place in the document (Pilot
  ``press``: key event -> TextArea edit -> Changed -> counting -> table cell), until the table
  cells of all tiktoken-family rows (r50k, p50k, cl100k, o200k, o200k_harmony, mistral-tekken)
  show the count of the new text; median and 90th percentile over N keystrokes;
- the same for every incremental row (the HF ones with a proven cut rule too);
- event-loop lag: a ticker task asks to wake every 5 ms; the longest overshoot is the longest
  time the UI thread was blocked, measured during the cold count and while the whole-count
  rows (llama2, estimate) catch up after typing. On a shared machine part of an overshoot is
  the OS running other processes: the kernel's run-queue wait of the UI thread
  (/proc/thread-self/schedstat) is subtracted to give the block this process caused itself
  (the GIL held by another thread, or the UI thread's own work);
- baseline: one full tiktoken o200k encode of the document (what a naive re-count per
  keystroke costs for that row alone), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TIKTOKEN_FAMILY = ("r50k_base", "p50k_base", "cl100k_base", "o200k_base", "o200k_harmony", "mistral-tekken")

PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. Tokenizers split text into pieces; counts differ.\n",
    "def count(text: str) -> int:\n    return len(encode(text))  # exact, no BOS/EOS\n\n",
    "東京は日本の首都です。大規模言語モデルはトークン単位でテキストを処理します。\n",
    "大型语言模型按词元处理文本，不同的分词器给出不同的计数。\n",
    "Привет, мир! Токенизаторы по-разному считают кириллицу.\n",
    "안녕하세요. 토크나이저마다 결과가 다릅니다.\n",
    "Emoji 😀👍🏽🎉 and symbols → ← ≠ ≤ ∑ in one line.\n",
    "{\"role\": \"user\", \"content\": \"Summarise the attached report in 3 bullet points.\"}\n",
    "    if (x > 0) { return x * 2; } else { return -x; }\r\n",
    "| col a | col b |\n|---|---|\n| 1 | 2 |\n\n",
]


def document(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts, n = [], 0
    while n < size:
        p = rng.choice(PARAGRAPHS)
        if rng.random() < 0.3:
            p = p.replace("text", f"text{rng.randint(0, 99999)}")
        parts.append(p)
        n += len(p.encode("utf-8"))
    return "".join(parts)


def run_queue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (0 where /proc lacks it)."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Ticker:
    """Wakes every ``interval`` seconds on the event loop and records how late each wake-up was,
    and how much of that the OS kept the thread waiting for a CPU."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.lags: list[float] = []
        self.own: list[float] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t, q = time.perf_counter(), run_queue_wait()
            await asyncio.sleep(self.interval)
            lag = time.perf_counter() - t - self.interval
            self.lags.append(lag)
            self.own.append(max(0.0, lag - (run_queue_wait() - q)))

    def start(self) -> None:
        self.lags, self.own = [], []
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> tuple[float, float]:
        """(longest overshoot, longest overshoot less the OS run-queue wait)"""
        if self._task:
            self._task.cancel()
        return max(self.lags, default=0.0), max(self.own, default=0.0)


async def wait_until(condition, what: str, interval: float = 0.01, timeout: float = 180.0) -> None:
    """Poll ``condition`` on the event loop; a hung or crashed app fails the run instead of hanging it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting {timeout:.0f} s for {what}")
        await asyncio.sleep(interval)


async def main(keys: int, size_mb: float) -> None:
    from textual.widgets import TextArea

    from tui.app.app import make_app
    from tui.app.tokens import WHOLE_DEBOUNCE_S
    from tui.core.config import Config
    from tui.core.tokenizers import Registry, bundled_ids

    imported = time.perf_counter() - STARTED

    text = document(int(size_mb * 1_000_000))
    reg = Registry(discover=False, env={})
    t0 = time.perf_counter()
    app = make_app(text=text, registry=reg, config=Config())
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.tokens
        await wait_until(lambda: pane.painted_at is not None, "the first paint", 0.001)
        # note: Pilot's run_test adds its own start-up; `tokdeck ui` on a terminal is measured the same way
        first_paint = pane.painted_at - t0
        from_start = pane.painted_at - STARTED
        ticker = Ticker()
        ticker.start()
        await wait_until(pane.settled, "the cold counts")
        cold = time.perf_counter() - t0
        cold_lag, cold_own = ticker.stop()
        assert set(pane.counts) >= set(bundled_ids()), pane.errors
        editor = app.query_one("#editor", TextArea)
        shown = editor.text  # TextArea makes a document's newlines uniform (CRLF here): count what it holds
        for tid in bundled_ids():
            assert pane.counts[tid].count.tokens == reg.get(tid).count(shown), tid

        editor.cursor_blink = False
        rng = random.Random(1)
        # rows counted incrementally on this document (a rule, and cut points in the text)
        incremental = [tid for tid, c in pane.counters.items() if pane._lane(c) != "whole"]
        whole = sorted(set(pane.counters) - set(incremental))
        fast_lat, incr_lat, count_lat = [], [], []
        ticker.start()
        for _ in range(keys):
            row = rng.randrange(editor.document.line_count)
            editor.move_cursor((row, rng.randint(0, len(editor.document.get_line(row)))))
            await pilot.pause()
            key = rng.choice(["x", "space", "enter", "a", "comma"])
            generation = pane.generation
            t = time.perf_counter()
            await pilot.press(key)  # returns once the app is idle again; the timestamps below are the pane's own
            await wait_until(lambda: pane.generation > generation and all(
                pane.updated_at.get(tid, (None,))[0] == pane.generation for tid in incremental), "a keystroke's counts",
                0.0005)
            fast_done = max(pane.updated_at[tid][1] for tid in TIKTOKEN_FAMILY)
            fast_lat.append(fast_done - t)
            count_lat.append(fast_done - pane.changed_at)
            incr_lat.append(max(pane.updated_at[tid][1] for tid in incremental) - t)
            await asyncio.sleep(rng.uniform(0.05, 0.15))  # typing speed: 7-20 keys a second
        await wait_until(pane.settled, "the whole-count rows")
        typing_lag, typing_own = ticker.stop()
        final = editor.text
        for tid in bundled_ids():
            assert pane.counts[tid].count.tokens == reg.get(tid).count(final), tid

    enc = reg.get("o200k_base")
    t = time.perf_counter()
    enc.count(text)
    baseline = time.perf_counter() - t

    def ms(x: float) -> str:
        return f"{x * 1000:.1f} ms"

    q = statistics.quantiles
    print(f"document: {len(text):,} chars, {len(text.encode()):,} bytes, {len(bundled_ids())} bundled tokenizers + estimate")
    print(f"first paint: {ms(first_paint)}   (goal < 1 s); from the process start, {ms(imported)} of imports "
          f"included: {ms(from_start)}")
    print(f"cold: all rows counted the full document after {cold:.2f} s; longest UI block meanwhile {ms(cold_lag)} "
          f"({ms(cold_own)} less the OS run-queue wait)")
    print(f"keystroke -> tiktoken-family rows updated: median {ms(statistics.median(fast_lat))}, "
          f"p90 {ms(q(fast_lat, n=10)[-1])}, max {ms(max(fast_lat))} over {keys} keys   (goal median < 50 ms)")
    print(f"  of which counting (TextArea.Changed reaching the pane -> tiktoken-family rows updated): "
          f"median {ms(statistics.median(count_lat))}, p90 {ms(q(count_lat, n=10)[-1])}; the rest is "
          f"Textual's own key handling and TextArea edit")
    print(f"rows counted whole on this document (after a {WHOLE_DEBOUNCE_S}s pause in typing): {', '.join(whole)}")
    print(f"keystroke -> every incremental row ({len(incremental)}) updated: median {ms(statistics.median(incr_lat))}, "
          f"p90 {ms(q(incr_lat, n=10)[-1])}")
    print(f"longest UI-thread block while typing and while whole-count rows caught up: {ms(typing_lag)}   "
          f"(goal < 100 ms); less the OS run-queue wait: {ms(typing_own)}")
    print(f"baseline: one full o200k encode of the document {ms(baseline)}; "
          f"median keystroke-to-count is {statistics.median(fast_lat) / baseline:.2f}x of it")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--mb", type=float, default=1.0)
    args = ap.parse_args()
    asyncio.run(main(args.keys, args.mb))
