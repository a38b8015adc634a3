"""`tokdeck bench`: load-test an OpenAI-compatible endpoint, vLLM `bench serve` style, offline."""

from __future__ import annotations

import argparse

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark an OpenAI-compatible endpoint (TTFT, TPOT, ITL, throughput)",
        description="Send prompts to an OpenAI-compatible endpoint at a chosen load and report vLLM's "
                    "serving metrics (flags named as `vllm bench serve` names them). Without --base-url "
                    "it runs against the built-in simulator.")
    from ..core.bench.options import add_run_arguments

    add_run_arguments(p)
    p.set_defaults(run=run)


class _Progress:
    """One status line on stderr, redrawn at most 4 times a second (only on a terminal)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        import sys

        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self.last = 0.0
        self.width = 0

    def __call__(self, ev) -> None:
        import sys
        import time

        from ..core.bench.results import RunSnapshot

        if not self.enabled or not isinstance(ev, RunSnapshot):
            return
        now = time.monotonic()
        if now - self.last < 0.25 and not ev.done:
            return
        self.last = now
        done = ev.completed + ev.failed
        ttft = f" TTFT p50 {ev.recent_ttft_ms[0]:.0f} ms" if ev.recent_ttft_ms else ""
        if self.total is None:  # a step that lasts a time, not a number of requests
            head = f"{done} done"
        else:
            frac = done / self.total if self.total else 1.0
            head = f"[{'#' * int(frac * 24):<24}] {done}/{self.total}"
        line = (f"{head} ({ev.failed} failed) {ev.in_flight} in flight "
                f"{ev.chunks_per_s:,.0f} tok/s{ttft} {ev.elapsed:.1f} s")
        pad = max(self.width - len(line), 0)
        self.width = len(line)
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()

    def close(self) -> None:
        import sys

        if self.enabled and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _with_note(progress, workers, say):
    """``progress``, saying once first where the requests go out from (the workers are up by then)."""
    from ..core.bench.workers import workers_note

    said = []

    def on_event(ev) -> None:
        if not said:
            said.append(True)
            say(f"sending from {workers_note(workers)}")
        progress(ev)

    return on_event


#: what stops a run like Ctrl-C: a cancelled CI job (SIGTERM), a closed SSH session (SIGHUP)
STOP_SIGNALS = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}


class _stop_signals:
    """While inside (on the running loop): the first stop signal calls ``stop`` and says so; a
    second one interrupts at once."""

    def __init__(self, stop, doing: str) -> None:
        import signal

        self.stop, self.doing = stop, doing
        self.signals = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]

    def _on_stop(self, name: str) -> None:
        import sys

        for sig in self.signals:  # a second signal interrupts at once
            self.loop.remove_signal_handler(sig)
        self.stop()
        print(f"\ntokdeck bench: {STOP_SIGNALS[name]}: stopping (Ctrl-C again to abort): {self.doing}",
              file=sys.stderr, flush=True)

    def __enter__(self) -> None:
        import asyncio

        self.loop = asyncio.get_running_loop()
        for sig in self.signals:
            self.loop.add_signal_handler(sig, self._on_stop, sig.name)

    def __exit__(self, *exc) -> None:
        for sig in self.signals:
            try:
                self.loop.remove_signal_handler(sig)
            except (ValueError, RuntimeError):
                pass


def run(args) -> int:
    import asyncio
    import sys

    from ..core.bench.options import from_namespace
    from ..core.bench.prepare import prepare, save_csv, save_result
    from ..core.bench.report import format_summary
    from ..core.bench.servermetrics import run_with_server_view, scraper_for
    from ..core.bench.workers import make_run, worker_backend

    def say(line: str) -> None:
        print(f"tokdeck bench: {line}", file=sys.stderr, flush=True)

    options = from_namespace(args)
    workers = worker_backend(options)  # local ones start now: their start-up overlaps the preparation
    try:
        prep = prepare(options, say=say)
    except BaseException:
        if workers is not None:
            workers.close_now()
        raise
    options = prep.options
    if options.sweep is not None:
        if workers is not None:  # each step has workers of its own (a run ends its workers)
            workers.close_now()
        return _run_sweep(prep)
    try:
        run_ = make_run(prep, workers, emit_records=False)
        progress = _Progress(not options.disable_tqdm, len(prep.requests))
        scraper = scraper_for(prep)

        async def main():
            with _stop_signals(run_.stop, "cancelling requests in flight"):
                return await run_with_server_view(
                    run_, progress if workers is None else _with_note(progress, workers, say), scraper)

        result = asyncio.run(main())
        progress.close()
        if prep.sim is not None:  # did the simulator keep its timings? (it says so in its /health)
            result = prep.sim.with_lateness(result)
    finally:
        if workers is not None:  # the run ended them; this is for a failure before it started
            workers.close_now()
        if prep.sim is not None:
            prep.sim.stop()

    def report() -> None:
        print(format_summary(result))
        if prep.sim is not None and result.client_health.client_bottleneck:
            say("note: the built-in simulator runs on this machine and competes with the client for its CPU "
                "cores; for cleaner figures run `tokdeck sim` on another machine and pass --base-url URL "
                "--tokenizer cl100k_base")

    saves = []
    if options.saves_result:
        saves.append(lambda: f"result saved to {save_result(options, result)}")
    if options.csv:
        def csv_rows() -> str:
            save_csv(options.csv, result)
            return f"per-request CSV saved to {options.csv}"

        saves.append(csv_rows)
    return _conclude(saves, report, result.internal_errors, result.partial,
                     "interrupted: the figures cover what was measured before the stop (partial)")


def _conclude(saves, report, internal_errors, partial: bool, partial_note: str) -> int:
    """The end of a run or a sweep: the files first (after SIGHUP the terminal may be gone, and
    printing would fail), then ``report()``, what was saved, and the exit status."""
    import sys

    from ..core.errors import TokdeckError

    saved, failures = [], []
    for save in saves:
        try:
            saved.append(save())
        except TokdeckError as exc:
            failures.append(exc)
    report()
    for line in saved:
        print(f"tokdeck bench: {line}", file=sys.stderr)
    if failures:
        raise TokdeckError("; ".join(map(str, failures)))
    if internal_errors:
        # a request neither completed, failed nor cancelled, or a crash inside tokdeck: never a clean exit
        print(f"tokdeck: internal error: {internal_errors[0]}", file=sys.stderr)
        return 70
    if partial:
        print(f"tokdeck bench: {partial_note}", file=sys.stderr)
        return 130
    return 0


def _step_line(step, percentile: float) -> str:
    """One line on a finished step: its throughput, latencies at the SLO percentile, verdict."""
    from ..core.bench.capacity import percentile_name

    f = step.figures
    parts = [f"{f.throughput:.2f} req/s"]
    for metric in ("ttft", "tpot"):
        lat = f.latency(metric)
        if lat is not None:
            parts.append(f"{percentile_name(percentile)} {metric.upper()} {lat.at_slo:.1f} ms")
    if f.goodput is not None:
        parts.append(f"goodput {f.goodput:.2f} req/s ({(f.slo_met_share or 0) * 100:.0f} % met the SLO)")
    if f.failed:
        parts.append(f"{f.failed} failed")
    return f"step {step.step} ({step.plan.text()}): {', '.join(parts)}: {step.verdict.text()}"


def _run_sweep(prep) -> int:
    """`--sweep`: the steps, one line each on stderr as they end; the table and the answer on stdout."""
    import asyncio
    import sys

    from ..core.bench.report import format_sweep
    from ..core.bench.sweep import (StepFinished, StepStarted, StepUpdate, SweepNotice, SweepRun, save_sweep,
                                    save_sweep_csv)
    from ..core.bench.workers import step_runs

    options = prep.options

    def say(line: str) -> None:
        print(f"tokdeck bench: {line}", file=sys.stderr, flush=True)

    try:
        sweep = SweepRun(prep, make_run=step_runs(prep.options))
        progress = _Progress(False, None)
        by_time = options.step_requests is None

        def on_event(ev) -> None:
            nonlocal progress
            if isinstance(ev, StepUpdate):
                progress(ev.event)
            elif isinstance(ev, StepStarted):
                progress = _Progress(not options.disable_tqdm, None if by_time else ev.requests)
            elif isinstance(ev, StepFinished):
                progress.close()
                say(_step_line(ev.result, sweep.slo.percentile))
            elif isinstance(ev, SweepNotice):
                progress.close()
                say(ev.text)

        slo = f"SLO {sweep.slo.text()}" if sweep.slo else "no SLO (--goodput): the curve and the knee only"
        size = f"{options.step_requests} requests" if options.step_requests else \
            f"{options.step_duration or 30:g} s"
        say(f"sweep {sweep.spec}: steps of {size}; {slo}")

        async def main():
            with _stop_signals(sweep.stop, "ending the step that runs and the sweep"):
                return await sweep.run(on_event)

        result = asyncio.run(main())
        progress.close()
    finally:
        if prep.sim is not None:
            prep.sim.stop()

    saves = []
    if options.saves_result:
        saves.append(lambda: f"sweep saved to {save_sweep(options, result)}")
    if options.csv:
        def csv_rows() -> str:
            save_sweep_csv(options.csv, result)
            return f"one CSV row per step saved to {options.csv}"

        saves.append(csv_rows)
    return _conclude(saves, lambda: print(format_sweep(result)), result.internal_errors, result.partial,
                     "interrupted: the sweep covers the steps measured before the stop (the last one partial)")
