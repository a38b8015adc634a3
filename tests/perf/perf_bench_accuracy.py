"""Accuracy of `tokdeck bench` timings against a server with known timings (figures for the README).

The project's simulator runs in another process and records, per request, when its handler
began and when it began writing each content chunk. Closed loop (a concurrency cap, rate inf),
two configurations: "stress" (TTFT 150 ms, 10 ms between tokens, 40 tokens; concurrency 1, 16,
64, 256 - 256 streams write up to 25,600 chunks/s) and "realistic" (45 ms between tokens, as a loaded
vLLM server streams; concurrency 64 and 256). In the same run and against the same server, a
minimal aiohttp + json.loads client (perf_bench_minimal.py) is measured as the yardstick, and at
concurrency 1 a blocking raw-socket client (no asyncio, no aiohttp: the floor of this machine).
Goal: mean TTFT within 2 ms and mean TPOT within 0.2 ms of the server's truth; token counts exact.

What is compared (the same interval, measured on both sides):
  server TTFT = its handler start (aiohttp has read the request and dispatched it; where real
                servers start their own TTFT) -> just before it writes the first content chunk
  client TTFT = just before the POST (vLLM's ``st``, after any concurrency-slot wait)
                -> the read that delivered the first content chunk (timestamp before parsing)
Both processes read CLOCK_MONOTONIC (``time.perf_counter`` / ``loop.time`` on Linux), so the
error (client mean - server mean) splits exactly into four parts, each a difference of means:
  send     = client st -> the request handed to the kernel (the client's own work; in the first
             wave also its connection set-up). Noted by a probe on this process's socket
             transports: one Python call per request write, none per chunk;
  to srv   = -> the request's first bytes read by the server process (loopback, server wake-up;
             SimRecord.received);
  srv queue= -> the server's handler start (its HTTP parsing and the requests that arrived
             with it: the server's accept queue, which servers leave out of their own TTFT);
  resp     = the server's write of the first content chunk -> the client's timestamp
             (loopback, the client waking and reading: how late the client timestamps).
Only send and resp are the client's; to srv + resp is one loopback round trip that no client can
avoid, and the blocking raw-socket client shows what it costs on this machine. TPOT:
(E2EL - TTFT) / (tokens - 1) on each side, E2EL ending at the last content chunk. "after wave
1": the TTFT error without the first <concurrency> requests, which also open the connections.
"goal": whether this row's mean TTFT and TPOT errors are within the goal.
Token counts: the client's per-request output tokens (from usage) against the server's
``completion_tokens`` (as multisets), plus a run with usage off where tokdeck counts with the
local tokenizer.

Workers ("tokdeck xN", ``--workers N``, default 2): the same run spread over N worker processes
(``workers.WorkersRun``), in the same cells and against the same server. Its requests are written
from the workers, out of reach of this process's probe, so its "send" is 0 and "to srv" holds
it. Workers goal (the last lines): in each cell, its mean TTFT error at most half of the single
process's measured in the same run, and its TPOT error within 0.2 ms.

Health, per run: the event-loop lag p99 (oversleep of a 10 ms ticker; the engine's own ticker,
the same ticker added to the minimal client and to the server), tokdeck's schedule lag p99 (how
late requests were sent after a slot freed: the client's own slowness, kept out of TTFT), CPU of
the client and of the server process (% of one core) and of the whole machine (/proc/stat;
"others" = machine - client - server: other work on the box). The chunk rate is the server's
content chunks per second of the run.

    python tests/perf/perf_bench_accuracy.py [--repeat N] [--quick] [--only stress:64,...]
                                                                 [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench_engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine_helpers import request_writes  # noqa: E402
from perf_bench_minimal import minimal_client  # noqa: E402
from perf_bench_simproc import SimProcess  # noqa: E402

from tui.core.bench.client import BenchRequest  # noqa: E402
from tui.core.bench.engine import BenchmarkRun, BenchSpec, TokenCounter  # noqa: E402
from tui.core.bench.workers import LocalWorkers, WorkersRun  # noqa: E402
from tui.core.tokenizers import default_registry  # noqa: E402

TOKENS, TTFT_MS = 40, 150.0
CONFIGS = [  # (name, ms between tokens, [(concurrency, requests)]): about 3 waves each, bounded run time
    ("stress", 10.0, [(1, 30), (16, 160), (64, 320), (256, 768)]),
    ("realistic", 45.0, [(64, 192), (256, 512)]),
]
CLIENTS = ("tokdeck", "minimal")
MEANS = ("ttft", "s_ttft", "err", "send", "to_srv", "queue", "resp", "steady", "tpot", "s_tpot", "tpot_err")
fmean = statistics.fmean
def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


# ---------------------------------------------------------------------- clients
# each returns (rows, failed, client loop lag p99 s); a row is
# (st, ttft, tpot, e2el, output tokens) with st the absolute perf_counter() just before the POST

SCHED_LAG: list[float] = []  # tokdeck's schedule lag p99 (s) of its latest run


async def run_tokdeck(url: str, conc: int, n: int, counter, workers: int = 1) -> tuple[list, int, float]:
    reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS) for i in range(n)]
    spec = BenchSpec(base_url=url, model="tokdeck-sim", max_concurrency=conc)
    if workers > 1:
        run: BenchmarkRun = WorkersRun(spec, reqs, counter, LocalWorkers(workers), emit_records=False)
    else:
        run = BenchmarkRun(spec, reqs, counter, emit_records=False)
    r = await run.run()
    t0 = run.clock_origin
    rows = [(t0 + x.start_time, x.ttft, x.tpot, x.e2el, x.output_tokens) for x in r.records()
            if x.ok and x.tpot is not None]
    SCHED_LAG[:] = [r.client_health.schedule_lag_ms.p99 / 1e3]
    return rows, r.failed, r.client_health.event_loop_lag_ms.p99 / 1e3


async def run_minimal(url: str, conc: int, n: int) -> tuple[list, int, float]:
    rows: list = []
    lags: list = []
    failed = (await minimal_client(url, conc, n, TOKENS, rows, lags))[2]
    return rows, failed, sorted(lags)[int(0.99 * (len(lags) - 1))] if lags else 0.0


def run_raw(url: str, n: int) -> tuple[list, int, float]:
    """Concurrency 1, blocking sockets: connect, st, sendall, recv until [DONE]; no parsing
    beyond spotting content chunks. A fresh connection per request (connected before st)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    rows = []
    mark = b'"delta":{"content":'
    for i in range(n):
        body = json.dumps({"model": "tokdeck-sim", "messages": [{"role": "user", "content": f"request {i}"}],
                           "max_completion_tokens": TOKENS, "stream": True,
                           "stream_options": {"include_usage": True}}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection((host, int(port))) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            st = time.perf_counter()
            s.sendall(head + body)
            first = last = None
            chunks = 0
            tail = b""
            while True:
                data = s.recv(65536)
                t = time.perf_counter()
                if not data:
                    break
                k = data.count(mark)
                if k:
                    chunks += k
                    first = first or t
                    last = t
                tail = (tail + data)[-64:]
                if b"[DONE]" in tail and tail.endswith(b"0\r\n\r\n"):
                    break
        rows.append((st, first - st, (last - first) / (chunks - 1), last - st, chunks))
    return rows, 0, 0.0


# ---------------------------------------------------------------------- comparison
def compare(rows: list, recs: list[dict], sent: list[float], conc: int) -> dict:
    ok = [r for r in recs if r["status"] == 200 and r["fault"] is None and r["ttft_s"] is not None]
    if len(ok) != len(rows) or not rows:
        raise SystemExit(f"client has {len(rows)} requests, server {len(ok)}: cannot compare")
    rows = sorted(rows)
    ok.sort(key=lambda r: r["arrival"])
    c_ttft, s_ttft = fmean(r[1] for r in rows), fmean(r["ttft_s"] for r in ok)
    st = fmean(r[0] for r in rows)
    if sent and len(sent) != len(rows):
        raise SystemExit(f"{len(sent)} request writes for {len(rows)} requests: cannot split the request path")
    written = fmean(sent) if sent else st  # the raw client: sendall right after st
    received = fmean(r["received"] for r in ok)
    arrival = fmean(r["arrival"] for r in ok)
    resp_path = fmean(r[0] + r[1] for r in rows) - fmean(r["arrival"] + r["ttft_s"] for r in ok)
    steady = (fmean(r[1] for r in rows[conc:]) - fmean(r["ttft_s"] for r in ok[conc:])) if len(rows) > conc else 0.0
    s_tpot = fmean((r["e2e_s"] - r["ttft_s"]) / (r["completion_tokens"] - 1) for r in ok)
    return {
        "n": len(rows), "ttft": c_ttft, "s_ttft": s_ttft, "err": c_ttft - s_ttft, "send": written - st,
        "to_srv": received - written, "queue": arrival - received, "resp": resp_path,
        "steady": steady, "tpot": fmean(r[2] for r in rows), "s_tpot": s_tpot,
        "tpot_err": fmean(r[2] for r in rows) - s_tpot,
        "tokens_exact": sorted(r[4] for r in rows) == sorted(r["completion_tokens"] for r in ok),
        "chunks": sum(r["completion_tokens"] for r in ok),
    }


def goal(a: dict) -> str:
    ttft, tpot = abs(a["err"]) <= 0.002, abs(a["tpot_err"]) <= 0.0002
    return "met" if ttft and tpot else "+".join(k for k, ok in (("TTFT", ttft), ("TPOT", tpot)) if not ok) + " no"


def measure(sim: SimProcess, fn) -> dict:
    sim.take_records()
    sim.take_stats()
    SCHED_LAG[:] = [float("nan")]
    b0, j0 = machine_jiffies()
    c0, w0 = time.process_time(), time.perf_counter()
    with request_writes() as sent:
        rows, failed, lag = fn()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    b1, j1 = machine_jiffies()
    srv = sim.take_stats()
    cores = os.cpu_count() or 1
    return {"rows": rows, "recs": sim.take_records(), "sent": sent, "failed": failed, "lag": lag,
            "sched": SCHED_LAG[0], "wall": wall, "cpu": cpu / wall * 100, "s_lag": srv["loop_lag_p99_ms"] / 1e3,
            "s_cpu": srv["cpu_s"] / srv["wall_s"] * 100,
            "machine": (b1 - b0) / (j1 - j0) * 100 * cores if j1 > j0 else 0.0}


def token_check_without_usage(counter) -> str:
    """usage off, output lengths 25..55: tokdeck counts with the local tokenizer."""
    with SimProcess(ttft_ms=20.0, itl_ms=2.0, output_tokens=TOKENS, output_tokens_jitter=15, usage="none",
                    seed=1) as sim:
        reqs = [BenchRequest(prompt=f"request {i}", output_len=TOKENS + 20) for i in range(64)]
        run = BenchmarkRun(BenchSpec(base_url=sim.url, model="tokdeck-sim", max_concurrency=16), reqs, counter,
                           emit_records=False)
        r = asyncio.run(run.run())
        recs = [x for x in sim.take_records() if x["status"] == 200 and x["fault"] is None]
    ours = sorted(x.output_tokens for x in r.records() if x.ok)
    exact = ours == sorted(x["completion_tokens"] for x in recs)
    return (f"usage off, local tokenizer ({', '.join(r.token_sources['output'])}): {len(ours)} requests, "
            f"{sum(ours)} tokens vs server {sum(x['completion_tokens'] for x in recs)}: "
            f"{'exact' if exact else 'NOT exact'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs per cell, clients alternating (default 2)")
    ap.add_argument("--quick", action="store_true", help="half the requests, one repeat")
    ap.add_argument("--only", default="", help="comma-separated cells to run, e.g. stress:64,realistic:256")
    ap.add_argument("--workers", type=int, default=2, help="tokdeck with N worker processes too (default 2; 1: not)")
    args = ap.parse_args()
    spread = f"tokdeck x{args.workers}"
    only = {tuple(c.split(":")) for c in args.only.split(",") if c}
    repeat = 1 if args.quick else max(1, args.repeat)
    counter = TokenCounter(default_registry().get("cl100k_base"))
    t_start = time.monotonic()
    table = []
    for cname, itl, plan in CONFIGS:
        if only and not any(c == cname for c, _ in only):
            continue
        with SimProcess(ttft_ms=TTFT_MS, itl_ms=itl, output_tokens=TOKENS, seed=0) as sim:
            asyncio.run(run_tokdeck(sim.url, 4, 8, counter))  # warm-up: imports, first connections
            for conc, n in plan:
                if only and (cname, str(conc)) not in only:
                    continue
                n = max(conc, n // 2) if args.quick else n
                clients = CLIENTS + ((spread,) if args.workers > 1 and conc >= args.workers else ()) \
                    + (("raw socket",) if conc == 1 else ())
                runs: dict[str, list] = {c: [] for c in clients}
                for rep in range(repeat):
                    order = clients if rep % 2 == 0 else clients[::-1]
                    for name in order:
                        if name == "tokdeck":
                            m = measure(sim, lambda: asyncio.run(run_tokdeck(sim.url, conc, n, counter)))
                        elif name == spread:
                            m = measure(sim, lambda: asyncio.run(run_tokdeck(sim.url, conc, n, counter,
                                                                             args.workers)))
                        elif name == "minimal":
                            m = measure(sim, lambda: asyncio.run(run_minimal(sim.url, conc, n)))
                        else:
                            m = measure(sim, lambda: run_raw(sim.url, n))
                        m.update(compare(m.pop("rows"), m.pop("recs"), m.pop("sent"), conc))
                        runs[name].append(m)
                for name in clients:
                    table.append((cname, itl, conc, name, runs[name]))
    print(f"accuracy vs the server's own record (sim in another process; TTFT {TTFT_MS:g} ms, {TOKENS} tokens; "
          f"{repeat} run(s) per row, mean, error range in brackets); {time.monotonic() - t_start:.0f} s")
    print(f"{'config':>9} {'conc':>4} {'client':>10} {'reqs':>4} {'chunk/s':>7} {'TTFT ms':>8} {'server':>7} "
          f"{'error':>6} {'[range]':>13} {'= send':>6} {'+to srv':>7} {'+queue':>7} {'+ resp':>6} {'after wave 1':>12} "
          f"{'TPOT ms':>7} {'server':>7} {'error':>6} {'tokens':>6} {'fail':>4} {'goal':>9}")
    for cname, itl, conc, name, ms in table:
        a = {k: fmean(m[k] for m in ms) for k in MEANS}
        errs = [m["err"] * 1e3 for m in ms]
        rate = fmean(m["chunks"] / m["wall"] for m in ms)
        steady = f"{a['steady'] * 1e3:+.2f}" if conc > 1 else "-"
        print(f"{cname:>9} {conc:>4} {name:>10} {ms[0]['n']:>4} {rate:7.0f} {a['ttft'] * 1e3:8.2f} "
              f"{a['s_ttft'] * 1e3:7.2f} {a['err'] * 1e3:+6.2f} {f'[{min(errs):+.1f},{max(errs):+.1f}]':>13} "
              f"{a['send'] * 1e3:+6.2f} {a['to_srv'] * 1e3:+7.2f} {a['queue'] * 1e3:+7.2f} {a['resp'] * 1e3:+6.2f} "
              f"{steady:>12} {a['tpot'] * 1e3:7.3f} "
              f"{a['s_tpot'] * 1e3:7.3f} {a['tpot_err'] * 1e3:+6.3f} "
              f"{'exact' if all(m['tokens_exact'] for m in ms) else 'WRONG':>6} {sum(m['failed'] for m in ms):>4} "
              f"{goal(a):>9}")
    print("\nhealth during each run (mean over runs; CPU in % of one core, the machine has "
          f"{os.cpu_count()} cores)")
    print(f"{'config':>9} {'conc':>4} {'client':>10} {'chunk/s':>7} {'client lag p99':>14} {'sched lag p99':>13} "
          f"{'client CPU':>10} {'server lag p99':>14} {'server CPU':>10} {'machine':>7} {'others':>6}")
    for cname, itl, conc, name, ms in table:
        a = {k: fmean(m[k] for m in ms) for k in ("lag", "sched", "cpu", "s_lag", "s_cpu", "machine")}
        rate = fmean(m["chunks"] / m["wall"] for m in ms)
        lag = f"{a['lag'] * 1e3:.1f} ms" if name != "raw socket" else "-"
        sched = f"{a['sched'] * 1e3:.1f} ms" if name.startswith("tokdeck") else "-"
        print(f"{cname:>9} {conc:>4} {name:>10} {rate:7.0f} {lag:>14} {sched:>13} {a['cpu']:9.0f}% "
              f"{a['s_lag'] * 1e3:11.1f} ms {a['s_cpu']:9.0f}% {a['machine']:6.0f}% "
              f"{max(a['machine'] - a['cpu'] - a['s_cpu'], 0):5.0f}%")
    if not only:
        print("\ntoken counts: " + token_check_without_usage(counter))
    cells = {(c, conc, name): ms for c, _, conc, name, ms in table}
    lines = []
    for (cname, conc, name), ms in cells.items():
        single = cells.get((cname, conc, "tokdeck"))
        if name != spread or single is None:
            continue
        err, err1 = fmean(m["err"] for m in ms), fmean(m["err"] for m in single)
        tpot = fmean(m["tpot_err"] for m in ms)
        ok = abs(err) <= abs(err1) / 2 and abs(tpot) <= 0.0002
        lines.append(f"{cname:>9} {conc:>4}: TTFT error {err * 1e3:+.2f} ms with {args.workers} workers, "
                     f"{err1 * 1e3:+.2f} ms in one process ({abs(err) / abs(err1) if err1 else float('nan'):.2f}x); "
                     f"TPOT error {tpot * 1e3:+.3f} ms: {'met' if ok else 'NOT met'}")
    if lines:
        print("\nworkers goal: TTFT error at most half the single process's, |TPOT error| <= 0.2 ms")
        print("\n".join(lines))
    print("goal: |TTFT error| <= 2 ms, |TPOT error| <= 0.2 ms at concurrency 1 to 256; token counts exact. "
          "error = send + to srv + queue + resp")


if __name__ == "__main__":
    main()
