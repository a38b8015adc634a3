"""The simulator in child processes: start, answer, stop with nothing left behind, die with its
parent, serve from several workers on one port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from tokdeck_testing import NETGUARD_DIR, REPO, busy_port, subprocess_env

from tui.core.bench.sim import SimConfig
from tui.core.bench.simproc import SimProcess
from tui.core.errors import TokdeckError


def gone(pid: int) -> bool:
    """No such process (a zombie nobody reaped yet counts as gone: it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def wait_gone(pids, timeout: float = 15.0) -> list[int]:
    """The pids still running after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = [p for p in pids if not gone(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _complete(url: str, **body) -> dict:
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps({"prompt": "x", **body}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer k-123456"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_child_process_serves_then_stop_leaves_nothing_behind():
    sim = SimProcess(SimConfig(ttft_ms=1, itl_ms=0, output_tokens=3, api_key="k-123456"))
    url = sim.start()
    try:
        (pid,) = sim.pids
        assert pid != os.getpid() and not gone(pid)
        assert _complete(url)["usage"]["completion_tokens"] == 3
        health = sim.health()
        assert health["pid"] == pid and health["requests"] == {"ok": 1} and health["late_ms"]["writes"] == 1
        # the key travelled on the child's stdin: it is in neither its command line nor its environment
        for name in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{name}", "rb") as fh:
                assert b"k-123456" not in fh.read()
        with open(f"/proc/{pid}/environ", "rb") as fh:  # the tests' network guard reaches it too
            assert str(NETGUARD_DIR).encode() in fh.read()
        os.kill(pid, signal.SIGINT)  # a Ctrl-C in the terminal is tokdeck's to handle, not the simulator's
        time.sleep(0.3)
        assert sim.health()["pid"] == pid
    finally:
        sim.stop()
    assert gone(pid)
    with pytest.raises(TokdeckError, match="did not answer"):
        sim.health()
    sim.stop()  # twice is fine


def test_child_process_start_failure_is_one_line_and_leaves_nothing():
    with busy_port() as port:
        sim = SimProcess(SimConfig(), port=port)
        with pytest.raises(TokdeckError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"):
            sim.start()
    assert sim.pids == ()
    with pytest.raises(TokdeckError, match="no vocabulary"):
        SimProcess(SimConfig(tokenizer="estimate")).start()


def test_another_tui_package_in_the_current_directory_is_not_imported(tmp_path, monkeypatch):
    (tmp_path / "tui").mkdir()
    (tmp_path / "tui" / "__init__.py").write_text("raise ImportError('the wrong tui')\n")
    monkeypatch.chdir(tmp_path)
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=0, output_tokens=1)) as url:
        assert _get(url + "/health")["status"] == "ok"


def test_two_workers_answer_on_one_port_and_report_together():
    sim = SimProcess(SimConfig(ttft_ms=1, itl_ms=0, output_tokens=2), workers=2)
    url = sim.start()
    try:
        assert len(sim.pids) == 2
        seen = set()
        for _ in range(200):  # each new connection is spread by the kernel
            seen.add(_get(url + "/health")["pid"])
            if len(seen) == 2:
                break
        assert seen == set(sim.pids)
        for _ in range(20):
            _complete(url)
        health = sim.health()
        assert health["workers"] == 2
        assert health["requests"] == {"ok": 20}  # both workers' requests, whichever one answers
        assert health["late_ms"]["writes"] == 20
    finally:
        sim.stop()
    assert wait_gone(sim.pids, timeout=0.5) == []


def test_children_die_with_their_parent():
    code = ("import json, sys, time\n"
            "from tui.core.bench.sim import SimConfig\n"
            "from tui.core.bench.simproc import SimProcess\n"
            "sim = SimProcess(SimConfig(), workers=2)\n"
            "sim.start()\n"
            "print(json.dumps(sim.pids), flush=True)\n"
            "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=subprocess_env(), cwd=REPO)
    try:
        pids = json.loads(parent.stdout.readline())
        assert len(pids) == 2 and not any(gone(p) for p in pids)
    finally:
        parent.kill()  # no clean-up at all: the simulator must notice on its own
        parent.wait()
    assert wait_gone(pids) == []


def test_the_capacity_model_needs_one_worker():
    with pytest.raises(TokdeckError, match="use it with --workers 1"):
        SimProcess(SimConfig(max_batch=4), workers=2)
    with pytest.raises(TokdeckError, match="between 1 and 64"):
        SimProcess(SimConfig(), workers=65)
