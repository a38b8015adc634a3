"""Static checks that catch real bugs: undefined names, unused imports, syntax errors (ruff, rules F and E9)."""

import subprocess
import sys

from tokdeck_testing import REPO


def test_ruff_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "tui", "tests"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
