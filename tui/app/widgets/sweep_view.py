"""A sweep drawn as it is measured: throughput against latency (p50 and the SLO percentile of TTFT
and TPOT, one point per finished step) with the SLO limits and the knee marked, the server's own
view (requests running and waiting, KV-cache usage) on the sweep's timeline, a table of the steps
(goodput, share that met the SLO, verdict) and the answer. Several sweeps overlay for comparison.

The pane feeds it core data (``SweepPoint``, ``ServerSample``); it only stores, marks dirty, and
rebuilds the plots when ``redraw()`` is called by the pane's timer (a few times a second at most).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from ...core.bench.servermetrics import ServerSample
from ...core.bench.sweep import SweepPoint
from .bench_charts import COLORS, ServerChart, keep_sample

STEP_COLUMNS = ("sweep", "step", "load", "req/s", "goodput", "met SLO", "TTFT p50", "TTFT pSLO", "TPOT p50",
                "TPOT pSLO", "verdict")


@dataclass
class SweepCurve:
    """One sweep as the view draws it."""

    name: str
    percentile: str = "p99"  # the SLO percentile's name
    limits_ms: dict[str, float] = field(default_factory=dict)  # ttft / tpot limits given
    points: list[SweepPoint] = field(default_factory=list)
    samples: list[ServerSample] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    knee_throughput: float | None = None


class SweepView(Vertical):
    DEFAULT_CSS = """
    SweepView { height: auto; }
    SweepView #sweep-answer { color: $success; text-style: bold; height: auto; }
    SweepView #sweep-plots { height: 16; }
    SweepView PlotextPlot { width: 1fr; height: 16; }
    SweepView #sweep-steps { height: auto; max-height: 14; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.curves: list[SweepCurve] = []
        self._dirty = False
        self.builds = 0  # plot rebuilds (tests read it)

    def compose(self) -> ComposeResult:
        yield Static("", id="sweep-answer", markup=False)
        with Horizontal(id="sweep-plots"):
            yield PlotextPlot(id="sweep-curve")
            yield ServerChart(id="sweep-server")
        yield DataTable(id="sweep-steps", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#sweep-steps", DataTable)
        for col in STEP_COLUMNS:
            table.add_column(col, key=col)

    # ------------------------------------------------------------------ data in
    def show(self, curves: Sequence[SweepCurve]) -> None:
        """Draw these sweeps (one: live or opened; several: overlaid)."""
        self.curves = list(curves)
        table = self.query_one("#sweep-steps", DataTable)
        table.clear()
        for curve in self.curves:
            for point in curve.points:
                self._add_row(curve, point)
        self._show_answer()
        self._dirty = True

    def add_point(self, point: SweepPoint) -> None:
        curve = self.curves[-1]
        curve.points.append(point)
        self._add_row(curve, point)
        self._dirty = True

    def add_sample(self, sample: ServerSample) -> None:
        keep_sample(self.curves[-1].samples, sample)
        self._dirty = True

    def finish(self, answer: list[str], knee_throughput: float | None) -> None:
        curve = self.curves[-1]
        curve.answer, curve.knee_throughput = list(answer), knee_throughput
        self._show_answer()
        self._dirty = True

    def _show_answer(self) -> None:
        many = len(self.curves) > 1
        lines = [f"{c.name}: {line}" if many else line for c in self.curves for line in c.answer]
        self.query_one("#sweep-answer", Static).update("\n".join(lines))

    def _add_row(self, curve: SweepCurve, p: SweepPoint) -> None:
        def ms(pair: tuple[float, float] | None, i: int) -> Text:
            return Text("-" if pair is None else f"{pair[i]:,.1f}", justify="right")

        verdict = "-" if p.passed is None else "met" if p.passed else "broke"
        share = "-" if p.slo_met_share is None else f"{p.slo_met_share * 100:.0f} %"
        goodput = "-" if p.goodput is None else f"{p.goodput:,.2f}"
        self.query_one("#sweep-steps", DataTable).add_row(
            curve.name, str(p.step), p.label, Text(f"{p.throughput:,.2f}", justify="right"),
            Text(goodput, justify="right"), Text(share, justify="right"), ms(p.ttft_ms, 0), ms(p.ttft_ms, 1),
            ms(p.tpot_ms, 0), ms(p.tpot_ms, 1), verdict)

    # ------------------------------------------------------------------ drawing
    @property
    def pending(self) -> bool:
        return self._dirty

    def redraw(self) -> bool:
        """Rebuild both plots when their data changed; True when they were."""
        if not self._dirty:
            return False
        self._dirty = False
        self._draw_curve()
        self._draw_server()
        self.builds += 1
        return True

    def _draw_curve(self) -> None:
        plot = self.query_one("#sweep-curve", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plt.title("latency (ms) vs throughput (req/s), one point per step")
        many = len(self.curves) > 1
        for k, c in enumerate(self.curves):
            pts = sorted(c.points, key=lambda p: p.throughput)
            xs = [p.throughput for p in pts]
            for metric, which, marker in (("ttft", 1, "dot"), ("ttft", 0, "dot"), ("tpot", 1, "x"), ("tpot", 0, "x")):
                if many and which == 0:
                    continue  # overlaid sweeps: the SLO percentile only
                ys = [getattr(p, f"{metric}_ms") for p in pts]
                if not xs or any(y is None for y in ys):
                    continue
                name = f"{metric.upper()} {c.percentile if which else 'p50'}"
                color = COLORS[(2 * k + (metric == "tpot")) % len(COLORS)]
                plt.plot(xs, [y[which] for y in ys], marker=marker, color=color,
                         label=f"{c.name} {name}" if many else name)
            for metric, limit in c.limits_ms.items():
                if metric in ("ttft", "tpot"):
                    plt.hline(limit, "red")
            if c.knee_throughput is not None:
                plt.vline(c.knee_throughput, "yellow")
        plot.refresh()

    def _draw_server(self) -> None:
        self.query_one("#sweep-server", ServerChart).draw([(c.name, c.samples) for c in self.curves])
