"""Workers as Ray actors on an existing cluster: ``--ray-address ADDR|auto --workers N``.

    run = WorkersRun(spec, requests, counter, RayWorkers("head:6379", 8, resource="loadgen"))

Ray is an optional extra (``pip install 'tokdeck[ray]'``), imported only here, only when asked
for. tokdeck connects to a cluster that is already running and disconnects at the end; it never
starts or stops one (never ``ray stop``, which kills every Ray process on a machine).

Placement: the actors are spread round robin over the live nodes - with ``resource``, over those
that carry it - each pinned to its node (a hard node affinity), and they ask for no CPU: where
to put load is the user's choice, and an actor that waits for a free CPU would just not run.
A missing extra, an unreachable address, a resource no node has, or an actor that cannot start
(tokdeck not installed on its node) is a one-line error.

Each actor holds one ``workers.Worker``, the same worker logic as a local process; only the
transport differs. Messages to it are actor calls (numbered: an async actor may run calls out
of order); its messages come back through one async-generator call, in batches, as they are
sent. Its clock offset is estimated from the fastest of a few round trips, so the common start
reaches it in its own clock. The API key travels inside the run's options, never in the
actors' environment.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from time import perf_counter
from typing import Any, Sequence

from ..errors import TokdeckError
from .schedule import clock_offset
from .workers import DONE, FAILED, Worker, WorkerChannel, WorkerGone

ACTOR_START_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0
ROUND_TRIPS = 5


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class WorkerActor:
    """The actor around one ``Worker`` (made a Ray actor class by ``RayWorkers``)."""

    def __init__(self, clock_skew: float = 0.0) -> None:
        self._skew = clock_skew
        self._worker: Worker | None = None
        self._outbox: asyncio.Queue[tuple] | None = None
        self._early: dict[int, tuple] = {}
        self._next = 0

    def _ensure(self) -> Worker:
        if self._worker is None:  # made on the actor's event loop
            self._outbox = asyncio.Queue()
            self._worker = Worker(self._outbox.put_nowait, self._skew)
        return self._worker

    async def node(self) -> str:
        import ray

        self._ensure()
        return ray.get_runtime_context().get_node_id()

    async def clock(self) -> float:
        return self._ensure().clock()

    async def receive(self, number: int, message: tuple) -> None:
        worker = self._ensure()
        self._early[number] = message
        while self._next in self._early:
            worker.receive(self._early.pop(self._next))
            self._next += 1

    async def messages(self):
        """Everything the worker sends, in batches as it comes, until DONE or FAILED."""
        self._ensure()
        outbox = self._outbox
        assert outbox is not None
        while True:
            batch = [await outbox.get()]
            while not outbox.empty():
                batch.append(outbox.get_nowait())
            yield batch
            if batch[-1][0] in (DONE, FAILED):
                return


class _ActorChannel:
    def __init__(self, actor: Any, name: str) -> None:
        self._actor, self._name = actor, name
        self._stream = actor.messages.remote()
        self._buffer: deque[tuple] = deque()
        self._sent = 0

    def send(self, message: tuple) -> None:
        self._actor.receive.remote(self._sent, message)
        self._sent += 1

    async def receive(self) -> tuple:
        import ray

        while not self._buffer:
            try:
                ref = await self._stream.__anext__()
                self._buffer.extend(await ref)
            except StopAsyncIteration:
                raise WorkerGone(f"({self._name}) ended without a word") from None
            except ray.exceptions.RayError as exc:
                raise WorkerGone(f"({self._name}) died: {_first_line(exc)}") from None
        return self._buffer.popleft()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise TokdeckError("--ray-address needs Ray, which is not installed: pip install 'tokdeck[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """A HOST:PORT that refuses or does not answer is a one-line error here, before Ray would retry
    for a minute."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # Ray's own forms (auto, ray://...): Ray says what is wrong
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TokdeckError(f"--ray-address {address}: cannot reach a Ray cluster there: {reason} (is `ray start "
                           "--head` running on that machine, and is the port open?)") from None


class RayWorkers:
    """``count`` workers as Ray actors on the cluster at ``address`` (HOST:PORT or auto).

    ``resource``: only on nodes that carry that custom resource. ``clock_skews``: per actor,
    seconds its clock is pretended to be off by (tests of the offset estimate). Ray is imported
    here (TokdeckError when it is missing); the cluster is reached in :meth:`open`."""

    transport = "ray"

    def __init__(self, address: str, count: int, resource: str | None = None, *,
                 clock_skews: Sequence[float] = ()) -> None:
        self._ray = _import_ray()
        self.address, self.count, self.resource = address, count, resource
        self.clock_skews = tuple(clock_skews) + (0.0,) * (count - len(clock_skews))
        self.nodes: list[str] = []  # the node id of each actor, once open
        self.actors: list[Any] = []  # their handles, once open
        self._connected = False  # we called ray.init (and so call ray.shutdown)

    async def open(self) -> list[WorkerChannel]:
        ray = self._ray
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._connect, ray)
        nodes = await loop.run_in_executor(None, self._placement, ray)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor_class = ray.remote(WorkerActor)
        self.actors = [actor_class.options(
            num_cpus=0, max_concurrency=1000, name=None,
            scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=False),
        ).remote(self.clock_skews[i]) for i in range(self.count)]
        try:
            self.nodes = await asyncio.wait_for(asyncio.gather(*(a.node.remote() for a in self.actors)),
                                                ACTOR_START_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise TokdeckError(f"the Ray actors did not start within {ACTOR_START_TIMEOUT_S:g} s") from None
        except ray.exceptions.RayError as exc:
            raise TokdeckError(f"a Ray actor could not start: {_first_line(exc)} (tokdeck must be installed, the "
                               "same version, on every node that runs workers)") from None
        return [_ActorChannel(a, f"Ray actor on node {node[:8]}") for a, node in zip(self.actors, self.nodes)]

    def _connect(self, ray) -> None:
        if ray.is_initialized():  # this process is a Ray driver already: use its connection
            return
        if self.address != "auto":
            _check_reachable(self.address)
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds: one line each
            raise TokdeckError(f"--ray-address {self.address}: cannot connect: {_first_line(exc)}") from None
        self._connected = True

    def _placement(self, ray) -> list[str]:
        """The ids of the nodes to spread the actors over."""
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if self.resource is None:
            chosen = alive
        else:
            chosen = [n for n in alive if n.get("Resources", {}).get(self.resource, 0) > 0]
            if not chosen:
                known = sorted({r for n in alive for r in n.get("Resources", {})
                                if not r.startswith("node:") and r not in ("memory", "object_store_memory")})
                raise TokdeckError(f"--ray-resource {self.resource}: no live node of the Ray cluster has it "
                                   f"(resources there: {', '.join(known) or 'none'})")
        if not chosen:
            raise TokdeckError(f"--ray-address {self.address}: the Ray cluster has no live node")
        return [n["NodeID"] for n in chosen]

    async def clock_offsets(self) -> list[float]:
        async def offset(actor) -> float:
            samples = []
            for _ in range(ROUND_TRIPS):
                before = perf_counter()
                theirs = await actor.clock.remote()
                samples.append((before, theirs, perf_counter()))
            return clock_offset(samples)

        return list(await asyncio.gather(*(offset(a) for a in self.actors)))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close_now)

    def close_now(self) -> None:
        """End the actors and disconnect (the cluster itself goes on)."""
        if not self.actors and not self._connected:
            return
        ray = self._ray
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - gone already
                pass
        self.actors = []
        if self._connected:
            ray.shutdown()
            self._connected = False
