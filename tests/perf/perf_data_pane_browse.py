"""Data pane on a big file: index build, scan, event-loop lag while scanning and scrolling, RSS.

    python tests/perf/perf_data_pane_browse.py               # a 1 GB file
    python tests/perf/perf_data_pane_browse.py --gb 2        # bigger
    python tests/perf/perf_data_pane_browse.py --gb 0.2      # a quick run
    python tests/perf/perf_data_pane_browse.py --gb 0.5 --short   # millions of short records

Writes realistic openai-chat JSONL to /tmp (mixed sizes: one-line questions to ~16 KB documents,
every line distinct), warms the page cache, then:

1. baseline: ``LineIndex.build`` alone in this process (the raw index), and a page of rows
   read with ``os.pread`` directly;
2. the app headless at 120x36, once started, opens the file: time until the line index and the
   scan report arrive, with the event loop's lag sampled every 10 ms meanwhile (a task that sleeps 10 ms and
   records how late it wakes);
3. scrolling in the record browser: page-down x200, end, page-up x50, home, single steps; the
   latency of each key press (Pilot's press returns once the app processed it and the screen
   settled), against the same for an unbound key (Pilot's own cost), and the lag;
4. a search for a rare word over the whole file (lag while it runs);
5. peak RSS of this process and of the scan's worker processes.

The file is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WORDS = ("the cluster node disk memory model token prompt answer latency batch queue server request "
         "configure restart install update verify metric throughput gpu cache index record").split()


def make_file(path: Path, gb: float, seed: int = 7, short: bool = False) -> tuple[int, int]:
    rng = random.Random(seed)
    target = int(gb * (1 << 30))
    sizes = (3, 6, 10) if short else (8, 30, 120, 600, 2500)
    pool = [" ".join(rng.choice(WORDS) for _ in range(rng.choice(sizes))) for _ in range(400)]
    written = lines = 0
    with open(path, "w", buffering=1 << 22) as fh:
        while written < target:
            i = lines
            q, a = pool[i % 397], pool[(i * 7) % 389]
            rec = {"messages": [{"role": "system", "content": "You are a helpful operator."},
                                {"role": "user", "content": f"#{i} {q}"},
                                {"role": "assistant", "content": a}]}
            if i % 50_000 == 12_345:
                rec["messages"][1]["content"] += " zanzibar"  # the rare word the search looks for
            line = json.dumps(rec, separators=(",", ":")) + "\n"
            fh.write(line)
            written += len(line)
            lines += 1
    return written, lines


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class LagMonitor:
    """How late a 10 ms sleep wakes up on the event loop: the UI's responsiveness."""

    def __init__(self, period: float = 0.01):
        self.period = period
        self.lags: list[float] = []
        self._task = None

    async def _run(self):
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(max(0.0, time.perf_counter() - t - self.period))

    def start(self):
        self.lags = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> list[float]:
        self._task.cancel()
        return self.lags


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def lag_line(name: str, lags: list[float]) -> str:
    return f"  {name}: event-loop lag p50 {ms(pct(lags, 0.5))}, p99 {ms(pct(lags, 0.99))}, max {ms(max(lags or [0]))}" \
           f" ({len(lags)} samples)"


async def drive(path: Path, size_bytes: int, n_lines: int) -> None:
    from tui.app.app import make_app
    from tui.core.config import Config, TokensSettings
    from tui.core.tokenizers import Registry

    app = make_app("data", registry=Registry(discover=False, env={}),
                   config=Config(tokens=TokensSettings(enabled=("estimate",), reference="estimate")))
    mon = LagMonitor()
    async with app.run_test(headless=True, size=(120, 36)) as pilot:
        pane = app.query_one("DataPane")
        await pilot.pause(1.0)  # the app's own start (mounting every pane) is not the Data pane's lag
        await app.workers.wait_for_complete()
        print(f"app started: RSS {rss_mb():.0f} MB before the file is opened")
        t0 = time.perf_counter()
        mon.start()
        pane.open(path)  # what ctrl+o (or the command line) does
        t_index = t_report = None
        while t_index is None or t_report is None:
            await asyncio.sleep(0.02)
            now = time.perf_counter() - t0
            if t_index is None and pane.index is not None:
                t_index = now
            if t_report is None and pane.report is not None:
                t_report = now
        lags = mon.stop()
        r = pane.report
        print(f"app: line index ready after {t_index:.2f} s, scan report after {t_report:.2f} s "
              f"({size_bytes / (1 << 20) / r.elapsed:.0f} MB/s, {r.workers} process(es)); "
              f"{r.records:,} records")
        print(lag_line("while scanning and indexing", lags))

        await pilot.press("f4")
        await pilot.pause(0.2)
        browser = pane.browser
        reads0 = browser.reads

        async def timed(keys: list[str]) -> list[float]:
            out = []
            for k in keys:
                t = time.perf_counter()
                await pilot.press(k)
                out.append(time.perf_counter() - t)
            return out

        noop = await timed(["x"] * 50)  # an unbound key: Pilot's own cost per press, the baseline
        mon.start()
        presses = await timed(["pagedown"] * 200 + ["end"] + ["pageup"] * 50 + ["home"] + ["down"] * 50)
        await pilot.pause(0.2)
        lags = mon.stop()
        assert browser.current_line == 51, browser.current_line
        print(f"scrolling: {len(presses)} key presses (page-down x200, end, page-up x50, home, down x50): latency "
              f"p50 {ms(pct(presses, 0.5))}, p99 {ms(pct(presses, 0.99))}, max {ms(max(presses))}; baseline, an "
              f"unbound key: p50 {ms(pct(noop, 0.5))}, p99 {ms(pct(noop, 0.99))} "
              f"(ratio of p50s {pct(presses, 0.5) / pct(noop, 0.5):.2f}x)")
        print(lag_line("while scrolling", lags))
        print(f"  rows read from the file while scrolling: {browser.reads - reads0:,} "
              f"(of {n_lines:,} lines; {browser.scrollable_content_region.height} rows on screen)")

        mon.start()
        t = time.perf_counter()
        pane.search("zanzibar")
        while not pane.search_done:
            await asyncio.sleep(0.02)
        dt = time.perf_counter() - t
        lags = mon.stop()
        print(f"search 'zanzibar': {browser.row_count:,} matching lines in {dt:.2f} s "
              f"({size_bytes / (1 << 20) / dt:.0f} MB/s)")
        print(lag_line("while searching", lags))
        await pilot.press("down", "down")
        print(f"RSS now {rss_mb():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--short", action="store_true", help="~250-byte records: millions of lines per GB")
    args = ap.parse_args()
    path = Path(args.dir) / f"tokdeck-perf-data-pane-{os.getpid()}.jsonl"
    try:
        t = time.perf_counter()
        size, n = make_file(path, args.gb, short=args.short)
        print(f"wrote {size / (1 << 30):.2f} GB, {n:,} lines in {time.perf_counter() - t:.1f} s: {path}")
        with open(path, "rb") as fh:  # warm the page cache
            while fh.read(1 << 24):
                pass
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        from tui.core.datasets import LineIndex

        t = time.perf_counter()
        index = LineIndex.build(str(path))
        dt = time.perf_counter() - t
        print(f"baseline: LineIndex.build alone {dt:.2f} s ({size / (1 << 20) / dt:.0f} MB/s), "
              f"{len(index):,} lines, offsets {index.nbytes / (1 << 20):.1f} MB")
        fd = os.open(path, os.O_RDONLY)
        t = time.perf_counter()
        for k in range(200):
            first = (k * 7919) % (len(index) - 40) + 1
            for line in range(first, first + 33):
                a, b = index.span(line)
                os.pread(fd, min(1024, b - a), a)
        page = (time.perf_counter() - t) / 200
        os.close(fd)
        print(f"baseline: one screen of 33 rows by os.pread: {page * 1e6:.0f} µs")
        del index

        asyncio.run(drive(path, size, n))
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {me:.0f} MB (with Textual and the index), largest scan worker {kids:.0f} MB")
    finally:
        path.unlink(missing_ok=True)
        print(f"deleted {path}")


if __name__ == "__main__":
    main()
