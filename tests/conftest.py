"""Test-wide guards: no network beyond loopback, and no user files touched.

Every test gets fresh HOME, XDG, Hugging Face and tiktoken cache folders, so the developer's
own config and caches never leak in, and the process-wide tokenizer registry is reset.
The bundled tokenizers are shared across tests (loading them is the slow part).
"""

from __future__ import annotations

import os

import pytest

from tokdeck_testing import NETGUARD_DIR, install_netguard

install_netguard()
# subprocesses the code under test starts itself (the counting process) get the guard too
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD_DIR), os.environ.get("PYTHONPATH")]))


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
    # processes tokdeck starts itself (the built-in simulator) inherit the network guard
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NETGUARD_DIR), os.environ.get("PYTHONPATH")])))
    from tui.core.tokenizers.registry import reset_default_registry

    reset_default_registry()
    yield home
    reset_default_registry()


@pytest.fixture(scope="session")
def bundled():
    """One registry of the bundled tokenizers for the whole session (no discovery)."""
    from tui.core.tokenizers import Registry

    return Registry(discover=False, env={})


@pytest.fixture(scope="session")
def counting(bundled):
    """One counting process for the session's dashboards on the bundled registry (so each
    tokenizer loads once); killed and reaped at the end of the session, whatever happened."""
    from tui.core.tokenizers.counting_client import CountingService

    service = CountingService(bundled)
    yield service
    service.close()
