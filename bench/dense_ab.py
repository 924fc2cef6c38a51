"""Two source trees' dense epochs and fits side by side in ONE process.

    python bench/dense_ab.py --trees OLD_CHECKOUT,. [--threads 1] [--repeats 15] [--cpu]

Each tree's ``fastals`` is imported in turn into this process (the
modules of the one before are taken out of ``sys.modules`` first, so each
tree keeps its own compiled kernels, and put back while that tree's jobs
run, for the imports made inside functions); then, alternating between the trees
in every repeat, on MovieLens-100k ``ua.base`` at k=100 (lambda 0.01,
float32, the sides and factors of ``_data.ml100k_dense_sides``):

* ``epochs``: 20 epochs in one call (``kernels.DenseRun.run(20)``), per
  epoch;
* ``fit``: ``FastALS(objective="dense", factors=100, regularization=0.01,
  iterations=100, random_state=0).fit(R)``, per epoch (set-up included);
* ``fit1``: the same fit with ``iterations=1`` (set-up and one epoch).

Prints per repeat the times and the ratio of each tree to the first, then
the ranges over the repeats: the pairs run back to back, so a ratio is
much steadier than either time on a busy machine.  ``--cpu`` times process
CPU time (with ``--threads 1`` less disturbed by other processes).
"""

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _data  # noqa: E402

K_FACTORS = 100
LAM = 0.01


def load(tree):
    """The ``fastals`` package of ``tree``, imported fresh."""
    for name in [m for m in sys.modules if m == "fastals" or m.startswith("fastals.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        fa = importlib.import_module("fastals")
        importlib.import_module("fastals.kernels")
    finally:
        sys.path.remove(tree)
    assert Path(fa.__file__).resolve().is_relative_to(Path(tree).resolve()), fa.__file__
    return fa


def _modules():
    return {m: mod for m, mod in sys.modules.items()
            if m == "fastals" or m.startswith("fastals.")}


def _using(mods, f):
    """``f`` with ``mods`` (one tree's modules) as ``sys.modules``' fastals."""
    def g():
        for name in _modules():
            del sys.modules[name]
        sys.modules.update(mods)
        return f()
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--cpu", action="store_true")
    a = ap.parse_args()
    clock = time.process_time if a.cpu else time.perf_counter
    trees = [str(Path(t).resolve()) for t in a.trees.split(",")]
    R = _data.ml100k()
    if R is None:
        raise SystemExit(f"MovieLens-100k not found at {_data.ml100k_path()}")
    jobs = []
    for tree in trees:
        fa = load(tree)
        sys.path.insert(0, tree)  # _data imports this tree's helpers
        try:
            _, users, items, X, Y = _data.ml100k_dense_sides(K_FACTORS)
        finally:
            sys.path.remove(tree)
        K = fa.kernels
        Xr, Yr = X.copy(), Y.copy()
        GY = K.dense_step(items.indptr, items.indices, items.target, Yr, None, Yr,
                          items.dense_bounds)[0]
        run = K.DenseRun((users.indptr, users.indices, users.target, users.dense_bounds),
                         (items.indptr, items.indices, items.target, items.dense_bounds),
                         Xr, Yr, GY, LAM, 20)
        kw = dict(objective="dense", factors=K_FACTORS, regularization=LAM,
                  random_state=0, num_threads=a.threads)
        mods = _modules()
        jobs.append(dict(
            epochs=(_using(mods, lambda run=run: run.run(20)), 20),
            fit=(_using(mods, lambda fa=fa, kw=kw: fa.FastALS(iterations=100, **kw).fit(R)),
                 100),
            fit1=(_using(mods, lambda fa=fa, kw=kw: fa.FastALS(iterations=1, **kw).fit(R)),
                  1)))
    import numba
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    for j in jobs:  # compile / load, warm up
        for f, _ in j.values():
            f()
    names = list(jobs[0])
    times = {n: [[] for _ in trees] for n in names}
    for r in range(a.repeats):
        line = []
        for n in names:
            row = []
            for i, j in enumerate(jobs):
                f, per = j[n]
                t = clock()
                f()
                row.append((clock() - t) / per * 1e3)
                times[n][i].append(row[-1])
            line.append(f"{n} " + " / ".join(f"{v:.3f}" for v in row) + " (" +
                        ", ".join(f"{v / row[0]:.3f}" for v in row[1:]) + ")")
        print(f"repeat {r + 1}: ms " + "; ".join(line) +
              f" (load {os.getloadavg()[0]:.1f})", flush=True)
    clockname = "CPU" if a.cpu else "wall"
    print(f"threads={a.threads}, {clockname} ms per epoch (fit1: per fit), trees {trees}:")
    for n in names:
        t = np.array(times[n])
        ratios = t[1:] / t[0]
        print(f"  {n}: " + "; ".join(f"tree {i} {t[i].min():.3f}-{t[i].max():.3f} "
                                     f"(median {np.median(t[i]):.3f})"
                                     for i in range(len(trees))) +
              "; ratio to tree 0: " + ", ".join(
                  f"{q.min():.3f}-{q.max():.3f} (median {np.median(q):.3f})" for q in ratios))


if __name__ == "__main__":
    main()
