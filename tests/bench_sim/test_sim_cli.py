"""`tokdeck sim` as a user runs it: a subprocess answering over loopback, stopped cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

from tokdeck_testing import busy_port, REPO, run_cli, subprocess_env


def _start(*args, env=None):
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "sim", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(env), cwd=REPO)
    head = [proc.stdout.readline()]
    m = re.search(r"http://127\.0\.0\.1:(\d+)", head[0])
    assert m, (head, proc.stderr.read() if proc.poll() is not None else "")
    while "Ctrl-C" not in head[-1] and head[-1]:
        head.append(proc.stdout.readline())
    return proc, m.group(0), "".join(head)


def _stop(proc, sig):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_cli_serves_and_stops_cleanly_on_sigterm():
    proc, url, head = _start("--ttft-ms", "1", "--itl-ms", "0", "--output-tokens", "4", "--cut-rate", "0.25")
    try:
        with urllib.request.urlopen(url + "/health", timeout=10) as r:
            assert r.status == 200
        req = urllib.request.Request(url + "/v1/chat/completions",
                                     data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["usage"]["completion_tokens"] == 4
    finally:
        code, out, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert "cut connections 0.25" in head  # the fault config is printed on start
    assert "stopped after 1 request(s)" in out


def test_cli_ctrl_c_is_clean():
    proc, _, head = _start("--api-key-env", "SIM_KEY", env={"SIM_KEY": "topsecret"})
    code, out, err = _stop(proc, signal.SIGINT)
    out = head + out
    assert code == 0 and "Traceback" not in err
    assert "topsecret" not in out + err and "API key required" in out


def test_cli_port_in_use():
    with busy_port() as port:
        proc = run_cli("sim", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_cli_bad_values():
    proc = run_cli("sim", "--error-rate", "0.8", "--cut-rate", "0.5")
    assert proc.returncode == 2 and "add up to" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("sim", "--api-key-env", "TOKDECK_SIM_UNSET_VAR")
    assert proc.returncode == 2 and "TOKDECK_SIM_UNSET_VAR" in proc.stderr


def test_non_loopback_host_warns():
    from tui.core.bench.sim import is_loopback_host

    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.1.2.3") and not is_loopback_host("")


def test_cli_workers_serve_on_one_port_and_stop_together():
    proc, url, head = _start("--workers", "2", "--ttft-ms", "1", "--itl-ms", "0", "--output-tokens", "2")
    try:
        m = re.search(r"workers: 2 processes on port \d+ \(pids (\d+), (\d+)\)", head)
        assert m, head
        pids = {int(m.group(1)), int(m.group(2))}
        seen = set()
        for _ in range(200):
            with urllib.request.urlopen(url + "/health", timeout=10) as r:
                seen.add(json.loads(r.read())["pid"])
            if len(seen) == 2:
                break
        assert seen == pids
        for _ in range(6):
            req = urllib.request.Request(url + "/v1/completions", data=json.dumps({"prompt": "hi"}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err
    assert "stopped after 6 request(s) (ok 6); writes late by" in out  # every worker's requests
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} is still running")


def test_cli_capacity_flags():
    proc, _, head = _start("--max-concurrency", "3", "--itl-growth", "0.25")  # the old name of --max-batch
    code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "capacity: max batch 3, ITL growth 0.25 per request in the batch" in head
    proc = run_cli("sim", "--workers", "2", "--max-batch", "4")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("tokdeck: error: simulator: the capacity model (--max-batch, --itl-growth) is "
                                   "one server's batch: use it with --workers 1")
    for flag, value in (("--itl-growth", "-1"), ("--itl-growth", "nan"), ("--workers", "0"), ("--workers", "65"),
                        ("--max-batch", "0")):
        proc = run_cli("sim", flag, value)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (flag, value, proc.stderr)
        assert proc.stderr.count("\n") == 1 and flag in proc.stderr


def test_cli_workers_refuse_a_port_another_group_holds():
    """SO_REUSEPORT would let a second `tokdeck sim --workers` join the first one's port and share its
    connections: refused like any port in use."""
    import socket

    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = run_cli("sim", "--workers", "2", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: cannot listen on 127.0.0.1:{port}: address already in use"
