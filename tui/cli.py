"""tokdeck's command line.

Each sub-command lives in its own module under ``tui/commands/`` exposing ``ORDER`` (its place
in ``--help``), ``register(subparsers)`` and ``run(args) -> int``. Those modules import only
argparse at module level; heavy imports happen inside ``run`` so ``tokdeck --help`` is instant.

Errors meant for the user (``TokdeckError``) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys

from . import __version__


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage block is one `--help` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = Parser(
        prog="tokdeck",
        description="Token counts, endpoint benchmarks and JSONL datasets for offline LLM machines.",
        epilog="Run `tokdeck COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"tokdeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [importlib.import_module(f"{commands.__name__}.{m.name}")
               for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    for module in sorted(modules, key=lambda m: m.ORDER):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        args = parser.parse_args(["ui"])  # no sub-command on a terminal: the dashboard, with ui's defaults
    run = args.run
    from .core.errors import TokdeckError

    try:
        return int(run(args) or 0)
    except TokdeckError as exc:
        print(f"tokdeck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokdeck: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error worth a message
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a bug (or a Rust panic, a BaseException): one line unless asked for the traceback
        if os.environ.get("TOKDECK_DEBUG"):
            raise
        # a library's message may quote a URL's user:password@ part: never print a password
        said = re.sub(r"([\w.~%+-]+):[^\s@/'\"]+@", r"\1:***@", (str(exc).splitlines() or [""])[0])
        print(f"tokdeck: internal error: {type(exc).__name__}: {said} (TOKDECK_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 70


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
