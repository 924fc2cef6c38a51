"""Crossover of the two exact row solves: k x k system against n x n system.

Every row of a synthetic problem has exactly ``n`` ratings (all with weight
``c > w0``); one Cholesky half-step is timed with rows forced through the
k x k path (``nmax = 0``) and through the n x n path (``nmax = n``),
interleaved, one thread, float32, median of the per-repeat ratios.  A ratio
below 1 means the n x n path is faster at that ``n``; compare with the
``n`` that :func:`fastals.kernels.rows.short_row_limit` picks (printed).

    python bench/short_rows.py                 # implicit (w0 = 1: Y U^{-1}, then a
                                               # triangular solve per row), explicit
    python bench/short_rows.py --factors 64,128 --repeats 7
"""

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from fastals import kernels as K  # noqa: E402
from fastals.kernels import rows as krows  # noqa: E402


def problem(k, n, rows=3000, items=20000, seed=0):
    rng = np.random.default_rng(seed)
    indptr = np.arange(rows + 1, dtype=np.int64) * n
    indices = np.concatenate([np.sort(rng.choice(items, n, replace=False))
                              for _ in range(rows)]).astype(np.int32)
    conf = (2.0 + rng.integers(0, 5, indices.size)).astype(np.float32)
    target = np.ones(indices.size, np.float32)
    Y = (rng.standard_normal((items, k)) / np.sqrt(k)).astype(np.float32)
    G = (Y.astype(np.float64).T @ Y).astype(np.float32)
    bounds = K.chunk_bounds(indptr, k, 64)
    return indptr, indices, conf, target, np.zeros(items, np.float32), Y, G, bounds


def ratio(k, n, w0, repeats, transform):
    indptr, indices, conf, target, offset, Y, G, bounds = problem(k, n)
    lam = np.float32(0.05)
    X = np.zeros((indptr.size - 1, k), np.float32)
    GB, mode = krows.short_row_setup(indptr, Y, G, lam, False, w0, n, transform)
    run = {}
    for name, (g, m) in (("long", (G, 0)), ("short", (GB, mode))):
        run[name] = (lambda g=g, m=m: krows._solve_cholesky(
            indptr, indices, conf, target, offset, Y, g, lam, False,
            np.float32(w0), X, bounds, K.USE_BLAS, m))
        run[name]()
    r = []
    for _ in range(repeats):
        t = {}
        for name in ("long", "short"):
            t0 = time.perf_counter()
            run[name]()
            t[name] = time.perf_counter() - t0
        r.append(t["short"] / t["long"])
    return float(np.median(r))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", default="64,128")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    for w0, transform in ((1.0, True), (1.0, False), (0.0, False)):
        for k in [int(f) for f in args.factors.split(",")]:
            limit = krows.short_row_limit(k, w0, transformed=transform)
            ns = sorted({max(1, int(k * f)) for f in (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9)})
            parts = ", ".join(f"n={n}: {ratio(k, n, w0, args.repeats, transform):.2f}"
                              for n in ns)
            print(f"w0={w0:g} transformed={transform} k={k} (short_row_limit {limit}) "
                  f"short/long: {parts}", flush=True)


if __name__ == "__main__":
    main()
