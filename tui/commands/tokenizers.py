"""`tokdeck tokenizers list|doctor|add`: what is available offline, and whether it works."""

from __future__ import annotations

import argparse

ORDER = 20
SAMPLE = "The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。 👩‍💻 <|endoftext|>"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizers", help="list, check and add offline tokenizers")
    tsub = p.add_subparsers(dest="tokenizers_command", metavar="ACTION", required=True)

    ls = tsub.add_parser("list", help="every available tokenizer with its source and license")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(run=run_list)

    doc = tsub.add_parser("doctor", help="load and verify every tokenizer; non-zero exit if any fails")
    doc.set_defaults(run=run_doctor)

    add = tsub.add_parser("add", help="copy a tokenizer into the user store",
                          description="Copy a tokenizer.json, a tiktoken-format file (.tiktoken or tokenizer.model), "
                                      "a tekken.json or a whole Hugging Face snapshot folder into the user store. "
                                      "The format is read from the content, not the name.")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--id", dest="tokenizer_id", metavar="ID", help="id to use (default: from the file or folder name)")
    add.set_defaults(run=run_add)


def _record(info, vocab_size) -> dict:
    return {
        "id": info.id, "name": info.name, "format": info.format, "source": info.source,
        "license": info.license, "vocab_size": vocab_size, "models": list(info.models),
        "path": info.path, "sha256": info.sha256, "package": info.package,
        "package_version": info.package_version, "registry": info.registry,
        "approximate": info.approximate, "note": info.note, "error": info.error,
    }


def run_list(args) -> int:
    import json

    from ..core.tokenizers import default_registry, load_many
    from ._common import print_table

    reg = default_registry()
    infos = reg.infos()
    # Bundled sizes are in the manifest; discovered ones are loaded to learn theirs.
    unknown = [i.id for i in infos if i.vocab_size is None and not i.error]
    loaded = load_many(reg, unknown)
    records = []
    for info in infos:
        tok = loaded.get(info.id)
        vocab = info.vocab_size
        error = info.error
        if tok is not None:
            if isinstance(tok, Exception):
                error = str(tok)
            else:
                vocab = tok.vocab_size
        rec = _record(info, vocab)
        rec["error"] = error
        records.append(rec)
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=1))
        return 0
    rows = [[r["id"], r["format"], r["source"], str(r["vocab_size"] or "-"), r["license"] or "-",
             ("ERROR: " + r["error"]) if r["error"] else ", ".join(r["models"][:3])] for r in records]
    print_table(["id", "format", "source", "vocab", "license", "models"], rows, right={3})
    for problem in reg.problems:
        print(f"note: {problem}")
    return 0


def run_doctor(args) -> int:
    import time

    from ..core.errors import TokenizerError
    from ..core.tokenizers import default_registry

    reg = default_registry()
    reg.use_cache = False  # the installed files themselves are verified, not their cached copies
    failures = 0
    for info in reg.infos():
        t0 = time.perf_counter()
        try:
            tok = reg.get(info.id)
            n = tok.count(SAMPLE)
            parsed = tok.count(SAMPLE, "parse")
        except TokenizerError as exc:
            failures += 1
            print(f"FAIL  {exc}")  # the message starts with the tokenizer's id
            continue
        ms = (time.perf_counter() - t0) * 1000
        verified = "sha256 ok" if info.sha256 else "no hash to verify"
        print(f"ok    {info.id:<24} {n:>4} tokens (parse: {parsed}) {ms:7.0f} ms  {info.source}, {verified}")
    for problem in reg.problems:
        print(f"note  {problem}")
    if failures:
        print(f"{failures} tokenizer(s) failed")
    return 1 if failures else 0


def run_add(args) -> int:
    from ..core.tokenizers import add_to_store, default_registry

    info = add_to_store(args.path, args.tokenizer_id, registry=default_registry())
    print(f"added {info.id} ({info.format}) to {info.path}")
    if info.note:
        print(f"note: {info.note}")
    return 0
