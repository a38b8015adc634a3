"""The text summary of a result: vLLM's "Serving Benchmark Result" block, then tokdeck's lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .metrics import percentile_word
from .results import BenchResult

if TYPE_CHECKING:  # pragma: no cover
    from .servermetrics import ServerView
    from .sweep import SweepResult

_HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


def _line(label: str, value, fmt: str = "") -> str:
    return "{:<40} {:<10{}}".format(label, value, fmt).rstrip()


def format_summary(result: BenchResult) -> str:
    s = result.summary
    setup = result.setup
    out = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")]
    out.append(_line("Successful requests:", s.completed))
    out.append(_line("Failed requests:", s.failed))
    if setup.get("max_concurrency") is not None:
        out.append(_line("Maximum request concurrency:", setup["max_concurrency"]))
    if setup.get("ramp_up_strategy"):
        out.append(_line("Ramp-up (RPS):", f"{setup['ramp_up_strategy']} {setup['ramp_up_start_rps']:g} -> "
                                           f"{setup['ramp_up_end_rps']:g}"))
    elif setup.get("request_rate") != "inf":
        out.append(_line("Request rate configured (RPS):", float(setup["request_rate"]), ".2f"))
    out.append(_line("Benchmark duration (s):", s.duration, ".2f"))
    out.append(_line("Total input tokens:", s.total_input_tokens))
    out.append(_line("Total generated tokens:", s.total_output_tokens))
    out.append(_line("Request throughput (req/s):", s.request_throughput, ".2f"))
    if s.request_goodput is not None:
        out.append(_line("Request goodput (req/s):", s.request_goodput, ".2f"))
    out.append(_line("Output token throughput (tok/s):", s.output_throughput, ".2f"))
    out.append(_line("Peak output token throughput (tok/s):", s.max_output_tokens_per_s, ".2f"))
    out.append(_line("Peak concurrent requests:", float(s.max_concurrent_requests or 0), ".2f"))
    out.append(_line("Total token throughput (tok/s):", s.total_token_throughput, ".2f"))
    for m in s.metrics:
        name, header = _HEADERS[m.metric]
        out.append("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        out.append(_line(f"Mean {name} (ms):", m.mean, ".2f"))
        out.append(_line(f"Median {name} (ms):", m.median, ".2f"))
        for p, value in m.percentiles:
            out.append(_line(f"P{percentile_word(p)} {name} (ms):", value, ".2f"))
    h = result.client_health
    out.append("{s:{c}^{n}}".format(s="Client Health (tokdeck)", n=50, c="-"))
    for v, label in ((h.event_loop_lag_ms, "Event-loop lag"), (h.schedule_lag_ms, "Schedule lag"),
                     (h.client_queue_time_ms, "Client queue time")):
        out.append(_line(f"{label} mean/p99/max (ms):", f"{v.mean:.2f} / {v.p99:.2f} / {v.max:.2f}"))
    out.append(_line("Client CPU (% of one core):", h.client_cpu_percent, ".1f"))
    if h.simulator is not None:  # the built-in simulator's own lateness (its /health)
        late = h.simulator.late_ms
        out.append(_line("Simulator lateness p50/p99/max (ms):", f"{late.p50:.2f} / {late.p99:.2f} / {late.max:.2f}"))
    out.append("=" * 50)
    # what the figures rest on
    notes = []
    for side in ("input", "output"):
        src = result.token_sources.get(side) or {}
        if src:
            notes.append(f"{side} tokens from " + ", ".join(f"{k} ({v})" for k, v in src.items()))
    if notes:
        out.append("Token counts: " + "; ".join(notes))
    if result.usage_ignored:
        out.append("Server usage ignored as invalid (counted locally instead): "
                   + "; ".join(f"{why} ({n})" for why, n in result.usage_ignored.items()))
    if result.cancelled or result.partial:
        out.append(f"Partial result: stopped early; {result.cancelled} request(s) in flight were cancelled "
                   "and are not counted")
    if setup.get("stopped_by") == "duration":
        out.append(f"Stopped by --duration: {setup.get('dispatched')} of {setup.get('num_prompts')} requests were "
                   "sent; the figures cover those")
    w = result.warmup
    if w.get("requests"):
        out.append(f"Warm-up: {w['requests']} request(s) not measured ({w['failed']} failed)")
    if result.error_reasons:
        out.append("Failed requests by reason:")
        for reason, n in list(result.error_reasons.items())[:10]:
            out.append(f"  {n:>6}  {reason}")
        if len(result.error_reasons) > 10:
            out.append(f"  ... and {len(result.error_reasons) - 10} other reason(s)")
    if result.server_metrics is not None:
        out.append(result.server_metrics.line())
    if h.warning:
        out.append(f"WARNING: {h.warning}")
    for problem in result.internal_errors:
        out.append(f"INTERNAL ERROR: {problem}")
    return "\n".join(out)


def format_sweep(result: SweepResult) -> str:
    """The sweep's table (one line per step) and its answer: capacity, knee, why it stopped."""
    from .capacity import percentile_name

    p = percentile_name(result.slo.percentile).upper()
    second = "TPOT" if any(s.figures.latency("tpot") for s in result.steps) else "E2EL"
    title = f" Sweep Result ({result.spec}) "
    out = [f"{title:=^100}"]
    if result.slo:
        out.append(f"SLO: {result.slo.text()}")
    header = (f"{'step':>4}  {'load':<24} {'req/s':>8} {'P50 TTFT':>9} {p + ' TTFT':>9} {'P50 ' + second:>9} "
              f"{p + ' ' + second:>9} {'goodput':>8} {'met SLO':>8}  verdict")
    out.append(header)
    out.append("-" * 100)

    def ms(metric: str, which: str, figures) -> str:
        lat = figures.latency(metric)
        return f"{getattr(lat, which):9.1f}" if lat else f"{'-':>9}"

    for s in result.steps:
        f = s.figures
        verdict = "-" if s.verdict.passed is None else "met" if s.verdict.passed else \
            f"broke ({s.verdict.worst_ratio:.1f}×)" if s.verdict.worst_ratio < float("inf") else "broke"
        if s.result.partial:
            verdict += ", partial"
        if f.client_bottleneck:
            verdict += ", client-bound"
        goodput = f"{f.goodput:8.2f}" if f.goodput is not None else f"{'-':>8}"
        share = f"{f.slo_met_share * 100:7.0f}%" if f.slo_met_share is not None else f"{'-':>8}"
        out.append(f"{s.step:>4}  {s.plan.text():<24} {f.throughput:8.2f} {ms('ttft', 'p50', f)} "
                   f"{ms('ttft', 'at_slo', f)} {ms(second.lower(), 'p50', f)} {ms(second.lower(), 'at_slo', f)} "
                   f"{goodput} {share}  {verdict}")
    out.append("=" * 100)
    out.extend(result.answer())
    if result.stop_reason:
        out.append(f"Stopped: {result.stop_reason}")
    views = [s.result.server_metrics for s in result.steps if s.result.server_metrics is not None]
    if views and not result.server_note:  # a note (no server view) was said as it happened
        out.append(_sweep_view_line(views))
    for s in result.steps:
        for problem in s.result.internal_errors:
            out.append(f"INTERNAL ERROR (step {s.step}): {problem}")
    return "\n".join(out)


def _sweep_view_line(views: list[ServerView]) -> str:
    from .servermetrics import ServerView

    samples = tuple(x for v in views for x in v.samples)
    whole = ServerView(views[0].url, next((v.engine for v in views if v.engine), None), samples, views[0].interval_s)
    return whole.line()
