"""The regression check must fail on a slowed-down kernel.

``.ci/run`` runs ``bench/regression_check.py`` itself (that is the run at
normal speed, which must pass); this test makes sure that the check can
fail.
"""

import subprocess
import sys
from pathlib import Path

CHECK = Path(__file__).resolve().parent.parent / "bench" / "regression_check.py"


def run(*args):
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True,
                          text=True, timeout=300)


def test_fails_when_kernel_is_three_times_slower():
    # the median of 5 timings is enough to see a threefold slowdown
    res = run("--slowdown", "3", "--repeats", "5")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "PERFORMANCE REGRESSION" in res.stderr

