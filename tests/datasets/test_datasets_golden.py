"""`tokdeck inspect`'s reports, byte for byte, on every sample file and on the files of golden/:
hostile lines (hostile.jsonl), and the edges of the typed path (typed.jsonl: lines that decode
typed but must warn, repeated keys in messages, escaped colons, tool calls, layouts; its report
was made by the code from before the typed path). The text report and --json, without and with
a token pass. Only the elapsed time is masked. A change of any output shows here; rewrite the
golden files on purpose with TOKDECK_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tokdeck_testing import REPO, SAMPLE_DATA

GOLDEN = Path(__file__).parent / "golden"
INPUTS = sorted(p.relative_to(REPO).as_posix() for p in [*SAMPLE_DATA.glob("*.json*"), *GOLDEN.glob("*.jsonl")])
RUNS = ([], ["--json"], ["-t", "estimate", "--context-length", "64", "--max-errors", "100"],
        ["-t", "estimate", "--context-length", "64", "--json"])


def _masked(text: str) -> str:
    text = re.sub(r"scanned in \d+\.\d\d s", "scanned in X s", text)
    return re.sub(r'"elapsed": [0-9.e-]+', '"elapsed": X', text)


@pytest.mark.parametrize("name", INPUTS, ids=[Path(n).name for n in INPUTS])
def test_reports_are_byte_for_byte_the_golden_ones(name, capsysbinary, monkeypatch):
    from tui.cli import main

    monkeypatch.chdir(REPO)
    out = []
    for args in RUNS:
        assert main(["inspect", name, *args]) == 0
        printed = capsysbinary.readouterr().out.decode("utf-8")
        out.append(f"$ tokdeck inspect {' '.join([name, *args])}\n{_masked(printed)}")
    got = "".join(out)
    golden = GOLDEN / f"{Path(name).name}.out"
    if os.environ.get("TOKDECK_UPDATE_GOLDEN"):
        golden.write_text(got, encoding="utf-8")
    assert got == golden.read_text(encoding="utf-8")
