"""Quick performance regression check for CI (well under a minute).

Times fastals' row-solve kernels (the Cholesky solver on long rows, its
k x k path, and on short rows, its n x n path; CG gathered, in blocks and
with its longest rows pushed) and its batch top-k against
naive reference kernels compiled in this same process, on small synthetic
implicit data, single-threaded.
The two are interleaved and the verdict is the median of the per-repeat
ratios ``fastals / reference``, compared with the ratio stored in
``bench/baseline.json``: a ratio more than ``margin`` times the baseline
(default 1.6) fails.  Machine speed cancels in the ratio, noise mostly
cancels in the median; a 2x slower kernel does not.

    python bench/regression_check.py                    # the check (exit 1 on regression)
    python bench/regression_check.py --update-baseline  # store this machine's ratios
    python bench/regression_check.py --slowdown 2       # self-test: run each fastals
                                                        # kernel twice per timing; must fail
    python bench/regression_check.py --only topk,dense_step   # some kernels only

``--slowdown N`` (or ``FASTALS_REGRESSION_SLOWDOWN=N``) is a knob of the
check itself, not of the library: it calls the fastals kernel N times inside
each timed region, which is what a kernel N times slower would measure.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Serial and quiet: one thread everywhere, set before numpy/numba load.
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _data import synthetic_implicit  # noqa: E402
from fastals import kernels as K  # noqa: E402
from fastals.kernels import topk as _topk  # noqa: E402
from fastals.model import _Side  # noqa: E402

BASELINE = HERE / "baseline.json"
K_FACTORS = 64
REPEATS = 15
#: The kernels timed, in this order (``--only`` picks some).
KERNELS = ("solve_cholesky", "solve_cholesky_short", "solve_cg", "solve_cg_blocks",
           "solve_cg_push", "topk", "dense_step")


@njit(cache=True)
def reference_solve(indptr, indices, conf, target, Y, G, lam, w0, X):
    """Naive implicit ALS half-step: rank-1 updates, unblocked Cholesky."""
    k = Y.shape[1]
    A = np.empty((k, k), np.float64)
    b = np.empty(k, np.float64)
    for u in range(indptr.size - 1):
        for i in range(k):
            for j in range(k):
                A[i, j] = w0 * G[i, j]
            A[i, i] += lam
            b[i] = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            y = Y[indices[p]]
            c = conf[p]
            for i in range(k):
                b[i] += c * target[p] * y[i]
                for j in range(k):
                    A[i, j] += (c - w0) * y[i] * y[j]
        for j in range(k):
            s = A[j, j]
            for q in range(j):
                s -= A[j, q] * A[j, q]
            A[j, j] = np.sqrt(s)
            for i in range(j + 1, k):
                s = A[i, j]
                for q in range(j):
                    s -= A[i, q] * A[j, q]
                A[i, j] = s / A[j, j]
        for i in range(k):
            s = b[i]
            for q in range(i):
                s -= A[i, q] * b[q]
            b[i] = s / A[i, i]
        for i in range(k - 1, -1, -1):
            s = b[i]
            for q in range(i + 1, k):
                s -= A[q, i] * b[q]
            b[i] = s / A[i, i]
        for i in range(k):
            X[u, i] = b[i]


@njit(cache=True)
def reference_topk(U, V, n, out):
    """Naive top-n: every score by a plain dot product, then n scans for the
    next best (ties to the lower index)."""
    scores = np.empty(V.shape[0], np.float32)
    for u in range(U.shape[0]):
        for j in range(V.shape[0]):
            s = np.float32(0.0)
            for f in range(U.shape[1]):
                s += U[u, f] * V[j, f]
            scores[j] = s
        for t in range(n):
            best = 0
            for j in range(1, V.shape[0]):
                if scores[j] > scores[best]:
                    best = j
            out[u, t] = best
            scores[best] = -np.inf


@njit(cache=True)
def reference_dense(indptr, indices, data, Y, M, X, G):
    """Naive dense half-step: ``w = r_u Y`` row by row, ``x_u = w M`` by
    dot products, then ``G = X^T X`` entry by entry (float64)."""
    k = Y.shape[1]
    w = np.empty(k, np.float32)
    for u in range(indptr.size - 1):
        for i in range(k):
            w[i] = 0
        for p in range(indptr[u], indptr[u + 1]):
            y = Y[indices[p]]
            for i in range(k):
                w[i] += data[p] * y[i]
        for j in range(k):
            s = np.float32(0.0)
            for a in range(k):
                s += w[a] * M[a, j]
            X[u, j] = s
    for i in range(k):
        for j in range(k):
            s = 0.0
            for u in range(X.shape[0]):
                s += X[u, i] * X[u, j]
            G[i, j] = s


def problem():
    R = synthetic_implicit(2_000, 1_500, 60_000, seed=1)
    k = K_FACTORS
    side = _Side(R, k, np.dtype(np.float32))
    conf = R.data.astype(np.float32)
    target = np.ones_like(conf)
    rng = np.random.default_rng(0)
    Y = (rng.standard_normal((R.shape[1], k)) / np.sqrt(k)).astype(np.float32)
    G = (Y.astype(np.float64).T @ Y).astype(np.float32)
    X = np.zeros((R.shape[0], k), np.float32)
    return side, conf, target, Y, G, X


def short_problem():
    """Users with few interactions (10 on average, k = 64): the Cholesky
    solver's n x n path (``short_rows``) for most rows."""
    R = synthetic_implicit(3_000, 1_500, 30_000, seed=2)
    side = _Side(R, K_FACTORS, np.dtype(np.float32))
    return side, R.data.astype(np.float32), np.ones(R.nnz, np.float32)


def measure(slowdown=1, repeats=REPEATS, only=None):
    """Median ratios ``fastals / reference`` per fastals kernel (``only``: the
    names of the kernels to time, None for all)."""
    side, conf, target, Y, G, X = problem()
    s_side, s_conf, s_target = short_problem()
    Xs, Xs_ref = np.zeros((2, s_side.n_rows, K_FACTORS), np.float32)
    offset = np.zeros(Y.shape[0], np.float32)
    lam, w0 = np.float32(0.1), np.float32(1.0)
    X_ref = np.zeros_like(X)
    args = (side.indptr, side.indices, conf, target, offset, Y, G, lam, False, w0, X,
            side.bounds)
    U = np.ascontiguousarray(Y[:1_000] * 3)   # 1,000 queries x 1,500 items
    rows = np.arange(U.shape[0])
    top_ref = np.empty((U.shape[0], 10), np.int64)

    # the dense objective's fused half-step (M: a well-conditioned inverse)
    k = Y.shape[1]
    M = np.linalg.inv(Y.astype(np.float64).T @ Y + np.eye(k)).astype(np.float32)
    dbounds = K.dense_bounds(side.indptr, k)
    X_dense, X_dref = np.zeros_like(X), np.zeros_like(X)
    G_dref = np.empty((k, k))

    def reference_d():
        reference_dense(side.indptr, side.indices, conf, Y, M, X_dref, G_dref)

    s_args = (s_side.indptr, s_side.indices, s_conf, s_target, offset, Y, G, lam,
              False, w0, Xs, s_side.bounds)

    def reference():
        reference_solve(side.indptr, side.indices, conf, target, Y, G, 0.1, 1.0, X_ref)

    def reference_short():
        reference_solve(s_side.indptr, s_side.indices, s_conf, s_target, Y, G, 0.1,
                        1.0, Xs_ref)

    # CG with chunks of 250 rows (rotated into and out of G's eigenbasis by
    # GEMMs on blocks of up to 128 rows); the model's chunks of this small
    # side hold ~8 rows each (rotated by loops)
    blocks = args[:-1] + (K.chunk_bounds(side.indptr, K_FACTORS, 8),)
    # CG with the rows of more than 2k entries in the push form (kernels.cg_push:
    # lockstep CG, the other side's rows streamed), the other rows gathered
    layout = K.PushLayout(side.indptr, side.indices,
                          np.flatnonzero(side.counts > 2 * K_FACTORS))
    push = (layout, layout.take(conf), layout.take(target))
    X_push, X_gather = np.zeros((2,) + X.shape, np.float32)
    split = args[:10] + (X_push, side.bounds, 3, push)
    # name: (fastals kernel, naive reference of the same job)
    kernels = {
        "solve_cholesky": (lambda: K.solve_cholesky(*args, None, False), reference),
        "solve_cholesky_short": (lambda: K.solve_cholesky(*s_args), reference_short),
        "solve_cg": (lambda: K.solve_cg(*args, 3), reference),
        "solve_cg_blocks": (lambda: K.solve_cg(*blocks, 3), reference),
        "solve_cg_push": (lambda: K.solve_cg_split(*split), reference),
        "topk": (lambda: _topk.topk(U, rows, Y, 10), lambda: reference_topk(U, Y, 10, top_ref)),
        "dense_step": (lambda: K.dense_step(side.indptr, side.indices, conf, Y, M, X_dense,
                                            dbounds), reference_d),
    }

    assert tuple(kernels) == KERNELS
    if only is not None:
        kernels = {name: kernels[name] for name in only}
    for fn, ref in kernels.values():  # compile / load from cache
        ref()
        fn()
    # each timed kernel agrees with its reference (or the other form)
    if "solve_cholesky" in kernels:
        K.solve_cholesky(*args)
    for name, got, want in (("solve_cholesky", X, X_ref),
                            ("solve_cholesky_short", Xs, Xs_ref)):
        if name not in kernels:
            continue
        err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
        if not err < 1e-3:
            raise SystemExit("regression check: fastals and the reference disagree "
                             f"(rel. err {err:.2e})")
    if "solve_cg_push" in kernels:
        X_push[:] = 0
        K.solve_cg_split(*split)
        K.solve_cg(*args[:10], X_gather, side.bounds, 3)
        err = np.abs(X_push - X_gather).max() / max(np.abs(X_gather).max(), 1e-30)
        if layout.sel.size == 0 or not err < 1e-4:
            raise SystemExit("regression check: the push and gather forms of CG disagree "
                             f"(rel. err {err:.2e}, {layout.sel.size} rows pushed)")
    if "dense_step" in kernels:
        G_dense, _ = K.dense_step(side.indptr, side.indices, conf, Y, M, X_dense, dbounds)
        err = np.abs(X_dense - X_dref).max() / max(np.abs(X_dref).max(), 1e-30)
        # G in float32: near-zero entries carry the rounding of the large ones,
        # so its error is measured against its largest entry, as X's is.
        g_err = np.abs(G_dense - G_dref).max() / max(np.abs(G_dref).max(), 1e-30)
        if not (err < 1e-3 and g_err < 1e-3):
            raise SystemExit("regression check: fastals and the reference dense step "
                             "disagree")
    if "topk" in kernels:
        ids, _ = _topk.topk(U, rows, Y, 10)
        if (ids != top_ref).mean() > 1e-3:   # float32 near-ties may swap
            raise SystemExit("regression check: fastals and the reference top-k disagree")
    ratios = {name: [] for name in kernels}
    for _ in range(repeats):
        for name, (fn, ref) in kernels.items():
            t0 = time.perf_counter()
            ref()
            t1 = time.perf_counter()
            for _ in range(slowdown):
                fn()
            t2 = time.perf_counter()
            ratios[name].append((t2 - t1) / (t1 - t0))
    return {name: float(np.median(r)) for name, r in ratios.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-baseline", action="store_true",
                    help="write the measured ratios to bench/baseline.json")
    ap.add_argument("--slowdown", type=int,
                    default=int(os.environ.get("FASTALS_REGRESSION_SLOWDOWN", "1")),
                    help="self-test: call each fastals kernel N times per timing")
    ap.add_argument("--repeats", type=int, default=REPEATS,
                    help=f"timings per kernel, median taken (default {REPEATS})")
    ap.add_argument("--only", default=None,
                    help="comma-separated kernel names to time (default: all)")
    ap.add_argument("--margin", type=float, default=None,
                    help="fail when a ratio exceeds margin x baseline (default from baseline.json)")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    only = args.only.split(",") if args.only else None
    if only and args.update_baseline:
        ap.error("--update-baseline stores every kernel's ratio: drop --only")
    unknown = [name for name in only or () if name not in KERNELS]
    if unknown:
        ap.error(f"no kernel named {', '.join(unknown)} (known: {', '.join(KERNELS)})")
    ratios = measure(args.slowdown, args.repeats, only)
    elapsed = time.perf_counter() - t
    if args.update_baseline:
        BASELINE.write_text(json.dumps({
            "ratios": ratios, "margin": 1.6,
            "about": "median time ratio fastals kernel / naive reference kernel, "
                     "one thread, bench/regression_check.py"}, indent=1) + "\n")
        print(f"baseline written to {BASELINE}: {ratios}")
        return 0
    base = json.loads(BASELINE.read_text())
    margin = args.margin or base.get("margin", 1.6)
    failed = []
    for name, ratio in ratios.items():
        ref = base["ratios"].get(name)
        if ref is None:
            print(f"{name:16s} fastals/reference = {ratio:.4f}  (no baseline yet: "
                  "--update-baseline stores one)")
            continue
        verdict = "ok" if ratio <= margin * ref else "SLOWER"
        print(f"{name:16s} fastals/reference = {ratio:.4f}  (baseline {ref:.4f}, "
              f"limit {margin * ref:.4f})  {verdict}")
        if verdict != "ok":
            failed.append(name)
    print(f"regression check took {elapsed:.1f} s")
    if failed:
        print(f"PERFORMANCE REGRESSION: {', '.join(failed)} more than {margin}x slower "
              "relative to the reference kernel than the stored baseline "
              f"({BASELINE.name}).  If intended, rerun with --update-baseline.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
