"""Accuracy of `tokdeck bench` timings against a server with known timings (figures for the README).

The project's simulator runs in another process (TTFT 150 ms, 10 ms between tokens, 40 tokens)
and records when it wrote each chunk. For concurrency 1, 16, 64 and 256 (closed loop) we compare
our mean TTFT and mean TPOT with the server's own, and do the same for a minimal aiohttp +
json.loads client measured in the same run. Goal: within 2 ms (TTFT) and 0.2 ms (TPOT).

    /work/.venv-dev/bin/python tests/perf/perf_bench_accuracy.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from perf_bench_minimal import minimal_client  # noqa: E402
from perf_bench_simproc import SimProcess  # noqa: E402

from tui.core.bench.client import BenchRequest  # noqa: E402
from tui.core.bench.engine import BenchSpec, TokenCounter, run_benchmark  # noqa: E402
from tui.core.tokenizers import default_registry  # noqa: E402

PLAN = [(1, 30), (16, 160), (64, 320), (256, 768)]  # (concurrency, requests): bounded run time
TOKENS = 40
LAGS: dict[int, tuple[float, float]] = {}  # concurrency -> (our event-loop lag p99 ms, client CPU %)


def means(rows: list[tuple[float, float, float]], skip: int) -> tuple[float, float, float]:
    """Mean TTFT and TPOT of (start, ttft, tpot) rows, and the mean TTFT without the first
    ``skip`` requests to start (the opening wave, which also pays for opening connections)."""
    rows = sorted(rows)
    return (statistics.fmean(r[1] for r in rows), statistics.fmean(r[2] for r in rows),
            statistics.fmean(r[1] for r in rows[skip:]))


def truth(records: list[dict], skip: int) -> tuple[float, float, float]:
    ok = [r for r in records if r["status"] == 200 and r["ttft_s"] is not None]
    return means([(r["arrival"], r["ttft_s"], (r["e2e_s"] - r["ttft_s"]) / (r["completion_tokens"] - 1))
                  for r in ok], skip)


async def ours(url: str, conc: int, n: int, counter, per_request: list | None = None) -> int:
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(n)]
    spec = BenchSpec(base_url=url, model="tokdeck-sim", max_concurrency=conc)
    r = await run_benchmark(spec, reqs, counter, emit_records=False)
    LAGS[conc] = r.client_health["event_loop_lag_ms"]["p99"], r.client_health["client_cpu_percent"]
    if per_request is not None:
        per_request.extend((x.start_time, x.ttft, x.tpot) for x in r.records() if x.ok and x.tpot is not None)
    return r.failed


def main() -> None:
    counter = TokenCounter(default_registry().get("cl100k_base"))
    rows = []
    t_start = time.monotonic()
    with SimProcess(ttft_ms=150.0, itl_ms=10.0, output_tokens=TOKENS, seed=0) as sim:
        # one short warm-up so connection set-up and imports are not measured
        asyncio.run(ours(sim.url, 4, 8, counter))
        sim.take_records()
        for conc, n in PLAN:
            for name in ("tokdeck", "minimal"):
                per: list = []
                if name == "tokdeck":
                    failed = asyncio.run(ours(sim.url, conc, n, counter, per))
                else:
                    failed = asyncio.run(minimal_client(sim.url, conc, n, TOKENS, per))[2]
                ttft, tpot, steady = means(per, conc)
                s_ttft, s_tpot, s_steady = truth(sim.take_records(), conc)
                rows.append((conc, n, name, ttft, s_ttft, tpot, s_tpot, failed, steady - s_steady))
    print(f"accuracy vs server truth (sim in another process; TTFT 150 ms, ITL 10 ms, {TOKENS} tokens); "
          f"{time.monotonic() - t_start:.0f} s")
    print(f"{'conc':>5} {'reqs':>5} {'client':>8} {'TTFT ms':>9} {'server':>9} {'error':>8} {'after 1st wave':>14} "
          f"{'TPOT ms':>8} {'server':>8} {'error':>7} {'failed':>6}")
    for conc, n, name, ttft, s_ttft, tpot, s_tpot, failed, steady_err in rows:
        print(f"{conc:>5} {n:>5} {name:>8} {ttft * 1e3:9.2f} {s_ttft * 1e3:9.2f} {(ttft - s_ttft) * 1e3:+8.2f} "
              f"{steady_err * 1e3:+14.2f} {tpot * 1e3:8.3f} {s_tpot * 1e3:8.3f} {(tpot - s_tpot) * 1e3:+7.3f} "
              f"{failed:>6}")
    print("tokdeck's own client health: " + ", ".join(
        f"c={c}: loop lag p99 {lag:.1f} ms, CPU {cpu:.0f}%" for c, (lag, cpu) in LAGS.items() if c != 4))
    print("goal: |TTFT error| <= 2 ms, |TPOT error| <= 0.2 ms ('after 1st wave': TTFT error without the first "
          "<conc> requests, which open the connections)")


if __name__ == "__main__":
    main()
