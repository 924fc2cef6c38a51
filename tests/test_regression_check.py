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
    # the median of 5 timings is enough to see a threefold slowdown.  One
    # kernel: every kernel goes through the same timing loop and verdict,
    # and timing all seven would compile their references again in the
    # child (about 10 s of a cold test run); .ci/run times all of them.
    res = run("--slowdown", "3", "--repeats", "5", "--only", "topk")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "PERFORMANCE REGRESSION: topk " in res.stderr
    assert "dense_step" not in res.stdout


def test_only_rejects_an_unknown_kernel():
    res = run("--only", "topk,no_such_kernel", "--repeats", "1")
    assert res.returncode != 0
    assert "no kernel named no_such_kernel" in res.stderr

