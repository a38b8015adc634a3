"""Start-up of the built-in simulator (a child process) and of a `tokdeck bench` run against it.

Measures, ``--runs`` times each (median and range):

- ``SimProcess.start()``: from the call until the child answers (``READY``; it loads the
  tokenizer for its text afterwards, while the caller goes on), and until a first chat
  completion has come back (text loaded);
- ``tokdeck bench`` with no --base-url (the built-in simulator) from the command's start to the
  moment its first POST leaves, against the same with ``--base-url`` of a simulator already
  running (the floor: tokdeck's own imports, tokenizer and prompts), for a 1-prompt run and for
  the default dataset size (1,000 random prompts of 1,024 tokens).

The first POST is found by wrapping ``aiohttp.ClientSession._request`` in the bench process
(a dictionary lookup per request; the bench imports aiohttp before it starts the simulator
anyway). Times are wall clock on one machine; ``time.time()`` is shared by the processes.

    python tests/perf/perf_sim_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_BENCH = """
import sys, time
import aiohttp
original = aiohttp.ClientSession._request
seen = []
def first_post(self, method, *args, **kwargs):
    if method == "POST" and not seen:
        seen.append(1)
        print(f"FIRST_POST {time.time():.6f}", file=sys.stderr, flush=True)
    return original(self, method, *args, **kwargs)
aiohttp.ClientSession._request = first_post
from tui.cli import entry
sys.argv = ["tokdeck", "bench", *sys.argv[1:]]
entry()
"""


def _bench_first_post(flags: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _BENCH, "--disable-tqdm", *flags], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    for line in proc.stderr.splitlines():
        if line.startswith("FIRST_POST "):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"no request left: {proc.stderr[-2000:]}")


def _sim_start() -> tuple[float, float]:
    sys.path.insert(0, str(REPO))
    from tui.core.bench.sim import SimConfig
    from tui.core.bench.simproc import SimProcess

    t0 = time.perf_counter()
    sim = SimProcess(SimConfig(ttft_ms=0, itl_ms=0, output_tokens=1))
    url = sim.start()
    ready = time.perf_counter() - t0
    req = urllib.request.Request(url + "/v1/chat/completions", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
    answered = time.perf_counter() - t0
    sim.stop()
    return ready, answered


def _show(name: str, values: list[float]) -> None:
    print(f"{name:<58} median {statistics.median(values):6.3f} s  (min {min(values):.3f}, max {max(values):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    starts = [_sim_start() for _ in range(args.runs)]
    _show("SimProcess.start() -> READY", [s[0] for s in starts])
    _show("SimProcess.start() -> first completion back", [s[1] for s in starts])

    from tui.core.bench.sim import SimConfig
    from tui.core.bench.simproc import SimProcess

    one = ["--num-prompts", "1", "--random-input-len", "16", "--random-output-len", "4"]
    with SimProcess(SimConfig()) as url:
        external = ["--base-url", url, "--tokenizer", "cl100k_base"]
        for label, flags in (("1 prompt", one), ("default dataset (1,000 x 1,024 tokens)", ["--num-prompts", "1000"])):
            built_in = [_bench_first_post(flags) for _ in range(args.runs)]
            floor = [_bench_first_post(external + flags) for _ in range(args.runs)]
            _show(f"bench, {label}: start -> first POST, built-in simulator", built_in)
            _show(f"bench, {label}: start -> first POST, simulator running", floor)


if __name__ == "__main__":
    main()
