"""`tokdeck sim`: run the simulated OpenAI-compatible streaming server until Ctrl-C."""

from __future__ import annotations

import argparse

from ..core.numbers import PORT, NumberRule, argparse_type

ORDER = 45
MAX_WORKERS = 64  # tui.core.bench.simproc.MAX_WORKERS (not imported: --help stays light)

_rate = argparse_type(NumberRule(float, lo=0, hi=1).parse)
_ms = argparse_type(NumberRule(float, lo=0).parse)
_positive = argparse_type(NumberRule(int, lo=1).parse)
_count = argparse_type(NumberRule(int, lo=0).parse)
_port = argparse_type(PORT.parse)
_growth = argparse_type(NumberRule(float, lo=0).parse)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sim", help="run a simulated OpenAI-compatible streaming server",
        description="Serve /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics with "
                    "configurable timing, capacity, output lengths and faults, for demos, tests and gateway "
                    "checks. Text and usage come from a bundled tokenizer, so token counts are exact. "
                    "Runs until Ctrl-C.")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others warn)")
    g.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    g.add_argument("--model", default="tokdeck-sim", metavar="NAME", help="model name listed by /v1/models (default tokdeck-sim)")
    g.add_argument("--strict-model", action="store_true", help="404 for other model names (default: accept any)")
    g.add_argument("--tokenizer", default="cl100k_base", metavar="ID",
                   help="bundled tokenizer for text and usage counts (default cl100k_base)")
    g.add_argument("--api-key-env", metavar="VAR",
                   help="require `Authorization: Bearer $VAR` on /v1 (the key is read from the environment)")
    g.add_argument("--workers", type=argparse_type(NumberRule(int, lo=1, hi=MAX_WORKERS).parse), default=1, metavar="N",
                   help=f"serve from N processes on one port (SO_REUSEPORT; at most {MAX_WORKERS}), so the "
                        "simulator keeps up with more streams (default 1)")
    g.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random draws (default 0)")
    t = p.add_argument_group("timing and output")
    t.add_argument("--ttft-ms", type=_ms, default=150.0, metavar="MS", help="time to first token (default 150)")
    t.add_argument("--ttft-jitter-ms", type=_ms, default=0.0, metavar="MS", help="TTFT spread (default 0)")
    t.add_argument("--itl-ms", type=_ms, default=10.0, metavar="MS", help="gap between chunks (default 10)")
    t.add_argument("--itl-jitter-ms", type=_ms, default=0.0, metavar="MS", help="gap spread (default 0)")
    t.add_argument("--jitter", choices=("normal", "uniform", "exp"), default="normal",
                   help="spread distribution: normal clipped at 0 (default), uniform ±, exp (mean + exponential tail)")
    t.add_argument("--output-tokens", type=_positive, metavar="N",
                   help="where the model stops by itself (default: run to the request's max_tokens, else 64)")
    t.add_argument("--output-tokens-jitter", type=_count, default=0, metavar="N",
                   help="uniform ± spread of --output-tokens")
    t.add_argument("--max-output-tokens", type=_positive, metavar="N",
                   help="no response is longer, whatever max_tokens asks: finish_reason length "
                        "(default 32768, at most 262144)")
    t.add_argument("--tokens-per-chunk", type=_positive, default=1, metavar="N", help="tokens per SSE chunk")
    t.add_argument("--reasoning-tokens", type=_count, default=0, metavar="N",
                   help="send the first N tokens as delta.reasoning_content (chat)")
    t.add_argument("--usage", choices=("separate", "final", "none"), default="separate",
                   help="separate: own chunk when stream_options.include_usage (default); "
                        "final: always in the finish chunk; none: never")
    t.add_argument("--no-done", action="store_true", help="end streams without `data: [DONE]`")
    t.add_argument("--no-role-chunk", action="store_true", help="no role-only first chunk (chat)")
    c = p.add_argument_group("capacity (one worker)")
    c.add_argument("--max-batch", "--max-concurrency", dest="max_batch", type=_positive, metavar="N",
                   help="serve at most N requests at once; later ones wait in a first-in-first-out queue, which "
                        "adds to their TTFT (default: no limit; --max-concurrency is its old name)")
    c.add_argument("--itl-growth", type=_growth, default=0.0, metavar="G",
                   help="each gap between chunks is ITL * (1 + G * (requests in the batch - 1)) (default 0)")
    f = p.add_argument_group("faults (fractions of requests, 0-1, adding up to at most 1)")
    f.add_argument("--error-rate", type=_rate, default=0.0, metavar="R", help="answered with an HTTP error")
    f.add_argument("--error-status", type=int, default=500, metavar="STATUS", help="status of those errors (default 500)")
    f.add_argument("--cut-rate", type=_rate, default=0.0, metavar="R", help="connection dropped mid-stream")
    f.add_argument("--malformed-rate", type=_rate, default=0.0, metavar="R", help="one malformed data: line mid-stream")
    f.add_argument("--midstream-error-rate", type=_rate, default=0.0, metavar="R", help="an error object mid-stream")
    f.add_argument("--slow-headers-ms", type=_ms, default=0.0, metavar="MS", help="delay before response headers")
    p.set_defaults(run=run)


def config_from_args(args):
    """The SimConfig the command line asks for (raises TokdeckError for bad combinations)."""
    from ..core.bench.sim import SimConfig
    from ..core.endpoint import resolve_api_key

    api_key = resolve_api_key(args.api_key_env).required() if args.api_key_env else None
    return SimConfig(
        model=args.model, tokenizer=args.tokenizer, ttft_ms=args.ttft_ms, ttft_jitter_ms=args.ttft_jitter_ms,
        itl_ms=args.itl_ms, itl_jitter_ms=args.itl_jitter_ms, jitter=args.jitter,
        output_tokens=args.output_tokens, output_tokens_jitter=args.output_tokens_jitter,
        **({"max_output_tokens": args.max_output_tokens} if args.max_output_tokens else {}),
        tokens_per_chunk=args.tokens_per_chunk, usage=args.usage, send_done=not args.no_done,
        role_chunk=not args.no_role_chunk, reasoning_tokens=args.reasoning_tokens, error_rate=args.error_rate,
        error_status=args.error_status, cut_rate=args.cut_rate, malformed_rate=args.malformed_rate,
        midstream_error_rate=args.midstream_error_rate, slow_headers_ms=args.slow_headers_ms,
        max_batch=args.max_batch, itl_growth=args.itl_growth, seed=args.seed, strict_model=args.strict_model,
        api_key=api_key, max_records=10_000,
    ).validate()


def run(args) -> int:
    import asyncio
    import signal
    import sys

    from ..core.bench.sim import is_loopback_host
    from ..core.bench.simproc import check_workers, serving

    cfg = config_from_args(args)
    check_workers(cfg, args.workers)
    if not is_loopback_host(args.host):
        print(f"tokdeck: warning: binding {args.host}: the simulator is reachable from other machines",
              file=sys.stderr)

    async def serve():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serving(cfg, args.host, args.port, args.workers) as group:
            server = group.server
            await server.ready()
            jitter = f" ({cfg.jitter} jitter)" if cfg.ttft_jitter_ms or cfg.itl_jitter_ms else ""
            out = cfg.output_tokens if cfg.output_tokens is not None else "max_tokens (else 64)"
            out = f"{out}, at most {cfg.max_output_tokens}"
            print(f"tokdeck sim: serving {server.url}/v1  (model {cfg.model}, tokenizer {server.tokenizer_id}"
                  f"{', API key required' if cfg.api_key else ''})", flush=True)
            print(f"  timing: TTFT {cfg.ttft_ms:g}±{cfg.ttft_jitter_ms:g} ms, ITL {cfg.itl_ms:g}±{cfg.itl_jitter_ms:g} ms"
                  f"{jitter}, output {out}, {cfg.tokens_per_chunk} token(s)/chunk, usage {cfg.usage}, "
                  f"[DONE] {'on' if cfg.send_done else 'off'}, role chunk {'on' if cfg.role_chunk else 'off'}",
                  flush=True)
            if cfg.max_batch or cfg.itl_growth:
                print(f"  capacity: max batch {cfg.max_batch or 'unlimited'}, ITL growth {cfg.itl_growth:g} "
                      "per request in the batch", flush=True)
            if args.workers > 1:
                print(f"  workers: {args.workers} processes on port {server.port} (pids "
                      f"{', '.join(map(str, group.pids))})", flush=True)
            print(f"  faults: {cfg.describe_faults()}", flush=True)
            print("  /health: lateness and batch; /metrics: Prometheus. Ctrl-C stops.", flush=True)
            await stop.wait()
        totals = group.totals
        total = sum(totals.outcomes.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(totals.outcomes.items()))
        late = totals.late_ms
        lateness = (f"; writes late by p50 {late['p50']:g} / p99 {late['p99']:g} / max {late['max']:g} ms"
                    if late["writes"] else "")
        print(f"tokdeck sim: stopped after {total} request(s){f' ({detail})' if total else ''}{lateness}",
              flush=True)

    asyncio.run(serve())
    return 0
