"""Where an epoch of the dense ML-100k fit goes, per source tree.

    python bench/dense_parts.py [--trees OLD,.] [--threads 1] [--repeats 5] [--cpu]
    python bench/dense_parts.py --budget [--threads 1] [--cpu]

Runs, in a fresh process per tree (alternating over ``--rounds``), the fit
of ``bench/dense_ml100k.py`` (k=100, lambda 0.01, 100 epochs, float32) with
the parts of the fused dense objective timed by wrapping them: the kernel
call of each half-step (``kernels.dense_step``, per side; it includes the
inverse of ``G + lam I`` where the tree computes it inside), the inverse
where it is a separate call (``kernels.spd_inverse``), the loss and the
rest of the epoch (a tree that runs whole epochs in one call,
``kernels.DenseRun``, has none of these parts: all of it is the rest).  Best of ``--repeats`` fits, per epoch.  ``--cpu``
times process CPU time instead of wall time (with ``--threads 1`` less
disturbed by other processes on a busy machine).

``--budget`` instead times each part of one epoch alone, in this tree, on
the fit's data with factors of the fit's scale (best of ``--repeats``, ms,
``--threads`` threads): per side the whole half-step (``step``), its
inverse (``step`` minus the step with ``M`` given), the Gram matrix alone
(``gram_only``: the step without ``M``), the rest of the solve
(``solve``: ``R Y``, ``(R Y) M`` and the cross term), the standalone
sparse product (``sparse_alone``, the fused step's gather; also with
every entry's factor row among the first 16, all in L1: its compute
alone, and the bytes of the 64-byte lines it reads with the rate they
came at: at ``k = 100`` the product is bound by that rate from L2, not
by its flops) and, as floors, one SGEMM / SSYRK of the
whole side by SciPy's BLAS; then LAPACK's ``k x k`` inverse and
an empty parallel region of all threads (thread start and sync); then
whole epochs as the fit runs them (``kernels.DenseRun``, 20 epochs in one
call) on one thread and on ``--threads``, whose difference from the
one-thread time divided by the thread count is what waits, sync and load
imbalance cost, and the 100-epoch fit itself (its excess over the epochs:
set-up and Python).  Each part's flop and byte counts are printed with the
time the one-side SGEMM rate would give it.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import collections, json, sys, time
sys.path.insert(0, %(bench)r)
import _data
from fastals import FastALS, _dense
import fastals.kernels as K
clock = time.process_time if %(cpu)r else time.perf_counter
acc = collections.defaultdict(float)
def wrap(mod, name, key):
    f = getattr(mod, name, None)
    if f is None:  # a part this tree does not have
        return
    def g(*a, **kw):
        t = clock()
        try:
            return f(*a, **kw)
        finally:
            acc[key(a) if callable(key) else key] += clock() - t
    setattr(mod, name, g)
R = _data.ml100k()
wrap(_dense.K, "spd_inverse", "inverse (separate)")
wrap(_dense.K, "dense_step", lambda a: "step users" if a[5].shape[0] == R.shape[0] else "step items")
wrap(_dense, "loss", "loss")
kw = dict(objective="dense", factors=100, regularization=0.01, iterations=100,
          random_state=0, num_threads=%(threads)d)
FastALS(**kw).fit(R)
best = None
for _ in range(%(repeats)d):
    acc.clear()
    t = clock()
    m = FastALS(**kw).fit(R)
    row = dict(acc, total=clock() - t)
    best = row if best is None else {k: min(best.get(k, 1e9), v) for k, v in row.items()}
best["rest"] = best["total"] - sum(v for k, v in best.items() if k != "total")
print(json.dumps({k: v * 1e3 / 100 for k, v in best.items()}))
"""

BUDGET = r"""
import json, sys, time
sys.path.insert(0, %(bench)r)
import numba, numpy as np, scipy.linalg.blas as B, scipy.linalg.lapack as L
from numba import njit, prange
import _data
from fastals import kernels as K
clock = time.process_time if %(cpu)r else time.perf_counter
k, lam = 100, 0.01
R, users, items, X, Y = _data.ml100k_dense_sides(k)
GX = X.astype(np.float64).T @ X; GY = Y.astype(np.float64).T @ Y
M = np.linalg.inv(GY + lam * np.eye(k)).astype(np.float32)
W = np.empty_like(X); Z = np.empty_like(Y)

@njit(parallel=True)
def empty_region(a):
    for i in prange(a.size):
        a[i] += 1.0

def best(f, n=30):
    f()
    b = 1e9
    for _ in range(%(repeats)d):
        t = clock()
        for _ in range(n):
            f()
        b = min(b, (clock() - t) / n)
    return b * 1e3

def step(s, F, Out, M=None, **kw):
    return lambda: K.dense_step(s.indptr, s.indices, s.target, F, M, Out,
                                s.dense_bounds, **kw)
out = {}
numba.set_num_threads(%(threads)d)
for name, s, F, Out, G in (("users", users, Y, X, GY), ("items", items, X, Y, GX)):
    nnz, m = int(s.indptr[-1]), Out.shape[0]
    full = best(step(s, F, Out, G=G, lam=lam))
    given = best(step(s, F, Out, M=M))
    gram = best(step(s, Out, Out))
    sparse = best(lambda: K.sparse_times_dense(s.indptr, s.indices, s.target, F, Out,
                                               s.bounds))
    # the same product with every entry's row among F's first 16 (all in
    # L1): its compute alone; and the 64-byte lines the real one reads
    small = (s.indices %% 16).astype(np.int32)
    sparse_l1 = best(lambda: K.sparse_times_dense(s.indptr, small, s.target, F, Out,
                                                  s.bounds))
    row_bytes = F.shape[1] * F.itemsize
    start = (F.ctypes.data + np.arange(F.shape[0]) * row_bytes) %% 64
    lines = (start + row_bytes - 1) // 64 + 1
    sparse_lines = int(lines[s.indices].sum()) * 64
    out[name] = dict(
        step=full, inverse=full - given, gram_only=gram, solve=given - gram,
        sparse_alone=sparse, sparse_l1=sparse_l1,
        # transposed views: Fortran order, no copies
        sgemm=best(lambda: B.sgemm(1.0, M.T, Out.T)), ssyrk=best(lambda: B.ssyrk(1.0, Out.T)),
        flops=dict(sparse=2 * nnz * k, gemm=2 * m * k * k, syrk=m * k * k, inverse=k ** 3),
        bytes=dict(sparse=nnz * (8 + 4 * k) + 4 * m * k, gemm=8 * m * k, syrk=4 * m * k),
        sparse_lines=sparse_lines)
# whole epochs (the fit's kernel call): one thread (the serial path) and
# --threads threads, then the fit itself (set-up and Python included)
from fastals import FastALS
def epochs(threads, n=20):
    Xr, Yr = X.copy(), Y.copy()
    GYr = K.dense_step(items.indptr, items.indices, items.target, Yr, None, Yr,
                       items.dense_bounds)[0]
    run = K.DenseRun((users.indptr, users.indices, users.target, users.dense_bounds),
                     (items.indptr, items.indices, items.target, items.dense_bounds),
                     Xr, Yr, GYr, lam, n)
    def go():
        numba.set_num_threads(threads)
        run.run(n)
    return best(go, n=1) / n
out["epochs_1"] = epochs(1)
out["epochs_n"] = epochs(%(threads)d)
def fit():
    FastALS(objective="dense", factors=k, regularization=lam, iterations=100,
            random_state=0, num_threads=%(threads)d).fit(R)
out["fit"] = best(fit, n=1) / 100
numba.set_num_threads(%(threads)d)
out["lapack_inverse"] = best(lambda: L.dpotri(L.dpotrf(GY + lam * np.eye(k))[0]))
a = np.zeros(2)
numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
out["empty_parallel_region"] = best(lambda: empty_region(a), n=200)
print(json.dumps(out))
"""


def budget(a):
    """Print the per-part budget of one epoch (``--budget``)."""
    code = BUDGET % dict(bench=str(HERE), cpu=a.cpu, threads=a.threads, repeats=a.repeats)
    # SciPy's BLAS on one thread, as the kernels' calls are
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE.parent,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    b = json.loads(res.stdout.strip().splitlines()[-1])
    clock = "CPU" if a.cpu else "wall"
    print(f"per-part budget, ms ({clock}, threads={a.threads}, load "
          f"{os.getloadavg()[0]:.1f}):")
    total = 0.0
    for side in ("users", "items"):
        d = b[side]
        rate = d["flops"]["gemm"] / d["sgemm"] / 1e6   # GFLOP/s of one SGEMM
        total += d["step"]
        print(f"  {side}: step {d['step']:.3f} = inverse {d['inverse']:.3f} + "
              f"gram {d['gram_only']:.3f} + solve {d['solve']:.3f}; sparse alone "
              f"{d['sparse_alone']:.3f} (with its rows in L1 {d['sparse_l1']:.3f}; it "
              f"reads {d['sparse_lines'] / 1e6:.1f} MB of 64-byte lines: "
              f"{d['sparse_lines'] / d['sparse_alone'] / 1e6:.0f} GB/s); SGEMM "
              f"{d['sgemm']:.3f} ({rate:.0f} GFLOP/s), SSYRK {d['ssyrk']:.3f}")
        print("    floors at that rate: " + ", ".join(
            f"{p} {f / rate / 1e6:.3f} ms ({f:.2g} flops, {d['bytes'].get(p, 0) / 1e6:.2f} MB)"
            for p, f in d["flops"].items()))
    print(f"  LAPACK inverse alone {b['lapack_inverse']:.3f}, "
          f"empty parallel region {b['empty_parallel_region']:.3f}; the two steps "
          f"{total:.3f}")
    ideal = b["epochs_1"] / max(a.threads, 1)
    print(f"  whole epochs in one call (kernels.DenseRun, 20 epochs): 1 thread "
          f"{b['epochs_1']:.3f}, {a.threads} threads {b['epochs_n']:.3f} (1 thread / "
          f"{a.threads} = {ideal:.3f}: waits, sync and imbalance "
          f"{b['epochs_n'] - ideal:.3f}); the 100-epoch fit per epoch {b['fit']:.3f} "
          f"(set-up and Python {b['fit'] - b['epochs_n']:.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default=str(HERE.parent))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--budget", action="store_true",
                    help="time each part of one epoch alone (this tree)")
    a = ap.parse_args()
    if a.budget:
        return budget(a)
    code = CHILD % dict(bench=str(HERE), cpu=a.cpu, threads=a.threads, repeats=a.repeats)
    for r in range(a.rounds):
        for tree in a.trees.split(","):
            tree = str(Path(tree).resolve())
            env = {**os.environ, "PYTHONPATH": tree}
            res = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree,
                                 capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr)
            parts = json.loads(res.stdout.strip().splitlines()[-1])
            cols = ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items()))
            print(f"round {r + 1} {tree}: ms/epoch ({'CPU' if a.cpu else 'wall'}, "
                  f"threads={a.threads}, load {os.getloadavg()[0]:.1f}): {cols}",
                  flush=True)


if __name__ == "__main__":
    main()
