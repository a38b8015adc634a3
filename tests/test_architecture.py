"""The core never imports Textual, and `tokdeck --help` loads no tokenizer library."""

import pkgutil
import subprocess
import sys

import pytest

import tui.core
from tokdeck_testing import REPO, subprocess_env


def _core_modules():
    for mod in pkgutil.walk_packages(tui.core.__path__, prefix="tui.core."):
        yield mod.name


@pytest.mark.parametrize("module", sorted(_core_modules()))
def test_core_module_does_not_import_textual(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui.app')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "textual" not in out.stdout and "tui.app" not in out.stdout, out.stdout


def test_help_loads_no_heavy_library():
    code = ("import sys; from tui.cli import build_parser; build_parser().format_help(); "
            "print([m for m in ('tiktoken', 'tokenizers', 'textual', 'aiohttp', 'orjson') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_netguard_blocks_non_loopback():
    import socket

    s = socket.socket()
    try:
        with pytest.raises(OSError, match="may not reach the network"):
            s.connect(("10.255.255.1", 80))
    finally:
        s.close()
    with pytest.raises(OSError, match="may not reach the network"):
        socket.getaddrinfo("huggingface.co", 443)


def test_every_data_file_ships_in_the_wheel():
    """Non-Python files under tui/ must match a package-data glob, or a non-editable install lacks them."""
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {f for package, globs in patterns.items() for g in globs
               for f in (REPO / package.replace(".", "/")).glob(g)}
    data_files = {p for p in (REPO / "tui").rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    missing = sorted(str(p.relative_to(REPO)) for p in data_files - shipped)
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_the_app_and_core_never_import_the_command_line_layer():
    """Panes call tui.core; tui.commands is the CLI's thin layer on top of the same core."""
    import ast

    offenders = []
    for folder in ("app", "core"):
        for path in sorted((REPO / "tui" / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any({"commands", "cli"} & set(n.split(".")) for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_a_base_exception_from_a_library_is_one_line_not_a_traceback(monkeypatch, capsys):
    """pyo3's PanicException derives from BaseException: the last-resort catch must see it too."""
    import tui.commands.count as count_command
    from tui.cli import main

    class PanicException(BaseException):
        pass

    def panicking_run(args):
        raise PanicException("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(count_command, "run", panicking_run)
    assert main(["count", "-"]) == 70
    err = capsys.readouterr().err
    assert err.strip() == ("tokdeck: internal error: PanicException: called `Option::unwrap()` on a `None` value "
                           "(TOKDECK_DEBUG=1 shows the traceback)")


def test_an_internal_error_never_prints_a_urls_password(monkeypatch, capsys):
    """A library's message may quote a URL's user:password@ part (urlsplit did, for a bad IPv6 host)."""
    import tui.commands.count as count_command
    from tui.cli import main

    def failing_run(args):
        raise ValueError("'u:SECRETPW@[::1' does not appear to be an IPv4 or IPv6 address\nsecond line")

    monkeypatch.setattr(count_command, "run", failing_run)
    assert main(["count", "-"]) == 70
    err = capsys.readouterr().err
    assert "SECRETPW" not in err and "second line" not in err
    assert err.strip() == ("tokdeck: internal error: ValueError: 'u:***@[::1' does not appear to be an IPv4 or IPv6 "
                           "address (TOKDECK_DEBUG=1 shows the traceback)")
