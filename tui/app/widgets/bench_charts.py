"""Four textual-plotext charts of one or more runs: TTFT per request, output tokens/s, requests in
flight and an E2E latency histogram; and ``ServerChart``, the server's own view (of runs and sweeps).

``show(runs)`` only stores the data and marks the charts dirty; ``redraw(limit)`` (called by the
pane's timer) rebuilds at most ``limit`` of the dirty plots, in turn. plotext's ``build()`` runs on
the event loop (~8 ms for a 48-point line, far more when other threads hold the GIL), so the data
arrives already cut to the plot's width and a live view spreads the builds over its ticks.
"""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Grid
from textual_plotext import PlotextPlot

from ...core.bench.live import Curves, histogram
from ...core.bench.servermetrics import ServerSample

COLORS = ("cyan", "magenta", "green", "orange", "blue", "red")
CHARTS = ("chart-ttft", "chart-tokps", "chart-inflight", "chart-hist")
MAX_SERVER_POINTS = 600  # a live server view keeps its whole span at a coarser step beyond this


def keep_sample(samples: list[ServerSample], sample: ServerSample) -> None:
    """Append a live sample; beyond MAX_SERVER_POINTS every second one goes (the span stays)."""
    samples.append(sample)
    if len(samples) > MAX_SERVER_POINTS:
        del samples[1::2]


class ServerChart(PlotextPlot):
    """The server's requests running and waiting and its KV-cache usage (%) against time; several
    views (named) overlay."""

    def draw(self, views: Sequence[tuple[str, Sequence[ServerSample]]]) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title("server: running, waiting, KV cache % (s since start)")
        many = len(views) > 1
        for k, (name, samples) in enumerate(views):
            ts = [s.t for s in samples]
            for n, (label, values) in enumerate((
                    ("running", [s.running for s in samples]), ("waiting", [s.waiting for s in samples]),
                    ("KV %", [None if s.kv_cache_usage is None else s.kv_cache_usage * 100 for s in samples]))):
                pairs = [(t, v) for t, v in zip(ts, values) if v is not None]
                if pairs:
                    plt.plot([t for t, _ in pairs], [v for _, v in pairs], color=COLORS[(3 * k + n) % len(COLORS)],
                             label=f"{name} {label}" if many else label)
        self.refresh()


class BenchCharts(Grid):
    DEFAULT_CSS = """
    BenchCharts { grid-size: 2 2; grid-gutter: 0 1; height: 30; }
    BenchCharts PlotextPlot { height: 15; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._runs: list[tuple[str, Curves]] = []
        self._dirty: list[str] = []  # charts to rebuild, in order
        self.builds = 0  # plots rebuilt (tests and the perf script read it)

    def compose(self) -> ComposeResult:
        for chart_id in CHARTS:
            yield PlotextPlot(id=chart_id)

    @property
    def points(self) -> int:
        """How many points a series should have: the plot's width in cells (at least 20)."""
        return max(self.query_one("#chart-ttft", PlotextPlot).size.width, 20)

    def show(self, runs: Sequence[tuple[str, Curves]]) -> None:
        self._runs = list(runs)
        self._dirty = [c for c in self._dirty if c in CHARTS] + [c for c in CHARTS if c not in self._dirty]

    @property
    def pending(self) -> bool:
        return bool(self._dirty)

    def redraw(self, limit: int = len(CHARTS)) -> bool:
        """Rebuild up to ``limit`` plots whose data changed; True when one was."""
        todo, self._dirty = self._dirty[:limit], self._dirty[limit:]
        for chart_id in todo:
            self._draw(chart_id)
        self.builds += len(todo)
        return bool(todo)

    def _draw(self, which: str) -> None:
        runs = self._runs
        labels = len(runs) > 1
        x_time = all(c.x_is_time for _, c in runs) if runs else True
        xlabel = "s since start" if x_time else "request #"

        def draw(chart_id: str, title: str, pick, scatter: bool = False, ylabel: str = "") -> None:
            if chart_id != which:
                return
            plot = self.query_one(f"#{chart_id}", PlotextPlot)
            plt = plot.plt
            plt.clear_figure()
            plt.title(title)
            plt.xlabel(xlabel)
            if ylabel:
                plt.ylabel(ylabel)
            for k, (name, curves) in enumerate(runs):
                xs, ys = pick(curves)
                if not xs:
                    continue
                kw = {"color": COLORS[k % len(COLORS)], "label": name if labels else None}
                if scatter:
                    plt.scatter(list(xs), list(ys), marker="dot", **kw)
                else:
                    plt.plot(list(xs), list(ys), **kw)
            plot.refresh()

        draw("chart-ttft", "TTFT per request (ms)", lambda c: c.ttft, scatter=True)
        draw("chart-tokps", "output tokens/s", lambda c: c.tokens_per_s)
        draw("chart-inflight", "requests in flight", lambda c: c.in_flight)
        if which != "chart-hist":
            return
        plot = self.query_one("#chart-hist", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plt.title("E2E latency (ms): requests per bin")
        centres, counts = histogram([c.latencies_ms for _, c in runs])
        if centres:
            ticks = centres[::max(len(centres) // 4, 1)]
            plt.xticks(ticks, [f"{t:,.0f}" for t in ticks])
            for k, ((name, _), c) in enumerate(zip(runs, counts)):
                plt.plot(centres, c, color=COLORS[k % len(COLORS)], label=name if labels else None,
                         fillx=len(runs) == 1)
        plot.refresh()
