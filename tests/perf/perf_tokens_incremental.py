"""Tokens pane on a 1 MB mixed-language document, all bundled tokenizers enabled, through the real app.

Run: python tests/perf/perf_tokens_incremental.py [--keys N] [--mb SIZE]
         [--processes 1,2] [--repeat N] [--cold-only]

The app runs headless under Textual's Pilot (same event loop and threads as in a terminal; only
the terminal output itself is not written), with its own counting processes, for each number of
counting processes asked for (``[tokens] counting_processes``; 1 and 2 by default, compared in
the same run): run 1 REPEAT times, the numbers of processes taking turns (a pair of cold starts
close in time sees about the same load: their ratio is printed), then run 2 for each:

Run 1, a cold start left alone:
- first paint: from creating the app to the first screen refresh with the text loaded (the
  counting process starts right after); also from the process start, imports included;
- cold settle: from the first paint until every row shows the exact count of the document
  (every tokenizer loaded in the counting process and the whole text counted).

Run 2, from start to quit, with a ticker on the event loop all along:
- cold start while typing: a key every 0.1-0.25 s while the tokenizers load, then until settled;
- keystroke -> counts: a key typed at a random place in the document (Pilot ``press``: key
  event -> TextArea edit -> Changed -> the edit sent to the counting process -> counts back ->
  table cell), until the cells of all tiktoken-family rows (r50k, p50k, cl100k, o200k,
  o200k_harmony, mistral-tekken) show the count of the new text; median and 90th percentile;
  the same for every incremental row (the HF ones with a proven cut rule too) and, after the
  typing stops, for the rows counted whole;
- a paste of SIZE MB (one terminal paste event) into the document, until every row is exact;
- quitting (the counting process killed and reaped).
- event-loop lag: a ticker task asks to wake every 5 ms; the longest overshoot is the longest
  time the UI thread was blocked, per phase and from start to quit. On a shared machine part
  of an overshoot is the OS running other processes: the kernel's run-queue wait of the UI
  thread (/proc/thread-self/schedstat) is subtracted to give the block this process caused
  itself (the GIL held by another thread, or the UI thread's own work).

Also: the counting processes' RSS (VmRSS, and its peak VmHWM; each, and their sum) with every
tokenizer loaded and the document counted, next to the UI process's; the round trip of a one-character count
through the process (the floor under every keystroke's counts); and, in the same run, one full
tiktoken o200k encode of the document in this process (what a naive re-count per keystroke
would cost for that row alone). /proc/loadavg is printed before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
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


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                values[key] = int(kb) / 1024
    return values["VmRSS:"], values["VmHWM:"]


class Ticker:
    """Wakes every ``interval`` seconds on the event loop and records how late each wake-up was,
    and how much of that the OS kept the thread waiting for a CPU, by phase."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.phase = "start"
        self.lags: dict[str, list[tuple[float, float]]] = {}
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t, q = time.perf_counter(), run_queue_wait()
            await asyncio.sleep(self.interval)
            lag = time.perf_counter() - t - self.interval
            self.lags.setdefault(self.phase, []).append((lag, max(0.0, lag - (run_queue_wait() - q))))

    def start(self, phase: str) -> None:
        self.phase = phase
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def worst(self, *phases: str) -> tuple[float, float]:
        """(longest overshoot, longest overshoot less the OS run-queue wait) over ``phases`` (all: none given)"""
        samples = [s for p, ss in self.lags.items() if not phases or p in phases for s in ss]
        return max((s[0] for s in samples), default=0.0), max((s[1] for s in samples), default=0.0)


async def wait_until(condition, what: str, interval: float = 0.01, timeout: float = 180.0) -> None:
    """Poll ``condition`` on the event loop; a hung or crashed app fails the run instead of hanging it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting {timeout:.0f} s for {what}")
        await asyncio.sleep(interval)


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def quantiles(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{ms(xs[0])}" if xs else "-"
    return f"median {ms(statistics.median(xs))}, p90 {ms(statistics.quantiles(xs, n=10)[-1])}, max {ms(max(xs))}"


async def random_place(pilot, editor, rng: random.Random) -> None:
    """The cursor to a random place in the document (and the screen redrawn there)."""
    row = rng.randrange(editor.document.line_count)
    editor.move_cursor((row, rng.randint(0, len(editor.document.get_line(row)))))
    await pilot.pause()


async def random_key(pilot, rng: random.Random) -> None:
    await pilot.press(rng.choice(["x", "space", "enter", "a", "comma"]))


def shown(pane, text: str) -> tuple[str, dict[str, int]]:
    """The text and every row's count, all of the current version (checked after the run, off the UI)."""
    assert pane.settled()
    return text, {tid: row.count.tokens for tid, row in pane.counts.items() if row.version == pane.generation}


def check_exact(reg, snapshots: list[tuple[str, dict[str, int]]], ids) -> None:
    for text, counts in snapshots:
        assert set(counts) >= set(ids), set(ids) - set(counts)
        for tid in ids:
            assert counts[tid] == reg.get(tid).count(text), tid


def config(processes: int):
    from tui.core.config import Config, TokensSettings

    return Config(tokens=TokensSettings(counting_processes=processes))


async def cold_run(text: str, processes: int) -> dict:
    from tui.app.app import make_app
    from tui.core.tokenizers import Registry

    imported = time.perf_counter() - STARTED
    load = loadavg()
    t0 = time.perf_counter()
    app = make_app(text=text, registry=Registry(discover=False, env={}), config=config(processes))
    async with app.run_test(size=(120, 40)):
        pane = app.tokens
        await wait_until(lambda: pane.painted_at is not None, "the first paint", 0.001)
        # note: Pilot's run_test adds its own start-up; `tokdeck ui` on a terminal is measured the same way
        ticker = Ticker()
        ticker.start("cold")
        await wait_until(pane.settled, "the cold counts")
        settled = time.perf_counter()
        ticker.stop()
        return {"imported": imported, "first_paint": pane.painted_at - t0, "from_start": pane.painted_at - STARTED,
                "cold": settled - pane.painted_at, "block": ticker.worst(), "errors": dict(pane.errors),
                "load": load, "pids": len(app.counting.pids)}


async def full_run(text: str, keys: int, paste_mb: float, processes: int) -> dict:
    from textual import events
    from textual.widgets import TextArea

    from tui.app.app import make_app
    from tui.core.tokenizers import Registry, bundled_ids
    from tui.core.tokenizers.counting_process import counted_whole

    out: dict = {"load": loadavg()}
    app = make_app(text=text, registry=Registry(discover=False, env={}), config=config(processes))
    ticker = Ticker()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.tokens
        editor = app.query_one("#editor", TextArea)
        editor.cursor_blink = False
        rng = random.Random(1)
        await wait_until(lambda: pane.painted_at is not None, "the first paint", 0.001)
        ticker.start("cold typing")
        typed = 0
        while pane.counts.keys() < set(pane._wanted_ids()) or typed < 10:  # type while the tokenizers load
            await random_place(pilot, editor, rng)
            await random_key(pilot, rng)
            typed += 1
            await asyncio.sleep(rng.uniform(0.1, 0.25))
        await wait_until(pane.settled, "the counts after typing during the cold start")
        out["cold_typed"] = (typed, time.perf_counter() - pane.painted_at)
        pids = app.counting.pids
        out["rss"], out["ui_rss"] = [rss_mb(pid) for pid in pids], rss_mb()
        # TextArea makes a document's newlines uniform (CRLF here): what is counted is what it holds
        snapshots = [shown(pane, editor.text)]
        ids = bundled_ids() + ["estimate"]

        # rows counted incrementally on this document (a rule, and cut points in the text)
        incremental = [tid for tid in ids if not counted_whole(pane.counts[tid].stats, len(editor.text))]
        whole = sorted(set(ids) - set(incremental))
        fast_lat, incr_lat, count_lat, whole_lat = [], [], [], []
        ticker.phase = "typing"
        for _ in range(keys):
            await random_place(pilot, editor, rng)
            generation = pane.generation
            t = time.perf_counter()
            await random_key(pilot, rng)  # returns once the app is idle again; the timestamps are the pane's own
            await wait_until(lambda: pane.generation > generation and all(
                pane.updated_at.get(tid, (None,))[0] == pane.generation for tid in incremental), "a keystroke's counts",
                0.0005)
            fast_done = max(pane.updated_at[tid][1] for tid in TIKTOKEN_FAMILY)
            fast_lat.append(fast_done - t)
            count_lat.append(fast_done - pane.changed_at)
            incr_lat.append(max(pane.updated_at[tid][1] for tid in incremental) - t)
            await asyncio.sleep(rng.uniform(0.05, 0.15))  # typing speed: 7-20 keys a second
        ticker.phase = "catching up"
        await wait_until(pane.settled, "the whole-count rows")
        whole_lat.append(max(pane.updated_at[tid][1] for tid in whole) - pane.changed_at)
        snapshots.append(shown(pane, editor.text))
        out.update(fast=fast_lat, incr=incr_lat, count=count_lat, whole=whole, whole_after_typing=whole_lat,
                   incremental=incremental)

        # a paste of paste_mb MB, one terminal paste event
        ticker.phase = "paste"
        paste = document(int(paste_mb * 1_000_000), seed=2)
        generation = pane.generation
        t = time.perf_counter()
        # as the terminal driver delivers it: to the app, which forwards it to the focused editor
        # (posted to the editor itself it bubbles up to the app and is forwarded again: pasted twice)
        app.post_message(events.Paste(paste))
        await wait_until(lambda: pane.generation > generation, "the paste", 0.001)
        edited = time.perf_counter()
        await wait_until(pane.settled, "the counts of the pasted text")
        out["paste"] = (edited - t, time.perf_counter() - t, len(editor.text))
        snapshots.append(shown(pane, editor.text))

        # the floor under every keystroke: a one-character count through the process and back
        trips = []

        def round_trips():
            for _ in range(50):
                t = time.perf_counter()
                app.counting.call("estimate", "count_many", ["x"], "literal")
                trips.append(time.perf_counter() - t)

        ticker.phase = "idle"
        worker = threading.Thread(target=round_trips)
        worker.start()
        await wait_until(lambda: not worker.is_alive(), "the round trips")
        out["trip"] = trips
        ticker.phase = "quit"
        await pilot.press("ctrl+q")
    ticker.stop()
    out["quit_reaped"] = not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    out["ticker"] = ticker
    out["snapshots"] = snapshots  # checked after every run: the reference tokenizers load in this process
    return out


def report_cold(cold: dict, first: bool) -> None:
    since_start = f"; from the process start, imports included: {ms(cold['from_start'])}" if first else ""
    print(f"cold start, left alone ({cold['pids']} counting processes, load average {cold['load']}): every row "
          f"exact {cold['cold']:.2f} s after the first paint (goal < 3 s); first paint {ms(cold['first_paint'])} "
          f"(goal < 0.5 s{since_start}); longest UI block meanwhile {ms(cold['block'][0])} ({ms(cold['block'][1])} "
          f"less the OS run-queue wait)" + (f"; errors {cold['errors']}" if cold["errors"] else ""))


def report_run(run: dict, keys: int, size_mb: float) -> float:
    """Prints the run's figures; the median keystroke -> tiktoken-family rows."""
    from tui.core.tokenizers.counting_process import WHOLE_DEBOUNCE_S

    ticker = run["ticker"]
    print(f"run 2 (load average {run['load']} at its start):")
    typed, settled = run["cold_typed"]
    cold_block = ticker.worst("cold typing")
    print(f"cold start with {typed} keys typed while loading: every row exact {settled:.2f} s after the first paint; "
          f"longest UI block {ms(cold_block[0])} ({ms(cold_block[1])} less the run-queue wait)   (goal < 50 ms)")
    each = ", ".join(f"{rss:.0f} MB (peak {hwm:.0f} MB)" for rss, hwm in run["rss"])
    ui_rss, ui_hwm = run["ui_rss"]
    print(f"counting processes with every tokenizer loaded and the document counted: RSS {each}, together "
          f"{sum(r for r, _ in run['rss']):.0f} MB; the UI process meanwhile: RSS {ui_rss:.0f} MB (peak {ui_hwm:.0f} MB)")
    print(f"round trip of a one-character count through the process: {quantiles(run['trip'])}")
    print(f"keystroke -> tiktoken-family rows updated: {quantiles(run['fast'])} over {keys} keys   (goal median "
          f"<= 10 ms)")
    print(f"  of which TextArea.Changed reaching the pane -> tiktoken-family rows updated: "
          f"{quantiles(run['count'])}; the rest is Textual's own key handling and TextArea edit")
    print(f"keystroke -> every incremental row ({len(run['incremental'])}) updated: {quantiles(run['incr'])}   "
          f"(goal median <= 50 ms)")
    print(f"rows counted whole on this document (after a {WHOLE_DEBOUNCE_S}s pause in typing): "
          f"{', '.join(run['whole'])}: exact {ms(run['whole_after_typing'][0])} after the last key")
    typing_block = ticker.worst("typing", "catching up")
    print(f"longest UI block while typing and while the whole-count rows caught up: {ms(typing_block[0])} "
          f"({ms(typing_block[1])} less the run-queue wait)   (goal < 50 ms)")
    edited, exact, length = run["paste"]
    paste_block = ticker.worst("paste")
    print(f"paste of {size_mb:g} MB: in the editor after {ms(edited)}, every row exact after {exact:.2f} s "
          f"(document now {length:,} chars); longest UI block {ms(paste_block[0])} ({ms(paste_block[1])} less the "
          f"run-queue wait)   (goal < 50 ms)")
    everything = ticker.worst()
    print(f"longest UI block from the first paint to quit: {ms(everything[0])} ({ms(everything[1])} less the "
          f"run-queue wait)   (goal < 50 ms); counting processes gone after quit: {run['quit_reaped']}")
    by_phase = ", ".join(f"{p} {ms(max(s[0] for s in ss))}/{ms(max(s[1] for s in ss))}" for p, ss in
                         ticker.lags.items() if ss)
    print(f"  by phase (longest / less the run-queue wait): {by_phase}")
    return statistics.median(run["fast"])


async def main(keys: int, size_mb: float, processes: list[int], repeat: int, cold_only: bool) -> None:
    from tui.core.tokenizers import bundled_ids

    load_before = loadavg()
    text = document(int(size_mb * 1_000_000))
    print(f"document: {len(text):,} chars, {len(text.encode()):,} bytes, {len(bundled_ids())} bundled tokenizers "
          f"+ estimate; load average before {load_before} (2 cores)", flush=True)
    colds: dict[int, list[dict]] = {n: [] for n in processes}
    for i in range(repeat):
        for n in processes:
            colds[n].append(await cold_run(text, n))
            report_cold(colds[n][-1], first=i == 0 and n == processes[0])
    if len(processes) > 1:
        first = processes[0]
        for n in processes[1:]:
            ratios = [b["cold"] / a["cold"] for a, b in zip(colds[first], colds[n])]
            print(f"cold start, every row exact: {n} processes / {first}: "
                  + ", ".join(f"{r:.2f}x" for r in ratios) + f" (median {statistics.median(ratios):.2f}x)")
    if not cold_only:
        from tui.core.tokenizers import Registry

        runs, fast = [], []
        for n in processes:
            print(f"--- {n} counting process{'es' if n > 1 else ''}, from start to quit", flush=True)
            runs.append(await full_run(text, keys, size_mb, n))
            fast.append(report_run(runs[-1], keys, size_mb))
        reg = Registry(discover=False, env={})  # the reference counts, loaded in this process after the runs
        for run in runs:
            check_exact(reg, run["snapshots"], bundled_ids() + ["estimate"])
        enc = reg.get("o200k_base")
        t = time.perf_counter()
        enc.count(text)
        baseline = time.perf_counter() - t
        print(f"every count shown was exact; baseline: one full o200k encode of the document in this process "
              f"{ms(baseline)}; the median keystroke -> tiktoken-family rows is "
              + ", ".join(f"{f / baseline:.2f}x" for f in fast) + " of it")
    print(f"load average after {loadavg()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--processes", default="1,2", help="numbers of counting processes to compare, e.g. 1,2")
    ap.add_argument("--repeat", type=int, default=3, help="cold starts of each")
    ap.add_argument("--cold-only", action="store_true", help="the cold starts alone, not run 2")
    args = ap.parse_args()
    asyncio.run(main(args.keys, args.mb, [int(n) for n in args.processes.split(",")], args.repeat, args.cold_only))
