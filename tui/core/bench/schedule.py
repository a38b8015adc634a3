"""Who sends what when a run is spread over workers: the coordinator's side of the schedule.

The coordinator computes the arrival schedule once (``arrivals.arrival_times``) and deals its
(index, due) pairs out, so the union of the workers' schedules is exactly the single-process
schedule; the workers only keep the time.

- :func:`shares` splits ``--max-concurrency`` (and the warm-ups) between the workers: the shares
  add up to the total and differ by at most one.
- :func:`deal` deals the schedule round robin, each worker's part in due order.
- :class:`Dealer` hands the requests out during the run and knows which worker holds which.
  Timed (a finite rate, or no concurrency cap): each worker gets its dealt requests a little
  ahead of their due times (``lookahead``). Pulled (rate inf with a cap, a closed loop): the
  requests wait in one queue and go to whichever worker asks, so no worker sits idle while
  another has a backlog; a worker holds its share of slots plus a small prefetch.
  When a worker is lost, the requests it held that cannot have been sent yet (due after the
  moment it was lost) go to the others; the rest it held are returned to the caller, which
  reports them as failed: whether they were sent is unknown, and they never vanish.
- :func:`clock_offset` estimates a worker's clock offset from round trips.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

#: the most workers (processes or Ray actors) a run takes
MAX_WORKERS = 256
#: a worker's requests in due order: (index, due seconds from the common start)
Item = tuple[int, float]


def shares(total: int, workers: int) -> list[int]:
    """``total`` split into ``workers`` parts that add up to it and differ by at most one."""
    if workers < 1:
        raise ValueError("at least one worker is needed")
    base, extra = divmod(total, workers)
    return [base + (1 if w < extra else 0) for w in range(workers)]


def concurrency_shares(max_concurrency: int | None, workers: int) -> list[int | None]:
    """Each worker's ``--max-concurrency`` (None: no cap). A cap below the number of workers
    would leave a worker without a slot: ValueError."""
    if max_concurrency is None:
        return [None] * workers
    if workers > max_concurrency:
        raise ValueError(f"{workers} workers need a concurrency of at least {workers} (one slot each), "
                         f"not {max_concurrency}")
    return list(shares(max_concurrency, workers))


def deal(times: Sequence[float], workers: int) -> list[list[Item]]:
    """The schedule dealt round robin: worker w gets requests w, w + workers, ... in due order."""
    if workers < 1:
        raise ValueError("at least one worker is needed")
    return [[(i, times[i]) for i in range(w, len(times), workers)] for w in range(workers)]


def pulled(max_concurrency: int | None, request_rate: float) -> bool:
    """Whether a run hands its requests out on demand (a closed loop) rather than by due time."""
    return max_concurrency is not None and request_rate == float("inf")


def prefetch(share: int) -> int:
    """Requests a pulling worker keeps beyond its slots, so a freed slot never waits for the
    coordinator: a round trip costs well under a millisecond, a request far more."""
    return max(1, min(16, share // 8))


@dataclass(frozen=True)
class Lost:
    """What became of the requests a lost worker held."""

    failed: list[Item]  # held and perhaps sent: reported as failed
    redealt: list[Item]  # not sent yet: handed to the other workers


class Dealer:
    """Hands the schedule out to ``workers`` workers and tracks which worker holds which request.

    ``times``: every request's due time (the single-process schedule); requests due at or after
    ``limit`` (``--duration``) are never handed out (``truncated`` says whether any were).
    ``pull``: hand out on demand (:meth:`take`) instead of by due time (:meth:`due_by`).
    """

    def __init__(self, times: Sequence[float], workers: int, *, pull: bool, limit: float | None = None) -> None:
        self.times = times
        self.pull = pull
        keep = [limit is None or t < limit for t in times]
        self.truncated = not all(keep)
        self._pending: deque[int] = deque(i for i in range(len(times)) if keep[i]) if pull else deque()
        self._queues = [deque(item for item in part if keep[item[0]]) if not pull else deque[Item]()
                        for part in deal(times, workers)]
        self.held: list[dict[int, float]] = [{} for _ in range(workers)]
        self.alive = [True] * workers
        self.ended = [False] * workers  # told that no more requests will come

    # ------------------------------------------------------------------ handing out
    def due_by(self, worker: int, horizon: float) -> list[Item]:
        """Timed: the worker's requests due at or before ``horizon`` not handed out yet."""
        queue, held = self._queues[worker], self.held[worker]
        out: list[Item] = []
        while queue and queue[0][1] <= horizon:
            i, due = queue.popleft()
            held[i] = due
            out.append((i, due))
        return out

    def take(self, worker: int, count: int) -> list[Item]:
        """Pulled: up to ``count`` requests from the common queue."""
        pending, held = self._pending, self.held[worker]
        out: list[Item] = []
        while pending and len(out) < count:
            i = pending.popleft()
            held[i] = self.times[i]
            out.append((i, self.times[i]))
        return out

    def exhausted(self, worker: int) -> bool:
        """Nothing more will be handed to this worker (unless a lost worker's requests are re-dealt)."""
        return not (self._pending if self.pull else self._queues[worker])

    def stop(self) -> None:
        """Hand nothing more out."""
        self._pending.clear()
        for queue in self._queues:
            queue.clear()

    # ------------------------------------------------------------------ bookkeeping
    def finished(self, worker: int, index: int) -> bool:
        """A record of ``index`` came from ``worker``; False when the worker did not hold it."""
        return self.held[worker].pop(index, None) is not None

    def release(self, worker: int) -> int:
        """The worker ended normally: what it still holds was never sent or was cancelled."""
        count = len(self.held[worker])
        self.held[worker].clear()
        self.alive[worker] = False
        return count

    def lost(self, worker: int, elapsed: float, margin: float = 0.0) -> Lost:
        """The worker is gone ``elapsed`` seconds after the start. What it held and was due
        later than ``elapsed + margin`` cannot have been sent: it goes, with the worker's
        requests not handed out yet, to the workers still taking requests; the rest is failed.
        With no such worker left, everything it held fails and its queue is dropped."""
        self.alive[worker] = False
        held = self.held[worker]
        takers = [w for w in range(len(self.alive)) if self.alive[w] and not self.ended[w]]
        if takers:
            unsent = [(i, due) for i, due in held.items() if due > elapsed + margin]
            failed = [(i, due) for i, due in held.items() if due <= elapsed + margin]
            unsent.extend(self._queues[worker])
        else:
            unsent, failed = [], list(held.items())
        held.clear()
        self._queues[worker].clear()
        unsent.sort(key=lambda item: item[1])
        for k, item in enumerate(unsent):
            self._queues[takers[k % len(takers)]].append(item)
        if unsent:
            for w in takers:  # each queue back in due order
                self._queues[w] = deque(sorted(self._queues[w], key=lambda item: item[1]))
        failed.sort(key=lambda item: item[1])
        return Lost(failed=failed, redealt=unsent)

    def undealt(self) -> int:
        """Requests never handed to any worker."""
        return len(self._pending) + sum(len(q) for q in self._queues)


def clock_offset(samples: Sequence[tuple[float, float, float]]) -> float:
    """A worker's clock minus ours, from round trips ``(ours before, theirs, ours after)``: the
    fastest one bounds the error by half its duration."""
    if not samples:
        raise ValueError("no round trips")
    before, theirs, after = min(samples, key=lambda s: s[2] - s[0])
    return theirs - (before + after) / 2.0
