"""The simulator in processes of its own: the built-in one of `tokdeck bench` and the Bench pane
(:class:`SimProcess`), and the worker processes of `tokdeck sim --workers N` (:func:`serving`).

A client that shares its process (or its event loop) with the server it measures measures its
own load too: against an in-process simulator, 1,000 streams at once showed a mean TTFT of
seconds for a configured 150 ms. In its own process the simulator has its own core and its own
clock, and it says when it fell behind anyway (its lateness, in ``/health``).

Children. A child is a fresh ``python -c`` process (never a fork: the dashboard has threads). It
reads one JSON line on stdin - what to serve, with the config and its API key, so the key is on
no command line and in no environment - and answers one line on stdout: ``READY {"url", "pids"}``
or ``ERROR <one line>``. Its stdin then stays open, and the child stops when it closes: on
:meth:`SimProcess.stop`, or when the parent dies in any way, SIGKILL included (the kernel closes
the pipe). SIGTERM stops it too; SIGINT is ignored, so a Ctrl-C in the terminal reaches only
tokdeck, which ends its run first. (Not PR_SET_PDEATHSIG: it fires when the *thread* that
started the child ends, and the dashboard starts the simulator from a worker thread.)

Workers. ``serving(cfg, workers=N)`` serves as worker 0 in the calling process and starts N-1
worker children; all listen on one port with SO_REUSEPORT, and the kernel spreads connections
over them. They share a :class:`SimBoard`, so ``/health`` and ``/metrics`` of any of them report
the whole server, lateness included. The capacity model (``max_batch``, ``itl_growth``) is one
batch of one server and needs ``workers=1``: split over processes that the kernel feeds unevenly
it would have no clear knee.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..errors import TokdeckError
from .sim import SimConfig

if TYPE_CHECKING:  # pragma: no cover
    from .results import BenchResult
    from .sim import SimServer
    from .simboard import BoardTotals

MAX_WORKERS = 64
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_CHILD_CODE = "from tui.core.bench.simproc import child_main; child_main()"


# ----------------------------------------------------------------------------- serving
class SimGroup:
    """The simulator's processes while :func:`serving` runs: ``server`` (worker 0, in this
    process), ``pids`` (this process first) and, once they have stopped, ``totals``."""

    def __init__(self, server: "SimServer", pids: list[int]) -> None:
        self.server, self.pids = server, pids
        self.totals: "BoardTotals | None" = None


@contextlib.asynccontextmanager
async def serving(cfg: SimConfig, host: str = "127.0.0.1", port: int = 0, workers: int = 1, *,
                  worker_stderr: Any = None) -> AsyncIterator[SimGroup]:
    """Serve ``cfg`` from ``workers`` processes - this one and ``workers - 1`` children - while
    the block runs. On entry every worker listens; worker 0 may still be loading its text
    (``await group.server.ready()`` waits for it; requests wait on their own). TokdeckError (one
    line) when it cannot start."""
    from .sim import SimServer
    from .simboard import SimBoard

    check_workers(cfg, workers)
    loop = asyncio.get_running_loop()
    board = SimBoard.create(workers, shared=workers > 1)
    server = SimServer(cfg, host, port, board=board, worker=0, reuse_port=workers > 1)
    children: list[_Child] = []
    group = None
    try:
        if workers > 1 and port:
            _refuse_taken_port(host, port)
        await server.listen()
        if workers > 1:
            children = await loop.run_in_executor(None, _start_workers, cfg, host, server.port, board, worker_stderr)
            board.unlink()  # every worker has mapped it
        group = SimGroup(server, [os.getpid()] + [c.proc.pid for c in children])
        yield group
    finally:
        for child in children:
            child.close()  # they stop side by side with this one
        await server.close()
        await loop.run_in_executor(None, _wait_all, children, time.monotonic() + STOP_TIMEOUT_S)
        if group is not None:
            group.totals = board.totals()  # every worker's last counts are in
        board.close()


def check_workers(cfg: SimConfig, workers: int) -> None:
    """TokdeckError (one line) for a worker count this machine or this config cannot have."""
    if not 1 <= workers <= MAX_WORKERS:
        raise TokdeckError(f"simulator: workers must be between 1 and {MAX_WORKERS}, not {workers}")
    if workers > 1 and (cfg.max_batch is not None or cfg.itl_growth):
        raise TokdeckError("simulator: the capacity model (--max-batch, --itl-growth) is one server's batch: "
                           "use it with --workers 1")
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise TokdeckError("simulator: several workers need SO_REUSEPORT, which this system lacks")


def _refuse_taken_port(host: str, port: int) -> None:
    """TokdeckError when ``host:port`` is taken. With SO_REUSEPORT a bind succeeds beside any
    other socket that set it too - another `tokdeck sim --workers` of the same user - and the
    two servers would share the connections; a plain bind finds out first."""
    import errno

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return  # the server's own bind says what is wrong
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise TokdeckError(f"cannot listen on {host}:{port}: address already in use") from None
                return


async def _serve_worker(spec: dict, stop: asyncio.Event) -> None:
    from .sim import SimServer
    from .simboard import SimBoard

    board = SimBoard.attach(spec["board"], spec["workers"])
    server = SimServer(SimConfig(**spec["config"]), spec["host"], spec["port"], board=board, worker=spec["worker"],
                       reuse_port=True)
    try:
        await server.start()
        _ready(server, [os.getpid()])
        await stop.wait()
    finally:
        await server.close()
        board.close()


def _start_workers(cfg: SimConfig, host: str, port: int, board, stderr) -> list["_Child"]:
    """Workers 1..N-1, listening on ``port`` beside this process; all of them started or none."""
    children: list[_Child] = []
    try:
        for k in range(1, board.workers):
            children.append(_Child({"role": "worker", "config": asdict(cfg), "host": host, "port": port,
                                    "workers": board.workers, "worker": k, "board": board.path}, stderr))
        deadline = time.monotonic() + START_TIMEOUT_S
        for child in children:
            child.wait_ready(deadline)
    except BaseException:
        for child in children:
            child.close()
        _wait_all(children, time.monotonic() + STOP_TIMEOUT_S)
        raise
    return children


# ----------------------------------------------------------------------------- the parent's side
class SimProcess:
    """The simulator in a child process, for a client in this one.

    ``url = sim.start()`` ... ``sim.stop()``, or ``with SimProcess(cfg) as url:``. ``health()``
    is the server's ``GET /health`` (batch, requests by outcome, lateness); ``pids`` are the
    child's and its workers' process ids. Records of single requests stay in the child: use an
    in-process :class:`SimServer` where a test needs them."""

    def __init__(self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, workers: int = 1):
        self.cfg = (cfg or SimConfig()).validate()
        check_workers(self.cfg, workers)
        self.host, self.port, self.workers = host, port, workers
        self.url = ""
        self.pids: tuple[int, ...] = ()
        self._child: _Child | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        if self._child is not None:
            raise RuntimeError("SimProcess already started")
        child = _Child({"role": "group", "config": asdict(self.cfg), "host": self.host, "port": self.port,
                        "workers": self.workers}, subprocess.DEVNULL)
        try:
            info = child.wait_ready(time.monotonic() + timeout)
        except BaseException:
            child.close()
            child.wait(time.monotonic() + STOP_TIMEOUT_S)
            raise
        self._child = child
        self.url, self.port, self.pids = info["url"], info["port"], tuple(info["pids"])
        return self.url

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the simulator and wait until none of its processes is left (idempotent)."""
        child, self._child = self._child, None
        if child is None:
            return
        deadline = time.monotonic() + timeout
        child.close()
        child.wait(deadline)
        # the workers are the child's to reap; had it to be killed, they still see their stdin
        # close and end on their own
        for pid in self.pids[1:]:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The simulator's ``GET /health``; TokdeckError when it does not answer."""
        import http.client

        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        conn = http.client.HTTPConnection(host, self.port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read(1 << 20)
            if resp.status != 200:
                raise TokdeckError(f"simulator: /health answered HTTP {resp.status}")
            data = json.loads(body)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise TokdeckError(f"simulator: /health did not answer: {exc}") from None
        finally:
            conn.close()
        if not isinstance(data, dict):
            raise TokdeckError("simulator: /health is not a JSON object")
        return data

    def with_lateness(self, result: "BenchResult") -> "BenchResult":
        """``result`` with this simulator's lateness in its client health (see :func:`judge_lateness`);
        unchanged when the simulator no longer answers."""
        try:
            health = self.health()
        except TokdeckError:
            return result
        return judge_lateness(result, health, self.cfg)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def judge_lateness(result: "BenchResult", health: dict[str, Any], cfg: SimConfig) -> "BenchResult":
    """``client_health.simulator`` = the simulator's write lateness (``late_ms`` of its /health),
    the limit it is held to - the client's own rule for its event loop, from the configured TTFT
    and ITL - and whether it was over; over it, the result's warning says that the simulator,
    not the client, missed the timings."""
    from .engine import lag_limit_ms
    from .results import Lateness, SimulatorHealth

    late = health.get("late_ms")
    keys = ("writes", "mean", "p50", "p99", "max")
    if not isinstance(late, dict) or not all(_finite_number(late.get(k)) for k in keys):
        return result
    spread = Lateness(*(float(late[k]) for k in keys))
    limit = lag_limit_ms(cfg.ttft_ms, cfg.itl_ms)
    behind = spread.p99 > limit
    health = result.client_health
    warning = health.warning
    if behind:
        note = (f"the simulator was late by {spread.p99:.1f} ms (p99 of its writes, max {spread.max:.1f} ms; "
                f"limit {limit:.1f} ms): it did not keep its configured timings, so TTFT and ITL partly measure a "
                "busy simulator; give it fewer concurrent streams or idle CPU cores, or run `tokdeck sim "
                "--workers N` and pass --base-url")
        warning = f"{warning}; {note}" if warning else note
    return replace(result, client_health=replace(health, simulator=SimulatorHealth(spread, limit, behind),
                                                 warning=warning))


def _finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


# ----------------------------------------------------------------------------- child processes
class _Child:
    """A child process started with ``spec`` on its stdin, which stays open until :meth:`close`."""

    def __init__(self, spec: dict, stderr: Any) -> None:
        # -P: not the current directory first on sys.path, where another `tui` package may be
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", _CHILD_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr, env=_child_env(), close_fds=True)
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(spec).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:  # it died at once: wait_ready() says how
            pass

    def wait_ready(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout.fileno(), deadline)
        if line.startswith(b"READY "):
            return json.loads(line[6:])
        if line.startswith(b"ERROR "):
            raise TokdeckError(line[6:].decode("utf-8", "replace").strip())
        code = self.proc.poll()
        raise TokdeckError("simulator: its process " + (f"ended at start (exit code {code}; `tokdeck sim` shows why)"
                                                        if code is not None else "did not start in time"))

    def close(self) -> None:
        """Close its stdin: the child stops."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def wait(self, deadline: float) -> None:
        try:
            self.proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _wait_all(children: list[_Child], deadline: float) -> None:
    for child in children:
        child.wait(deadline)


def _read_line(fd: int, deadline: float | None) -> bytes:
    """One line from ``fd`` without reading past it; b"" at end of file or at the deadline."""
    import select

    data = b""
    while not data.endswith(b"\n"):
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return b""
        byte = os.read(fd, 1)
        if not byte:
            return b""
        data += byte
    return data


def _child_env() -> dict[str, str]:
    """This environment, with this process's import path as PYTHONPATH (the folder this ``tui``
    package comes from first), so the child runs the same code with the same libraries, from
    whatever directory and however tokdeck was installed or started."""
    import tui

    root = str(Path(tui.__file__).resolve().parent.parent)
    env = dict(os.environ)
    given = env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in [root, *given, *sys.path] if p))
    return env


def _alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel (a zombie counts as alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def child_main() -> None:
    """The child's entry point (see the module docstring); exits 0, or 2 after an ERROR line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        spec = json.loads(_read_line(0, None))
        code = asyncio.run(_child(spec))
    except Exception as exc:  # noqa: BLE001 - said on the one line the parent reads
        _say(f"ERROR simulator: {exc if isinstance(exc, TokdeckError) else f'{type(exc).__name__}: {exc}'}")
        code = 2
    sys.exit(code)


async def _child(spec: dict) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await loop.connect_read_pipe(lambda: _StopOnEof(stop), open(0, "rb", buffering=0, closefd=False))
    try:
        if spec["role"] == "worker":
            await _serve_worker(spec, stop)
            return 0
        async with serving(SimConfig(**spec["config"]), spec["host"], spec["port"], spec["workers"]) as group:
            # ready before the text is: the tokenizer loads here while the parent loads its own
            _ready(group.server, group.pids)
            await stop.wait()
    except TokdeckError as exc:
        _say(f"ERROR {exc}")
        return 2
    return 0


def _ready(server: "SimServer", pids: list[int]) -> None:
    _say("READY " + json.dumps({"url": server.url, "port": server.port, "pids": pids}))


class _StopOnEof(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()
