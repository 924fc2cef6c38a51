"""CG or Cholesky half-steps of two source trees side by side, per side, one thread.

    python bench/cg_ab.py --trees OLD,. [--size short3M] [--factors 128] [--repeats 5]
    python bench/cg_ab.py --solver cholesky --trees OLD,. --size 20M --factors 64
    python bench/cg_ab.py --trees OLD,. --sides users --repeats 20
    python bench/cg_ab.py --trees OLD,. --threads 2 --repeats 10

One long-lived process per tree (``--trees``, comma-separated checkouts;
each imports its own ``fastals``) loads the data and factors once (the
same seed in every tree), then the processes take turns: each timed run
(``kernels.solve_cg``, 3 steps, or with ``--solver cholesky``
``kernels.solve_cholesky`` as a fit calls it; alpha 1, float32, one Numba
thread or ``--threads``, CPU time of the process, wall time beside it) alternates between the trees, so that all see the
same load on a shared machine.  Prints per tree and side the range of its
times and of its ratio to the first tree's in the same round, and whether
the factors it computes equal the first tree's bit for bit (else the
largest difference).  Numba caches stay per tree (``__pycache__`` in each
checkout).  ``--fit`` adds whole fits (``FastALS``, implicit, the same solver,
``alpha_r``, 3 iterations, one thread, a callback as in
``bench_vs_implicit.py``): CPU s per iteration after the first, and the
final user factors compared (relative to their largest entry).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys, time
import numpy as np, numba
tree, bench, size, k, out, solver, threads = sys.argv[1:8]
sys.path[:0] = [tree, bench]
from cg_halfsteps import load  # puts its own checkout first on sys.path
sys.path.insert(0, tree)
import fastals
from fastals import kernels as K
assert fastals.__file__.startswith(tree + "/"), (fastals.__file__, tree)
from fastals.model import _Side
numba.set_num_threads(int(threads))
k = int(k)
Cui = load(size)
Ciu = Cui.T.tocsr()
rng = np.random.default_rng(0)
U0 = rng.random((Cui.shape[0], k), dtype=np.float32) * 0.01
V0 = rng.random((Cui.shape[1], k), dtype=np.float32) * 0.01
runs = {}
for name, M, X0, Y in (("users", Cui, U0, V0), ("items", Ciu, V0, U0)):
    s = _Side(M, k, np.dtype(np.float32))
    conf = M.data.astype(np.float32)
    G = K.gram(Y, np.linspace(0, Y.shape[0], 17).astype(np.int64)).astype(np.float32)
    args = (s.indptr, s.indices, conf, np.ones_like(conf),
            np.zeros(Y.shape[0], np.float32), Y, G, np.float32(0.05), False,
            np.float32(1))
    def run(args=args, X0=X0, s=s):
        X = X0.copy()
        if solver == "cg":
            K.solve_cg(*args, X, s.bounds, 3)
        else:
            K.solve_cholesky(*args, X, s.bounds)
        return X
    runs[name] = run


def fit(k=k, R=Cui):
    from fastals import FastALS
    marks = []
    m = FastALS(objective="implicit", confidence="alpha_r", alpha=1.0, solver=solver,
                factors=k, regularization=0.05, random_state=0, num_threads=1,
                calculate_training_loss=False, dtype=np.float32, iterations=3,
                callback=lambda *a: marks.append(time.process_time()))
    m.fit(R)
    fit.seconds = (marks[-1] - marks[0]) / (len(marks) - 1)
    return m.user_factors


runs["fit"] = fit
np.savez(out, **{n: f() for n, f in runs.items()})  # also compiles / loads
print("ready", flush=True)
for line in sys.stdin:
    t0, w0 = time.process_time(), time.perf_counter()
    runs[line.strip()]()
    t, w = time.process_time() - t0, time.perf_counter() - w0
    print(fit.seconds if line.strip() == "fit" else t, w, flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default=str(HERE.parent))
    ap.add_argument("--size", default="short3M")
    ap.add_argument("--factors", default="128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--solver", choices=("cg", "cholesky"), default="cg")
    ap.add_argument("--threads", type=int, default=1,
                    help="Numba threads of the half-steps (the fits run on one)")
    ap.add_argument("--sides", default="users,items",
                    help="half-steps timed (comma-separated: users, items)")
    ap.add_argument("--fit", action="store_true",
                    help="also whole fits (FastALS, implicit, the same solver, 3 iterations, "
                         "one thread): CPU s per iteration after the first, and "
                         "the final user factors compared")
    a = ap.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in a.trees.split(",")]
    sides = tuple(a.sides.split(",")) + ("fit",) * a.fit
    if not set(sides) <= {"users", "items", "fit"}:
        raise SystemExit("--sides: users and/or items")
    with tempfile.TemporaryDirectory() as tmp:
        for k in [int(f) for f in a.factors.split(",")]:
            procs, outs = [], []
            for i, tree in enumerate(trees):
                outs.append(os.path.join(tmp, f"{i}-{k}.npz"))
                p = subprocess.Popen(
                    [sys.executable, "-c", CHILD, tree, str(HERE), a.size, str(k),
                     outs[-1], a.solver, str(a.threads)], cwd=tree, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True)
                if p.stdout.readline().strip() != "ready":
                    raise SystemExit(f"{tree}: the child failed")
                procs.append(p)
            t = np.zeros((len(trees), len(sides), a.repeats))
            wall = np.zeros_like(t)
            for r in range(a.repeats):
                for j, side in enumerate(sides):
                    for i, p in enumerate(procs):
                        p.stdin.write(side + "\n")
                        p.stdin.flush()
                        t[i, j, r], wall[i, j, r] = map(float, p.stdout.readline().split())
            for p in procs:
                p.stdin.close()
                p.wait()
            ref = np.load(outs[0])
            print(f"{a.solver}, {a.size} k={k}, {a.threads} thread(s), CPU s, {a.repeats} rounds "
                  f"(load {os.getloadavg()[0]:.1f})")
            for i, tree in enumerate(trees):
                got = np.load(outs[i])
                line = [f"  {tree}:"]
                for j, side in enumerate(sides):
                    ratio = t[i, j] / t[0, j]
                    diff = float(np.abs(got[side] - ref[side]).max()
                                 / np.abs(ref[side]).max())
                    same = "bitwise equal" if np.array_equal(got[side], ref[side]) \
                        else f"max diff {diff:.2e} of the largest"
                    wr = wall[i, j] / wall[0, j]
                    line.append(f"{side} {t[i, j].min():.3f}-{t[i, j].max():.3f} "
                                f"(x{ratio.min():.3f}-{ratio.max():.3f}, median "
                                f"{np.median(ratio):.3f}; wall x{wr.min():.3f}-"
                                f"{wr.max():.3f}, {same})")
                n = len(sides) - a.fit
                tot = t[i, :n].sum(0) / t[0, :n].sum(0)
                line.append(f"both x{tot.min():.3f}-{tot.max():.3f}")
                print(" ".join(line), flush=True)


if __name__ == "__main__":
    main()
