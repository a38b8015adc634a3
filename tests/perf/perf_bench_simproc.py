"""The project's simulator in its own process, with its per-request truth, for the bench perf scripts.

    with SimProcess(ttft_ms=150, itl_ms=10, output_tokens=40) as sim:
        ... sim.url ...
        truth = sim.take_records()   # SimRecords (as dicts) since the last call

Run as a script it is the child: ``python perf_bench_simproc.py '<SimConfig JSON>'``; it prints
``PORT <n>`` and then answers one command per stdin line: ``records`` (JSON of the records
since the last call, on one line) or ``quit``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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

    def take_records(self) -> list[dict]:
        self.proc.stdin.write("records\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


async def _child(cfg_json: str) -> None:
    from tui.core.bench.sim import SimConfig, start_simulator

    server = await start_simulator(SimConfig(**json.loads(cfg_json)), "127.0.0.1", 0)
    print(f"PORT {server.url.rsplit(':', 1)[1]}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        cmd = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if cmd == "records":
            recs, server.records = server.records, []
            print(json.dumps([dataclasses.asdict(r) for r in recs]), flush=True)
        else:
            break
    await server.close()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1]))
