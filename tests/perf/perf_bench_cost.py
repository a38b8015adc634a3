"""Client cost of `tokdeck bench`: CPU microseconds per streamed chunk vs a minimal client.

The simulator runs in another process, so this process's CPU time is the client's. Both
clients make the same requests against the same server in the same run (alternating, best of
three). Goal: tokdeck's CPU per chunk no higher than the minimal aiohttp + json.loads client's.

    /work/.venv-dev/bin/python tests/perf/perf_bench_cost.py
"""

from __future__ import annotations

import asyncio
import resource
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

CONC, N, TOKENS = 32, 240, 200


async def ours(url: str, counter) -> tuple[int, int]:
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(N)]
    r = await run_benchmark(BenchSpec(base_url=url, model="tokdeck-sim", max_concurrency=CONC), reqs, counter,
                            emit_records=False)
    return sum(r.store.chunks), r.failed


def measure(fn) -> tuple[float, int, int, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    chunks, failed = fn()
    return time.process_time() - c0, chunks, failed, time.perf_counter() - w0


def main() -> None:
    counter = TokenCounter(default_registry().get("cl100k_base"))
    best: dict[str, tuple] = {}
    with SimProcess(ttft_ms=5.0, itl_ms=2.0, output_tokens=TOKENS, seed=0) as sim:
        asyncio.run(ours(sim.url, counter))  # warm-up: imports, first connections
        sim.take_records()
        for _ in range(3):
            for name in ("tokdeck", "minimal"):
                if name == "tokdeck":
                    cpu, chunks, failed, wall = measure(lambda: asyncio.run(ours(sim.url, counter)))
                else:
                    def run_min():
                        _, _, failed, chunks = asyncio.run(minimal_client(sim.url, CONC, N, TOKENS))
                        return chunks, failed
                    cpu, chunks, failed, wall = measure(run_min)
                sim.take_records()
                per = cpu / chunks * 1e6 if chunks else float("nan")
                if name not in best or per < best[name][0]:
                    best[name] = (per, cpu, chunks, failed, wall)
    print(f"client CPU per streamed chunk ({N} requests x {TOKENS} tokens, concurrency {CONC}; "
          "sim in another process; best of 3)")
    print(f"{'client':>8} {'us/chunk':>9} {'CPU s':>7} {'chunks':>8} {'failed':>6} {'wall s':>7}")
    for name, (per, cpu, chunks, failed, wall) in best.items():
        print(f"{name:>8} {per:9.2f} {cpu:7.2f} {chunks:>8} {failed:>6} {wall:7.2f}")
    print(f"ratio tokdeck / minimal: {best['tokdeck'][0] / best['minimal'][0]:.2f} (goal <= 1.00); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
