"""Streams: `-`, /dev/stdin, a pipe's /dev/fd path, a named FIFO, read once and reported like the same
file; devices and terminals refused with one line."""

from __future__ import annotations

import json
import os
import threading

import pytest

from tokdeck_testing import SAMPLE_DATA, run_cli
from tui.core.datasets import export, scan_file
from tui.core.errors import TokdeckError


def comparable(report_dict: dict) -> dict:
    """A report without what differs between two runs on the same bytes (the name, the time)."""
    return {k: v for k, v in report_dict.items() if k not in ("file", "elapsed")}


def feed(path_or_fd, data: bytes) -> threading.Thread:
    """Write ``data`` to a FIFO path or a pipe's write end from a thread (a FIFO opens only with a reader)."""

    def write():
        if isinstance(path_or_fd, int):
            with os.fdopen(path_or_fd, "wb") as fh:
                fh.write(data)
        else:
            with open(path_or_fd, "wb") as fh:
                fh.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("name", ["errors.jsonl", "sharegpt.json", "prompt.jsonl"])
def test_stdin_dash_gives_the_report_of_the_file(name):
    data = (SAMPLE_DATA / name).read_bytes()
    args = ["--json", "-t", "estimate", "-t", "cl100k_base", "--context-length", "100"]
    piped = run_cli("inspect", "-", *args, input=data)
    assert piped.returncode == 0, piped.stderr
    from_file = run_cli("inspect", str(SAMPLE_DATA / name), *args)
    a, b = json.loads(piped.stdout), json.loads(from_file.stdout)
    assert a["file"] == "-" and a["complete"] and a["tokens"]["cl100k_base"]["records"] == a["valid"]
    assert comparable(a) == comparable(b)


def test_dev_stdin_from_a_pipe_reads_it_once():
    data = (SAMPLE_DATA / "openai-chat.jsonl").read_bytes()
    proc = run_cli("inspect", "/dev/stdin", "-t", "estimate", input=data)
    assert proc.returncode == 0, proc.stderr
    assert "22 records: 22 valid, 0 invalid; 22 lines, 10.2 KB" in proc.stdout
    assert "Tokens: estimate" in proc.stdout


def test_a_pipe_by_its_dev_fd_path_like_process_substitution():
    data = (SAMPLE_DATA / "errors.jsonl").read_bytes()
    r, w = os.pipe()
    writer = feed(w, data)
    try:
        report = scan_file(f"/dev/fd/{r}", tokenizers=["estimate"])
    finally:
        os.close(r)
    writer.join(5)
    expected = scan_file(str(SAMPLE_DATA / "errors.jsonl"), tokenizers=["estimate"])
    assert comparable(report.to_dict()) == comparable(expected.to_dict())


def test_a_named_fifo_is_read_once(tmp_path):
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    data = (SAMPLE_DATA / "sharegpt.json").read_bytes()
    writer = feed(str(fifo), data)
    report = scan_file(str(fifo), tokenizers=["estimate"])
    writer.join(5)
    expected = scan_file(str(SAMPLE_DATA / "sharegpt.json"), tokenizers=["estimate"])
    assert report.format.container == "json-array" and report.complete
    assert comparable(report.to_dict()) == comparable(expected.to_dict())


def test_a_fifo_through_the_cli(tmp_path):
    import subprocess
    import sys

    from tokdeck_testing import REPO, subprocess_env

    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "inspect", str(fifo), "--json"], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feed(str(fifo), (SAMPLE_DATA / "errors.jsonl").read_bytes()).join(30)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["records"] == 21


def test_a_json_array_through_a_pipe_counts_every_line_even_after_a_broken_array():
    good = json.dumps([{"text": "a"}, {"text": "b"}], indent=2) + "\n"
    broken = good.replace('"b"', '"b" "c"') + "\n\n\n"
    for data in (good, broken):
        piped = run_cli("inspect", "-", "--json", input=data)
        assert piped.returncode == 0, piped.stderr
        out = json.loads(piped.stdout)
        assert out["stats"]["lines"] == data.count("\n") and out["stats"]["bytes"] == len(data)
    assert [e["kind"] for e in out["errors"]] == ["invalid-json"] and out["valid"] == 1


def test_stream_edge_inputs_through_stdin():
    cases = {b"": (0, 0, 0), b"\n\n  \n": (0, 0, 3), b"\xef\xbb\xbf{\"text\": \"a\"}\r\n": (1, 1, 0),
             bytes(range(256)) * 3: (4, 0, 0), b'{"text": "no newline at the end"}': (1, 1, 0)}
    for data, (records, valid, blank) in cases.items():
        proc = run_cli("inspect", "-", "--json", input=data)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert (out["records"], out["valid"], out["stats"]["blank_lines"], out["stats"]["bytes"]) == (
            records, valid, blank, len(data)), data[:20]


def test_export_from_stdin(tmp_path):
    out = tmp_path / "chat.jsonl"
    proc = run_cli("inspect", "-", "--export", str(out), "--to", "openai-chat",
                   input=(SAMPLE_DATA / "message-list.jsonl").read_bytes())
    assert proc.returncode == 0, proc.stderr
    expected = tmp_path / "expected.jsonl"
    export(str(SAMPLE_DATA / "message-list.jsonl"), str(expected), "openai-chat")
    assert out.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize("path,message", [("/dev/zero", "is a device"), ("/dev/null", "is a device")])
def test_devices_are_refused_at_once(path, message):
    proc = run_cli("inspect", path, timeout=30)
    assert proc.returncode == 2 and proc.stderr.startswith("tokdeck: error:") and message in proc.stderr


def test_dash_from_a_terminal_asks_for_a_pipe():
    import pty
    import subprocess
    import sys

    from tokdeck_testing import REPO, subprocess_env

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "tui.cli", "inspect", "-"], stdin=terminal, capture_output=True,
                              cwd=REPO, env=subprocess_env(), timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.returncode == 2
    assert b"stdin is a terminal: pipe a dataset in" in proc.stderr


def test_the_token_pass_alone_cannot_read_a_stream(tmp_path):
    from tui.core.datasets import scan_tokens

    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(TokdeckError, match="a stream is read once"):
        list(scan_tokens(str(fifo), ["estimate"]))


def test_a_file_of_one_line_over_the_limit_from_a_file_and_a_pipe(tmp_path):
    from tui.core.datasets.reader import MAX_LINE

    path = tmp_path / "one-line.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"text": "')
        for _ in range(MAX_LINE // (1 << 20) + 2):
            fh.write(b"a" * (1 << 20))
        fh.write(b'"}')  # no newline at the end
    size = path.stat().st_size
    for args, data in ((["inspect", str(path), "--json"], None), (["inspect", "-", "--json"], path.read_bytes())):
        proc = run_cli(*args, input=data)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert (out["records"], out["invalid"], out["stats"]["lines"], out["stats"]["bytes"]) == (1, 1, 1, size)
        assert [(e["line"], e["kind"]) for e in out["errors"]] == [(1, "line-too-long")]
