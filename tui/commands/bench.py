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

    def __init__(self, enabled: bool, total: int) -> None:
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
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        ttft = f" TTFT p50 {ev.recent_ttft_ms[0]:.0f} ms" if ev.recent_ttft_ms else ""
        line = (f"[{bar:<24}] {done}/{self.total} ({ev.failed} failed) {ev.in_flight} in flight "
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


def run(args) -> int:
    import asyncio
    import signal
    import sys

    from ..core.bench.options import from_namespace
    from ..core.bench.prepare import prepare, save_csv, save_result
    from ..core.bench.report import format_summary
    from ..core.bench.workers import make_run, worker_backend
    from ..core.errors import TokdeckError

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
    try:
        run_ = make_run(prep, workers, emit_records=False)
        progress = _Progress(not options.disable_tqdm, len(prep.requests))

        async def main():
            loop = asyncio.get_running_loop()
            signals = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]

            def on_stop(name: str):
                for sig in signals:  # a second signal interrupts at once
                    loop.remove_signal_handler(sig)
                run_.stop()
                print(f"\ntokdeck bench: {STOP_SIGNALS[name]}: stopping (Ctrl-C again to abort): cancelling "
                      "requests in flight", file=sys.stderr, flush=True)

            for sig in signals:
                loop.add_signal_handler(sig, on_stop, sig.name)
            try:
                return await run_.run(progress if workers is None else _with_note(progress, workers, say))
            finally:
                for sig in signals:
                    try:
                        loop.remove_signal_handler(sig)
                    except (ValueError, RuntimeError):
                        pass

        result = asyncio.run(main())
        progress.close()
        if prep.sim is not None:  # did the simulator keep its timings? (it says so in its /health)
            result = prep.sim.with_lateness(result)
    finally:
        if workers is not None:  # the run ended them; this is for a failure before it started
            workers.close_now()
        if prep.sim is not None:
            prep.sim.stop()

    # the files first: after SIGHUP the terminal may be gone, and printing would fail
    saved, failures = [], []
    if options.saves_result:
        try:
            saved.append(f"result saved to {save_result(options, result)}")
        except TokdeckError as exc:
            failures.append(exc)
    if options.csv:
        try:
            save_csv(options.csv, result)
            saved.append(f"per-request CSV saved to {options.csv}")
        except TokdeckError as exc:
            failures.append(exc)
    print(format_summary(result))
    if prep.sim is not None and result.client_health.client_bottleneck:
        print("tokdeck bench: note: the built-in simulator runs on this machine and competes with the client "
              "for its CPU cores; for cleaner figures run `tokdeck sim` on another machine and pass --base-url URL "
              "--tokenizer cl100k_base",
              file=sys.stderr)
    for line in saved:
        print(f"tokdeck bench: {line}", file=sys.stderr)
    if failures:
        raise TokdeckError("; ".join(map(str, failures)))
    if result.internal_errors:
        # a request neither completed, failed nor cancelled, or a crash inside tokdeck: never a clean exit
        print(f"tokdeck: internal error: {result.internal_errors[0]}", file=sys.stderr)
        return 70
    if result.partial:
        print("tokdeck bench: interrupted: the figures cover what was measured before the stop (partial)",
              file=sys.stderr)
        return 130
    return 0
