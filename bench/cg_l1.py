"""CG passes over L1-resident rows: ns per entry and pass, source trees side by side.

    python bench/cg_l1.py --trees OLD,. [--lengths 4,18,64] [--factors 128] [--repeats 5]

Rows of ``--lengths`` entries each (``~10^6 / length`` rows), whose item
ids fall in a 32-row factor matrix, so every item vector is in L1 and the
passes over a row's entries are compute-bound; no shared part (``w0 =
0``: no eigenbasis, nothing rotated), float32, one thread, CPU time.  Per
entry and pass: ``(t(3 steps) - t(0 steps)) / 3 / entries``, from the
minima over the repeats (the least disturbed runs on a shared machine),
and the median of the per-repeat ratios to the first tree.  One
long-lived process per tree (each imports its own ``fastals``), taking
turns, as ``cg_ab.py`` does.  (The lead's ``l1.py``: 15-19 ns at length
18, k=128, idle machine.)
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys, time
import numpy as np, numba
tree, k, lengths = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, tree)
import fastals
assert fastals.__file__.startswith(tree + "/"), (fastals.__file__, tree)
from fastals.kernels import cg as C
from fastals.kernels.blas import USE_BLAS
from fastals.kernels.chunks import _call
numba.set_num_threads(1)
ny = 32
runs = {}
for per in map(int, lengths.split(",")):
    rng = np.random.default_rng(0)
    n_rows = max(1_000_000 // per, 1000)
    indptr = np.arange(n_rows + 1, dtype=np.int64) * per
    indices = np.sort(rng.integers(0, ny, (n_rows, per)), axis=1).astype(np.int32).ravel()
    conf = (1 + rng.random(indices.size)).astype(np.float32)
    Y = (rng.random((ny, k), dtype=np.float32) - 0.5) * 0.1
    X0 = (rng.random((n_rows, k), dtype=np.float32) - 0.5) * 0.1
    bounds = np.linspace(0, n_rows, 17).astype(np.int64)
    args = (indptr, indices, conf, np.ones_like(conf), np.zeros(ny, np.float32), Y,
            np.zeros((1, k), np.float32), np.float32(0.05), False, np.float32(0))
    def run(steps, args=args, X0=X0, bounds=bounds):
        X = X0.copy()
        t0 = time.process_time()
        _call(C._solve_cg_rows, 1 << 40, args + (X, bounds, USE_BLAS, steps))
        return time.process_time() - t0
    run(0), run(3)
    runs[str(per)] = (run, indices.size)
print("ready", flush=True)
for line in sys.stdin:
    run, nnz = runs[line.strip()]
    print(run(3), run(0), nnz, flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default=str(HERE.parent))
    ap.add_argument("--lengths", default="4,18,64")
    ap.add_argument("--factors", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in a.trees.split(",")]
    procs = []
    for tree in trees:
        p = subprocess.Popen([sys.executable, "-c", CHILD, tree, str(a.factors), a.lengths],
                             cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"{tree}: the child failed")
        procs.append(p)
    lengths = a.lengths.split(",")
    t = np.zeros((len(trees), len(lengths), a.repeats, 2))
    nnz = {}
    for r in range(a.repeats):
        for j, per in enumerate(lengths):
            for i, p in enumerate(procs):
                p.stdin.write(per + "\n")
                p.stdin.flush()
                t3, t0, n = p.stdout.readline().split()
                t[i, j, r] = float(t3), float(t0)
                nnz[per] = int(n)
    for p in procs:
        p.stdin.close()
        p.wait()
    print(f"k={a.factors}, float32, one thread, L1-resident rows, CPU ns per entry and pass, "
          f"{a.repeats} rounds (load {os.getloadavg()[0]:.1f})")
    for j, per in enumerate(lengths):
        line = [f"  length {per}:"]
        for i, tree in enumerate(trees):
            ns = (t[i, j, :, 0].min() - t[i, j, :, 1].min()) / 3 / nnz[per] * 1e9
            ratio = (t[i, j, :, 0] - t[i, j, :, 1]) / (t[0, j, :, 0] - t[0, j, :, 1])
            line.append(f"{Path(tree).name} {ns:.1f} (x{np.median(ratio):.3f}, "
                        f"{ratio.min():.3f}-{ratio.max():.3f})")
        print(" ".join(line), flush=True)


if __name__ == "__main__":
    main()
