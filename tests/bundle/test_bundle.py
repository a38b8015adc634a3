"""`tokdeck bundle`: target tags, wheel selection, offline resolution and errors, with real pip.

pip runs against a folder of stub wheels standing in for the package index (the tests never reach
the network). The whole build against the real index, and the bundles installed and run with the
network cut, are checked by .ci/offline_check.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging import tags as packaging_tags  # pip's own tag logic (packaging comes with pytest)

from tokdeck_testing import NETGUARD_DIR, REPO, run_cli
from tui.core.bundle import (ARCHES, PYTHONS, Target, Tools, _replace_dir, download, find_project, make_bundles,
                             requirement, resolve)
from tui.core.errors import TokdeckError


def stub_wheel(folder: Path, name: str, version: str, tag: str, requires: tuple[str, ...] = ()) -> Path:
    """A wheel with metadata only: enough for pip to select, download and resolve it."""
    dist = f"{name}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    files = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tokdeck-tests\nRoot-Is-Purelib: false\n"
                                   + "".join(f"Tag: {t}\n" for t in _expand(tag)),
    }
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def _expand(tag: str) -> list[str]:
    interpreter, abi, platforms = tag.split("-")
    return [f"{interpreter}-{abi}-{p}" for p in platforms.split(".")]


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A folder of stub wheels as the only package index pip sees (through its environment, like a
    user's pip configuration); pip subprocesses run with the network guard."""
    folder = tmp_path / "index"
    folder.mkdir()
    for var in [v for v in os.environ if v.startswith("PIP_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("PYTHONPATH", str(NETGUARD_DIR))
    stub_wheel(folder, "app", "1.0", "py3-none-any", ("nativedep>=1", "puredep"))
    stub_wheel(folder, "puredep", "2.0", "py3-none-any")
    stub_wheel(folder, "nativedep", "1.0", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    stub_wheel(folder, "nativedep", "1.0", "cp312-abi3-manylinux_2_28_aarch64")
    stub_wheel(folder, "nativedep", "1.1", "cp311-cp311-manylinux_2_31_aarch64")
    stub_wheel(folder, "nativedep", "1.2", "cp311-cp311-linux_x86_64")  # built for one machine: never bundled
    return folder


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_download_takes_the_wheels_each_target_runs(index, tmp_path):
    x86 = tmp_path / "x86"
    download("app==1.0", Target("x86_64", "3.11"), x86, Tools())
    assert _names(x86) == {"app-1.0-py3-none-any.whl", "puredep-2.0-py3-none-any.whl",
                           "nativedep-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"}
    arm = tmp_path / "arm"
    download("app==1.0", Target("aarch64", "3.12"), arm, Tools())  # an abi3 wheel; 1.1 needs glibc 2.31
    assert "nativedep-1.0-cp312-abi3-manylinux_2_28_aarch64.whl" in _names(arm)
    download("app==1.0", Target("aarch64", "3.11", (2, 31)), arm, Tools())
    assert "nativedep-1.1-cp311-cp311-manylinux_2_31_aarch64.whl" in _names(arm)


def test_a_dependency_without_a_wheel_for_a_target_is_named(index, tmp_path):
    with pytest.raises(TokdeckError) as err:
        download("app==1.0", Target("aarch64", "3.11"), tmp_path / "arm", Tools())
    assert str(err.value) == "linux-aarch64 CPython 3.11: no binary wheel of nativedep>=1"


def test_resolve_from_the_wheelhouse_alone(index, tmp_path):
    target = Target("x86_64", "3.11")
    wheelhouse = tmp_path / "wheels"
    download("app==1.0", target, wheelhouse, Tools())
    assert resolve("app==1.0", target, Tools(), wheelhouse) == {"app": "1.0", "nativedep": "1.0", "puredep": "2.0"}
    assert resolve("app==1.0", target, Tools()) == {"app": "1.0", "nativedep": "1.0", "puredep": "2.0"}
    (wheelhouse / "puredep-2.0-py3-none-any.whl").unlink()
    # the index (PIP_FIND_LINKS) still has puredep: the offline check must not look there
    with pytest.raises(TokdeckError, match="linux-x86_64 CPython 3.11: no binary wheel of puredep"):
        resolve("app==1.0", target, Tools(), wheelhouse)


def test_a_failed_build_leaves_the_previous_bundle_and_no_litter(index, tmp_path):
    output = tmp_path / "offline"
    previous = output / "linux-x86_64" / "wheels" / "kept.whl"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"previous bundle")
    # the stub index has no pip nor pex: the build stops at its first step, with pip's reason
    with pytest.raises(TokdeckError, match=r"cannot install pip>=25 and pex.* for the build: no binary wheel of pip"):
        make_bundles(find_project(), output, ["x86_64"], ["3.11"])
    assert previous.read_bytes() == b"previous bundle"
    assert _names(output) == {"linux-x86_64"}


def test_replace_dir_swaps_whole_folders(tmp_path):
    final, new = tmp_path / "linux-x86_64", tmp_path / "work" / "linux-x86_64"
    (final / "wheels").mkdir(parents=True)
    (final / "wheels" / "old-1.0-py3-none-any.whl").write_bytes(b"old")
    (new / "wheels").mkdir(parents=True)
    (new / "wheels" / "new-1.0-py3-none-any.whl").write_bytes(b"new")
    _replace_dir(new, final)
    assert _names(final / "wheels") == {"new-1.0-py3-none-any.whl"}
    assert _names(tmp_path / "work") == set()


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("glibc", [(2, 17), (2, 28)])
def test_tags_are_those_pip_computes(arch, python, glibc):
    target = Target(arch, python, glibc)
    version = tuple(int(p) for p in python.split("."))
    interpreter = f"cp{version[0]}{version[1]}"
    expected = [*packaging_tags.cpython_tags(version, [interpreter], target.platforms()),
                *packaging_tags.compatible_tags(version, interpreter, target.platforms())]
    assert target.tags() == [str(t) for t in expected]
    assert target.complete_platform()["compatible_tags"] == target.tags()
    markers = target.complete_platform()["marker_environment"]
    assert (markers["platform_machine"], markers["python_version"], markers["sys_platform"]) == (arch, python, "linux")


def test_platforms_newest_glibc_first_with_the_legacy_names():
    assert Target("aarch64", "3.12").platforms() == [
        *(f"manylinux_2_{m}_aarch64" for m in range(28, 16, -1)), "manylinux2014_aarch64"]
    x86 = Target("x86_64", "3.12", (2, 17)).platforms()
    assert x86[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert x86[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"] and "manylinux2010_x86_64" in x86
    assert not any(p.startswith("linux_") for p in x86)


def test_project_and_extras_come_from_pyproject(tmp_path):
    project = find_project()
    assert project.root == REPO and project.name == "tokdeck" and "test" in project.extras
    assert project.sources == ("pyproject.toml", "README.md", "tui")  # no tests/, sample_data/, build/ ...
    assert requirement(project, ["TEST", "test"], "0.1.0") == "tokdeck[test]==0.1.0"
    assert requirement(project, [], wheel=tmp_path / "tokdeck-0.1.0-py3-none-any.whl").endswith(".whl")
    with pytest.raises(TokdeckError, match=r"unknown extra 'nope': tokdeck declares .*test"):
        requirement(project, ["nope"])
    with pytest.raises(TokdeckError, match="has no pyproject.toml: run `python3 -m tui.cli bundle` in a clone"):
        find_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\nname = 1")
    with pytest.raises(TokdeckError, match="cannot read the project from"):
        find_project(tmp_path)


@pytest.mark.parametrize("args,message", [
    (["--extra", "nope"], "tokdeck: error: unknown extra 'nope'"),
    (["--dry-run", "--extra", "nope"], "tokdeck: error: unknown extra 'nope'"),
    (["--glibc", "2.5"], "is not a glibc version from 2.17"),
    (["--glibc", "2.x"], "is not a glibc version from 2.17"),
    (["--arch", "sparc"], "invalid choice: 'sparc'"),
    (["--python", "3.10"], "invalid choice: '3.10'"),
])
def test_bad_input_is_one_line(args, message):
    proc = run_cli("bundle", *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_an_output_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file")
    proc = run_cli("bundle", "--output", str(tmp_path / "taken"))
    assert proc.returncode == 2 and proc.stderr.startswith("tokdeck: error: cannot use ")
    assert "for the bundles: File exists" in proc.stderr and (tmp_path / "taken").read_text() == "a file"


def test_runs_with_the_standard_library_alone():
    """A fresh clone has none of tokdeck's dependencies: bundle must get as far as its own checks."""
    code = "\n".join([
        "import sys",
        "sys.path.insert(0, sys.argv[1])",
        "from tui.cli import main",
        "rc = main(['bundle', '--extra', 'nope'])",
        "names = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'__main__'}",
        "print(rc, sorted(names))",
    ])
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip() == "2 ['tui']", proc.stderr
    assert "unknown extra 'nope'" in proc.stderr


def test_every_tokdeck_start_skips_the_builder():
    """The parser is built on every start (`tokdeck count` too); the builder costs ~10-25 ms to import."""
    code = "import sys; from tui.cli import build_parser; build_parser(); print('tui.core.bundle' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip() == "False", proc.stderr
