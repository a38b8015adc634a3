"""Thousands of concurrent streams held by `tokdeck bench`, in one process and with worker processes.

All requests are sent at once (rate inf, no concurrency cap) to the simulator in another
process (TTFT 150 ms). Reported: completed/failed, the peak of concurrent requests, the client's
schedule lag (how late requests were sent: opening thousands of connections takes a while), its
mean TTFT/TPOT against the server's own record, and the client's memory.

- one process, 2,000 streams of 40 tokens: 50 ms between tokens (~2.1 s streams; on a small
  machine the first streams end before the last ones have been sent, so fewer than 2,000 are
  open at once) and 150 ms (~6 s streams: all 2,000 open together);
- ``--workers N`` (default 4), 10,000 slow streams: 1 s between tokens, 12 tokens (~11 s
  streams, all open together). Goal: no client-side failure, total client RSS under 1.5 GB.
  The client is this process (the coordinator), the fork server and the workers: their resident
  memory is summed every 0.5 s and the peak reported, as RSS (pages shared between the
  processes counted in each: an upper bound) and as PSS (shared pages split between them).

    python tests/perf/perf_bench_streams.py [--only single|workers] [--workers N]
                                                                [--streams N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from perf_bench_simproc import SimProcess  # noqa: E402

from tui.core.bench.client import BenchRequest  # noqa: E402
from tui.core.bench.engine import BenchSpec, TokenCounter, run_benchmark  # noqa: E402
from tui.core.bench.workers import LocalWorkers, WorkersRun  # noqa: E402
from tui.core.tokenizers import default_registry  # noqa: E402

STREAMS, TOKENS = 2000, 40
SLOW_TOKENS, SLOW_ITL_MS = 12, 1000.0


def raise_fd_limit(streams: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * streams:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * streams), hard))


def report(r, truth: list[dict], srv: dict, cpu: float, wall: float) -> None:
    h, s = r.client_health, r.summary
    s_ttft = statistics.fmean(t["ttft_s"] for t in truth) * 1e3
    s_tpot = statistics.fmean((t["e2e_s"] - t["ttft_s"]) / (t["completion_tokens"] - 1) for t in truth) * 1e3
    print(f"    completed {r.completed}, failed {r.failed} {dict(r.error_reasons) or ''}; server ok {len(truth)}; "
          f"peak concurrent requests {s.max_concurrent_requests}; duration {r.duration:.2f} s; "
          f"CPU of this process {cpu:.2f} s of {wall:.2f} s")
    print(f"    mean TTFT {s.metric('ttft').mean:.1f} ms (server {s_ttft:.1f}), mean TPOT "
          f"{s.metric('tpot').mean:.2f} ms (server {s_tpot:.2f}); schedule lag p99 {h.schedule_lag_ms.p99:.0f} ms; "
          f"loop lag p99 client {h.event_loop_lag_ms.p99:.1f} ms, server {srv['loop_lag_p99_ms']:.1f} ms; "
          f"server CPU {srv['cpu_s']:.2f} s")


def single(counter) -> None:
    raise_fd_limit(STREAMS)
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(STREAMS)]
    print(f"one process: {STREAMS} streams sent at once ({TOKENS} tokens, TTFT 150 ms)")
    for itl in (50.0, 150.0):
        with SimProcess(ttft_ms=150.0, itl_ms=itl, output_tokens=TOKENS, seed=0) as sim:
            c0, w0 = time.process_time(), time.perf_counter()
            r = asyncio.run(run_benchmark(BenchSpec(base_url=sim.url, model="tokdeck-sim"), reqs, counter,
                                          emit_records=False))
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            truth = [t for t in sim.take_records() if t["status"] == 200 and t["fault"] is None]
            srv = sim.take_stats()
        print(f"  ITL {itl:g} ms:")
        report(r, truth, srv, cpu, wall)
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = dict(line.split(":", 1) for line in f if line[0].isupper() and ":" in line)
        return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def _client_pids(exclude: int) -> list[int]:
    """This process and its descendants (the fork server and the workers), without ``exclude``'s tree."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    ours, me = [], os.getpid()
    for pid in parents:
        p = pid
        while p not in (0, 1, me, exclude) and p in parents:
            p = parents[p]
        if p == me and pid != exclude:
            ours.append(pid)
    return [me, *ours]


def spread(counter, workers: int, streams: int) -> None:
    raise_fd_limit(streams)
    reqs = [BenchRequest(prompt=f"request {i}", output_len=SLOW_TOKENS) for i in range(streams)]
    print(f"{workers} worker processes: {streams} streams sent at once ({SLOW_TOKENS} tokens, TTFT 150 ms, "
          f"{SLOW_ITL_MS:g} ms between tokens)")
    with SimProcess(ttft_ms=150.0, itl_ms=SLOW_ITL_MS, output_tokens=SLOW_TOKENS, seed=0) as sim:
        peak = {"rss": 0, "pss": 0, "processes": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                pids = _client_pids(sim.proc.pid)
                rss, pss = (sum(x) for x in zip(*(_memory_kib(p) for p in pids)))
                if rss > peak["rss"]:
                    peak.update(rss=rss, processes=len(pids))
                peak["pss"] = max(peak["pss"], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        c0, w0 = time.process_time(), time.perf_counter()
        r = asyncio.run(WorkersRun(BenchSpec(base_url=sim.url, model="tokdeck-sim"), reqs, counter,
                                   LocalWorkers(workers), emit_records=False).run())
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        done.set()
        sampler.join()
        truth = [t for t in sim.take_records() if t["status"] == 200 and t["fault"] is None]
        srv = sim.take_stats()
    report(r, truth, srv, cpu, wall)
    print(f"  client memory at its peak ({peak['processes']} processes: this one, the fork server, the workers): "
          f"RSS {peak['rss'] / 1024:.0f} MB, PSS {peak['pss'] / 1024:.0f} MB; goal: no failure, under 1.5 GB: "
          f"{'met' if r.failed == 0 and peak['rss'] < 1.5 * 1024 * 1024 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("single", "workers"))
    ap.add_argument("--workers", type=int, default=4, help="worker processes for the slow streams (default 4)")
    ap.add_argument("--streams", type=int, default=10_000, help="slow streams (default 10,000)")
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().strip()}")
    counter = TokenCounter(default_registry().get("cl100k_base"))
    if args.only != "workers":
        single(counter)
    if args.only != "single":
        spread(counter, args.workers, args.streams)


if __name__ == "__main__":
    main()
