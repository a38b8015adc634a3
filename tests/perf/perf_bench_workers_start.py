"""Start-up of `tokdeck bench --workers N`: when its first request leaves, from the command's start.

The command runs as a user runs it (`python -m tui.cli bench ...`, a small random dataset, the
cl100k_base tokenizer) against the project's simulator in another process. The moment is the
simulator's own record of the first request's arrival (``SimRecord.received``, CLOCK_MONOTONIC,
the clock this script reads): it covers Python's start, the imports, the preparation (GET
/v1/models, the tokenizer, the prompts) and, with workers, their start (a fork server booted
with the engine preloaded, then one fork per worker) - which overlaps the preparation.
Goal: with --workers 2, the first request leaves within 1 s of the command starting.
Runs alternate 1 and N workers; the machine's load average is printed (it is shared).

    python tests/perf/perf_bench_workers_start.py [--repeat N] [--workers N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_bench_simproc import REPO, SimProcess  # noqa: E402


def first_request_s(url: str, sim: SimProcess, workers: int) -> float:
    sim.take_records()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "bench", "--base-url", url, "--tokenizer", "cl100k_base",
                           "--num-prompts", "20", "--random-input-len", "32", "--random-output-len", "8",
                           "--workers", str(workers), "--disable-tqdm"], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"tokdeck bench failed: {proc.stderr.strip()}")
    recs = sim.take_records()
    return min(r["received"] or r["arrival"] for r in recs) - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().strip()}")
    times: dict[int, list[float]] = {1: [], args.workers: []}
    with SimProcess(ttft_ms=20.0, itl_ms=2.0, output_tokens=8, seed=0) as sim:
        first_request_s(sim.url, sim, 1)  # warm the page cache
        for _ in range(args.repeat):
            for workers in times:
                times[workers].append(first_request_s(sim.url, sim, workers))
    for workers, values in times.items():
        print(f"--workers {workers}: first request after {statistics.median(values):.3f} s (median of "
              f"{len(values)}; {', '.join(f'{v:.2f}' for v in values)})")
    median = statistics.median(times[args.workers])
    print(f"goal: with --workers {args.workers}, the first request within 1 s: {'met' if median <= 1.0 else 'NOT met'}")
    with open("/proc/loadavg") as f:
        print(f"load average after: {f.read().strip()}")


if __name__ == "__main__":
    main()
