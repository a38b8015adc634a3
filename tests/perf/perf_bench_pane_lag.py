"""How responsive the dashboard stays during a high-rate run on the Bench pane, against a baseline.

    python tests/perf/perf_bench_pane_lag.py [--prompts 640] [--concurrency 64]
    python tests/perf/perf_bench_pane_lag.py --sweep concurrency=8,16,32,64 [--step-requests 160]

Both runs use the built-in simulator, in its own process (ITL 1 ms, TTFT 10 ms, 256 output tokens
per request, 64 requests in flight) and the engine on its own thread (``BenchmarkThread``):

- baseline: a bare asyncio loop in the main thread drains the engine's queue every 0.25 s (what
  any UI must do at least) and measures its own lag;
- dashboard: the real app (headless, 120x36) on the Bench pane, started with F5; a ticker on the
  app's event loop measures the lag (oversleep of 10 ms sleeps) and a key (F3/F4, switching
  views) is pressed every 0.5 s and timed until processed.

Printed: UI event-loop lag p50/p99/max for both (and the ratio), key round trips, chunks/s
achieved, the engine's own event-loop lag and median TTFT in both (how much the UI disturbs the
measurement), and the cost of the pane's drain ticks and chart rebuilds.

With ``--sweep SPEC`` both sides run that sweep instead (each step ``--step-requests``
requests, no SLO, same simulator; ``SweepThread`` on its own thread): the baseline drains its
queue every 0.25 s, the dashboard draws the curve live (F5 on the Bench pane with the sweep in
its form), with the same lag ticker and keys; chunks/s and TTFT are the last step's.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SIM = dict(ttft_ms=10.0, itl_ms=1.0)
TICK = 0.010


def pct(values, p):
    s = sorted(values)
    if not s:
        return 0.0
    return s[min(int(round((len(s) - 1) * p / 100)), len(s) - 1)]


def stats(label, values_s):
    ms = [v * 1000 for v in values_s]
    return f"{label}: p50 {pct(ms, 50):6.1f} ms  p99 {pct(ms, 99):7.1f} ms  max {max(ms or [0]):7.1f} ms  (n={len(ms)})"


class Ticker:
    def __init__(self):
        self.lags = []
        self.task = None

    async def _run(self):
        while True:
            t = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(time.perf_counter() - t - TICK, 0.0))

    def start(self):
        self.task = asyncio.create_task(self._run())

    def stop(self):
        self.task.cancel()


def flags(args):
    common = ["--output-len", "256", "--random-input-len", "64", "--workers", str(args.workers)]
    if args.sweep:
        return ["--sweep", args.sweep, "--step-requests", str(args.step_requests), *common]
    return ["--num-prompts", str(args.prompts), "--max-concurrency", str(args.concurrency), *common]


def sweep_summary(end):
    """A finished sweep's summary(), from its last step (SweepResult or an exception)."""
    if isinstance(end, BaseException):
        raise SystemExit(f"the sweep failed: {end}")
    return summary(end.steps[-1].result)


def summary(result):
    s = result.summary
    chunks = sum(result.store.chunks)
    ttft = s.metric("ttft")
    return (chunks / s.duration if s.duration else 0.0, result.client_health.event_loop_lag_ms.p99,
            ttft.median if ttft else None, s.duration)


async def baseline(args, registry):
    from tui.core.bench.engine import BenchmarkThread
    from tui.core.bench.options import add_run_arguments, from_namespace
    from tui.core.bench.prepare import prepare
    from tui.core.bench.results import BenchResult
    from tui.core.bench.sim import SimConfig
    from tui.core.bench.sweep import SweepResult, SweepThread
    from tui.core.bench.workers import make_run, step_runs, worker_backend

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    prep = await asyncio.to_thread(prepare, from_namespace(p.parse_args(flags(args))), registry=registry,
                                   sim_config=SimConfig(**SIM))
    ticker = Ticker()
    ticker.start()
    try:
        if args.sweep:
            bt = SweepThread(prep, make_run=step_runs(prep.options)).start()
            ends: tuple = (SweepResult, BaseException)
        else:
            bt = BenchmarkThread.of(make_run(prep, worker_backend(prep.options))).start()
            ends = (BenchResult,)
        result = None
        while result is None:
            await asyncio.sleep(0.25)
            while True:
                try:
                    item = bt.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, ends):
                    result = item
    finally:
        ticker.stop()
        if prep.sim is not None:
            prep.sim.stop()
    return ticker.lags, [], sweep_summary(result) if args.sweep else summary(result), {}


async def dashboard(args, registry):
    from textual import events

    from tui.app.app import make_app
    from tui.app.bench import BenchPane
    from tui.app.widgets.bench_charts import BenchCharts
    from tui.core.bench.sim import SimConfig
    from tui.core.config import Config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app_bench"))
    from bench_pane_testing import ready, run_options

    from textual_plotext import PlotextPlot

    costs = {"tick": [], "charts": [], "build": [], "key": []}
    tick, redraw, render, show_view = BenchPane._tick, BenchCharts.redraw, PlotextPlot.render, BenchPane.action_show_view
    pressed = []

    def timed_render(self):
        t = time.perf_counter()
        out = render(self)
        costs["build"].append(time.perf_counter() - t)
        return out

    def timed_show_view(self, view):
        show_view(self, view)
        if pressed:
            costs["key"].append(time.perf_counter() - pressed.pop())

    def timed_tick(self):
        t = time.perf_counter()
        tick(self)
        costs["tick"].append(time.perf_counter() - t)

    def timed_redraw(self, *args):
        t = time.perf_counter()
        done = redraw(self, *args)
        if done:
            costs["charts"].append(time.perf_counter() - t)  # the plots' build() runs at the next render
        return done

    BenchPane._tick, BenchCharts.redraw, PlotextPlot.render = timed_tick, timed_redraw, timed_render
    BenchPane.action_show_view = timed_show_view
    app = make_app("bench", registry=registry, config=Config(), bench_options=run_options(*flags(args)),
                   sim_config=SimConfig(**SIM))
    async with app.run_test(size=(120, 36)) as pilot:
        # the app opens on the Bench pane: the Tokens pane starts counting only when first shown,
        # so nothing else loads; waiting for its counts would wait forever
        await ready(pilot)
        await pilot.pause(0.5)
        pane = app.bench
        ticker = Ticker()
        ticker.start()
        await pilot.press("f5")
        n = 0
        while not (pane.sweeps if args.sweep else pane.session):
            await asyncio.sleep(0.5)
            if pane.thread is not None and not pressed:  # key event queued -> the view-switch action ran
                pressed.append(time.perf_counter())
                app.post_message(events.Key("f4" if n % 2 else "f3", None))
                n += 1
        ticker.stop()
        if args.sweep:
            return ticker.lags, costs["key"], sweep_summary(pane.sweeps[0][1]), costs
        result = pane.session[0].result
    return ticker.lags, costs["key"], summary(result), costs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=640)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--sweep", metavar="SPEC", help="run this sweep instead, e.g. concurrency=8,16,32,64")
    ap.add_argument("--step-requests", type=int, default=160, metavar="N", help="each sweep step's requests")
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="the run's worker processes (1: the engine on a thread of the UI's process)")
    args = ap.parse_args()
    from tui.core.tokenizers import Registry

    registry = Registry(discover=False, env={})
    registry.get("cl100k_base")
    what = (f"a sweep {args.sweep}, {args.step_requests} requests a step" if args.sweep
            else f"{args.prompts} requests, {args.concurrency} in flight")
    print(f"{what}, 256 output tokens, simulator ITL "
          f"{SIM['itl_ms']:g} ms, TTFT {SIM['ttft_ms']:g} ms (the simulator in its own process)")
    base_lags, _, base, _ = asyncio.run(baseline(args, registry))
    ui_lags, keys, ui, costs = asyncio.run(dashboard(args, registry))
    for name, lags, (cps, eng_lag, ttft, dur) in (("baseline (bare loop)", base_lags, base),
                                                  ("dashboard", ui_lags, ui)):
        print(f"\n{name}: {cps:,.0f} chunks/s over {dur:.1f} s; engine loop lag p99 {eng_lag:.1f} ms; "
              f"median TTFT {ttft:.1f} ms")
        print("  " + stats("UI loop lag", lags))
    print("  " + stats("key to action (F3/F4)", keys))
    print("  " + stats("drain tick (0.25 s timer)", costs["tick"]))
    print("  " + stats("plot data set (per redraw call)", costs["charts"]))
    print("  " + stats("one plot's build() (textual-plotext render)", costs["build"]))
    r50 = pct(ui_lags, 50) / pct(base_lags, 50) if pct(base_lags, 50) else float("nan")
    r99 = pct(ui_lags, 99) / pct(base_lags, 99) if pct(base_lags, 99) else float("nan")
    print(f"\nUI lag vs baseline: p50 x{r50:.1f}, p99 x{r99:.1f}")


if __name__ == "__main__":
    main()
