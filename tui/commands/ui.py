"""`tokdeck ui`: the Textual dashboard (also what `tokdeck` alone opens on a terminal)."""

from __future__ import annotations

import argparse

ORDER = 5
DATA_SUFFIXES = (".jsonl", ".json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="open the dashboard (the default on a terminal)",
                       description="Open the dashboard. A FILE opens in the Tokens editor, "
                                   "or in the Data pane when it is .jsonl/.json.")
    p.add_argument("file", nargs="?", metavar="FILE", help="UTF-8 text file to count, or a .jsonl/.json dataset")
    p.add_argument("--pane", choices=("tokens", "bench", "data"), default=None,
                   help="the pane to open (default: tokens, or data for a dataset FILE)")
    p.add_argument("--start", action="store_true",
                   help="open the Bench pane with the run flags below and start the run at once")
    from ..core.bench.options import add_run_arguments

    add_run_arguments(p)  # the Bench pane's form starts from `tokdeck bench`'s flags
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from ..core.errors import TokdeckError
    from ._common import read_text_arg

    text, source, data_path = "", None, None
    pane = getattr(args, "pane", None)
    file = getattr(args, "file", None)
    if file:
        path = Path(file)
        if path.suffix.lower() in DATA_SUFFIXES:
            from ..core.datasets import check_readable

            check_readable(file)  # the Data pane re-reads its file: a regular one (a pipe, a folder: one line)
            data_path = path
            pane = pane or "data"
        else:
            if file == "-":
                raise TokdeckError("the dashboard reads its input from the terminal: give a FILE, not -")
            text, source = read_text_arg(file), file
    from ..core.bench.options import from_namespace, validate

    options = from_namespace(args)
    validate(options)  # a bad run flag is a one-line error before the UI opens
    if options.profile:
        from ..core.config import load_config

        load_config().profile(options.profile)  # an unknown profile: a one-line error naming the known ones
    if getattr(args, "start", False):
        pane = "bench"
    from ..app.app import make_app  # Textual loads only now: `tokdeck --help` stays instant

    app = make_app(pane or "tokens", text=text, source=source, data_path=data_path, bench_options=options,
                   bench_start=getattr(args, "start", False))
    app.run()
    return app.return_code or 0
