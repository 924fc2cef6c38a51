"""fastals against ``implicit`` (``implicit.cpu.als.AlternatingLeastSquares``).

Same data (the synthetic implicit set), same factors, same regularization,
float32, the same number of threads, and the same objective: implicit's
confidence is ``alpha * r``, which is fastals' ``confidence="alpha_r"``
(unobserved weight 1).  ``use_cg=True`` is compared with ``solver="cg"``
(3 CG steps each) and ``use_cg=False`` with ``solver="cholesky"``.  Both
libraries report per-iteration times through their callbacks, so the
set-up (transposes, initialization) is excluded on both sides.  Skipped
when implicit is not installed (``pip install fastals[bench]``).

    python -m pytest bench/bench_vs_implicit.py --benchmark-only
"""

import numpy as np
import pytest

from conftest import ITERS, THREADS, record
from bench_als import time_fit

implicit_als = pytest.importorskip("implicit.cpu.als")
threadpoolctl = pytest.importorskip("threadpoolctl")

FACTORS = [16, 64, 128]
SOLVERS = [("cg", True), ("cholesky", False)]
REG = 0.05
_LAST = {}


def _implicit_seconds(R, k, use_cg, iterations):
    kw = dict(factors=k, regularization=REG, alpha=1.0, use_cg=use_cg,
              num_threads=THREADS, calculate_training_loss=False, random_state=0,
              dtype=np.float32)
    per = []
    with threadpoolctl.threadpool_limits(1, "blas"):  # as implicit recommends
        model = implicit_als.AlternatingLeastSquares(**{**kw, "iterations": iterations})
        model.fit(R, show_progress=False, callback=lambda it, elapsed, loss: per.append(elapsed))
    return float(np.median(per))


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic.astype(np.float32)


# implicit then fastals for each configuration, back to back, so that both
# see the same load on a shared machine.
CASES = [(k, solver, use_cg, lib) for k in FACTORS for solver, use_cg in SOLVERS
         for lib in ("implicit", "fastals")]


@pytest.mark.parametrize("k,solver,use_cg,library", CASES)
def test_side_by_side(benchmark, data, k, solver, use_cg, library):
    benchmark.group = f"vs-implicit {solver} k={k}"
    if library == "implicit":
        holder = {}
        benchmark.pedantic(
            lambda: holder.update(s=_implicit_seconds(data, k, use_cg, ITERS)),
            rounds=1, iterations=1)
        s = _LAST[(solver, k)] = holder["s"]
        ratio = None
    else:
        s, _ = time_fit(benchmark, data, ITERS, objective="implicit",
                        confidence="alpha_r", alpha=1.0, solver=solver, factors=k,
                        regularization=REG)
        ref = _LAST.get((solver, k))
        ratio = s / ref if ref else None
        benchmark.extra_info.update(implicit_s_per_iter=ref, ratio=ratio)
    benchmark.extra_info["s_per_iter"] = s
    record(suite="vs-impl", data="synth", library=library, objective="implicit",
           solver=solver, factors=k, s_per_iter=s, ratio=ratio)
