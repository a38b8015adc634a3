"""`tokdeck inspect`: validate a JSONL dataset, show its statistics, or convert it."""

from __future__ import annotations

import argparse

from ..core.numbers import NumberRule, argparse_type

ORDER = 30

FORMAT_NAMES = ("openai-chat", "message-list", "sharegpt", "alpaca", "prompt-completion", "prompt", "text",
                "openai-batch")  # the same as tui.core.datasets.FORMATS (kept here: no heavy import for --help)
EXPORT_NAMES = ("openai-chat", "message-list", "sharegpt", "prompt")
PROGRESS_MIN_BYTES = 16 << 20


def _at_least(lo: int):
    """An argparse type: a whole number >= lo."""
    return argparse_type(NumberRule(int, lo=lo).parse)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="validate a JSONL dataset and show its statistics",
        description="Validate FILE (JSONL, or a JSON array file) record by record with line numbers, "
                    "show statistics and token lengths, or convert its valid records with --export. "
                    "Exit status 0 when the scan finished (even with invalid lines), 2 when FILE cannot "
                    "be read or a flag is wrong.")
    p.add_argument("file", metavar="FILE", help="the dataset file; - (or a pipe) reads a stream, once")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-t", "--tokenizer", action="append", default=[], metavar="ID",
                   help="token statistics with this tokenizer id or model name (repeatable); the first one "
                        "also counts for the checks (default: the estimate heuristic)")
    p.add_argument("--format", choices=FORMAT_NAMES, metavar="NAME",
                   help=f"the format, instead of detecting it: {', '.join(FORMAT_NAMES)}")
    p.add_argument("--context-length", type=_at_least(1), metavar="N",
                   help="flag records whose prompt + answer tokens exceed N")
    p.add_argument("--max-errors", type=_at_least(0), default=None, metavar="N",
                   help="errors and warnings listed (default 20; with --json 1000); counts are always complete")
    p.add_argument("--export", metavar="OUT", help="write the valid records to OUT, converted with --to")
    p.add_argument("--to", choices=EXPORT_NAMES, metavar="FORMAT",
                   help=f"the format for --export: {', '.join(EXPORT_NAMES)}")
    p.add_argument("--workers", type=_at_least(1), default=None, metavar="N",
                   help="processes for the structure pass (default: 2 for JSONL files of 256 MB or more)")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from ..core.errors import TokdeckError

    if (args.export is None) != (args.to is None):
        raise TokdeckError("--export OUT and --to FORMAT go together")
    if args.export is not None:
        return _run_export(args)
    from ..core.datasets import ScanReport, scan
    from ..core.units import human_bytes

    max_errors = args.max_errors if args.max_errors is not None else (1000 if args.json else 20)
    show_progress = sys.stderr.isatty() and not args.json
    report = None
    last_len = 0
    for item in scan(args.file, format=args.format, tokenizers=args.tokenizer, context_length=args.context_length,
                     workers=args.workers, max_issues=max(max_errors, 1)):
        if isinstance(item, ScanReport):
            report = item
        elif show_progress and max(item.bytes_total, item.bytes_done) >= PROGRESS_MIN_BYTES:
            done = f"{item.fraction:6.1%}" if item.bytes_total else f"{human_bytes(item.bytes_done)} read"  # a stream
            line = (f"\r{item.phase}: {done}  {item.records:,} records  "
                    f"{item.errors:,} errors  {item.bytes_done / max(item.elapsed, 1e-9) / 1e6:,.0f} MB/s")
            print(line.ljust(last_len), end="", file=sys.stderr, flush=True)
            last_len = len(line)
    if last_len:
        print("\r" + " " * last_len + "\r", end="", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(report.to_dict(max_errors), ensure_ascii=False))
    else:
        print_report(report, max_errors, tokens_asked=bool(args.tokenizer))
    return 0


def _run_export(args) -> int:
    import json

    from ..core.datasets import export

    result = export(args.file, args.export, args.to, format=args.format,
                    tokenizer=args.tokenizer[0] if args.tokenizer else None)
    if args.json:
        print(json.dumps({"export": result.to_dict()}, ensure_ascii=False))
        return 0
    print(f"{result.converted:,} records written to {result.path} as {result.to_format} "
          f"(from {result.from_format}); {result.skipped:,} skipped")
    for why, n in _by_count(result.skipped_reasons):
        print(f"  {n:,} skipped: {why}")
    if result.to_format == "prompt":
        if result.output_tokens_from:
            print(f"output_tokens counted with {result.output_tokens_from}")
        elif result.from_format != "prompt":
            print("no output_tokens written: pass --tokenizer ID to count the answers")
    return 0


# ---------------------------------------------------------------------------- the report

def _by_count(counts) -> list:
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _lines(lines) -> str:
    shown = ", ".join(str(x) for x in lines[:8])
    return f"line{'s' if len(lines) > 1 else ''} {shown}{', ...' if len(lines) > 8 else ''}"


def bars(hist, width: int = 28, indent: str = "  ") -> list[str]:
    """A small text histogram: one row per bin."""
    peak = max(hist.counts) or 1
    labels = [f"{lo:,}–{hi - 1:,}" if hi - 1 > lo else f"{lo:,}" for lo, hi in zip(hist.edges, hist.edges[1:])]
    lw = max(len(x) for x in labels)
    out = []
    for label, count in zip(labels, hist.counts):
        n = round(count / peak * width)
        out.append(f"{indent}{label.rjust(lw)} │{'█' * n}{'▏' if count and not n else ''} {count:,}")
    return out


def _shrink(hist, rows: int = 10):
    """Merge neighbouring bins so a histogram prints in at most ``rows`` rows."""
    from ..core.datasets import Histogram

    k = -(-len(hist.counts) // rows)
    if k <= 1:
        return hist
    edges = hist.edges[::k]
    if edges[-1] != hist.edges[-1]:
        edges = edges + (hist.edges[-1],)
    counts = tuple(sum(hist.counts[i:i + k]) for i in range(0, len(hist.counts), k))
    return Histogram(edges=edges, counts=counts)


def print_report(r, max_errors: int = 20, tokens_asked: bool = False) -> None:
    from ..core.units import human_bytes as _size
    from ._common import print_table

    g = r.format
    notes = ("; UTF-8 BOM" if g.bom else "") + ("; CRLF line endings" if g.crlf else "")
    print(f"{r.path}: {g.format} — {g.how}{notes}")
    status = "" if r.complete else f"  (INCOMPLETE: {r.incomplete_reason})"
    print(f"{r.records:,} records: {r.valid:,} valid, {r.invalid:,} invalid; {r.stats.lines:,} lines, "
          f"{_size(r.stats.bytes)}, {r.stats.blank_lines:,} blank; scanned in {r.elapsed:.2f} s"
          + (f" by {r.workers} processes" if r.workers > 1 else "") + status)
    if g.format == "unknown":
        print("No known format recognised: only JSON validity was checked. Pass --format NAME.")
        if tokens_asked:
            print("Tokens: not counted (the format is unknown: no prompt or answer to count).")

    print()
    if r.error_total:
        shown = r.errors[:max_errors]
        print(f"Errors: {r.error_total:,}" + (f" (first {len(shown)} shown)" if len(shown) < r.error_total else ""))
        for e in shown:
            where = f"line {e.line}" + (f":{e.column}" if e.column else "")
            print(f"  {where:<14} {e.kind:<18} {e.message}")
        if len(r.error_counts) > 1 or len(shown) < r.error_total:
            print("  by kind: " + ", ".join(f"{k} {n:,}" for k, n in _by_count(r.error_counts)))
    else:
        print("Errors: none")
    if r.warning_total:
        print(f"Warnings: {r.warning_total:,}")
        by_kind: dict[str, list] = {}
        for w in r.warnings:
            by_kind.setdefault(w.kind, []).append(w)
        for kind, n in _by_count(r.warning_counts):
            items = by_kind.get(kind, [])
            lines = [w.line for w in items if w.line is not None]
            detail = _lines(lines) if lines else (items[0].message if items else "")
            print(f"  {kind:<20} {n:>6,}  {detail}")
            if kind not in ("blank-line", "duplicate-key") and items:
                print(f"  {'':<20} {'':>6}  e.g. {items[0].message}")
    else:
        print("Warnings: none")

    s = r.stats
    if s.roles:
        print()
        label = "role" if s.turns else "field"
        rows = [[role, f"{v.messages:,}", f"{v.chars:,}", f"{v.mean_chars:,.0f}", f"{v.max_chars:,}"]
                for role, v in s.roles.items()]
        print_table([label, "count", "chars", "mean", "max"], rows, right={1, 2, 3, 4})
    if s.turns:
        t = s.turns
        print(f"\nMessages per record: min {t.min}, mean {t.mean:.1f}, p50 {t.p50}, p90 {t.p90}, max {t.max}")
    if s.output_tokens:
        t = s.output_tokens
        print(f"\nDeclared output_tokens ({t.count:,} records): min {t.min:,}, mean {t.mean:,.0f}, "
              f"p50 {t.p50:,}, p90 {t.p90:,}, max {t.max:,}; total {t.total:,}")

    c = r.checks
    counted = (f"token counts from {c.tokenizer_id}" if not c.estimated else
               "token counts estimated (CJK/1.5 + other/4 characters); pass --tokenizer for exact counts"
               if c.tokenizer_id == "estimate" else f"token counts from {c.tokenizer_id}, approximate")
    print(f"\nChecks ({counted})")
    if c.vllm_dropped is not None:
        if c.vllm_dropped:
            reasons = ", ".join(f"{k} {n:,}" for k, n in _by_count(c.vllm_reasons))
            note = "" if g.format == "sharegpt" else " (if converted to ShareGPT)"
            print(f"  vLLM's ShareGPT loader would silently drop {c.vllm_dropped:,}{note}: {reasons}; "
                  f"{_lines(c.vllm_lines)}")
        else:
            print("  vLLM's ShareGPT loader would keep every valid record")
    if c.context_length:
        print(f"  over the context length {c.context_length:,}: {c.over_context:,}"
              + (f"; {_lines(c.over_context_lines)}" if c.over_context_lines else ""))
    if c.duplicate_prompts:
        ex = ", ".join(f"line {a} = line {b}" for a, b in c.duplicate_examples[:5])
        print(f"  duplicate prompts: {c.duplicate_prompts:,} records repeat an earlier prompt ({ex}"
              f"{', ...' if c.duplicate_prompts > 5 else ''})")
    else:
        print("  duplicate prompts: none")

    for tid, t in r.tokens.items():
        print(f"\nTokens: {tid}" + ("" if t.exact else " (estimate)") + " — raw text, no chat template")
        if t.error:
            print(f"  failed: {t.error}")
            continue
        rows = []
        answer_label = "answer (declared)" if t.answer_source == "output_tokens" else "answer"
        for name, summ in (("prompt", t.prompt), (answer_label, t.answer)):
            if summ:
                rows.append([name, f"{summ.count:,}", f"{summ.min:,}", f"{summ.mean:,.1f}", f"{summ.p50:,}",
                             f"{summ.p90:,}", f"{summ.p99:,}", f"{summ.max:,}", f"{summ.total:,}"])
        if rows:
            headers = ["", "records", "min", "mean", "p50", "p90", "p99", "max", "total"]
            print_table(headers, rows, right=set(range(1, 9)))
        print(f"  total tokens: {t.total:,}")
        for name, summ in (("prompt", t.prompt), ("answer", t.answer)):
            if summ and summ.max > summ.min:
                print(f"  {name} length histogram:")
                for row in bars(_shrink(summ.histogram), indent="    "):
                    print(row)
        if t.joint and t.answer:
            _print_joint(t.joint)


def _print_joint(j) -> None:
    def label(edges, i):
        lo, hi = edges[i], edges[i + 1] - 1
        return f"{lo}" if hi <= lo else f"{lo}-{hi}"

    pbins = [i for i, row in enumerate(j.counts) if any(row)]
    abins = [k for k in range(len(j.answer_edges) - 1) if any(row[k] for row in j.counts)]
    if not pbins or not abins:
        return
    print("  records by prompt tokens (rows) and answer tokens (columns):")
    cols = [label(j.answer_edges, k) for k in abins]
    plabels = [label(j.prompt_edges, i) for i in pbins]
    lw = max(len(x) for x in plabels)
    widths = [max(len(c), max(len(f"{j.counts[i][k]:,}") for i in pbins)) for c, k in zip(cols, abins)]
    print("    " + " " * lw + "  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for i, pl in zip(pbins, plabels):
        cells = [(f"{j.counts[i][k]:,}" if j.counts[i][k] else "·").rjust(w) for k, w in zip(abins, widths)]
        print("    " + pl.rjust(lw) + "  " + "  ".join(cells))
