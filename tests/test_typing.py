"""The core type-checks clean: mypy on tui/core with the settings of pyproject.toml ([tool.mypy]).

The cache is the repository's .mypy_cache (git ignores it): under 1 s when warm. CI starts from a
fresh clone, so there it runs cold: 3-5 s of CPU, 9-23 s on a busy 2-core machine (mypy 2.4.1, a
fresh virtualenv).
"""

import subprocess
import sys

from tokdeck_testing import REPO


def test_mypy_finds_nothing_in_the_core():
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(REPO / ".mypy_cache"), "tui/core"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
