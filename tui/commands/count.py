"""`tokdeck count`: exact token counts of a text with every offline tokenizer."""

from __future__ import annotations

import argparse

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("count", help="count the tokens of a file or stdin",
                       description="Count the tokens of FILE (or stdin) with offline tokenizers. "
                                   "Without -t: the tokenizers enabled in the config, else every bundled one.")
    p.add_argument("file", nargs="?", metavar="FILE", help="UTF-8 text file, or - for stdin")
    p.add_argument("-t", "--tokenizer", action="append", default=[], metavar="ID",
                   help="tokenizer id or model name (repeatable); see `tokdeck tokenizers list`")
    p.add_argument("--all", action="store_true", help="every tokenizer available, discovered ones included")
    p.add_argument("--specials", choices=("literal", "parse"), default=None,
                   help="special-token strings in the text: literal text (default) or parsed as special tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _selected_ids(args, reg, cfg) -> tuple[list[str], set[str]]:
    """The ids to count with, and those the user asked for explicitly (their failure is an error)."""
    from ..core.tokenizers import resolve_tokenizer_id

    ids: list[str] = []
    for name in args.tokenizer:
        tid = resolve_tokenizer_id(name, reg)
        if tid not in ids:
            ids.append(tid)
    explicit = set(ids)
    if args.all:
        ids += [t for t in reg.ids() if t not in ids]
    elif not ids:
        ids = list(cfg.tokens.enabled or reg.ids(include_discovered=False))
        unknown = [t for t in ids if t not in reg.ids()]
        if unknown:
            from ..core.errors import ConfigError

            raise ConfigError(f"{cfg.path}: [tokens] enabled names unknown tokenizer(s) "
                              f"{', '.join(map(repr, unknown))} (see `tokdeck tokenizers list`)")
    return ids, explicit


def run(args) -> int:
    import json
    import sys

    from ..core.config import load_config
    from ..core.tokenizers import count_texts, default_registry
    from ._common import print_table, read_text_arg

    text = read_text_arg(args.file)
    cfg = load_config()
    reg = default_registry()
    specials = args.specials or cfg.tokens.specials
    ids, explicit = _selected_ids(args, reg, cfg)
    rows = count_texts(reg, ids, text, specials)
    failed = [r for r in rows if r.error]
    if args.json:
        out = {
            "counts": {r.tokenizer_id: r.tokens for r in rows if not r.error},
            "chars": len(text),
            "bytes": len(text.encode("utf-8", "surrogatepass")),
            "specials": specials,
            "estimates": [r.tokenizer_id for r in rows if not r.exact],
            "errors": {r.tokenizer_id: r.error for r in failed},
        }
        print(json.dumps(out, ensure_ascii=False))
    else:
        table = []
        for r in rows:
            info = reg.info(r.tokenizer_id)
            if r.error:
                table.append([r.tokenizer_id, "error", "", r.error])
                continue
            cpt = f"{r.chars_per_token:.2f}" if r.chars_per_token else "-"
            note = "estimate" if not r.exact else ("approximate" if info.approximate else "")
            table.append([r.tokenizer_id, str(r.tokens), cpt, note])
        print_table(["tokenizer", "tokens", "chars/token", "note"], table, right={1, 2})
        print(f"\n{len(text):,} characters, {len(text.encode('utf-8', 'surrogatepass')):,} bytes; "
              f"special tokens: {specials}")
    for r in failed:
        print(f"tokdeck: warning: {r.error}", file=sys.stderr)
    return 1 if any(r.tokenizer_id in explicit for r in failed) else 0
