"""The first commands a person runs, run the way a person runs them.

Each test starts the installed console script (`tokdeck` beside this Python), not the module,
with the network guard of every tokdeck subprocess. `tokdeck` alone runs in a real
pseudo-terminal of a fixed size; the README's quick start is read from the README itself, so
the test follows whatever the README tells people to type.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

from tokdeck_testing import REPO, subprocess_env
from tui.core.bench.sim import SimConfig, ThreadedSimulator

TOKDECK = Path(sys.executable).parent / "tokdeck"
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|P[^\x1b]*\x1b\\|[()][0-9A-Za-z]|[=>78])")
CTRL_Q = b"\x11"
#: what the dashboard draws first: the title, the three pane tabs and the footer's palette key
DASHBOARD = ("tokdeck", "Tokens", "Bench", "Data", "palette")


def console_script() -> str:
    assert TOKDECK.is_file(), f"the console script is not installed at {TOKDECK} (pip install -e .)"
    return str(TOKDECK)


def run_in_pty(args: list[str], *, until: tuple[str, ...], keys: bytes = CTRL_Q, size=(100, 30),
               cwd: Path = REPO, timeout: float = 90.0) -> tuple[int | None, str]:
    """Run ``tokdeck ARGS`` on a pseudo-terminal of ``size`` (columns, lines); once every string
    of ``until`` is on the screen, type ``keys``. Returns (exit status or None, screen text)."""
    master, slave = pty.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = subprocess_env({"TERM": "xterm-256color"})
    for var in ("COLUMNS", "LINES", "NO_COLOR", "TEXTUAL"):
        env.pop(var, None)
    proc = subprocess.Popen([console_script(), *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    raw = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    data = b""
                if not data and proc.poll() is not None:
                    break
                raw += data
            elif proc.poll() is not None:
                break
            if not sent and all(word in ANSI.sub("", raw.decode("utf-8", "replace")) for word in until):
                time.sleep(0.3)  # let the first frame settle before typing
                os.write(master, keys)
                sent = True
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    return (proc.returncode if sent else None), ANSI.sub("", raw.decode("utf-8", "replace"))


def test_tokdeck_alone_draws_the_dashboard_and_quits_on_ctrl_q():
    code, screen = run_in_pty([], until=DASHBOARD)
    assert "internal error" not in screen and "Traceback" not in screen, screen[-2000:]
    assert code is not None, f"the dashboard was not drawn: {screen[-2000:]!r}"
    assert code == 0, screen[-2000:]


def quick_start_commands() -> list[list[str]]:
    """The commands of the README's "Quick start" code block (continuation lines joined, comments dropped)."""
    text = (REPO / "README.md").read_text("utf-8")
    block = re.search(r"^## Quick start\n+```bash\n(.*?)^```", text, re.M | re.S)
    assert block, "README.md has no ```bash block under ## Quick start"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "tokdeck", line
            commands.append(words[1:])
    return commands


def free_port(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_serve(args: list[str]) -> None:
    """Start `tokdeck serve ...`, wait for /health to answer, stop it with SIGTERM: exit 0."""
    if "--port" not in args and not free_port(8080):
        args = [*args, "--port", "0"]  # another program holds the default port on this machine
    proc = subprocess.Popen([console_script(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env(), cwd=REPO, text=True)
    try:
        line = proc.stderr.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(m.group(1) + "/health", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_every_quick_start_command_runs_as_written(tmp_path):
    commands = quick_start_commands()
    assert len(commands) >= 5
    notes = tmp_path / "notes.md"
    notes.write_text("Meeting notes: move the Qwen3 benchmark to gpu1 on Friday.\n", "utf-8")
    sim = ThreadedSimulator(SimConfig(ttft_ms=1.0, itl_ms=0.0, tokens_per_chunk=64))  # few chunks: a fast run
    url = sim.start()
    before = set(REPO.glob("*.json"))
    try:
        for words in commands:
            # only what cannot run here is substituted: a file of the reader's, their server's name
            args = [str(notes) if w == "notes.md" else url if w.startswith("http://gpu1") else w for w in words]
            if not args:
                code, screen = run_in_pty([], until=DASHBOARD)
                assert code == 0, screen[-2000:]
            elif args[0] == "serve":
                run_serve(args)
            else:
                proc = subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=REPO,
                                      env=subprocess_env(), timeout=300)
                assert proc.returncode == 0, (words, proc.stderr[-2000:])
                assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    finally:
        sim.stop()
        for saved in set(REPO.glob("*.json")) - before:  # --save-result writes into the current folder
            saved.unlink()
    assert sim.counts.get("ok", 0) >= 24  # the "real server" command really ran against it

