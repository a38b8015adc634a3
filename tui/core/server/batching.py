"""Counting short texts in batches: one thread-pool hand-off for many concurrent requests.

Handing one job to a ThreadPoolExecutor costs about as much as counting a short text (the
wake-up and GIL hand-over dominate under load). The shortest texts (``LOOP_TEXT_CHARS``) for a
tokenizer without a lock (tiktoken, Tekken, the estimate) are therefore counted at once on the
event loop: tiktoken counts an ordinary one in 5-60 us (the worst, 512 lone surrogates, in
~0.3 ms), less than the hand-off, whose wake-ups and per-text GIL hand-overs cost ~20 us of CPU
per request. Other short texts that arrive within the same event loop iteration are counted by one
worker call of the ``short`` pool, in chunks so several workers still share the load; HF
tokenizers get them as one batch call (``count_many``), which runs in parallel without the GIL.

Long texts (over ``SHORT_TEXT_CHARS``) go to the ``long`` pool, one job each, so huge texts
can occupy those workers but never the ones short texts need. An HF tokenizer encodes one
call at a time (it holds a lock while switching its special-token mode), so no short-text
call is sent for an HF tokenizer while another call of it (short or long) is running: texts
arriving meanwhile wait on the loop side and go together in the next call, instead of parking
workers on that lock (short texts for that tokenizer do wait for a long one to finish).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from ..tokenizers.base import HFTokenizer, SpecialPolicy, Tokenizer

LOOP_TEXT_CHARS = 512
SHORT_TEXT_CHARS = 16_384
CHUNK_JOBS = 64  # jobs per worker call
CHUNK_CHARS = 256 * 1024  # characters per worker call


_Job = tuple[Tokenizer, str, SpecialPolicy, asyncio.Future]


def _count_chunk(jobs: list[_Job]) -> list[int | BaseException]:
    """Count jobs of one tokenizer, grouped by special-token policy; errors stay per group."""
    groups: dict[SpecialPolicy, list[int]] = {}
    for i, (_, _, specials, _) in enumerate(jobs):
        groups.setdefault(specials, []).append(i)
    tok = jobs[0][0]
    out: list[int | BaseException] = [0] * len(jobs)
    for specials, idx in groups.items():
        try:
            counts: list[int | BaseException] = list(tok.count_many([jobs[i][1] for i in idx], specials))
        except Exception as exc:  # confined to the requests of this group
            counts = [exc] * len(idx)
        for i, n in zip(idx, counts):
            out[i] = n
    return out


def _take_chunk(jobs: list[_Job]) -> tuple[list[_Job], list[_Job]]:
    """The first chunk (within CHUNK_JOBS and CHUNK_CHARS, at least one job) and the rest."""
    chars = 0
    for n, job in enumerate(jobs):
        if n and (n >= CHUNK_JOBS or chars + len(job[1]) > CHUNK_CHARS):
            return jobs[:n], jobs[n:]
        chars += len(job[1])
    return jobs, []


class CountBatcher:
    def __init__(self, short_pool: Executor, long_pool: Executor):
        self._short_pool = short_pool
        self._long_pool = long_pool
        self._pending: dict[int, list[_Job]] = {}  # id(tokenizer) -> short jobs waiting
        self._hf_busy: dict[int, int] = {}  # HF tokenizer -> its calls running (short or long)
        self._scheduled = False

    def count(self, tok: Tokenizer, text: str, specials: SpecialPolicy) -> asyncio.Future:
        """A future of ``tok.count(text, specials)``, computed in a thread pool."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if len(text) <= LOOP_TEXT_CHARS and not isinstance(tok, HFTokenizer):
            try:
                fut.set_result(tok.count(text, specials))
            except Exception as exc:  # confined to this request, as in a worker
                fut.set_exception(exc)
            return fut
        job = (tok, text, specials, fut)
        if len(text) > SHORT_TEXT_CHARS:
            self._submit(loop, self._long_pool, [job])
            return fut
        self._pending.setdefault(id(tok), []).append(job)
        self._schedule(loop)
        return fut

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        for key in list(self._pending):
            if self._hf_busy.get(key):
                continue  # sent with the next call, when the running one ends
            jobs = self._pending.pop(key)
            if isinstance(jobs[0][0], HFTokenizer):
                chunk, rest = _take_chunk(jobs)
                if rest:
                    self._pending[key] = rest
                self._submit(loop, self._short_pool, chunk)
                continue
            while jobs:
                chunk, jobs = _take_chunk(jobs)
                self._submit(loop, self._short_pool, chunk)

    def _submit(self, loop: asyncio.AbstractEventLoop, pool: Executor, jobs: list[_Job]) -> None:
        hf_key = id(jobs[0][0]) if isinstance(jobs[0][0], HFTokenizer) else None
        if hf_key is not None:
            self._hf_busy[hf_key] = self._hf_busy.get(hf_key, 0) + 1

        def release() -> None:
            if hf_key is not None:
                self._hf_busy[hf_key] -= 1
                if not self._hf_busy[hf_key]:
                    del self._hf_busy[hf_key]
                    if hf_key in self._pending:
                        self._schedule(loop)

        def done(result: asyncio.Future) -> None:
            release()
            if result.cancelled():
                outcomes: list = [asyncio.CancelledError()] * len(jobs)
            elif result.exception() is not None:
                outcomes = [result.exception()] * len(jobs)
            else:
                outcomes = result.result()
            for (_, _, _, fut), outcome in zip(jobs, outcomes):
                if fut.done():
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

        try:
            loop.run_in_executor(pool, _count_chunk, jobs).add_done_callback(done)
        except RuntimeError as exc:  # the pool is shut down: the service is stopping
            release()
            for *_, fut in jobs:
                if not fut.done():
                    fut.set_exception(exc)
