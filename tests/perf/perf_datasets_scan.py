"""Performance of the dataset scan (not collected by pytest: run it by hand).

    python tests/perf/perf_datasets_scan.py                              # the goals: 0.3 GB files
    python tests/perf/perf_datasets_scan.py --sizes 1 2                  # and realistic 1 and 2 GB files
    python tests/perf/perf_datasets_scan.py --python-style 0 --token-mb 0 --repeat 5   # medians of 5 rounds
    python tests/perf/perf_datasets_scan.py --chat 0.06 --short-lines 0.03 --python-style 0 --token-mb 0  # quick

Generates openai-chat JSONL into /tmp, warms the page cache, then measures:

1. the structure pass (typed decode + validation + statistics + duplicate hashes; what ``inspect``
   does without ``-t``) with one and two processes, against bare loops over the same lines that
   check nothing: ``json.loads`` and ``orjson.loads`` (each reads the file in 4 MB chunks and
   splits it into lines, as the scan does). Ratios are baseline time / scan time, from wall
   time and from CPU time (the machine is shared: the CPU ratio is the steadier one). For
   reference, the bare loop of the scan's first step alone (msgspec's typed decode with the
   chat schemas), and the floor: the least work the pass's spec leaves on these files done with
   the scan's own tools (sub-blocks decoded as arrays, the repeated-key check, prompt hashes;
   nothing else), which bound what the scan can reach;
   With ``--compare REF`` (default ``main``), the one-process pass of that git revision's code
   too, right after, on the same file (ratio of CPU times: no file may get slower);
2. peak RSS of the whole process tree (sampled from /proc every 20 ms) for each file;
3. the token pass on a slice of the file against the tokenizer's own batch call on the same
   texts (tiktoken ``encode_ordinary_batch`` with 2 threads, HF ``encode_batch``).

The files: ``--chat`` GB of ordinary three-message chat records (system, user, assistant; about
700 bytes a line, compact JSON; some answers with line breaks, a few non-ASCII characters);
``--python-style`` GB of the same records written by ``json.dumps`` defaults; ``--short-lines``
GB of very short records (~130 bytes); ``--sizes`` realistic files (mixed sizes: short questions
to 20 KB documents, some multi-turn, some tool calls). Every file it creates is deleted at the end.

Goals (the typed-core issue): on the ordinary chat records, one process >= 3x the json.loads loop
and >= 0.8x the orjson.loads loop, two processes >= 1 GB/s; on the short records >= 2x the
json.loads loop; peak RSS < 300 MB at any size.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

WORDS = ("the server model token batch request latency cache queue throughput memory disk node cluster "
         "answer question prompt dataset record line error warning check offline machine network file "
         "process thread core index offset parse value field role content system user assistant tool "
         "deploy config version update log metric percentile histogram result report export format").split()


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choices(WORDS, k=n_words)).capitalize() + "."


SYSTEMS = ("You are a helpful assistant.", "You are the IT helpdesk assistant of a research lab. Answer briefly and precisely.",
           "You answer questions about the cluster's queue, disks and network. Use plain words.",
           "You are a concise assistant for engineers working on offline machines.")


def _answer(rng: random.Random, n_words: int) -> str:
    """An answer as chat models write them: a sentence, then a short list on separate lines."""
    head = _text(rng, n_words // 2)
    items = "\n".join(f"- {_text(rng, n_words // 8)}" for _ in range(3))
    return f"{head}\n\n{items}" + (" Voilà — done." if rng.random() < 0.05 else "")


def _chat_pool(rng: random.Random, n: int = 500) -> list[dict]:
    """Ordinary three-message records (system, user, assistant), ~700 bytes as compact JSON."""
    return [{"messages": [{"role": "system", "content": rng.choice(SYSTEMS)},
                          {"role": "user", "content": _text(rng, rng.randint(20, 36))},
                          {"role": "assistant", "content": _answer(rng, rng.randint(40, 64))}]} for _ in range(n)]


def _pool(rng: random.Random, n: int = 1500) -> list[dict]:
    out = []
    for i in range(n):
        size = rng.choice([8, 20, 40, 80, 150, 300, 600, 1200, 3000])  # words in the user turn
        msgs = []
        if rng.random() < 0.4:
            msgs.append({"role": "system", "content": _text(rng, 25)})
        msgs.append({"role": "user", "content": _text(rng, size)})
        if rng.random() < 0.1:
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": "lookup", "arguments": '{"query": "%s"}' % _text(rng, 5)}}]})
            msgs.append({"role": "tool", "tool_call_id": f"call_{i}", "content": _text(rng, 60)})
        msgs.append({"role": "assistant", "content": _text(rng, rng.choice([15, 60, 150, 400, 900]))})
        if rng.random() < 0.2:
            msgs += [{"role": "user", "content": _text(rng, 20)}, {"role": "assistant", "content": _text(rng, 120)}]
        out.append({"messages": msgs})
    return out


def generate(path: str, size: int, seed: int = 7, style: str = "mixed") -> int:
    """Write about ``size`` bytes of openai-chat lines; returns the number of lines.

    ``style``: "mixed" (realistic sizes, compact), "chat" (ordinary three-message records,
    compact: orjson / separators=(",", ":")), "python" (the same written by json.dumps
    defaults: ", " and ": ", non-ASCII escaped) or "short" (compact, ~130-byte records:
    per-record costs and millions of prompt hashes).
    """
    import json

    rng = random.Random(seed)
    templates = []
    pool = _chat_pool(rng) if style in ("chat", "python") else _pool(rng)
    if style == "short":  # one short question and answer: ~130 bytes a record
        pool = [{"messages": [{"role": "user", "content": _text(rng, 2)},
                              {"role": "assistant", "content": _text(rng, 4)}]} for _ in range(500)]
    for rec in pool:
        user = next(m for m in rec["messages"] if m["role"] == "user")
        user["content"] = "@@TICKET@@" + user["content"]
        if style == "python":
            line = json.dumps(rec)
        else:
            line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
        templates.append(line.encode().split(b"@@TICKET@@"))
    written = lines = 0
    with open(path, "wb", buffering=1 << 22) as fh:
        while written < size:
            head, tail = templates[lines % len(templates)]
            data = b"%sTicket %d: %s\n" % (head, lines, tail)  # unique prompts
            fh.write(data)
            written += len(data)
            lines += 1
    return lines


def warm(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def raw_loop(path: str, loads) -> tuple[float, float]:
    """A baseline: read the file in 4 MB chunks, split lines, ``loads`` each; (wall, CPU) seconds."""
    t, c = time.perf_counter(), time.process_time()
    tail = b""
    with open(path, "rb", buffering=0) as fh:
        while True:
            block = fh.read(4 << 20)
            if not block:
                break
            parts = (tail + block).split(b"\n")
            tail = parts.pop()
            for line in parts:
                loads(line)
    if tail:
        loads(tail)
    return time.perf_counter() - t, time.process_time() - c


def floor_loop(path: str) -> tuple[float, float] | None:
    """A reference: the least work the structure pass's spec leaves on these files, with the scan's
    own tools: read in 4 MB chunks, decode sub-blocks of 256 KB as one array of plain chat records
    each, check them for repeated keys (one encode: msgspec keeps a repeated key's last value
    silently) and hash each prompt (the texts before the answer): no statistics, no checks, no
    issues, no duplicate search. (wall, CPU) seconds, or None for a file whose records are not
    all plain and compact (the json.dumps-style and mixed files: the floor is of the other two)."""
    import msgspec

    from itertools import chain
    from operator import attrgetter

    from tui.core.datasets.records import ARRAY_DECODERS, DECODERS, encode
    from tui.core.messages import JOIN

    decode = ARRAY_DECODERS[DECODERS["openai-chat"][0]]
    messages, content = attrgetter("messages"), attrgetter("content")
    t, c = time.perf_counter(), time.process_time()
    tail = b""
    with open(path, "rb", buffering=0) as fh:
        while True:
            block = fh.read(4 << 20)
            data = tail + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            data, tail = data[:cut], data[cut:]
            at = 0
            while at < len(data):
                end = data.find(b"\n", at + (256 << 10)) + 1 or len(data)
                stop = end - 1 if data[end - 1] == 10 else end
                try:
                    records = decode(b"[%s]" % data[at:stop].replace(b"\n", b","))
                except msgspec.DecodeError:
                    return None
                if len(encode(records)) != stop - at + 2:
                    return None
                msgss = list(map(messages, records))
                k = len(msgss[0])
                contents = list(map(content, chain.from_iterable(msgss)))
                columns = [contents[j::k] for j in range(k - 1)]
                prompts = columns[0] if k == 2 else list(map(JOIN.join, zip(*columns)))
                list(map(hash, map(str.strip, prompts)))
                at = end
            if not block:
                break
    return time.perf_counter() - t, time.process_time() - c


def _tree_rss_kb(pid: int) -> int:
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(x) for x in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from tui.core.datasets import scan_file

def cpu():  # this process's and its waited-for children's (the scan's workers)
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

c, t = cpu(), time.perf_counter()
r = scan_file({path!r}, workers={workers}, tokenizers={toks!r})
t, c = time.perf_counter() - t, cpu() - c
print(t, r.records, r.valid, r.invalid, r.checks.duplicate_prompts, r.workers, c)
"""


def run_scan(path: str, workers: int, tokenizers=(), root: str = str(REPO)) -> dict:
    """Run a scan in a fresh process (of the code under ``root``): wall time and CPU time of the
    scan (from its start to its report, as the baseline loops are timed: not the measuring
    process's own start and imports; the workers' whole lives), counts, peak RSS."""
    code = CHILD.format(root=root, path=path, workers=workers, toks=list(tokenizers))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.02)
    out = proc.stdout.read().split()
    if proc.returncode:
        raise SystemExit(f"scan failed ({proc.returncode})")
    return {"seconds": float(out[0]), "records": int(out[1]), "valid": int(out[2]), "invalid": int(out[3]),
            "duplicates": int(out[4]), "workers": int(out[5]), "peak_rss_mb": peak / 1024, "cpu_s": float(out[6])}


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def token_bench(path: str, tid: str) -> dict:
    """Token pass (scan with a tokenizer minus the structure pass) vs the library's batch call."""
    from tui.core.datasets import detect_format, scan_file
    from tui.core.datasets.scanner import iter_valid
    from tui.core.tokenizers import default_registry

    tok = default_registry().get(tid)
    guess = detect_format(path)
    texts = []
    for _, rec, _ in iter_valid(path, guess):
        texts.append(rec.prompt)
        if rec.answer is not None:
            texts.append(rec.answer)
    chars = sum(map(len, texts))
    batches = [texts[i:i + 2048] for i in range(0, len(texts), 2048)]

    t = time.perf_counter()
    total = 0
    if hasattr(tok, "encoding"):
        for b in batches:
            total += sum(map(len, tok.encoding.encode_ordinary_batch(b, num_threads=2)))
        how = "tiktoken encode_ordinary_batch(num_threads=2)"
    else:
        hf = tok.hf
        hf.encode_special_tokens = True
        for b in batches:
            total += sum(len(e.ids) for e in hf.encode_batch(b, add_special_tokens=False))
        how = "tokenizers encode_batch (Rayon threads)"
    native = time.perf_counter() - t

    t = time.perf_counter()
    scan_file(path, workers=1)
    structure = time.perf_counter() - t
    t = time.perf_counter()
    report = scan_file(path, workers=1, tokenizers=[tok])
    full = time.perf_counter() - t
    ours = full - structure
    assert report.tokens[tid].total == total, (report.tokens[tid].total, total)
    return {"tokenizer": tid, "tokens": total, "chars": chars, "native_s": native, "token_pass_s": ours,
            "ratio": native / ours, "how": how}


def export_ref(ref: str, into: str) -> str:
    """The ``tui`` package of the git revision ``ref`` under a new folder of ``into``; that folder."""
    root = tempfile.mkdtemp(prefix="tokdeck-perf-ref-", dir=into)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "tui"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    return root


def measure(path: str, lines: int, ref_root: str | None = None, ref: str = "") -> dict[str, float]:
    """One round on one file: prints each measure; returns the goals' ratios (of CPU times) and
    the two processes' MB/s."""
    import json

    import msgspec
    import orjson

    from tui.core.datasets.records import DECODERS

    mbs = os.path.getsize(path) / 1e6
    base = {}
    for name, loads in (("json.loads", json.loads), ("orjson.loads", orjson.loads)):
        warm(path)
        wall, cpu = base[name] = raw_loop(path, loads)
        print(f"baseline  bare {name:12s} loop, 1 process: {wall:6.2f} s  {mbs / wall:5.0f} MB/s wall, "
              f"{mbs / cpu:5.0f} MB/s per CPU-second   (load average {load_average()})")
    plain, full = DECODERS["openai-chat"]

    def typed(line: bytes):
        try:
            return plain(line)
        except msgspec.DecodeError:  # tool calls, parts...: the full schema
            return full(line)

    warm(path)  # the scan's own first step alone: what is left for everything else
    wall, cpu = raw_loop(path, typed)
    print(f"reference bare typed decode loop (msgspec, the scan's chat schemas): {wall:6.2f} s  {mbs / wall:5.0f} MB/s wall, "
          f"{mbs / cpu:5.0f} MB/s per CPU-second = {base['json.loads'][1] / cpu:.2f}x / "
          f"{base['orjson.loads'][1] / cpu:.2f}x CPU the json.loads / orjson.loads loops")
    warm(path)
    floor = floor_loop(path)
    out: dict[str, float] = {}
    if floor is not None:
        wall, cpu = floor
        out = {"floor / json.loads": base["json.loads"][1] / cpu, "floor / orjson.loads": base["orjson.loads"][1] / cpu}
        print(f"reference floor: array decode + repeated-key encode + prompt hashes, nothing else: {wall:6.2f} s  "
              f"{mbs / wall:5.0f} MB/s wall, {mbs / cpu:5.0f} MB/s per CPU-second = {base['json.loads'][1] / cpu:.2f}x "
              f"/ {base['orjson.loads'][1] / cpu:.2f}x CPU the json.loads / orjson.loads loops")
    for workers in (1, 2):
        warm(path)
        r = run_scan(path, workers)
        assert r["records"] == lines and r["valid"] == lines and r["duplicates"] == 0, r
        if workers == 1:
            out.update({f"1 process / {n}": base[n][1] / r["cpu_s"] for n in base})
        else:
            out["2 processes, MB/s wall"] = mbs / r["seconds"]
            out["2 processes / json.loads, wall"] = base["json.loads"][0] / r["seconds"]
        ratios = ", ".join(f"{base[n][0] / r['seconds']:.2f}x wall / {base[n][1] / r['cpu_s']:.2f}x CPU the {n} loop"
                           for n in base)
        print(f"structure pass, {workers} process{'es' if workers > 1 else '  '}: {r['seconds']:6.2f} s  "
              f"{mbs / r['seconds']:5.0f} MB/s wall, {mbs / r['cpu_s']:5.0f} MB/s per CPU-second = {ratios}; "
              f"peak RSS (whole process tree) {r['peak_rss_mb']:.0f} MB   (load average {load_average()})")
        if workers == 1 and ref_root:  # the same pass by the code of ``ref``, right after
            warm(path)
            o = run_scan(path, 1, root=ref_root)
            assert (o["records"], o["valid"], o["duplicates"]) == (r["records"], r["valid"], r["duplicates"]), o
            print(f"structure pass, 1 process, {ref}'s code: {o['seconds']:6.2f} s  {mbs / o['cpu_s']:5.0f} MB/s per "
                  f"CPU-second; this tree takes {r['cpu_s'] / o['cpu_s']:.2f}x its CPU time, "
                  f"{r['seconds'] / o['seconds']:.2f}x its wall time   (load average {load_average()})")
            out[f"1 process, CPU time / {ref}'s"] = r["cpu_s"] / o["cpu_s"]
    return out


def token_run(path: str, args) -> None:
    slice_path = os.path.join(args.dir, "tokdeck-perf-slice.jsonl")
    try:
        with open(path, "rb") as src, open(slice_path, "wb") as dst:
            data = src.read(int(args.token_mb * 1e6))
            dst.write(data[:data.rfind(b"\n") + 1])
        print(f"\n== token pass on {os.path.getsize(slice_path) / 1e6:.1f} MB of the first file's lines")
        for tid in args.tokenizers:
            r = token_bench(slice_path, tid)
            native_rate = r["tokens"] / r["native_s"] / 1e6
            print(f"{tid:12s} native {r['how']}: {r['native_s']:.2f} s ({native_rate:.2f} M tok/s); "
                  f"token pass {r['token_pass_s']:.2f} s ({r['tokens'] / r['token_pass_s'] / 1e6:.2f} M tok/s) "
                  f"= {r['ratio']:.2f}x the native speed")
    finally:
        if os.path.exists(slice_path):
            os.unlink(slice_path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chat", type=float, default=0.3, metavar="GB",
                    help="a file of this size of ordinary three-message chat records (0: skip)")
    ap.add_argument("--python-style", type=float, default=0.3, metavar="GB",
                    help="the same records written by json.dumps defaults (0: skip)")
    ap.add_argument("--short-lines", type=float, default=0.3, metavar="GB",
                    help="a file of this size of ~130-byte records (0: skip)")
    ap.add_argument("--sizes", type=float, nargs="*", default=[], help="realistic files of mixed sizes, in GB")
    ap.add_argument("--token-mb", type=float, default=8.0, help="size of the slice for the token pass (0: skip)")
    ap.add_argument("--tokenizers", nargs="+", default=["cl100k_base", "qwen3"])
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="rounds per file (each measures everything again, back to back); then the medians")
    ap.add_argument("--compare", default="main", metavar="REF",
                    help="also time the one-process pass of this git revision's code (empty: skip)")
    args = ap.parse_args()

    made: list[str] = []
    ref_root = export_ref(args.compare, args.dir) if args.compare else None
    try:
        print(f"cores: {len(os.sched_getaffinity(0))}")
        runs = [("chat", args.chat, "ordinary three-message chat records"),
                ("python", args.python_style, "the same records written by json.dumps defaults"),
                ("short", args.short_lines, "very short records")]
        runs += [("mixed", gb, "realistic records of mixed sizes") for gb in args.sizes]
        for style, gb, what in runs:
            if not gb:
                continue
            path = os.path.join(args.dir, f"tokdeck-perf-{style}-{gb:g}GB.jsonl")
            made.append(path)
            t = time.perf_counter()
            lines = generate(path, int(gb * 1e9), style=style)
            size = os.path.getsize(path)
            print(f"\n== {size / 1e9:.2f} GB of {what}, {lines:,} lines of {size / lines:.0f} bytes "
                  f"(generated in {time.perf_counter() - t:.1f} s)")
            rounds = []
            for k in range(args.repeat):
                if args.repeat > 1:
                    print(f"-- round {k + 1} of {args.repeat}")
                rounds.append(measure(path, lines, ref_root, args.compare))
            if args.repeat > 1:
                print(f"-- medians of {args.repeat} rounds: " + ", ".join(
                    f"{key} {statistics.median(r[key] for r in rounds):.2f}" for key in rounds[0]))
            if args.token_mb and len(made) == 1:
                token_run(path, args)
            os.unlink(path)
    finally:
        for p in made:
            if os.path.exists(p):
                os.unlink(p)
        if ref_root:
            shutil.rmtree(ref_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
