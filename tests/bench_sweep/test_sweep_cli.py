"""`tokdeck bench --sweep` as a user runs it: the table and the answer, the sweep JSON (every step a
full vLLM-compatible result) and CSV, a stop signal saving a partial sweep, a server without
/metrics said once, bad flags refused in one line."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time

import pytest

from tokdeck_testing import REPO, run_cli, subprocess_env
from tui.core.bench.sim import SimConfig, ThreadedSimulator

SMALL = ("--tokenizer", "cl100k_base", "--random-input-len", "16", "--random-output-len", "8", "--num-prompts", "100",
         "--disable-tqdm")


@pytest.fixture
def sim_url():
    """4 places, 8-token answers of 65 ms: 4 streams never wait, 8 wait ~65 ms (TTFT ~95 ms)."""
    server = ThreadedSimulator(SimConfig(ttft_ms=30, itl_ms=5, max_batch=4))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _saved(tmp_path) -> dict:
    (path,) = tmp_path.glob("*.json")
    return json.loads(path.read_text())


def test_a_sweep_prints_its_answer_and_saves_json_and_one_csv_row_per_step(tmp_path, sim_url):
    single = run_cli("bench", "--base-url", sim_url, *SMALL, "--num-prompts", "4", "--save-result",
                     "--result-dir", str(tmp_path / "run"))
    assert single.returncode == 0, single.stderr
    # a plain run shows and saves the server's view too
    assert "Server view (vllm, " in single.stdout
    run_keys = set(_saved(tmp_path / "run"))
    assert _saved(tmp_path / "run")["server_metrics"]["engine"] == "vllm"

    rows = tmp_path / "steps.csv"
    p = run_cli("bench", "--base-url", sim_url, *SMALL, "--sweep", "concurrency=1,4,8", "--step-requests", "24",
                "--goodput", "ttft:70", "--save-result", "--result-dir", str(tmp_path), "--csv", str(rows))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "sweep concurrency=1,4,8: steps of 24 requests; SLO p99 TTFT ≤ 70 ms" in p.stderr
    assert "step 3 (concurrency 8): " in p.stderr and "broke the SLO: p99 TTFT " in p.stderr
    assert "Sweep Result (concurrency=1,4,8)" in p.stdout
    assert "capacity: 4 concurrent streams (" in p.stdout, p.stdout
    assert "concurrency 8 broke it" in p.stdout
    assert "Server view (vllm, " in p.stdout
    d = _saved(tmp_path)
    assert d["tokdeck_sweep"] == 1 and d["sweep"] == "concurrency=1,4,8" and d["partial"] is False
    assert d["capacity"]["load"] == 4 and d["answer"][0].startswith("capacity: 4 concurrent streams")
    assert d["slo"] == {"percentile": 99.0, "ttft_ms": 70.0}
    assert [s["value"] for s in d["steps"]] == [1, 4, 8]
    for step in d["steps"]:
        result = step["result"]
        assert run_keys <= set(result), run_keys - set(result)  # every key a plain run saves
        assert result["completed"] + result["failed"] == 24 and result["max_concurrency"] == step["value"]
        assert result["server_metrics"]["engine"] == "vllm"  # its samples: those of its own time (1 Hz)
    assert sum(len(s["result"]["server_metrics"]["samples"]["t"]) for s in d["steps"]) >= 1
    table = list(csv.DictReader(io.StringIO(rows.read_text())))
    assert [r["load"] for r in table] == ["1", "4", "8"]
    assert [r["slo_met"] for r in table] == ["1", "1", "0"]
    assert all(r["goodput"] and r["slo_met_share"] and r["p99_ttft_ms"] for r in table)


def test_a_server_without_metrics_is_said_once_and_the_sweep_goes_on(tmp_path, sim_url):
    p = run_cli("bench", "--base-url", sim_url, *SMALL, "--sweep", "concurrency=1,2", "--step-requests", "8",
                "--metrics-url", sim_url + "/nothing-here", "--save-result", "--result-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    note = f"no server view: {sim_url}/nothing-here answered HTTP 404"
    assert (p.stdout + p.stderr).count(note) == 1
    d = _saved(tmp_path)
    assert d["server_note"] == note
    assert all(s["result"]["server_metrics"]["samples"]["t"] == [] for s in d["steps"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_sweep_saves_the_steps_measured_marked_partial(tmp_path, sig):
    server = ThreadedSimulator(SimConfig(ttft_ms=10, itl_ms=50, max_batch=4))
    url = server.start()
    rows = tmp_path / "steps.csv"
    try:
        cmd = [sys.executable, "-m", "tui.cli", "bench", "--base-url", url, *SMALL, "--random-output-len", "10",
               "--sweep", "concurrency=1,2,4", "--step-duration", "20", "--goodput", "ttft:500",
               "--save-result", "--result-dir", str(tmp_path), "--csv", str(rows)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), cwd=REPO)
        while "sweep concurrency=1,2,4" not in (line := proc.stderr.readline().decode()):
            assert line, proc.stderr.read()
        time.sleep(2.5)  # the first step runs (20 s; a warm-up, then requests of 0.5 s)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()
    out, err = out.decode(), err.decode()
    assert proc.returncode == 130, err
    assert "stopping" in err and "Traceback" not in err and "interrupted" in err
    d = _saved(tmp_path)
    assert d["partial"] is True and d["stop_reason"] == "interrupted: the last step is partial"
    assert len(d["steps"]) == 1 and d["steps"][0]["result"]["partial"] is True
    assert d["steps"][0]["result"]["completed"] >= 1
    assert len(rows.read_text().splitlines()) == 2
    assert "Sweep Result" in out and "partial" in out


@pytest.mark.parametrize("args, words", [
    (("--sweep", "fast"), "argument --sweep: 'fast' is not a sweep"),
    (("--sweep", "rate=1,x"), "argument --sweep: step 2 of rate=: 'x' is not a number"),
    (("--step-duration", "5"), "--step-duration needs --sweep"),
    (("--sweep", "auto", "--slo-percentile", "100.5"), "--slo-percentile"),
    (("--sweep", "rate=1,2", "--max-concurrency", "4"), "drop --max-concurrency"),
    (("--sweep", "concurrency=1,2", "--request-rate", "4"), "--sweep sets the load of each step: drop --request-rate"),
    (("--sweep", "auto", "--step-duration", "2", "--step-requests", "9"), "contradict each other"),
    (("--sweep", "auto", "--metrics-url", "ftp://x/metrics"), "--metrics-url "),
    (("--metrics-url", "http://x/m", "--no-server-metrics"), "contradict each other"),
])
def test_bad_sweep_flags_are_one_line_errors(args, words):
    p = run_cli("bench", "--base-url", "http://127.0.0.1:9", *SMALL, *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert words in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("tokdeck")


def test_a_sweep_that_cannot_be_saved_says_so_in_one_line_after_its_table(tmp_path, sim_url):
    where = tmp_path / "results"
    where.mkdir()
    blocker = where / "not-a-dir"
    blocker.write_text("x")
    p = run_cli("bench", "--base-url", sim_url, *SMALL, "--sweep", "concurrency=1", "--step-requests", "4",
                "--save-result", "--result-dir", str(blocker))
    assert p.returncode == 2 and "Sweep Result" in p.stdout
    assert p.stderr.strip().splitlines()[-1].startswith("tokdeck: error: ")
    assert "cannot write the sweep" in p.stderr and "Traceback" not in p.stderr
    assert [f.name for f in where.iterdir()] == ["not-a-dir"]  # no temporary file left behind


def test_a_sweep_with_workers_spreads_each_step_that_has_streams_enough(tmp_path, sim_url):
    p = run_cli("bench", "--base-url", sim_url, *SMALL, "--sweep", "concurrency=1,4", "--step-requests", "16",
                "--workers", "2", "--save-result", "--result-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    steps = _saved(tmp_path)["steps"]
    assert [s["value"] for s in steps] == [1, 4]
    one, four = (s["result"] for s in steps)
    assert "workers" not in one  # one stream: sent from this process
    assert four["workers"] == 2 and four["worker_transport"] == "processes"
    for result in (one, four):
        assert result["completed"] == 16 and result["failed"] == 0 and result["internal_errors"] == []
