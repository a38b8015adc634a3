"""`tokdeck serve` as a user runs it: a real process answering over loopback."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

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


@pytest.mark.parametrize("option, value", [
    ("--max-body-mb", "0"), ("--max-body-mb", "-1"), ("--max-body-mb", "inf"), ("--max-body-mb", "nan"),
    ("--max-body-mb", "0.0005"),  # 524 bytes: below 1 KB
    ("--idle-timeout", "0"), ("--idle-timeout", "inf"), ("--idle-timeout", "nan"),
])
def test_limits_that_make_no_sense_are_refused(option, value):
    proc = run_cli("serve", option, value, "--port", "0", timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"argument {option}: must be a" in proc.stderr


def _raw(url: str, data: bytes, wait_s: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes to the service; what comes back until it closes the connection, and when."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return got, time.monotonic() - started


def test_stalled_requests_are_timed_out_and_disconnects_are_one_line(cli_server):
    """A partial body stayed open for good (100 s and more), and each client that went away in
    the middle of a body left a full traceback in the log."""
    with cli_server("--idle-timeout", "1") as (proc, url, lines):
        got, took = _raw(url, b"POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\": \"ab")
        assert got.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in got and took < 8
        got, took = _raw(url, b"POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Le")  # headers that stop
        assert got == b"" and took < 8
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as sock:  # a client that gives up mid-body
            sock.sendall(b"POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"text\": \"abc")
            time.sleep(0.3)
        got, _ = _raw(url, b"POST /calculate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\nZZ")
        assert got.startswith(b"HTTP/1.") and b" 400 " in got.split(b"\r\n")[0]  # a broken chunk
        status, body = _request(f"{url}/calculate", {"text": "still here", "tokenizer": "cl100k_base"})
        assert status == 200 and body["token_count"] == 2
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        stderr = "".join(lines) + proc.stderr.read().decode()
    assert "Traceback" not in stderr, stderr
    assert "idle timeout 1 s" in stderr
    assert stderr.count("sent nothing for 1 s in the middle of POST /calculate (12 of 100 bytes received)") == 1, stderr
    assert stderr.count("closed the connection in the middle of POST /calculate (13 of 1,000 bytes received)") == 1
    assert stderr.count("Expected LF after chunk data") == 1


def test_the_body_limit_holds_for_every_framing(cli_server):
    """The limit used to be dropped for chunked bodies when --max-body-mb made it 0 bytes."""
    big = json.dumps({"text": "x" * 3000, "tokenizer": "cl100k_base"}).encode()
    with cli_server("--max-body-mb", "0.001") as (proc, url, lines):  # 1,048 bytes
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 500]), big[i:i + 500]) for i in range(0, len(big), 500))
        for head, body in [(f"Content-Length: {len(big)}\r\n".encode(), big),
                           (b"Transfer-Encoding: chunked\r\n", chunks + b"0\r\n\r\n"),
                           (f"Content-Encoding: gzip\r\nContent-Length: {len(gzip.compress(big))}\r\n".encode(),
                            gzip.compress(big))]:  # 43 bytes on the wire, 3,045 decoded
            got, _ = _raw(url, b"POST /calculate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n" + body)
            assert got.startswith(b"HTTP/1.1 413 ") and b"limit of 1,048 bytes" in got, (head, got[:300])
        got, _ = _raw(url, b"POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n"
                           b"Connection: close\r\n\r\nnope")
        assert got.startswith(b"HTTP/1.1 400 ") and b'"invalid_body"' in got
        status, body = _request(f"{url}/calculate", {"text": "x" * 900, "tokenizer": "cl100k_base"})
        assert status == 200
        proc.terminate()
        proc.wait(timeout=30)
        stderr = "".join(lines) + proc.stderr.read().decode()
    assert "Traceback" not in stderr
