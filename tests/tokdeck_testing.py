"""Helpers shared by tests (import as `from tokdeck_testing import ...`; tests/ is on sys.path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE_DATA = REPO / "sample_data"
NETGUARD_DIR = TESTS / "netguard"


def install_netguard() -> None:
    spec = importlib.util.spec_from_file_location("tokdeck_netguard", NETGUARD_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()


def subprocess_env(extra: dict | None = None) -> dict:
    """Environment for running tokdeck in a subprocess: isolated, with the network guard."""
    env = {k: v for k, v in os.environ.items() if k not in ("TOKDECK_CONFIG", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD_DIR), str(REPO)])
    env.update(extra or {})
    return env


def run_cli(*args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 120):
    """Run `python -m tui.cli ARGS` as a user would; returns CompletedProcess with text output."""
    import subprocess

    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run([sys.executable, "-m", "tui.cli", *args], input=data, capture_output=True,
                          env=subprocess_env(env), timeout=timeout, cwd=REPO)
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def busy_port():
    """A context manager holding a listening loopback socket; yields its port (for port-in-use tests)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def holder():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            yield s.getsockname()[1]

    return holder()
