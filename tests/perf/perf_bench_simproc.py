"""The project's simulator in its own process, with its per-request truth, for the bench perf scripts.

    with SimProcess(ttft_ms=150, itl_ms=10, output_tokens=40) as sim:
        ... sim.url ...
        truth = sim.take_records()   # SimRecords (as dicts) since the last call
        stats = sim.take_stats()     # the server's own health since the last call (see below)

Run as a script it is the child: ``python perf_bench_simproc.py '<SimConfig JSON>'``; it prints
``PORT <n>`` and then answers one command per stdin line: ``records`` (JSON of the records
since the last call, on one line), ``stats`` or ``quit``.

Clocks: the simulator's times (``arrival``, and ``arrival + ttft_s`` / ``arrival + e2e_s``, the
moments it began writing the first / last content chunk) come from ``loop.time()``, which is
``time.monotonic()``. On Linux that is CLOCK_MONOTONIC, the clock ``time.perf_counter()`` reads
too (``time.get_clock_info``), so a client's absolute ``perf_counter()`` readings in another
process can be set against the server's record directly.

``take_stats()``: ``loop_lag_p99_ms`` / ``loop_lag_max_ms`` (oversleep of a 10 ms sleep on the
server's event loop, the same ticker the bench engine runs: how late the server was to start
handlers and write chunks), ``cpu_s`` (the server process's CPU seconds) and ``wall_s``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TICK_S = 0.010


class SimProcess:
    def __init__(self, **cfg) -> None:
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "SimProcess":
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, __file__, json.dumps(self.cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"simulator process did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def _ask(self, cmd: str):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def take_records(self) -> list[dict]:
        return self._ask("records")

    def take_stats(self) -> dict:
        return self._ask("stats")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


async def _child(cfg_json: str) -> None:
    from tui.core.bench.sim import SimConfig, start_simulator

    server = await start_simulator(SimConfig(**json.loads(cfg_json)), "127.0.0.1", 0)
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(max(time.perf_counter() - t - TICK_S, 0.0))

    tick = asyncio.create_task(ticker())
    print(f"PORT {server.url.rsplit(':', 1)[1]}", flush=True)
    loop = asyncio.get_running_loop()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while True:
        cmd = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if cmd == "records":
            recs, server.records = server.records, []
            print(json.dumps([dataclasses.asdict(r) for r in recs]), flush=True)
        elif cmd == "stats":
            cpu, wall = time.process_time(), time.perf_counter()
            taken, lags[:] = lags[:], []
            print(json.dumps({"loop_lag_p99_ms": _p99(taken) * 1e3, "loop_lag_max_ms": max(taken, default=0.0) * 1e3,
                              "cpu_s": cpu - cpu0, "wall_s": wall - wall0}), flush=True)
            cpu0, wall0 = cpu, wall
        else:
            break
    tick.cancel()
    await server.close()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1]))
