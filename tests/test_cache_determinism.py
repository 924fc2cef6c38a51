"""The same results whether the kernels were just compiled or loaded from
Numba's on-disk cache.

A fit runs in a fresh interpreter with an empty ``NUMBA_CACHE_DIR``
(everything compiled there), then in a second one that loads what the first
wrote; factors and objective histories must agree bitwise.  They once did
not: a compiled kernel that called a separately compiled numeric helper ran
the helper's own JIT code in the process that compiled it, but the copy
linked into (and optimized with) the kernel when the kernel came from the
cache, and with fast-math the two copies rounded differently (1 ulp in
float32 from the third iteration on, then spreading).  The numeric helpers
of the row solvers are now ``forceinline``.

The child compiles the explicit and implicit Cholesky solvers (the k x k
callback, with BLAS at k=20 and without at k=4, and the short-row callback,
forced on) and implicit CG, in float32: about 30 s of compilation on an
idle 2-core machine.  The dense objective and BayesianALS are not in it (a
further 10 s and 35 s); they agreed cold and warm when this test was
written.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
import numpy as np
from fastals import FastALS, make_ratings
from fastals.kernels import rows

r = make_ratings(seed=0)  # 943 x 1682, 100,000 ratings
out = {}
for name, kw, force_short in [
        ("explicit_k4", dict(factors=4), False),           # loops, no BLAS
        ("explicit_k20", dict(factors=20), True),          # BLAS, short rows
        ("implicit_k20", dict(factors=20, objective="implicit"), True),
        ("implicit_cg_k20", dict(factors=20, objective="implicit",
                                 solver="cg"), False)]:
    # short rows (n x n path) on every half-step that has them, not only
    # where they save enough work to pay for their compilation
    rows.SHORT_ROW_MIN_SAVING = 0.0 if force_short else 1e8
    m = FastALS(random_state=0, iterations=5, **kw).fit(r)
    out[name + "_U"] = m.user_factors
    out[name + "_V"] = m.item_factors
    out[name + "_objective"] = np.array(m.objective_history)
np.savez(sys.argv[1], **out)
hits = {cb.name: sum(f.cache_hits for f in cb.compiled.values())
        for cb in (rows._CHOLESKY, getattr(rows, "_SHORT", None)) if cb}
print(json.dumps(hits))
"""


def _run(cache, out):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    res = subprocess.run([sys.executable, "-c", CHILD, str(out)], env=env,
                         capture_output=True, text=True, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_cold_and_warm_cache_give_bitwise_identical_fits(tmp_path):
    cache = tmp_path / "numba-cache"
    cold_hits = _run(cache, tmp_path / "cold.npz")
    warm_hits = _run(cache, tmp_path / "warm.npz")
    cold = np.load(tmp_path / "cold.npz")
    warm = np.load(tmp_path / "warm.npz")
    assert sorted(cold.files) == sorted(warm.files)
    differ = {name: int((cold[name] != warm[name]).sum()) for name in cold.files
              if not np.array_equal(cold[name], warm[name])}
    assert not differ, f"entries differing between cold and warm cache: {differ}"
    # and the comparison was one: the first child compiled the callbacks,
    # the second loaded them
    assert cold_hits == {"cholesky_rows": 0, "short_rows": 0}
    assert warm_hits["cholesky_rows"] > 0 and warm_hits["short_rows"] > 0
