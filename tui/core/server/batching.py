"""Counting short texts in batches: one thread-pool hand-off for many concurrent requests.

Handing one job to a ThreadPoolExecutor costs about as much as counting a short text (the
wake-up and GIL hand-over dominate under load). Short texts that arrive within the same event
loop iteration are therefore counted by one worker call, split into chunks so several workers
still share the load; HF tokenizers get them as one batch call (``count_many``), which runs in
parallel without the GIL. Long texts (over ``SHORT_TEXT_CHARS``) always get a job of their own,
so a huge text never delays the short ones.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Sequence

from ..tokenizers.base import HFTokenizer, Tokenizer

SHORT_TEXT_CHARS = 16_384
CHUNK_JOBS = 64  # jobs per worker call
CHUNK_CHARS = 256 * 1024  # characters per worker call


def count_texts(tok: Tokenizer, texts: Sequence[str], specials: str) -> list[int]:
    """Counts of several texts with one tokenizer, each as ``tok.count`` gives it.

    HF: one batch call (parallel, releases the GIL). Others: one ``count`` per text unless
    there are many, since tiktoken's batch call starts a thread pool per call."""
    if len(texts) >= 32 or (isinstance(tok, HFTokenizer) and len(texts) > 1):
        return tok.count_many(texts, specials)
    return [tok.count(t, specials) for t in texts]


_Job = tuple[Tokenizer, str, str, asyncio.Future]


def _count_chunk(jobs: list[_Job]) -> list[int | BaseException]:
    groups: dict[tuple[int, str], list[int]] = {}
    for i, (tok, _, specials, _) in enumerate(jobs):
        groups.setdefault((id(tok), specials), []).append(i)
    out: list[int | BaseException] = [0] * len(jobs)
    for (_, specials), idx in groups.items():
        tok = jobs[idx[0]][0]
        try:
            counts: list[int | BaseException] = list(count_texts(tok, [jobs[i][1] for i in idx], specials))
        except Exception as exc:  # confined to the requests of this group
            counts = [exc] * len(idx)
        for i, n in zip(idx, counts):
            out[i] = n
    return out


class CountBatcher:
    def __init__(self, executor: Executor):
        self._executor = executor
        self._pending: list[_Job] = []
        self._scheduled = False

    def count(self, tok: Tokenizer, text: str, specials: str) -> asyncio.Future:
        """A future of ``tok.count(text, specials)``, computed in the thread pool."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if len(text) > SHORT_TEXT_CHARS:
            self._submit(loop, [(tok, text, specials, fut)])
            return fut
        self._pending.append((tok, text, specials, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        chunk: list[_Job] = []
        chars = 0
        for job in pending:
            if chunk and (len(chunk) >= CHUNK_JOBS or chars + len(job[1]) > CHUNK_CHARS):
                self._submit(loop, chunk)
                chunk, chars = [], 0
            chunk.append(job)
            chars += len(job[1])
        if chunk:
            self._submit(loop, chunk)

    def _submit(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        def done(result: asyncio.Future) -> None:
            if result.cancelled() or result.exception() is not None:
                exc = result.exception() if not result.cancelled() else asyncio.CancelledError()
                outcomes: list = [exc] * len(jobs)
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
            loop.run_in_executor(self._executor, _count_chunk, jobs).add_done_callback(done)
        except RuntimeError as exc:  # the pool is shut down: the service is stopping
            for *_, fut in jobs:
                if not fut.done():
                    fut.set_exception(exc)
