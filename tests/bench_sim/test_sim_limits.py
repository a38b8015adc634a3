"""Runaway requests: the simulator caps what it generates, says so, and never starves its loop."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from sim_testing import chat_body, parse_sse
from tokdeck_testing import REPO, run_cli, subprocess_env
from tui.core.bench.sim import SimConfig

RUNAWAY = 10**12


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_a_runaway_max_tokens_is_capped_and_the_response_says_so(start_sim, http, stream, field):
    srv = await start_sim(itl_ms=0.0, max_output_tokens=300)
    body = chat_body(stream=stream, stream_options={"include_usage": True}, **{field: RUNAWAY})
    async with http.post(srv.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        assert r.headers["X-Tokdeck-Output-Cap"] == "300"
        raw = await r.read()
    if stream:
        events, done = parse_sse(raw)
        assert done
        assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "length"
        usage = events[-1]["usage"]
    else:
        out = json.loads(raw)
        assert out["choices"][0]["finish_reason"] == "length"
        usage = out["usage"]
    assert usage["completion_tokens"] == 300 and usage["tokdeck_output_cap"] == 300
    assert srv.records[-1].completion_tokens == 300 and srv.records[-1].finish_reason == "length"


async def test_within_the_cap_nothing_is_said(start_sim, http):
    srv = await start_sim(itl_ms=0.0, max_output_tokens=300)
    async with http.post(srv.url + "/v1/chat/completions", json=chat_body(max_tokens=300)) as r:
        assert "X-Tokdeck-Output-Cap" not in r.headers
        assert "tokdeck_output_cap" not in (await r.json())["usage"]


def test_the_cap_and_the_natural_length_are_checked():
    from tui.core.errors import TokdeckError

    for bad in (dict(max_output_tokens=0), dict(max_output_tokens=10**7),
                dict(max_output_tokens=100, output_tokens=101)):
        with pytest.raises(TokdeckError):
            SimConfig(**bad).validate()
    proc = run_cli("sim", "--max-output-tokens", "1000000000000")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "max_output_tokens" in proc.stderr


async def test_a_stream_without_gaps_lets_the_event_loop_run(start_sim):
    """itl 0: the stream is always behind its schedule and never sleeps; it must still yield,
    or /health, other streams and a shutdown wait for the whole response."""
    srv = await start_sim(ttft_ms=0.0, itl_ms=0.0, max_output_tokens=262_144)
    finished = threading.Event()
    received = []

    def read_fast():  # a client in another thread, so the simulator's writes never wait for it
        req = urllib.request.Request(srv.url + "/v1/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"prompt": "hi", "max_tokens": RUNAWAY, "stream": True}).encode())
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                while chunk := r.read(1 << 16):
                    received.append(len(chunk))
        finally:
            finished.set()

    reader = threading.Thread(target=read_fast)
    reader.start()
    turns = 0
    while not finished.is_set():
        await asyncio.sleep(0.005)
        turns += 1
    reader.join()
    assert srv.records[-1].completion_tokens == 262_144
    assert turns >= 20, f"the event loop ran {turns} time(s) during a {sum(received):,}-byte stream"


def test_sim_answers_health_and_stops_on_sigterm_with_a_runaway_request_in_flight():
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "sim", "--port", "0", "--ttft-ms", "0",
                             "--itl-ms", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=REPO)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)
        req = urllib.request.Request(url + "/v1/chat/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps(chat_body(max_tokens=RUNAWAY, stream=True)).encode())
        stream = urllib.request.urlopen(req, timeout=30)
        stream.read(4096)  # the runaway response is under way (32,768 tokens at 1 ms each)
        t0 = time.monotonic()
        with urllib.request.urlopen(url + "/health", timeout=10) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 2
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        stopped_in = time.monotonic() - t0
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert stopped_in < 5, f"SIGTERM took {stopped_in:.1f} s"
    assert "stopped after 1 request(s)" in out


@pytest.mark.parametrize("flags, env, words", [
    (["--model", ""], {}, "simulator: model must be a non-empty name without control characters"),
    (["--api-key-env", "SIM_KEY"], {"SIM_KEY": "sk-sim-secret\n"},
     "simulator: the API key contains a control character (U+000A (a newline)): remove it"),
])
def test_names_and_keys_no_client_could_send_are_refused(flags, env, words):
    proc = run_cli("sim", "--port", "0", *flags, env=env, timeout=30)
    assert proc.returncode == 2 and proc.stderr.strip() == f"tokdeck: error: {words}"
    assert "sk-sim-secret" not in proc.stderr
