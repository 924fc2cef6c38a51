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

Side by side as a script, without pytest-benchmark: alternating implicit and
fastals per configuration and repeat, printing every ratio (fastals /
implicit, and fastals' exact Cholesky / implicit's CG) and their ranges::

    python bench/bench_vs_implicit.py --size short3M --factors 64,128 --repeats 3
    python bench/bench_vs_implicit.py --size 20M --factors 64,128 --repeats 3
    python bench/bench_vs_implicit.py --size 20M --factors 128 --solvers cg

(``--size``: a set of ``bench/_data.py:SIZES``; ``short3M`` is the short-row
set of issue 14.  Threads: ``FASTALS_BENCH_THREADS``, default 2; iterations
per fit: ``--iterations``, default 2, the median iteration is timed.)
"""

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # this checkout's fastals, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def _fastals_seconds(R, k, solver, iterations, short_rows=True):
    """Median seconds per iteration of a fastals fit (set-up excluded);
    ``short_rows=False``: every Cholesky row through its k x k system."""
    from fastals import FastALS
    from fastals.kernels import rows
    saved = rows.SHORT_ROW_COST
    if not short_rows:
        rows.SHORT_ROW_COST = {w0: float("inf") for w0 in saved}
    try:
        return _fastals_fit_seconds(FastALS, R, k, solver, iterations)
    finally:
        rows.SHORT_ROW_COST = saved


def _fastals_fit_seconds(FastALS, R, k, solver, iterations):
    kw = dict(objective="implicit", confidence="alpha_r", alpha=1.0, solver=solver,
              factors=k, regularization=REG, random_state=0, num_threads=THREADS,
              calculate_training_loss=False, dtype=np.float32)
    warm = FastALS(**{**kw, "iterations": 1})
    warm._cg_push_above = 0  # every row pushed: CG's push form compiled too
    warm.fit(R[:200])  # compile / load the cache
    per, last = [], [0.0]

    def cb(epoch, loss, s):
        per.append(s - last[0])
        last[0] = s
    FastALS(**{**kw, "iterations": iterations, "callback": cb}).fit(R)
    return float(np.median(per))


def main(argv=None):
    import _data
    ap = argparse.ArgumentParser(description="fastals / implicit, side by side")
    ap.add_argument("--size", default="short3M", choices=sorted(_data.SIZES))
    ap.add_argument("--factors", default="64,128")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--solvers", default="cg,cholesky",
                    help="comma-separated subset of cg,cholesky (default both)")
    ap.add_argument("--kxk-too", action="store_true",
                    help="also time fastals' Cholesky with every row through its "
                         "k x k system (the solver before the n x n short-row path)")
    args = ap.parse_args(argv)
    R = _data.synthetic(args.size).astype(np.float32)
    n = np.diff(R.indptr)
    print(f"set {args.size}: {R.shape[0]} x {R.shape[1]}, {R.nnz} pairs, ratings per "
          f"user median {np.median(n):.0f}, threads {THREADS}, float32, "
          f"{args.iterations} iterations (median timed)", flush=True)
    factors = [int(k) for k in args.factors.split(",")]
    wanted = args.solvers.split(",")
    solvers = [(s, c) for s, c in SOLVERS if s in wanted]
    if not solvers or len(solvers) != len(set(wanted)):
        ap.error(f"--solvers: a subset of {','.join(s for s, _ in SOLVERS)}")
    secs = {}
    for rep in range(args.repeats):
        for k in factors:
            for solver, use_cg in solvers:
                t_imp = _implicit_seconds(R, k, use_cg, args.iterations)
                t_fa = _fastals_seconds(R, k, solver, args.iterations)
                secs.setdefault((k, solver), []).append((t_imp, t_fa))
                print(f"repeat {rep} k={k:<4d} {solver:8s} implicit {t_imp:.3f} s/iter  "
                      f"fastals {t_fa:.3f} s/iter  ratio {t_fa / t_imp:.3f}", flush=True)
                if args.kxk_too and solver == "cholesky":
                    t_kk = _fastals_seconds(R, k, solver, args.iterations, False)
                    secs.setdefault((k, "cholesky k x k"), []).append((t_imp, t_kk))
                    print(f"repeat {rep} k={k:<4d} cholesky, k x k rows only: fastals "
                          f"{t_kk:.3f} s/iter  ratio {t_kk / t_imp:.3f}", flush=True)
    print(time.strftime("summary (%H:%M UTC, ranges over repeats):", time.gmtime()))
    for k in factors:
        kxk = ["cholesky k x k"] * (args.kxk_too and "cholesky" in wanted)
        for solver in [s for s, _ in solvers] + kxk:
            r = [fa / imp for imp, fa in secs[(k, solver)]]
            print(f"k={k:<4d} {solver:8s} fastals/implicit {min(r):.3f}-{max(r):.3f}")
        if len(solvers) == len(SOLVERS):
            x = [fa / imp for (imp, _), (_, fa) in zip(secs[(k, "cg")],
                                                      secs[(k, "cholesky")])]
            print(f"k={k:<4d} fastals cholesky / implicit cg {min(x):.3f}-{max(x):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
