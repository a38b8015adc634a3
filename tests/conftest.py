"""Test-wide guards: no network beyond loopback, and no user files touched.

Every test gets fresh HOME, XDG, Hugging Face and tiktoken cache folders, so the developer's
own config and caches never leak in, and the process-wide tokenizer registry is reset.
The bundled tokenizers are shared across tests (loading them is the slow part).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

NETGUARD_DIR = Path(__file__).parent / "netguard"
_spec = importlib.util.spec_from_file_location("tokdeck_netguard", NETGUARD_DIR / "sitecustomize.py")
netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netguard)
netguard.install()

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"

_ISOLATED_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE",
                  "TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    for sub in ("config", "data", "cache", "hf/hub", "tiktoken"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(home / "tiktoken"))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    for var in ("TOKDECK_CONFIG", "TOKDECK_TOKENIZER_PATH", "OPENAI_API_KEY", "TOKDECK_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    from tui.core.tokenizers.registry import reset_default_registry

    reset_default_registry()
    yield home
    reset_default_registry()


@pytest.fixture(scope="session")
def bundled():
    """One registry of the bundled tokenizers for the whole session (no discovery)."""
    from tui.core.tokenizers import Registry

    return Registry(discover=False, env={})


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
