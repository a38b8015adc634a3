"""`tokdeck bundle`: offline install bundles (a wheelhouse and a single file) for Linux x86_64 and aarch64."""

from __future__ import annotations

import argparse

ORDER = 80


def _one_of(name: str):
    """An argparse type taking the builder's own values (its list `name`), imported only when used:
    the parser is built on every tokdeck start."""

    def parse(text: str) -> str:
        from ..core import bundle

        allowed = getattr(bundle, name)
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(allowed)})")
        return text

    return parse


def _glibc(text: str) -> tuple[int, int]:
    parts = text.split(".")
    if len(parts) != 2 or parts[0] != "2" or not parts[1].isdigit() or not 17 <= int(parts[1]) <= 99:
        raise argparse.ArgumentTypeError(f"{text!r} is not a glibc version from 2.17 (manylinux2014) up")
    return 2, int(parts[1])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bundle", help="build offline install bundles: a wheelhouse and a single file per architecture",
        description="On a machine that reaches a package index, in a source checkout: collect tokdeck and "
                    "every dependency as binary wheels for Linux (manylinux) x86_64 and aarch64 and CPython "
                    "3.11-3.13, check that each wheelhouse installs with no index, and build one executable "
                    "file (a PEX) per architecture. Needs only Python and pip: `python3 -m tui.cli bundle` "
                    "runs in a fresh clone.")
    p.add_argument("-o", "--output", default="dist/offline", metavar="DIR",
                   help="where linux-ARCH/wheels/ and linux-ARCH/tokdeck go (default dist/offline; "
                        "each architecture's folder is replaced once its new one is complete)")
    p.add_argument("--arch", action="append", type=_one_of("ARCHES"), metavar="ARCH",
                   help="target architecture, x86_64 or aarch64 (repeatable; default both)")
    p.add_argument("--python", action="append", type=_one_of("PYTHONS"), metavar="X.Y",
                   help="target CPython version, 3.11, 3.12 or 3.13 (repeatable; default all three)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME",
                   help="an optional extra of tokdeck to include, as in tokdeck[NAME] (repeatable)")
    p.add_argument("--glibc", type=_glibc, metavar="2.N",
                   help="oldest glibc of the target boxes (default 2.28: RHEL 8, Debian 10, Ubuntu 20.04 and newer)")
    p.add_argument("--no-pex", action="store_true", help="wheelhouses only, no single file")
    p.add_argument("--dry-run", action="store_true",
                   help="download nothing: resolve every target against the index and report whether each "
                        "dependency has a binary wheel there (exit 1 if one has not)")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..core.bundle import ARCHES, DEFAULT_GLIBC, PYTHONS, check_targets, find_project, make_bundles, requirement
    from ..core.units import human_bytes
    from ._common import print_table

    def log(line: str) -> None:
        print(f"tokdeck bundle: {line}", file=sys.stderr, flush=True)

    project = find_project()
    arches = list(dict.fromkeys(args.arch or ARCHES))
    pythons = list(dict.fromkeys(args.python or PYTHONS))
    glibc_version = args.glibc or DEFAULT_GLIBC
    glibc = ".".join(map(str, glibc_version))
    if args.dry_run:
        results = check_targets(project, arches, pythons, args.extra, glibc_version, log)
        rows = [[str(target), f"ok, {len(outcome)} packages" if isinstance(outcome, dict) else outcome]
                for target, outcome in results]
        print_table([f"target (glibc {glibc})", requirement(project, args.extra)], rows)
        return 1 if any(isinstance(outcome, str) for _, outcome in results) else 0
    bundles = make_bundles(project, Path(args.output), arches, pythons, args.extra, glibc_version,
                           not args.no_pex, log)
    rows = []
    for b in bundles:
        rows.append([str(b.wheelhouse), f"{b.wheels} wheels", human_bytes(b.wheelhouse_bytes)])
        if b.pex is not None:
            rows.append([str(b.pex), "single file", human_bytes(b.pex_bytes)])
    print_table(["path", "contents", "size"], rows, right={2})
    print(f"\nFor Linux with glibc {glibc} or newer and CPython {', '.join(pythons)}. On the target box:")
    print(f"  pip install --no-index --find-links wheels/ '{requirement(project, args.extra)}'   (in a venv)")
    if not args.no_pex:
        print(f"  ./{project.name}   (the single file: needs {' or '.join('python' + p for p in pythons)} on PATH)")
    return 0
