"""Speed of the tokenizer layer against the raw libraries, measured in the same run.

    python tests/perf/perf_tokenizers.py [--runs 9] [--mb 10]

1. Lazy loading: `tokdeck count -t cl100k_base` on a short text vs a bare Python process that
   imports tiktoken and builds the same encoding from the same bundled file (goal: <= 1.5x).
   A second baseline reads an uncompressed copy (the cost of shipping the file xz-compressed).
2. Counting N MB of mixed text: tokdeck's count() vs the library called directly, best of 3
   (goal: <= 1.1x). Each tokenizer is loaded once, outside the timing.

Machines are shared and noisy: runs are interleaved and medians/minimums reported as ratios.
"""

from __future__ import annotations

import argparse
import lzma
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tui.core.tokenizers.registry import DATA_DIR, Registry, _manifest  # noqa: E402

BASELINE = r"""
import sys, lzma, base64, tiktoken
path, pattern, compressed = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
data = open(path, "rb").read()
if compressed:
    data = lzma.decompress(data)
ranks = {base64.b64decode(t): int(r) for t, r in (l.split() for l in data.splitlines() if l)}
enc = tiktoken.Encoding("cl100k_base", pat_str=pattern, mergeable_ranks=ranks,
                        special_tokens={"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                                        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276})
print(len(enc.encode_ordinary(sys.stdin.read())))
"""


def timed(cmd: list[str], stdin: bytes, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.decode()[-500:]}")
    return dt


def startup(runs: int) -> None:
    entry = _manifest()["cl100k_base"]
    xz_path = DATA_DIR / entry["file"]
    raw = Path(tempfile.mkdtemp()) / "cl100k_base.tiktoken"
    raw.write_bytes(lzma.decompress(xz_path.read_bytes()))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tokdeck = Path(sys.executable).with_name("tokdeck")
    ours = [str(tokdeck), "count", "-t", "cl100k_base", "-"] if tokdeck.exists() else \
        [sys.executable, "-m", "tui.cli", "count", "-t", "cl100k_base", "-"]
    text = b"How many tokens is this short prompt?"
    cmds = {
        "tokdeck count -t cl100k_base": ours,
        "bare: tiktoken + same .xz file": [sys.executable, "-c", BASELINE, str(xz_path), entry["pattern"], "1"],
        "bare: tiktoken + uncompressed copy": [sys.executable, "-c", BASELINE, str(raw), entry["pattern"], "0"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd, text, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["bare: tiktoken + same .xz file"]
    print(f"\n1. start-up, median of {runs} interleaved runs")
    for name, value in med.items():
        print(f"   {name:38} {value * 1000:7.0f} ms   {value / base:5.2f}x")
    print(f"   ratio vs bare (same file): {med['tokdeck count -t cl100k_base'] / base:.2f}x  (goal <= 1.5x)")
    print(f"   ratio vs bare (uncompressed): {med['tokdeck count -t cl100k_base'] / med['bare: tiktoken + uncompressed copy']:.2f}x")


def mixed_text(mb: float, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = ("the of and to in is that for it as with was on be by this are from or have an they which one you "
             "tokenizer benchmark latency throughput endpoint dataset").split()
    parts, size = [], 0
    while size < mb * 1_000_000:
        kind = rng.random()
        if kind < 0.55:
            s = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) + ".\n"
        elif kind < 0.75:
            s = f"def f_{rng.randint(0, 999)}(x, y=2):\n    return {{'k': [x ** y, {rng.random():.4f}]}}\n\n"
        elif kind < 0.9:
            s = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(5, 30))) + "。\n"
        else:
            s = rng.choice(["👍 ", "👨‍👩‍👧 ", "ça va? ", "  \t", "\r\n", "<|endoftext|>", "Ünïcödé "]) * rng.randint(1, 4)
        parts.append(s)
        size += len(s.encode())
    return "".join(parts)


def best(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def counting(mb: float) -> None:
    text = mixed_text(mb)
    reg = Registry(discover=False, env={})
    print(f"\n2. counting {len(text.encode()) / 1e6:.1f} MB of mixed text, best of 3")
    print(f"   {'tokenizer':16} {'tokdeck':>9} {'library':>9} {'ratio':>6}  library call")
    for tid in ("cl100k_base", "o200k_base", "mistral-tekken", "qwen3", "llama3", "gemma3"):
        tok = reg.get(tid)
        if tok.info.format in ("tiktoken", "tekken"):
            enc = tok.encoding
            raw = lambda: len(enc.encode_ordinary(text))  # noqa: E731
            label = "Encoding.encode_ordinary"
        else:
            hf = tok.hf
            hf.encode_special_tokens = True
            raw = lambda: len(hf.encode(text, add_special_tokens=False).ids)  # noqa: E731
            label = "Tokenizer.encode"
        ours = lambda: tok.count(text)  # noqa: E731
        assert ours() == raw(), tid
        t_raw, t_ours = [], []
        for _ in range(3):  # interleave so drift hits both
            t_raw.append(best(raw, 1))
            t_ours.append(best(ours, 1))
        r, o = min(t_raw), min(t_ours)
        print(f"   {tid:16} {o * 1000:7.0f}ms {r * 1000:7.0f}ms {o / r:5.2f}x  {label}")
    print("   goal: <= 1.1x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--mb", type=float, default=10)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")
    startup(args.runs)
    counting(args.mb)


if __name__ == "__main__":
    main()
