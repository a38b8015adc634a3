"""The core type-checks clean: mypy on tui/core with the settings of pyproject.toml ([tool.mypy]).

The cache is the repository's .mypy_cache (git ignores it): about 1 s when warm. CI starts from a
fresh clone, so there it is a cold run: about 5 s of CPU (measured with mypy 2.4 on this
project's kind of machine).
"""

import subprocess
import sys

from tokdeck_testing import REPO


def test_mypy_finds_nothing_in_the_core():
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(REPO / ".mypy_cache"), "tui/core"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
