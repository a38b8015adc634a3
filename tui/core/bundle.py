"""Offline install bundles: a wheelhouse and a single-file executable (a PEX) per Linux architecture.

Made on a machine that reaches a package index, from a source checkout, for machines with no
network. Standard library only: it runs before tokdeck's own dependencies are installed
(`python3 -m tui.cli bundle` in a fresh clone).

The dependency set is the metadata of tokdeck's wheel, built from pyproject.toml, so whatever is
added there is bundled with no change here. pip resolves every (architecture, CPython) target with
`--only-binary=:all:`: a dependency with no binary wheel for a target stops the bundle, naming
both. Each wheelhouse is then resolved again from its own folder alone, with no index and no pip
configuration, as on the target box; and pex checks, with the target's own environment markers,
that the wheels form a closure (pip evaluates `platform_machine` markers for the machine it runs
on, pex for the target).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import TokdeckError

ARCHES = ("x86_64", "aarch64")
PYTHONS = ("3.11", "3.12", "3.13")
# manylinux_2_28: RHEL 8, Debian 10, Ubuntu 20.04 and newer. tiktoken's recent aarch64 wheels need
# it; at 2.17 pip falls back to older releases than those the test suite runs with.
DEFAULT_GLIBC = (2, 28)
# The build's own tools, whatever pip the machine has: pip for --platform with --dry-run and
# --report, pex for --pre-resolved-dists, --complete-platform and --sh-boot.
BUILD_TOOLS = ("pip>=25", "pex>=2.105,<3")
# manylinux tags go down to glibc 2.5 on x86_64; aarch64 wheels begin at 2.17 (PEP 599, PEP 600)
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


@dataclass(frozen=True)
class Target:
    """A box to install on: Linux on `arch`, CPython `python` ("3.12"), glibc `glibc` or newer."""

    arch: str
    python: str
    glibc: tuple[int, int] = DEFAULT_GLIBC

    def __str__(self) -> str:
        return f"linux-{self.arch} CPython {self.python}"

    def platforms(self) -> list[str]:
        """The manylinux platform tags such a box runs, newest glibc first.

        Plain `linux_<arch>` wheels are left out: they are built for one machine, not portable.
        """
        tags = []
        for minor in range(self.glibc[1], _OLDEST_GLIBC_MINOR[self.arch] - 1, -1):
            tags.append(f"manylinux_{self.glibc[0]}_{minor}_{self.arch}")
            if minor in _LEGACY_MANYLINUX:
                tags.append(f"{_LEGACY_MANYLINUX[minor]}_{self.arch}")
        return tags

    def tags(self) -> list[str]:
        """Every wheel tag (PEP 425) the target accepts, most specific first, in pip's order for CPython."""
        major, minor = (int(p) for p in self.python.split("."))
        cp = f"cp{major}{minor}"
        platforms = self.platforms()
        tags = [f"{cp}-{abi}-{p}" for abi in (cp, "abi3", "none") for p in platforms]
        tags += [f"cp{major}{older}-abi3-{p}" for older in range(minor - 1, 1, -1) for p in platforms]
        pys = [f"py{major}{minor}", f"py{major}"] + [f"py{major}{older}" for older in range(minor - 1, -1, -1)]
        tags += [f"{py}-none-{p}" for py in pys for p in platforms]
        return tags + [f"{cp}-none-any"] + [f"{py}-none-any" for py in pys]

    def pip_args(self) -> list[str]:
        """pip options that resolve for this target instead of the running interpreter."""
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python,
                "--abi", "cp" + self.python.replace(".", "")]
        for platform in self.platforms():
            args += ["--platform", platform]
        return args

    def complete_platform(self) -> dict:
        """The target as pex's --complete-platform: the markers and tags its interpreter would report."""
        full = f"{self.python}.0"
        markers = {
            "implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
            "platform_machine": self.arch, "platform_python_implementation": "CPython", "platform_release": "",
            "platform_system": "Linux", "platform_version": "", "python_full_version": full,
            "python_version": self.python, "sys_platform": "linux",
        }
        return {"marker_environment": markers, "compatible_tags": self.tags()}


@dataclass(frozen=True)
class Project:
    """A source checkout: its folder, distribution name (also its console script), declared extras,
    and what a wheel is built from (pyproject.toml, the readme it names, the top-level packages)."""

    root: Path
    name: str
    extras: tuple[str, ...]
    sources: tuple[str, ...]


def find_project(root: Path | None = None) -> Project:
    """The checkout this package runs from (or `root`); a one-line error when it is not one."""
    root = root or Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise TokdeckError(f"bundles are built from a source checkout and {root} has no pyproject.toml: "
                           "run `python3 -m tui.cli bundle` in a clone of tokdeck")
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        name = project["name"]
        extras = tuple(project.get("optional-dependencies", {}))
        readme = project.get("readme")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise TokdeckError(f"cannot read the project from {pyproject}: {exc}") from None
    if not isinstance(name, str):
        raise TokdeckError(f"cannot read the project from {pyproject}: [project] name is not a string")
    packages = sorted(d.name for d in root.iterdir() if (d / "__init__.py").is_file())
    return Project(root, name, extras, ("pyproject.toml", *([readme] if isinstance(readme, str) else []), *packages))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503 / PEP 685


def requirement(project: Project, extras: Sequence[str], version: str | None = None, wheel: Path | None = None) -> str:
    """`tokdeck[ray]==0.1.0`, or the wheel file with its extras; unknown extras are an error (pip only warns)."""
    known = {_normalize(e): e for e in project.extras}
    chosen = []
    for extra in extras:
        if _normalize(extra) not in known:
            raise TokdeckError(f"unknown extra {extra!r}: {project.name} declares "
                               + (", ".join(project.extras) or "none"))
        if known[_normalize(extra)] not in chosen:
            chosen.append(known[_normalize(extra)])
    suffix = f"[{','.join(chosen)}]" if chosen else ""
    if wheel is not None:
        return f"{wheel}{suffix}"
    return f"{project.name}{suffix}" + (f"=={version}" if version else "")


@dataclass(frozen=True)
class Tools:
    """Runs pip and pex with `python`; `path` (a folder from install_tools) comes before its own packages."""

    python: str = sys.executable
    path: Path | None = None

    def run(self, module: str, args: Sequence[str | Path], *, isolated: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`python -m module args`, output captured. isolated: no pip configuration, no PIP_* settings."""
        full_env = dict(os.environ)
        if isolated:
            full_env = {k: v for k, v in full_env.items() if not k.startswith("PIP_")}
            full_env["PIP_CONFIG_FILE"] = os.devnull
        if self.path is not None:
            full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.path), full_env.get("PYTHONPATH")) if p)
        full_env.update(env or {})
        return subprocess.run([self.python, "-m", module, *map(str, args)], capture_output=True, text=True,
                              env=full_env, stdin=subprocess.DEVNULL)


def pip_failure(output: str) -> str:
    """pip's reason for failing, in one line."""
    missing = re.search(r"No matching distribution found for (\S+)", output)
    if missing:
        return f"no binary wheel of {missing.group(1)}"
    if "No module named pip" in output:
        return "this Python has no pip (python3 -m ensurepip, or the python3-pip package)"
    errors = [line.removeprefix("ERROR:").strip() for line in output.splitlines() if line.startswith("ERROR:")]
    lines = errors or [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "pip failed with no message"


def install_tools(folder: Path, tools: Tools = Tools()) -> Tools:
    """Current pip and pex in `folder`, for this build only."""
    proc = tools.run("pip", ["install", "--quiet", "--disable-pip-version-check", "--target", folder, *BUILD_TOOLS])
    if proc.returncode:
        raise TokdeckError(f"cannot install {' and '.join(BUILD_TOOLS)} for the build: "
                           f"{pip_failure(proc.stdout + proc.stderr)}")
    return Tools(tools.python, folder)


def build_wheel(project: Project, folder: Path, tools: Tools) -> Path:
    """tokdeck's own wheel (its metadata carries the dependencies), built from a copy of the sources:
    setuptools leaves build/ and *.egg-info in the tree it builds, and packs files left in build/lib
    by earlier builds even once they are gone from the checkout."""
    source = folder / "source"
    source.mkdir(parents=True)
    for name in project.sources:
        path = project.root / name
        try:
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, source / name)
        except OSError as exc:
            raise TokdeckError(f"cannot copy {path} to build the wheel: {exc.strerror or exc}") from None
    proc = tools.run("pip", ["wheel", "--quiet", "--no-deps", "--wheel-dir", folder, source])
    wheels = sorted(folder.glob(f"{_normalize(project.name).replace('-', '_')}-*.whl"))
    if proc.returncode or len(wheels) != 1:
        raise TokdeckError(f"cannot build the {project.name} wheel from {project.root}: "
                           f"{pip_failure(proc.stdout + proc.stderr)}")
    return wheels[0]


def download(req: str, target: Target, dest: Path, tools: Tools) -> None:
    """Binary wheels of `req` and everything it needs on `target`, into `dest` (kept ones are reused)."""
    proc = tools.run("pip", ["download", "--quiet", "--progress-bar", "off", "--dest", dest, *target.pip_args(), req])
    if proc.returncode:
        raise TokdeckError(f"{target}: {pip_failure(proc.stdout + proc.stderr)}")


def resolve(req: str, target: Target, tools: Tools, wheelhouse: Path | None = None) -> dict[str, str]:
    """What pip would install on `target`, {name: version}, downloading no wheel it can avoid.

    With `wheelhouse`: from that folder alone (no index, no pip configuration), as on the target box.
    """
    with tempfile.TemporaryDirectory(prefix="tokdeck-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        args: list[str | Path] = ["install", "--quiet", "--dry-run", "--ignore-installed", "--target", Path(tmp) / "target",
                "--report", report, *target.pip_args()]
        if wheelhouse is not None:
            args += ["--no-index", "--find-links", wheelhouse]
        proc = tools.run("pip", [*args, req], isolated=wheelhouse is not None)
        if proc.returncode:
            raise TokdeckError(f"{target}: {pip_failure(proc.stdout + proc.stderr)}")
        try:
            items = json.loads(report.read_text(encoding="utf-8"))["install"]
            return {item["metadata"]["name"]: item["metadata"]["version"] for item in items}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokdeckError(f"{target}: unreadable pip report: {exc}") from None


def build_pex(req: str, wheelhouse: Path, targets: Sequence[Target], output: Path, script: str,
              tools: Tools, work: Path) -> None:
    """One executable file for all `targets` (one architecture), from the wheelhouse alone."""
    args: list[str | Path] = ["--no-pypi", "--pre-resolved-dists", wheelhouse]
    for target in targets:
        platform_file = work / f"platform-{target.arch}-{target.python}.json"
        platform_file.write_text(json.dumps(target.complete_platform()), encoding="utf-8")
        args += ["--complete-platform", platform_file]
    # --venv: the first run lays out a virtualenv under PEX_ROOT; later runs start it directly
    # (about as fast as an installed tokdeck, where a zipapp PEX takes ~0.5 s more per start).
    # --sh-boot: /bin/sh finds a python3.11-3.13 on PATH, so `./tokdeck` needs no shebang edits.
    # --runtime-pex-root: the /bin/sh start looks for that venv under ~/.cache/pex while pex itself
    # follows $XDG_CACHE_HOME; with that set and no fixed root every start took the slow path (+2 s).
    # --no-pre-install-wheels: the wheels go in as they are (a tenth of the build time, the same size and
    # first-run time; the first run installs them either way).
    args += [req, "--console-script", script, "--venv", "--sh-boot", "--runtime-pex-root", "~/.cache/pex",
             "--no-pre-install-wheels", "--output-file", output]
    proc = tools.run("pex", args, env={"PEX_ROOT": str(work / "pex-root")})
    if proc.returncode:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise TokdeckError(f"pex could not build {output.name} for linux-{targets[0].arch}: "
                           + (" ".join(lines[:3]) if lines else f"exit status {proc.returncode}"))


@dataclass(frozen=True)
class ArchBundle:
    """What `make_bundles` left for one architecture."""

    arch: str
    folder: Path
    wheelhouse: Path
    wheels: int
    wheelhouse_bytes: int
    pex: Path | None
    pex_bytes: int


def _prepare(project: Project, work: Path, log: Callable[[str], None]) -> tuple[Tools, Path]:
    """The build's tools and the project's wheel, in `work`."""
    log(f"installing {' and '.join(BUILD_TOOLS)} for the build")
    tools = install_tools(work / "tools")
    log(f"building the {project.name} wheel from {project.root}")
    return tools, build_wheel(project, work / "project-wheel", tools)


def _replace_dir(new: Path, final: Path) -> None:
    """Move `new` to `final`, replacing it; never leaves a mix of the two."""
    old = new.with_name(new.name + ".old")
    if final.exists():
        final.rename(old)
    new.rename(final)
    if old.exists():
        shutil.rmtree(old)


def make_bundles(project: Project, output: Path, arches: Sequence[str], pythons: Sequence[str],
                 extras: Sequence[str] = (), glibc: tuple[int, int] = DEFAULT_GLIBC, pex: bool = True,
                 log: Callable[[str], None] = lambda line: None) -> list[ArchBundle]:
    """`output`/linux-ARCH/wheels/ (a wheelhouse) and `output`/linux-ARCH/tokdeck (the PEX) per arch.

    Everything is built in a temporary folder inside `output`; each architecture's folder replaces
    the old one only once all of it is built and checked.
    """
    requirement(project, extras)  # unknown extras fail before anything is downloaded
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TokdeckError(f"cannot use {output} for the bundles: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix=".tokdeck-bundle-", dir=output) as tmp:
        work = Path(tmp)
        tools, wheel = _prepare(project, work, log)
        version = wheel.name.split("-")[1]
        failures = []
        for arch in arches:
            for python in pythons:
                target = Target(arch, python, glibc)
                log(f"{target}: downloading wheels")
                try:
                    download(requirement(project, extras, wheel=wheel), target, work / f"linux-{arch}" / "wheels",
                             tools)
                except TokdeckError as exc:
                    failures.append(str(exc))
        if failures:
            raise TokdeckError("; ".join(failures))
        installed = requirement(project, extras, version)
        bundles = []
        for arch in arches:
            folder = work / f"linux-{arch}"
            wheelhouse = folder / "wheels"
            targets = [Target(arch, python, glibc) for python in pythons]
            for target in targets:
                packages = resolve(installed, target, tools, wheelhouse)
                log(f"{target}: {installed} installs from wheels/ alone ({len(packages)} packages)")
            pex_file = None
            if pex:
                log(f"linux-{arch}: building the single file")
                build_pex(installed, wheelhouse, targets, folder / project.name, project.name, tools, work)
                pex_file = output / folder.name / project.name
            wheels = sorted(wheelhouse.glob("*.whl"))
            bundles.append(ArchBundle(
                arch, output / folder.name, output / folder.name / "wheels", len(wheels),
                sum(w.stat().st_size for w in wheels), pex_file,
                (folder / project.name).stat().st_size if pex else 0))
        for bundle in bundles:
            _replace_dir(work / bundle.folder.name, bundle.folder)
    return bundles


def check_targets(project: Project, arches: Sequence[str], pythons: Sequence[str], extras: Sequence[str] = (),
                  glibc: tuple[int, int] = DEFAULT_GLIBC,
                  log: Callable[[str], None] = lambda line: None) -> list[tuple[Target, dict[str, str] | str]]:
    """Resolve every target against the index without downloading wheels: the packages, or why not."""
    requirement(project, extras)
    with tempfile.TemporaryDirectory(prefix="tokdeck-bundle-") as tmp:
        tools, wheel = _prepare(project, Path(tmp), log)
        req = requirement(project, extras, wheel=wheel)
        results: list[tuple[Target, dict[str, str] | str]] = []
        for arch in arches:
            for python in pythons:
                target = Target(arch, python, glibc)
                log(f"{target}: resolving")
                try:
                    results.append((target, resolve(req, target, tools)))
                except TokdeckError as exc:
                    results.append((target, str(exc).removeprefix(f"{target}: ")))
    return results
