"""`tokdeck bench --workers N` from the command line: end to end, stopped by Ctrl-C or SIGTERM
(a partial result saved, no worker process left), and the flags it refuses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tokdeck_testing import REPO, busy_port, run_cli, subprocess_env
from tui.core.bench.sim import SimConfig, ThreadedSimulator

QUICK = ["--tokenizer", "cl100k_base", "--random-input-len", "16", "--disable-tqdm"]


def worker_pids(stderr: str) -> list[int]:
    found = re.search(r"sending from (\d+) worker processes \(pids ([\d, ]+)\)", stderr)
    assert found, stderr
    pids = [int(p) for p in found.group(2).split(", ")]
    assert len(pids) == int(found.group(1))
    return pids


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_bench_with_two_workers_runs_and_saves_every_request(tmp_path):
    with ThreadedSimulator(SimConfig(ttft_ms=20.0, itl_ms=2.0, output_tokens=8)) as url:
        proc = run_cli("bench", "--base-url", url, *QUICK, "--num-prompts", "40", "--random-output-len", "8",
                       "--request-rate", "100", "--workers", "2", "--save-detailed", "--result-dir", str(tmp_path),
                       "--csv", str(tmp_path / "rows.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "Serving Benchmark Result" in proc.stdout and "Traceback" not in proc.stderr
    pids = worker_pids(proc.stderr)
    (saved,) = tmp_path.glob("*.json")
    d = json.loads(saved.read_text())
    assert d["workers"] == 2 and d["worker_transport"] == "processes" and d["partial"] is False
    assert d["completed"] == 40 and d["failed"] == 0 and d["internal_errors"] == []
    assert len(d["start_times"]) == 40 and d["errors"] == [""] * 40
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == 41
    assert all(gone(pid) for pid in pids)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_stop_ends_every_worker_and_saves_a_partial_result(tmp_path, how):
    server = ThreadedSimulator(SimConfig(ttft_ms=10.0, itl_ms=50.0))
    url = server.start()
    try:
        cmd = [sys.executable, "-m", "tui.cli", "bench", "--base-url", url, *QUICK, "--num-prompts", "40",
               "--max-concurrency", "4", "--random-output-len", "400", "--workers", "2", "--save-result",
               "--result-dir", str(tmp_path)]
        # its own session: a Ctrl-C reaches the whole process group, the workers too, as in a terminal
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
                                cwd=REPO, start_new_session=True)
        seen = ""
        while "sending from" not in seen:
            line = proc.stderr.readline().decode()
            assert line, seen + proc.stderr.read().decode()
            seen += line
        time.sleep(0.5)  # requests in flight (each takes 20 s)
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    err = seen + err.decode()
    assert proc.returncode == 130, err
    assert f"{how}: stopping" in err and "Traceback" not in err
    assert "Partial result" in out.decode()
    (saved,) = tmp_path.glob("*.json")
    d = json.loads(saved.read_text())
    assert d["partial"] is True and d["cancelled"] == 4 and d["internal_errors"] == []
    pids = worker_pids(seen)
    assert all(gone(pid) for pid in pids)


@pytest.mark.parametrize("flags, message", [
    (["--workers", "3", "--max-concurrency", "2"],
     "--workers 3 needs --max-concurrency of at least 3: the workers share the 2 slot(s), one at least each"),
    (["--ray-resource", "gpu"], "--ray-resource needs --ray-address"),
    (["--ray-address", " "], "--ray-address must not be empty"),
])
def test_workers_flags_that_cannot_work_are_one_line_errors(flags, message):
    proc = run_cli("bench", *QUICK, "--num-prompts", "4", *flags)
    assert proc.returncode == 2 and proc.stderr.strip() == f"tokdeck: error: {message}", proc.stderr


@pytest.mark.parametrize("value", ["0", "257", "two"])
def test_a_worker_count_out_of_range_is_refused(value):
    proc = run_cli("bench", *QUICK, "--workers", value)
    assert proc.returncode == 2 and "--workers" in proc.stderr and "Traceback" not in proc.stderr


def test_ray_without_the_extra_is_a_one_line_error(tmp_path):
    fake = tmp_path / "no_ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), subprocess_env()["PYTHONPATH"]])}
    proc = run_cli("bench", *QUICK, "--num-prompts", "4", "--ray-address", "auto", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("tokdeck: error: --ray-address needs Ray, which is not installed: "
                                   "pip install 'tokdeck[ray]'")


def test_an_unreachable_ray_address_is_a_one_line_error():
    with busy_port() as port:  # listening but never answering would hang Ray: take a free one instead
        pass
    with ThreadedSimulator(SimConfig()) as url:
        proc = run_cli("bench", "--base-url", url, *QUICK, "--num-prompts", "4", "--ray-address",
                       f"127.0.0.1:{port}", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tokdeck: error: --ray-address 127.0.0.1:{port}: cannot reach a Ray cluster there: Connection refused (is "
        "`ray start --head` running on that machine, and is the port open?)")
