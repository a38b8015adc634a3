"""`tokdeck bench` as a user runs it (a subprocess) against the simulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tokdeck_testing import REPO, run_cli, subprocess_env
from tui.core.bench.sim import SimConfig, ThreadedSimulator

SMALL = ["--num-prompts", "12", "--random-input-len", "24", "--random-output-len", "6", "--disable-tqdm"]


@pytest.fixture
def sim():
    s = ThreadedSimulator(SimConfig(ttft_ms=10.0, itl_ms=1.0, error_rate=0.25, seed=3))
    url = s.start()
    try:
        yield s, url
    finally:
        s.stop()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_without_base_url_runs_the_builtin_simulator_and_says_so():
    proc = run_cli("bench", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "built-in simulator" in proc.stderr and "its own process" in proc.stderr
    out = proc.stdout
    assert "============ Serving Benchmark Result ============" in out
    assert "Simulator lateness p50/p99/max (ms):" in out  # read from its /health at the end
    assert "Successful requests:                     12" in out
    assert "Mean TTFT (ms):" in out and "P99 ITL (ms):" in out and "Token counts: input tokens from usage (12)" in out


def test_failed_requests_still_exit_zero_with_reasons_and_files(sim, tmp_path):
    server, url = sim
    csv_path = tmp_path / "rows.csv"
    proc = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", *SMALL, "--save-detailed",
                   "--result-dir", str(tmp_path / "res"), "--csv", str(csv_path),
                   "--metric-percentiles", "50,99.9", "--percentile-metrics", "ttft,e2el",
                   "--goodput", "ttft:5000", "e2el:10000")
    assert proc.returncode == 0, proc.stderr
    ok = server.counts.get("ok", 0)
    assert 0 < ok < 12
    assert f"Failed requests:                         {12 - ok}" in proc.stdout
    assert "HTTP 500" in proc.stdout and "Failed requests by reason:" in proc.stdout
    files = list((tmp_path / "res").iterdir())
    assert len(files) == 1 and files[0].name.startswith("openai-chat-infqps-tokdeck-sim-")
    d = json.loads(files[0].read_text())
    assert d["completed"] == ok and d["failed"] == 12 - ok and d["request_goodput"] is not None
    for k in ("p50_ttft_ms", "p99.9_ttft_ms", "p99.9_e2el_ms", "mean_e2el_ms", "ttfts", "itls", "errors",
              "input_lens", "output_lens", "start_times", "generated_texts", "token_count_sources", "client_health"):
        assert k in d, k
    assert "p99_itl_ms" not in d
    assert sum(1 for e in d["errors"] if e) == 12 - ok
    assert d["partial"] is False
    assert len(csv_path.read_text().splitlines()) == 13


def test_every_goodput_flag_counts(tmp_path):
    proc = run_cli("bench", *SMALL, "--goodput", "ttft:5000", "--goodput", "e2el:10000 tpot:1000", "--save-result",
                   "--result-dir", str(tmp_path / "res"))
    assert proc.returncode == 0, proc.stderr
    (saved,) = (tmp_path / "res").iterdir()
    assert json.loads(saved.read_text())["goodput_slos_ms"] == {"ttft": 5000.0, "e2el": 10000.0, "tpot": 1000.0}


def test_unreachable_endpoint_is_one_line_and_nonzero():
    proc = run_cli("bench", "--base-url", f"http://127.0.0.1:{free_port()}", "--model", "m", *SMALL)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("tokdeck: error: cannot reach http://127.0.0.1:") and "Traceback" not in proc.stderr


def test_unreadable_dataset_is_refused(sim, tmp_path):
    _, url = sim
    missing = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", "--dataset-name", "custom",
                      "--dataset-path", str(tmp_path / "none.jsonl"), "--disable-tqdm")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n', "utf-8")
    broken = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", "--dataset-name", "custom",
                     "--dataset-path", str(bad), "--disable-tqdm")
    assert broken.returncode == 2 and f"{bad}:2: invalid JSON" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) <= 3 and "Traceback" not in broken.stderr


@pytest.mark.parametrize("flags", [
    ["--request-rate", "-1"], ["--num-prompts", "0"], ["--percentile-metrics", "ttft,latency"],
    ["--metric-percentiles", "150"], ["--goodput", "speed:5"], ["--dataset-name", "custom"],
    ["--ramp-up-strategy", "linear"], ["--header", "novalue"], ["--backend", "tgi"],
    ["--base-url", "gpu1:8000"], ["--base-url", "https://127.0.0.1:9", "--ca-bundle", "/nonexistent.pem"],
])
def test_bad_flags_exit_2_without_a_run(flags):
    proc = run_cli("bench", *flags)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Serving Benchmark Result" not in proc.stdout and "Traceback" not in proc.stderr


def test_the_api_key_never_appears_in_output_or_files(tmp_path):
    secret = "sk-SECRET-do-not-leak-9876"
    server = ThreadedSimulator(SimConfig(ttft_ms=5.0, itl_ms=1.0, api_key=secret))
    url = server.start()
    try:
        out_dir = tmp_path / "out"
        proc = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", *SMALL, "--save-detailed",
                       "--result-dir", str(out_dir), "--csv", str(out_dir / "r.csv"),
                       env={"OPENAI_API_KEY": secret})
        assert proc.returncode == 0, proc.stderr
        assert "Successful requests:                     12" in proc.stdout  # the key was sent
        texts = [proc.stdout, proc.stderr] + [p.read_text() for p in out_dir.iterdir()]
        assert all(secret not in t for t in texts)
        other = run_cli("bench", "--base-url", url, "--tokenizer", "cl100k_base", *SMALL,
                        "--api-key-env", "MY_KEY", env={"MY_KEY": secret, "OPENAI_API_KEY": "wrong"})
        assert other.returncode == 0 and "Successful requests:                     12" in other.stdout
        assert secret not in other.stdout + other.stderr
    finally:
        server.stop()


def test_ctrl_c_stops_and_saves_a_partial_result(tmp_path):
    server = ThreadedSimulator(SimConfig(ttft_ms=10.0, itl_ms=50.0))
    url = server.start()
    try:
        cmd = [sys.executable, "-m", "tui.cli", "bench", "--base-url", url, "--tokenizer", "cl100k_base",
               "--num-prompts", "40", "--max-concurrency", "4", "--random-input-len", "16",
               "--random-output-len", "400", "--disable-tqdm", "--save-result", "--result-dir", str(tmp_path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
                                cwd=REPO)
        started = proc.stderr.readline().decode()  # "tokdeck bench: 40 requests to ..." just before the run
        assert "40 requests to" in started
        time.sleep(1.0)  # requests are in flight (each takes 20 s)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    out, err = out.decode(), started + err.decode()
    assert proc.returncode == 130, err
    assert "Serving Benchmark Result" in out and "Partial result" in out
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    d = json.loads(files[0].read_text())
    assert d["partial"] is True and d["cancelled"] == 4 and d["completed"] < 40


def test_profile_gives_endpoint_model_and_key_without_leaking_it(tmp_path):
    secret = "sk-PROFILE-secret-5555"
    server = ThreadedSimulator(SimConfig(ttft_ms=5.0, itl_ms=1.0, api_key=secret, model="served-x",
                                         strict_model=True))
    url = server.start()
    try:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[[profiles]]\nname = "gpu"\nbase_url = "{url}"\nbackend = "openai"\n'
                       f'model = "served-x"\napi_key = "{secret}"\nheaders = {{ X-Team = "bench" }}\n', "utf-8")
        os.chmod(cfg, 0o600)
        out = tmp_path / "out"
        proc = run_cli("bench", "--profile", "gpu", "--tokenizer", "cl100k_base", *SMALL, "--save-result",
                       "--result-dir", str(out), env={"TOKDECK_CONFIG": str(cfg)})
        assert proc.returncode == 0, proc.stderr
        assert "Successful requests:                     12" in proc.stdout
        assert {r.path for r in server.records} == {"/v1/completions"}  # the profile's backend
        saved = next(out.iterdir()).read_text()
        assert json.loads(saved)["model_id"] == "served-x"
        assert all(secret not in t for t in (proc.stdout, proc.stderr, saved))
        unknown = run_cli("bench", "--profile", "nope", env={"TOKDECK_CONFIG": str(cfg)})
        assert unknown.returncode == 2 and "no profile named 'nope'" in unknown.stderr
    finally:
        server.stop()


def test_a_separate_simulator_tells_bench_its_tokenizer(tmp_path):
    """A model name no family matches: bench counts with the tokenizer the simulator advertises."""
    server = ThreadedSimulator(SimConfig(model="house-model-x", tokenizer="qwen3", ttft_ms=5.0, itl_ms=1.0, usage="none"))
    url = server.start()
    try:
        proc = run_cli("bench", "--base-url", url, *SMALL, "--save-result", "--result-dir", str(tmp_path / "res"))
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    (saved,) = [json.loads(p.read_text()) for p in (tmp_path / "res").iterdir()]
    assert saved["tokenizer_id"] == "qwen3"
    # no usage from the server: the output counts come from the same tokenizer the simulator used
    assert saved["total_output_tokens"] == 12 * 6


def test_a_request_left_unaccounted_is_an_internal_error_exit_70_after_saving(monkeypatch, tmp_path, capsys):
    """Made impossible by the engine; if it ever happens, it is said and the exit status is not 0."""
    from tui.cli import main
    from tui.core.bench.engine import BenchmarkRun

    record = BenchmarkRun._record

    def losing(self, rec):  # bookkeeping that drops request 0
        if rec.index != 0:
            record(self, rec)

    monkeypatch.setattr(BenchmarkRun, "_record", losing)
    code = main(["bench", *SMALL, "--save-result", "--result-dir", str(tmp_path / "res")])
    out, err = capsys.readouterr()
    assert code == 70
    assert "INTERNAL ERROR: accounting: 12 request(s) sent but 11 completed, 0 failed and 0 cancelled" in out
    assert err.strip().splitlines()[-1].startswith("tokdeck: internal error: accounting: 12 request(s) sent")
    (saved,) = (tmp_path / "res").iterdir()
    assert json.loads(saved.read_text())["internal_errors"][0].startswith("accounting: ")
