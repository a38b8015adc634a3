"""`tokdeck serve` as a user runs it: a real process answering over loopback."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

from tokdeck_testing import busy_port, run_cli


def _request(url, body=None, token=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_cli_serves_and_stops_cleanly_on_ctrl_c(cli_server, bundled):
    token = "tok-from-env-123"
    with cli_server("--preload", "gpt-4o", env={"TOKDECK_SERVE_TOKEN": token}) as (proc, url, lines):
        assert url.startswith("http://127.0.0.1:")
        status, health = _request(f"{url}/health")
        assert status == 200 and health["loaded"] == ["o200k_base"]  # preloaded before listening
        status, body = _request(f"{url}/calculate", {"text": "hello world", "model_name": "gpt-4o"})
        assert status == 401
        status, body = _request(f"{url}/calculate", {"text": "hello world", "model_name": "gpt-4o"}, token)
        assert status == 200 and body["token_count"] == bundled.get("o200k_base").count("hello world")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        stderr = "".join(lines) + proc.stderr.read().decode()
    assert "auth on" in stderr and "stopping" in stderr
    assert "Traceback" not in stderr and token not in stderr
    assert "warning" not in stderr  # loopback: nothing to warn about


def test_cli_warns_when_exposed(cli_server):
    with cli_server("--host", "0.0.0.0", "--access-log") as (proc, url, lines):
        port = url.rsplit(":", 1)[1]
        status, _ = _request(f"http://127.0.0.1:{port}/health")
        assert status == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        stderr = "".join(lines) + proc.stderr.read().decode()
    assert "warning: listening on 0.0.0.0" in stderr and "--auth-token" in stderr
    assert '"GET /health HTTP/1.1" 200' in stderr  # the access log, one line per request


def test_port_in_use_is_one_line_error():
    with busy_port() as port:
        proc = run_cli("serve", "--port", str(port), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tokdeck: error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_bad_options_are_one_line_errors():
    proc = run_cli("serve", "--preload", "no-such-model-xyz", "--port", "0", timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no-such-model-xyz" in proc.stderr
    proc = run_cli("serve", "--max-body-mb", "0")
    assert proc.returncode == 2 and "must be greater than 0" in proc.stderr
