"""`tokdeck bench` stopped from outside: SIGTERM (a cancelled CI job) and SIGHUP (a closed SSH
session) keep what was measured, as Ctrl-C does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tokdeck_testing import REPO, subprocess_env
from tui.core.bench.sim import SimConfig, ThreadedSimulator


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_saves_a_partial_result_like_ctrl_c(tmp_path, sig):
    server = ThreadedSimulator(SimConfig(ttft_ms=10.0, itl_ms=50.0))
    url = server.start()
    csv_path = tmp_path / "rows.csv"
    try:
        cmd = [sys.executable, "-m", "tui.cli", "bench", "--base-url", url, "--tokenizer", "cl100k_base",
               "--num-prompts", "40", "--max-concurrency", "4", "--random-input-len", "16",
               "--random-output-len", "400", "--disable-tqdm", "--save-result", "--result-dir", str(tmp_path),
               "--csv", str(csv_path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
                                cwd=REPO)
        started = proc.stderr.readline().decode()  # "tokdeck bench: 40 requests to ..." just before the run
        assert "40 requests to" in started
        time.sleep(1.0)  # requests are in flight (each takes 20 s)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    out, err = out.decode(), started + err.decode()
    assert proc.returncode == 130, err
    assert f"{sig.name}: stopping" in err and "Traceback" not in err
    assert "Serving Benchmark Result" in out and "Partial result" in out
    (saved,) = tmp_path.glob("*.json")
    d = json.loads(saved.read_text())
    assert d["partial"] is True and d["cancelled"] == 4 and d["completed"] < 40
    assert len(csv_path.read_text().splitlines()) == 1 + d["completed"] + d["failed"]


def test_one_ctrl_c_stops_a_run_asking_the_builtin_simulator_for_a_runaway_output():
    cmd = [sys.executable, "-m", "tui.cli", "bench", "--num-prompts", "2", "--random-input-len", "16",
           "--output-len", str(10**12), "--disable-tqdm"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), cwd=REPO)
    try:
        while "2 requests to" not in (line := proc.stderr.readline().decode()):
            assert line, proc.stderr.read()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and time.monotonic() - t0 < 10, err
    assert b"Partial result" in out
