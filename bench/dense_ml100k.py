"""The original script's job, compiled: the dense objective at k=100 on
MovieLens-100k ``ua.base``, against a numpy equivalent of the original loop
timed in the same run.

    python bench/dense_ml100k.py [REPEATS] [--threads N] [--pause S]

Each repeat times, one after the other, with ``--pause`` seconds (default
0.3) of rest before each,

* ``FastALS(objective="dense", factors=100, regularization=0.01,
  iterations=100, random_state=0).fit(R)`` (training loss every epoch, set-up
  included; one untimed fit first compiles or loads the kernels), per epoch;
* one epoch of the original script's loop in numpy (float64, the dense
  943 x 1682 matrix, missing cells 0): for every user
  ``x_u = inv(Y^T Y + lam I) @ Y^T r_u``, then the same for every item --
  an inverse per row, as the original script does;

and prints both, their ratio, and the GFLOP/s of the fastals epoch
(useful flops: ``4 nnz k`` for the two sparse x dense products,
``2 (m + n) k^2`` for the products with the inverses, ``(m + n) k^2`` for
the two Gram matrices, ``2 k^3`` for the inverses; the loss costs
``O(k^2)``).  Ranges over the repeats follow.  ``--hoisted`` also times the
numpy loop with ``Y^T Y`` formed once per half-step (only the inverse per
row), a faster reference.

The pause keeps one side's leftovers off the other's clock: after its last
call numpy's OpenBLAS keeps its worker thread spinning for about 0.1 s
(OpenBLAS's thread timeout, 2^28 TSC cycles by default), and a fit started
at once shares the two cores with it.  On Linux each repeat prints the CPU
time numpy's BLAS threads took during the fit (20-40 ms during a fit that
followed the loop at once, none after a 0.5 s pause or during a second
fit, measured on the shared 2-core machine); ``--pause 0`` times the two
back to back, as before.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _threads():
    """Ids of this process's threads (Linux; else empty)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


NUMPY_THREADS = _threads() - {os.getpid()}  # numpy's BLAS workers: started at its import


def _cpu_ticks(tids):
    """CPU time of the threads ``tids`` so far, in seconds (Linux)."""
    total = 0
    for t in tids:
        try:
            with open(f"/proc/self/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's fastals

import _data  # noqa: E402
from fastals import FastALS  # noqa: E402

K = 100
LAM = 0.01
ITERS = 100


def numpy_epoch(Rd, X, Y, lam, hoisted=False):
    """One epoch of the original loop (float64, dense matrix)."""
    k = X.shape[1]
    eye = lam * np.eye(k)
    G = Y.T @ Y + eye
    for u in range(Rd.shape[0]):
        A = G if hoisted else Y.T @ Y + eye
        X[u] = np.linalg.inv(A) @ Y.T @ Rd[u]
    G = X.T @ X + eye
    for i in range(Rd.shape[1]):
        A = G if hoisted else X.T @ X + eye
        Y[i] = np.linalg.inv(A) @ X.T @ Rd[:, i]


def flops(R, k):
    m, n = R.shape
    return 4 * R.nnz * k + 3 * (m + n) * k * k + 2 * k ** 3


def main(repeats=3, threads=0, hoisted=False, pause=0.3):
    R = _data.ml100k()
    if R is None:
        raise SystemExit(f"MovieLens-100k not found at {_data.ml100k_path()}")
    kw = dict(objective="dense", factors=K, regularization=LAM, iterations=ITERS,
              random_state=0, num_threads=threads)
    FastALS(**kw).fit(R)
    Rd = R.toarray()
    rng = np.random.default_rng(0)
    f = flops(R, K)
    rows = []
    for r in range(repeats):
        X = rng.random((R.shape[0], K)) * 0.01
        Y = rng.random((R.shape[1], K)) * 0.01
        time.sleep(pause)
        t = time.perf_counter()
        numpy_epoch(Rd, X, Y, LAM)
        t_np = time.perf_counter() - t
        time.sleep(pause)
        c = _cpu_ticks(NUMPY_THREADS)
        t = time.perf_counter()
        model = FastALS(**kw).fit(R)
        t_fa = (time.perf_counter() - t) / ITERS
        spin = _cpu_ticks(NUMPY_THREADS) - c
        t_h = float("nan")
        if hoisted:
            time.sleep(pause)
            t = time.perf_counter()
            numpy_epoch(Rd, X, Y, LAM, hoisted=True)
            t_h = time.perf_counter() - t
        rows.append((t_fa, t_np, t_h))
        extra = f", hoisted numpy {t_h:.3f} s ({t_h / t_fa:.0f}x)" if hoisted else ""
        print(f"repeat {r + 1}: fastals {t_fa * 1e3:.2f} ms/epoch "
              f"({f / t_fa / 1e9:.1f} GFLOP/s), numpy loop {t_np:.3f} s/epoch, "
              f"ratio {t_np / t_fa:.0f}x{extra} (load {os.getloadavg()[0]:.1f}; "
              f"numpy's BLAS threads during the fit {spin * 1e3:.0f} ms CPU); "
              f"final loss {model.loss_history[-1]:.6f}", flush=True)
    fa, nps, hs = (np.array(c) for c in zip(*rows))
    print(f"threads={threads or 'all'}, {f:.3g} flops/epoch: fastals "
          f"{fa.min() * 1e3:.2f}-{fa.max() * 1e3:.2f} ms/epoch, numpy loop "
          f"{nps.min():.3f}-{nps.max():.3f} s/epoch, ratio "
          f"{(nps / fa).min():.0f}-{(nps / fa).max():.0f}x over {repeats} repeats"
          + (f", hoisted {(hs / fa).min():.0f}-{(hs / fa).max():.0f}x" if hoisted else ""))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repeats", nargs="?", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--hoisted", action="store_true")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of rest before each timed part (0: back to back)")
    a = ap.parse_args()
    main(a.repeats, a.threads, a.hoisted, a.pause)
