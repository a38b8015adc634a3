"""Client cost of `tokdeck bench`: marginal CPU microseconds per streamed chunk vs a minimal client.

The simulator runs in another process, so this process's CPU time is the client's. Each client
makes a big run (``--chunks`` content chunks, 200 per request, concurrency 32) and a tiny run
(one wave of 8 requests) against the same server; the marginal cost per chunk is
(CPU big - CPU tiny) / (chunks big - chunks tiny), which leaves out what a run costs once
(session, engine set-up, the first connections) and keeps everything a streamed chunk and its
request cost. The two clients alternate, ``--repeat`` times; each repeat gives a ratio of the two
(measured back to back, so under about the same load from other work), and the median of those
ratios is the figure. Goal: tokdeck's marginal CPU per chunk at most 0.8x the minimal aiohttp +
json.loads client's (perf_bench_minimal.py).

    python tests/perf/perf_bench_cost.py [--chunks 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
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

CONC, TOKENS, TINY = 32, 200, 8
GOAL = 0.8


async def ours(url: str, counter: TokenCounter, n: int) -> tuple[int, int]:
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(n)]
    r = await run_benchmark(BenchSpec(base_url=url, model="tokdeck-sim", max_concurrency=CONC), reqs, counter,
                            emit_records=False)
    return sum(r.store.chunks), r.failed


async def minimal(url: str, counter: TokenCounter, n: int) -> tuple[int, int]:
    _, _, failed, chunks = await minimal_client(url, CONC, n, TOKENS)
    return chunks, failed


CLIENTS = {"tokdeck": ours, "minimal": minimal}


def measure(client, url: str, counter: TokenCounter, n: int) -> tuple[float, int, int, float]:
    """(CPU s, content chunks, failed requests, wall s) of one run in a fresh event loop."""
    c0, w0 = time.process_time(), time.perf_counter()
    chunks, failed = asyncio.run(client(url, counter, n))
    return time.process_time() - c0, chunks, failed, time.perf_counter() - w0


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=200_000, help="content chunks of the big run (default 200,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each client (default 3)")
    args = ap.parse_args()
    big = max(args.chunks // TOKENS, CONC)
    counter = TokenCounter(default_registry().get("cl100k_base"))
    marginal: dict[str, list[float]] = {name: [] for name in CLIENTS}
    rows = []
    print(f"load average before: {loadavg()}")
    with SimProcess(ttft_ms=5.0, itl_ms=2.0, output_tokens=TOKENS, seed=0) as sim:
        for client in CLIENTS.values():  # warm-up: imports, first connections
            measure(client, sim.url, counter, TINY)
        sim.take_records()
        for rep in range(args.repeat):
            for name, client in CLIENTS.items():
                cpu_t, chunks_t, failed_t, _ = measure(client, sim.url, counter, TINY)
                cpu_b, chunks_b, failed_b, wall_b = measure(client, sim.url, counter, big)
                sim.take_records()
                per = (cpu_b - cpu_t) / (chunks_b - chunks_t) * 1e6
                marginal[name].append(per)
                rows.append((rep + 1, name, per, cpu_b, chunks_b, cpu_t, chunks_t, failed_b + failed_t, wall_b))
    print(f"client CPU per streamed chunk, marginal: ({big} x {TOKENS}-token requests) - ({TINY} x {TOKENS}), "
          f"concurrency {CONC}, sim in another process")
    print(f"{'run':>3} {'client':>8} {'us/chunk':>9} {'CPU big':>8} {'chunks':>8} {'CPU tiny':>8} {'chunks':>7} "
          f"{'failed':>6} {'wall s':>7}")
    for rep, name, per, cpu_b, chunks_b, cpu_t, chunks_t, failed, wall in rows:
        print(f"{rep:>3} {name:>8} {per:9.2f} {cpu_b:8.2f} {chunks_b:>8} {cpu_t:8.3f} {chunks_t:>7} {failed:>6} "
              f"{wall:7.2f}")
    ratios = [t / m for t, m in zip(marginal["tokdeck"], marginal["minimal"])]
    best = {name: min(v) for name, v in marginal.items()}
    print(f"ratio tokdeck / minimal per run: {' '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (goal <= {GOAL:.2f})")
    print(f"best of each: tokdeck {best['tokdeck']:.2f} us, minimal {best['minimal']:.2f} us "
          f"({best['tokdeck'] / best['minimal']:.2f})")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
