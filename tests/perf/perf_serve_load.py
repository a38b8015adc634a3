"""Load test of `tokdeck serve`: requests/s and p50/p99 latency for short texts, 64 concurrent clients.

    python tests/perf/perf_serve_load.py [--duration 10] [--clients 64] [--rounds 2]

Each target runs in its own process; this process is the load generator: 64 keep-alive
connections, one request in flight each, for --duration seconds per target. They send
pre-built HTTP requests over plain asyncio streams: ~45 us of client CPU per request, where an
aiohttp client took ~160 us, more than the server, so requests/s measured the client. Targets:
  baseline  - a minimal aiohttp app answering {"token_count": len(text)} (no tokenizer, no
              resolution, no thread pool): the framework's own ceiling on this machine;
  tokdeck   - `tokdeck serve`, POST /calculate with model_name gpt-4o (o200k_base) and with
              Qwen/Qwen3-8B (qwen3, HF tokenizers).
The ratio tokdeck/baseline shows what tokenization, model resolution, validation and the
thread pool cost. On a 2-core machine the load generator competes with the server for CPU,
so absolute figures are lower than a remote client would see, and other load on the machine
moves requests/s between rounds; the server's CPU time per request (from /proc, all threads;
the share of its event-loop thread beside it) is the steadier figure. The machine's load
average is printed before and after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BASELINE_APP = """
import json, sys
from aiohttp import web

async def calculate(request):
    body = json.loads(await request.read())
    return web.json_response({"token_count": len(body["text"]), "model_name": body["model_name"]})

async def main():
    app = web.Application()
    app.router.add_post("/calculate", calculate)
    app.router.add_get("/health", lambda r: web.json_response({"status": "ok"}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr, flush=True)
    await __import__("asyncio").Event().wait()

__import__("asyncio").run(main())
"""

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please summarise the following meeting notes in three bullet points.",
    "def add(a, b):\n    return a + b\n",
    "Quelle est la capitale de la France ?",
    "東京は日本の首都です。",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '1 day';",
    "Translate to German: I would like a cup of coffee, please.",
    "<|endoftext|> should be counted as plain text by default.",
]


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process (Linux /proc), all its threads included, or of one of
    its threads (``thread=pid``: the main thread, which runs the event loop)."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"server did not start: {cmd}")


def _requests(host: str, model: str) -> list[bytes]:
    """Every short text the clients send, as whole HTTP requests (built once: the client's own
    cost per request stays small)."""
    out = []
    for sentence in SENTENCES:
        for times in (1, 2, 3):
            body = json.dumps({"text": sentence * times, "model_name": model}).encode()
            out.append(b"POST /calculate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
    return out


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request on a keep-alive connection and read its whole response; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head[9:12])


async def load(url: str, model: str, clients: int, duration: float) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = _requests(host, model)
    rng = random.Random(1)
    latencies: list[float] = []
    errors = 0
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(clients)]
    # warm-up: every connection once
    await asyncio.gather(*(_exchange(r, w, requests[0]) for r, w in connections))
    stop_at = time.perf_counter() + duration

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            if await _exchange(reader, writer, rng.choice(requests)) != 200:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in connections))
    elapsed = time.perf_counter() - t0
    for _, writer in connections:
        writer.close()
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load per target (default 10)")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over the targets, interleaved (default 2)")
    args = ap.parse_args()

    targets = [("baseline (len(text), no tokenizer)", [sys.executable, "-c", BASELINE_APP], "gpt-4o"),
               ("tokdeck serve, gpt-4o (o200k_base)", [sys.executable, "-m", "tui.cli", "serve", "--port", "0",
                                                     "--preload", "gpt-4o"], "gpt-4o"),
               ("tokdeck serve, Qwen/Qwen3-8B (qwen3)", [sys.executable, "-m", "tui.cli", "serve", "--port", "0",
                                                       "--preload", "qwen3"], "Qwen/Qwen3-8B")]
    print(f"load average before: {loadavg()} ({os.cpu_count()} CPUs)", flush=True)
    servers = []
    try:
        for name, cmd, model in targets:
            proc, url = start(cmd)
            servers.append((proc, name, url, model))
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
        for round_ in range(1, args.rounds + 1):  # interleaved, so background load hits every target alike
            for proc, name, url, model in servers:
                cpu0, loop0 = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid)
                r = asyncio.run(load(url, model, args.clients, args.duration))
                served = r["requests"] + args.clients  # + warm-up
                r["cpu_us"] = 1e6 * (cpu_seconds(proc.pid) - cpu0) / served
                r["loop_us"] = 1e6 * (cpu_seconds(proc.pid, proc.pid) - loop0) / served
                runs[name].append(r)
                print(f"round {round_}  {name:38s} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                      f"p99 {r['p99_ms']:6.1f} ms  server CPU {r['cpu_us']:5.0f} us/request "
                      f"(loop thread {r['loop_us']:3.0f})  ({r['requests']} requests, {r['errors']} errors)", flush=True)
    finally:
        for proc, *_ in servers:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"\nload average after: {loadavg()}")
    print(f"median of {args.rounds} rounds, {args.clients} clients, {args.duration:g} s each:")
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
               for name, rs in runs.items()}
    base = medians[targets[0][0]]
    for name, m in medians.items():
        print(f"  {name:38s} {m['rps']:7.0f} req/s  p50 {m['p50_ms']:6.1f} ms  p99 {m['p99_ms']:6.1f} ms  "
              f"{m['rps'] / base['rps']:5.2f}x baseline req/s  {m['cpu_us'] / base['cpu_us']:5.2f}x baseline CPU/request")
    return 0 if all(r["errors"] == 0 for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
