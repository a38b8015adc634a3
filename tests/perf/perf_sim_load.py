"""How much CPU the simulator spends per streamed chunk, and how late it writes, at 2,000 streams.

Each server runs in its own process; a cheap raw-socket client (no SSE parsing) in this process
opens all streams at once, each 40 tokens 50 ms apart after a 150 ms TTFT (the engine's load
test), and reads them to the end. Compared in the same run with a minimal aiohttp SSE server
(constant pre-built chunks, one ``asyncio.sleep`` per chunk, no tokenizer, no records):

- server CPU per chunk (utime+stime of the server process / chunks written), and the ratio;
- lateness of writes (server-side): first-content write vs when it was due, and last-content
  write vs when it was due (TTFT + 39 x ITL), p50 / p99 / max - the simulator from its own
  records, the minimal server measured the same way;
- failures (streams that did not end with ``[DONE]``).

    python tests/perf/perf_sim_load.py [STREAMS] [TOKENS] [ITL_MS]
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MINIMAL_SERVER = r'''
import asyncio, sys, time
from aiohttp import web
TTFT, ITL, N = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000, int(sys.argv[3])
CHUNK = (b'data: {"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":'
         b'[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}\n\n')
LATE_FIRST, LATE_LAST = [], []
async def chat(request):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await request.read()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    due = t0 + TTFT
    for i in range(N):
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        await resp.write(CHUNK)
        if i == 0:
            LATE_FIRST.append(now - due)
        due += ITL
    LATE_LAST.append(now - (due - ITL))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
async def main():
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print("PORT", runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    import json
    print(json.dumps({"late_first": sorted(LATE_FIRST), "late_last": sorted(LATE_LAST)}), flush=True)
    await runner.cleanup()
asyncio.run(main())
'''

SIM_SERVER = r'''
import asyncio, json, sys
from tui.core.bench.sim import SimConfig, start_simulator
async def main():
    cfg = SimConfig(ttft_ms=float(sys.argv[1]), itl_ms=float(sys.argv[2]), output_tokens=int(sys.argv[3]))
    srv = await start_simulator(cfg)
    print("PORT", srv.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    late_first = sorted(r.ttft_s - r.ttft_scheduled_s for r in srv.records if r.ttft_s is not None)
    due_last = cfg.ttft_ms / 1000 + (cfg.output_tokens - 1) * cfg.itl_ms / 1000
    late_last = sorted(r.e2e_s - due_last for r in srv.records if r.e2e_s is not None)
    print(json.dumps({"late_first": late_first, "late_last": late_last, "max_in_flight": srv.max_in_flight}),
          flush=True)
    await srv.close()
asyncio.run(main())
'''


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one(port: int, body: bytes) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    tail = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        tail = (tail + data)[-64:]
    writer.close()
    return b"data: [DONE]" in tail


async def _load(port: int, streams: int, tokens: int) -> tuple[int, float]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True,
                       "max_tokens": tokens}).encode()
    t0 = time.perf_counter()
    ok = await asyncio.gather(*(_one(port, body) for _ in range(streams)), return_exceptions=True)
    return sum(1 for x in ok if x is not True), time.perf_counter() - t0


def _run(code: str, streams: int, tokens: int, ttft: float, itl: float) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", code, str(ttft), str(itl), str(tokens)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO)
    port = int(proc.stdout.readline().split()[1])
    cpu0 = _cpu_seconds(proc.pid)
    failed, wall = asyncio.run(_load(port, streams, tokens))
    cpu = _cpu_seconds(proc.pid) - cpu0
    proc.stdin.write("\n")
    proc.stdin.flush()
    extra = proc.stdout.readline().strip()
    proc.wait(30)
    out = {"failed": failed, "wall": wall, "cpu": cpu, "chunks": streams * tokens}
    if extra:
        out.update(json.loads(extra))
    return out


def _pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


def main() -> None:
    streams = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    itl = float(sys.argv[3]) if len(sys.argv) > 3 else 50.0
    ttft = 150.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{streams} concurrent streams, {tokens} tokens, TTFT {ttft:g} ms, ITL {itl:g} ms "
          f"(due end {ttft + (tokens - 1) * itl:g} ms); raw-socket client; {os.cpu_count()} cores")
    base = _run(MINIMAL_SERVER, streams, tokens, ttft, itl)
    sim = _run(SIM_SERVER, streams, tokens, ttft, itl)
    for name, r in (("minimal aiohttp", base), ("tokdeck sim", sim)):
        print(f"  {name:16s} wall {r['wall']:.2f} s, server CPU {r['cpu']:.2f} s = "
              f"{r['cpu'] / r['chunks'] * 1e6:.1f} us/chunk, failed {r['failed']}")
    print(f"  sim / minimal CPU per chunk: {sim['cpu'] / max(base['cpu'], 1e-9):.2f}x")
    print(f"  lateness of writes vs their schedule (server-side; sim: its own records, max in flight "
          f"{sim['max_in_flight']}):")
    for name, r in (("minimal aiohttp", base), ("tokdeck sim", sim)):
        for key, label in (("late_first", "first content"), ("late_last", "last content")):
            xs = r[key]
            print(f"    {name:16s} {label:14s} p50 {_pct(xs, 50):7.1f} ms   p99 {_pct(xs, 99):7.1f} ms   "
                  f"max {_pct(xs, 100):7.1f} ms")


if __name__ == "__main__":
    main()
