"""2,000 concurrent streams held by `tokdeck bench` without client-side failures.

The simulator (another process) streams 40 tokens 50 ms apart after a 150 ms TTFT, so each
request lasts ~2.1 s; all 2,000 are sent at once (rate inf, no concurrency cap).

    /work/.venv-dev/bin/python tests/perf/perf_bench_streams.py
"""

from __future__ import annotations

import asyncio
import resource
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
    with SimProcess(ttft_ms=150.0, itl_ms=50.0, output_tokens=TOKENS, seed=0) as sim:
        c0, w0 = time.process_time(), time.perf_counter()
        r = asyncio.run(run_benchmark(BenchSpec(base_url=sim.url, model="tokdeck-sim"), reqs, counter,
                                      emit_records=False))
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        truth = sim.take_records()
    ok_srv = sum(1 for t in truth if t["status"] == 200 and t["fault"] is None)
    h = r.client_health
    print(f"{STREAMS} concurrent streams ({TOKENS} tokens, ITL 50 ms, TTFT 150 ms; sim in another process)")
    print(f"completed {r.completed}, failed {r.failed} {dict(r.error_reasons) or ''}; server ok {ok_srv}")
    print(f"peak concurrent requests {r.summary['max_concurrent_requests']}; duration {r.duration:.2f} s; "
          f"wall {wall:.2f} s; client CPU {cpu:.2f} s")
    print(f"mean TTFT {r.summary['mean_ttft_ms']:.1f} ms, mean TPOT {r.summary['mean_tpot_ms']:.2f} ms; "
          f"schedule lag p99 {h['schedule_lag_ms']['p99']:.1f} ms; loop lag p99 {h['event_loop_lag_ms']['p99']:.1f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
