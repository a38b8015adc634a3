"""The baseline for the bench perf scripts: a minimal aiohttp + json.loads streaming client.

One session, a semaphore, ``async for line in resp.content`` and ``json.loads`` per data line,
timestamps taken before parsing (the fairest version of the notes' "minimal client").
``lags`` (optional) receives the event-loop lag samples of a 10 ms ticker, the one the bench
engine runs, so both clients carry the same extra wake-ups.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp


async def minimal_client(base_url: str, conc: int, n: int, tokens: int, per_request: list | None = None,
                         lags: list | None = None) -> tuple[float, float, int, int]:
    """(mean TTFT s, mean TPOT s, failed, output chunks) of n chat requests at concurrency conc.

    ``per_request`` (if given) receives (start, TTFT, TPOT, E2EL, output tokens) of each
    successful request; start is the absolute ``time.perf_counter()`` just before the POST."""
    sem = asyncio.Semaphore(conc)
    url = base_url + "/v1/chat/completions"

    async def one(session: aiohttp.ClientSession, i: int):
        body = {"model": "tokdeck-sim", "messages": [{"role": "user", "content": f"request {i}"}],
                "max_completion_tokens": tokens, "stream": True, "stream_options": {"include_usage": True}}
        async with sem:
            st = time.perf_counter()
            ttft = last = None
            chunks = 0
            out_tokens = None
            async with session.post(url, json=body) as resp:
                if resp.status != 200:
                    return None
                async for line in resp.content:
                    t = time.perf_counter()
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        continue
                    obj = json.loads(data)
                    if obj.get("usage"):
                        out_tokens = obj["usage"]["completion_tokens"]
                    choices = obj.get("choices")
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        if ttft is None:
                            ttft = t - st
                        last = t
                        chunks += 1
            if ttft is None:
                return None
            return ttft, last - st, out_tokens or chunks, chunks, st

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.010)
            lags.append(max(time.perf_counter() - t - 0.010, 0.0))

    tick = asyncio.create_task(ticker()) if lags is not None else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        results = await asyncio.gather(*(one(session, i) for i in range(n)), return_exceptions=True)
    if tick is not None:
        tick.cancel()
    ok = [r for r in results if isinstance(r, tuple)]
    ttft = statistics.fmean(r[0] for r in ok) if ok else float("nan")
    tpots = [(e2el - t) / (n_out - 1) for t, e2el, n_out, *_ in ok if n_out > 1]
    if per_request is not None:
        per_request.extend((st, t, (e2el - t) / (n_out - 1), e2el, n_out) for t, e2el, n_out, _, st in ok
                           if n_out > 1)
    tpot = statistics.fmean(tpots) if tpots else float("nan")
    return ttft, tpot, n - len(ok), sum(r[3] for r in ok)
