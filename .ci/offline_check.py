"""CI: both offline install paths, proven with the network cut.

Online (the only use of the package index): `tokdeck bundle` builds the wheelhouses and the single
files for x86_64 and aarch64, CPython 3.11-3.13, and resolves each wheelhouse with no index (so the
aarch64 ones, which cannot run here, are checked complete); `tokdeck bundle --dry-run` resolves
every optional extra of pyproject.toml but `test` for the same targets.

Offline, in a network namespace whose only interface is loopback (`unshare --net`): a fresh venv
for this script's CPython, and one for the other CPython 3.11-3.13 farthest from it found on this
machine (each version costs about a minute of CI), installs tokdeck from the x86_64 wheelhouse with
`--no-index` and no pip configuration; then that tokdeck and the single file must print what the
tested install (the venv running this script) prints. With this script's CPython they run
`tokenizers doctor` (every bundled tokenizer, both special-token policies), `count --all`, `inspect`
on every file of sample_data/ and the quick checks; with the other, the quick checks (QUICK_CHECKS:
count, inspect with tokens, a short `bench` against the built-in simulator), which load every
compiled dependency. Sizes and start-up times of both paths are reported.

Run by .ci/run beside the tests, in the CI venv: `python .ci/offline_check.py`. Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tui.core.bundle import PYTHONS  # the CPython versions tokdeck bundle targets

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"
# what every CPython version runs; the one running this script runs every check
QUICK_CHECKS = ("count -t cl100k_base -t qwen3 -t mistral-tekken", "inspect openai-chat.jsonl -t qwen3 -t cl100k_base",
                "bench --dataset-name custom --num-prompts 8")
TEXT = ("Counting offline: 你好，世界。今日はいい天気ですね 👩‍💻 <|endoftext|><|im_start|>user\n"
        "[INST] hi [/INST]</s> <|begin_of_text|>\r\ndef f(x):\n\treturn {'a': [1, 2]}  # 3.14159\n")


def log(line: str) -> None:
    print(f"offline check: {line}", file=sys.stderr, flush=True)


class Results:
    """Checks passed and failed. The offline half, another process, hands its own over in a file."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            log(f"FAIL {what}")
        return ok

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"passed": self.passed, "failed": self.failed}), encoding="utf-8")

    def add(self, path: Path) -> None:
        saved = json.loads(path.read_text(encoding="utf-8"))
        self.passed += saved["passed"]
        self.failed += saved["failed"]


# ---------------------------------------------------------------- online: build the bundles


def build(work: Path, results: Results) -> None:
    tokdeck = str(Path(sys.executable).with_name("tokdeck"))
    t0 = time.monotonic()
    proc = subprocess.run([tokdeck, "bundle", "--output", work / "dist"])
    if results.check(proc.returncode == 0, f"tokdeck bundle: exit {proc.returncode}"):
        log(f"bundles built and their wheelhouses resolved with no index in {time.monotonic() - t0:.0f} s")
    extras = [e for e in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
              .get("optional-dependencies", {}) if e != "test"]
    if extras:
        args = [a for e in extras for a in ("--extra", e)]
        proc = subprocess.run([tokdeck, "bundle", "--dry-run", *args])
        results.check(proc.returncode == 0,
                      f"optional extras {', '.join(extras)}: not every target has binary wheels (table above)")


# ---------------------------------------------------------------- offline: install and compare


def interpreters() -> dict[str, str]:
    """The CPython running this script, and the other 3.11-3.13 one farthest from it on this machine
    (on PATH or under pyenv): the two ends of the range where both are here."""
    this = "%d.%d" % sys.version_info[:2]
    found = {this: os.path.realpath(getattr(sys, "_base_executable", sys.executable))}
    others = sorted((v for v in PYTHONS if v != this), key=lambda v: -abs(int(v.split(".")[1]) - sys.version_info[1]))
    for version in others:
        candidates = [shutil.which(f"python{version}")] + sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
        for exe in filter(None, candidates):
            probe = subprocess.run([exe, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip() == version:  # pyenv shims answer for another version
                return dict(sorted({**found, version: exe}.items()))
    return found


def isolated_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh HOME, config and caches; no pip settings, no tokdeck settings, no API key."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "TOKDECK_", "PEX_", "VIRTUAL_ENV")) and k != "OPENAI_API_KEY"}
    for sub in ("config", "data", "cache", "hf", "tiktoken"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
               XDG_CACHE_HOME=str(home / "cache"), HF_HOME=str(home / "hf"), TIKTOKEN_CACHE_DIR=str(home / "tiktoken"),
               PIP_CONFIG_FILE=os.devnull)
    env.update(extra or {})
    return env


def run(cmd: list, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=REPO,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def observe(cmd: list, env: dict[str, str], text_file: Path, full: bool) -> dict[str, object]:
    """What a tokdeck prints for each check, in a comparable form (timings removed).

    full: every check; else a quick one per compiled dependency (tiktoken, tokenizers, orjson,
    aiohttp), for the other CPython versions. Loading all bundled tokenizers takes 5-20 s a time.
    """
    seen: dict[str, object] = {}

    def call(name: str, *args) -> str | None:
        proc = run([*cmd, *args], env)
        if proc.returncode:
            seen[name] = f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}"
            return None
        return proc.stdout

    if full:
        out = call("tokenizers doctor", "tokenizers", "doctor")
        if out is not None:
            # "ok    ID   N tokens (parse: M)   T ms  ..." -> ID N M; the time varies
            seen["tokenizers doctor"] = sorted(" ".join(line.split()[1:3] + [line.split()[5].rstrip(")")])
                                               for line in out.splitlines() if line.startswith("ok "))
        out = call("count --all", "count", "--json", "--all", text_file)  # doctor counted with --specials parse
        if out is not None:
            seen["count --all"] = json.loads(out)
        for path in sorted(p for p in SAMPLE_DATA.iterdir() if p.suffix in (".jsonl", ".json")):
            out = call(f"inspect {path.name}", "inspect", "--json", path.relative_to(REPO))
            if out is not None:
                seen[f"inspect {path.name}"] = {k: v for k, v in json.loads(out).items() if k != "elapsed"}
    count, inspect, bench = QUICK_CHECKS
    out = call(count, "count", "--json", "-t", "cl100k_base", "-t", "qwen3", "-t", "mistral-tekken", text_file)
    if out is not None:
        seen[count] = json.loads(out)
    out = call(inspect, "inspect", "--json", "-t", "qwen3", "-t", "cl100k_base", "sample_data/openai-chat.jsonl")
    if out is not None:
        seen[inspect] = {k: v for k, v in json.loads(out).items() if k != "elapsed"}
    out = call(bench, "bench", "--num-prompts", "8", "--output-len", "16", "--dataset-name", "custom",
               "--dataset-path", "sample_data/prompt.jsonl", "--disable-tqdm")
    if out is not None:
        wanted = ("Successful requests", "Failed requests", "Total input tokens", "Total generated tokens")
        seen[bench] = [" ".join(line.split()) for line in out.splitlines() if line.startswith(wanted)]
    return seen


def compare(results: Results, name: str, seen: dict, reference: dict) -> None:
    same = [results.check(seen.get(check) == expected, f"{name}: {check} differs from the tested install: "
                          + json.dumps(seen.get(check), ensure_ascii=False)[:300])
            for check, expected in reference.items()]
    if all(same):
        log(f"{name}: {len(reference)} checks print what the tested install prints")


def timed(cmd: list, env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = run(cmd, env)
        times.append(time.perf_counter() - t0)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return times


def fast_start_ready(single_file: Path, home: Path) -> bool:
    """Whether the venv the file's /bin/sh start execs directly exists (else it re-runs the PEX zip, +2 s)."""
    with single_file.open("rb") as fh:
        head = fh.read(4096).decode("utf-8", "replace")
    for line in head.splitlines():
        if line.startswith('INSTALLED_PEX="${PEX_ROOT}/'):
            return (home / ".cache" / "pex" / line.split("}/", 1)[1].rstrip('"') / "bin" / "python").exists()
    return False


def install(python: str, venv: Path, wheelhouse: Path, env: dict[str, str]) -> str | None:
    """A fresh venv with tokdeck from the wheelhouse alone, as the README says; pip's complaint if not."""
    for step in ([python, "-m", "venv", venv],
                 [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse,
                  "tokdeck"]):
        proc = run(step, env)
        if proc.returncode:
            return f"{' '.join(map(str, step[:5]))} ...: {proc.stderr.strip()[-400:]}"
    return None


def offline(work: Path, results: Results) -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())  # /sys/class/net shows the host's
    if not results.check(interfaces == ["lo"], f"not in an empty network namespace: interfaces {interfaces}"):
        return
    # bench's built-in simulator listens on 127.0.0.1; loopback is down in a new namespace
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    log("in a network namespace with loopback only")

    text_file = work / "sample.txt"
    text_file.write_text(TEXT + (SAMPLE_DATA / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    small_file = work / "small.txt"
    small_file.write_text("The quick brown fox jumps over the lazy dog.\n" * 20, encoding="utf-8")
    wheelhouse = work / "dist" / "linux-x86_64" / "wheels"
    single_file = work / "dist" / "linux-x86_64" / "tokdeck"
    tested = [str(Path(sys.executable).with_name("tokdeck"))]
    full_reference = observe(tested, isolated_env(work / "home-tested"), text_file, full=True)
    if not results.check(not any(isinstance(v, str) for v in full_reference.values()),
                         f"the tested install failed its own checks: {full_reference}"):
        return
    reference = {True: full_reference, False: {k: v for k, v in full_reference.items() if k in QUICK_CHECKS}}
    this_python = "%d.%d" % sys.version_info[:2]
    pythons = interpreters()
    log(f"CPython here: {', '.join(f'{v} ({p})' for v, p in pythons.items())}")
    timings: dict[str, list[float]] = {}
    for version, python in pythons.items():
        full = version == this_python
        t0 = time.monotonic()
        venv = work / f"venv-{version}"
        problem = install(python, venv, wheelhouse, isolated_env(work / f"home-pip-{version}"))
        if results.check(problem is None, f"CPython {version}: {problem}"):
            log(f"CPython {version}: installed from the wheelhouse with --no-index in {time.monotonic() - t0:.0f} s")
            installed_env = isolated_env(work / f"home-installed-{version}")
            compare(results, f"installed, CPython {version}",
                    observe([venv / "bin" / "tokdeck"], installed_env, text_file, full), reference[full])
        if full:
            # as a user runs it: `./tokdeck`, its /bin/sh start finding python3.X on PATH, a fresh HOME
            bin_dir = work / "bin"
            bin_dir.mkdir()
            (bin_dir / f"python{version}").symlink_to(python)
            pex_env = isolated_env(work / "home-pex", {"PATH": f"{bin_dir}:/usr/bin:/bin"})
            try:
                timings["single file: first run (lays out its venv)"] = timed([single_file, "--version"], pex_env, 1)
            except RuntimeError as exc:
                results.check(False, f"single file, CPython {version}: {exc}")
            results.check(fast_start_ready(single_file, work / "home-pex"),
                          "single file: after its first run, its /bin/sh start does not find the venv it made "
                          "(every start would take the slow path)")
        else:  # the /bin/sh start takes the first python3.X on PATH in its own order; PEX_PYTHON picks one
            pex_env = isolated_env(work / f"home-pex-{version}", {"PEX_PYTHON": python})
        compare(results, f"single file, CPython {version}", observe([single_file], pex_env, text_file, full),
                reference[full])
        if full and not problem:
            try:
                for label, args in (("--version", ["--version"]),
                                    ("count -t cl100k_base (1 KB)", ["count", "-t", "cl100k_base", small_file])):
                    timings[f"installed: {label}"] = timed([venv / "bin" / "tokdeck", *args], installed_env, 5)
                    timings[f"single file: {label}"] = timed([single_file, *args], pex_env, 5)
            except RuntimeError as exc:
                results.check(False, f"start-up timing: {exc}")
            pex_root = work / "home-pex" / ".cache" / "pex"
            timings["single file: ~/.cache/pex after it (MB)"] = [
                sum(f.stat().st_size for f in pex_root.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6]
    report(work, timings)


def report(work: Path, timings: dict[str, list[float]]) -> None:
    print("\nOffline install bundles (tokdeck bundle, defaults):")
    for folder in sorted((work / "dist").glob("linux-*")):
        wheels = list((folder / "wheels").glob("*.whl"))
        print(f"  {folder.name}/wheels/   {len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB")
        print(f"  {folder.name}/tokdeck   {(folder / 'tokdeck').stat().st_size / 1e6:.1f} MB")
    if timings:
        print(f"Start-up offline, CPython {'%d.%d' % sys.version_info[:2]}, seconds (median of 5 runs):")
        for label, values in timings.items():
            shown = f"{values[0]:.0f}" if "MB" in label else f"{statistics.median(values):.2f}"
            print(f"  {label:<48} {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline-in", type=Path, metavar="WORK", help=argparse.SUPPRESS)
    args = parser.parse_args()
    results = Results()
    if args.offline_in:
        offline(args.offline_in, results)
        results.save(args.offline_in / "offline-results.json")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokdeck-offline-") as tmp:
        work = Path(tmp)
        if results.check(shutil.which("unshare") is not None and shutil.which("ip") is not None,
                         "needs unshare (util-linux) and ip (iproute2)"):
            build(work, results)
        if (work / "dist" / "linux-x86_64" / "tokdeck").is_file():
            proc = subprocess.run(["unshare", "--net", "--", sys.executable, __file__, "--offline-in", work])
            saved = work / "offline-results.json"
            if results.check(saved.is_file(), f"the offline half ended with exit {proc.returncode}"):
                results.add(saved)
    for line in results.failed:
        log(f"FAIL {line}")
    log(f"{time.monotonic() - t0:.0f} s")
    # the plain closing line CI reads, as test runners print it
    print(f"offline: {results.passed} passed, {len(results.failed)} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
