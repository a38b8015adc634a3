"""2,000 concurrent streams held by `tokdeck bench` without client-side failures.

All 2,000 requests are sent at once (rate inf, no concurrency cap) to the simulator in another
process (TTFT 150 ms, 40 tokens). Two runs: 50 ms between tokens (~2.1 s streams; on a small
machine the first streams end before the last ones have been sent, so fewer than 2,000 are
open at once) and 150 ms between tokens (~6 s streams: all 2,000 open together). Reported:
completed/failed, the peak of concurrent requests, the client's schedule lag (how late requests
were sent: opening 2,000 connections takes the client a while) and its mean TTFT/TPOT against
the server's own record.

    /work/.venv-dev/bin/python tests/perf/perf_bench_streams.py
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from perf_bench_simproc import SimProcess  # noqa: E402

from tui.core.bench.client import BenchRequest  # noqa: E402
from tui.core.bench.engine import BenchSpec, TokenCounter, run_benchmark  # noqa: E402
from tui.core.tokenizers import default_registry  # noqa: E402

STREAMS, TOKENS = 2000, 40


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * STREAMS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * STREAMS), hard))
    counter = TokenCounter(default_registry().get("cl100k_base"))
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(STREAMS)]
    print(f"{STREAMS} streams sent at once ({TOKENS} tokens, TTFT 150 ms; sim in another process)")
    for itl in (50.0, 150.0):
        with SimProcess(ttft_ms=150.0, itl_ms=itl, output_tokens=TOKENS, seed=0) as sim:
            c0, w0 = time.process_time(), time.perf_counter()
            r = asyncio.run(run_benchmark(BenchSpec(base_url=sim.url, model="tokdeck-sim"), reqs, counter,
                                          emit_records=False))
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            truth = [t for t in sim.take_records() if t["status"] == 200 and t["fault"] is None]
            srv = sim.take_stats()
        h, s = r.client_health, r.summary
        s_ttft = statistics.fmean(t["ttft_s"] for t in truth) * 1e3
        s_tpot = statistics.fmean((t["e2e_s"] - t["ttft_s"]) / (t["completion_tokens"] - 1) for t in truth) * 1e3
        print(f"ITL {itl:g} ms: completed {r.completed}, failed {r.failed} {dict(r.error_reasons) or ''}; "
              f"server ok {len(truth)}; peak concurrent requests {s.max_concurrent_requests}; "
              f"duration {r.duration:.2f} s; client CPU {cpu:.2f} s of {wall:.2f} s")
        print(f"    mean TTFT {s.metric('ttft').mean:.1f} ms (server {s_ttft:.1f}), mean TPOT "
              f"{s.metric('tpot').mean:.2f} ms (server {s_tpot:.2f}); schedule lag p99 {h.schedule_lag_ms.p99:.0f} ms; "
              f"loop lag p99 client {h.event_loop_lag_ms.p99:.1f} ms, server {srv['loop_lag_p99_ms']:.1f} ms; "
              f"server CPU {srv['cpu_s']:.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
