"""Where the dense epoch's time goes on one and on several threads, task by
task (ML-100k, k=100, float32, ``kernels.DenseRun``, 20 epochs per call).

    python bench/dense_schedule.py [--threads 2] [--tree .] [--calls 10]

The shipped callback has no clock in it.  This script copies the tree's
``fastals`` package into a scratch folder (kept, with its Numba cache, under
the system's temporary folder, one per source version: the first run
compiles for a minute or so), adds time-stamp counter reads
(``llvm.readcyclecounter``) around every task of the task queue into a
preallocated array, and runs the same epochs there on one thread and on
``--threads``.  Per epoch (the median over the epochs of ``--calls`` calls,
the first two and the last epoch of each call left out, so that a time
slice lost to another process moves few of them) it prints, per side
(users, items) and task kind (``J``: the join of the previous half-step
and the ``k x k`` inverse; ``G``: the gathers ``W = R Y``; ``S``: the
chunks' ``X = W M``, Gram matrices and cross terms), the busy time summed
over all threads and the time the tasks waited for the tasks before them;
the join's reduction and inverse on their own; and the wall time of an
epoch.  ``lost`` is the N-thread wall time less the one-thread busy time
divided by N: what waits, synchronization, imbalance and any slowdown of
the tasks themselves on N threads cost.  Say the load with any number.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (anchor in kernels/dense_fit.py, replacement): fails loudly if the kernel
# changed under it
PATCHES = [
    ("@intrinsic\ndef _call_run(", '''@intrinsic
def _tsc(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic(
            "llvm.readcyclecounter", (), ir.FunctionType(ir.IntType(64), []))
        return builder.call(fn, [])
    return sig, codegen


@intrinsic
def _call_run('''),
    ("_P_M, _P_W, _P_WORK, _P_SYNC, _P_T, _P_SCR) = range(15)\n_N_PTRS = 15",
     "_P_M, _P_W, _P_WORK, _P_SYNC, _P_T, _P_SCR, _P_ST) = range(16)\n_N_PTRS = 16"),
    ("""        t = _take_next(sync)
        while t < n_tasks:
            h, kind, c = _task(t, n_ca, n_cb, n_halves)""",
     """        ST = _view(P[_P_ST], np.int64, (n_tasks + 1, 8))
        t = _take_next(sync)
        while t < n_tasks:
            ST[t, 0] = slot
            ST[t, 1] = _tsc()
            h, kind, c = _task(t, n_ca, n_cb, n_halves)"""),
    ("""                if h > 0:
                    _wait_at_least(sync, _DONE, before)
                    hp = h - 1""",
     """                if h > 0:
                    _wait_at_least(sync, _DONE, before)
                    ST[t, 2] = _tsc()
                    hp = h - 1"""),
    ("""                if kind == 1:
                    _wait_at_least(sync, _DONE, before)
""", """                if kind == 1:
                    _wait_at_least(sync, _DONE, before)
                    ST[t, 2] = _tsc()
"""),
    ("""                    _wait_at_least(sync, _GATHERED + c, h + 1)
""", """                    _wait_at_least(sync, _GATHERED + c, h + 1)
                    ST[t, 2] = _tsc()
"""),
    ("""cross[:ncp], Gs)
""", """cross[:ncp], Gs)
                        ST[t, 4] = _tsc()
"""),
    ("""                if h < n_halves:
                    if solve and not flags & _HAVE_M""",
     """                ST[t, 5] = _tsc()
                if h < n_halves:
                    if solve and not flags & _HAVE_M"""),
    ("""            t = _take_next(sync)
        _blas_threads_local(prev)""", """            ST[t, 3] = _tsc()
            t = _take_next(sync)
        _blas_threads_local(prev)"""),
    ("""    keep = (bounds, indptr, empty, indices, indices, data, data, X, Y, M, W, work, sync,
            T, scr)""", """    ST = np.zeros((_n_tasks(nmax, 0, 1) + 1, 8), np.int64)
    keep = (bounds, indptr, empty, indices, indices, data, data, X, Y, M, W, work, sync,
            T, scr, ST)"""),
    ("""        self._keep = (self.bounds, ia, ib, xa, xb, da, db, X, Y, self.M, self.W,
                      self.work, self.sync, self.T, self.scr)""",
     """        self.ST = np.zeros((_n_tasks(n_ca, n_cb, 2 * max_epochs) + 1, 8), np.int64)
        self._keep = (self.bounds, ia, ib, xa, xb, da, db, X, Y, self.M, self.W,
                      self.work, self.sync, self.T, self.scr, self.ST)"""),
]

CHILD = r"""
import collections, json, sys, time
sys.path.insert(0, %(bench)r)
import numba, numpy as np
import _data
from fastals import kernels as K
from fastals.kernels import dense_fit as D
k, lam, n = 100, 0.01, 20
sides = _data.ml100k_dense_sides(k)
if sides is None:
    raise SystemExit("MovieLens-100k not found (FASTALS_DATA)")
R, users, items, X, Y = sides
GY = K.dense_step(items.indptr, items.indices, items.target, Y, None, Y,
                  items.dense_bounds)[0]
run = K.DenseRun((users.indptr, users.indices, users.target, users.dense_bounds),
                 (items.indptr, items.indices, items.target, items.dense_bounds),
                 X, Y, GY, lam, n)
nca, ncb = users.dense_bounds.size - 1, items.dense_bounds.size - 1
nt = D._n_tasks(nca, ncb, 2 * n)
per = 2 + 2 * nca + 2 * ncb
out = {}
for threads in (1, %(threads)d):
    numba.set_num_threads(threads)
    run.run(n)
    stats = collections.defaultdict(list)
    t0 = time.perf_counter()
    tsc0 = None
    for call in range(%(calls)d):
        run.ST[:] = 0
        run.run(n)
        ST = run.ST[:nt].copy()
        tsc0 = ST[0, 1] if tsc0 is None else tsc0
        for e in range(2, n - 1):
            a, b = e * per, (e + 1) * per
            d = collections.defaultdict(float)
            d["epoch wall"] = ST[b, 1] - ST[a, 1]
            for t in range(a, b):
                h, kind, c = D._task(t, nca, ncb, 2 * n)
                side = "users" if h %% 2 == 0 else "items"
                st = ST[t, 2] if ST[t, 2] else ST[t, 1]
                d[f"{side} {'JGS'[kind]} busy"] += ST[t, 3] - st
                d[f"{side} {'JGS'[kind]} wait"] += st - ST[t, 1]
                if kind == 0 and ST[t, 4]:
                    d[f"{side} J: reduce"] += ST[t, 4] - st
                    d[f"{side} J: inverse"] += ST[t, 3] - ST[t, 5]
            for key, v in d.items():
                stats[key].append(v)
    # time-stamp counter ticks per ms, from the last call's span
    ticks = (run.ST[:nt, 3].max() - tsc0) / (time.perf_counter() - t0) / 1e3
    out[threads] = {key: float(np.median(v)) / ticks for key, v in stats.items()}
print(json.dumps(out))
"""


def instrumented_copy(tree):
    """A scratch copy of ``tree``'s ``fastals`` with the clock reads added."""
    src = Path(tree).resolve() / "fastals"
    text = (src / "kernels" / "dense_fit.py").read_text()
    for anchor, new in PATCHES:
        if text.count(anchor) != 1:
            raise SystemExit("kernels/dense_fit.py changed: this script's patch does not "
                             f"apply at\n{anchor}")
        text = text.replace(anchor, new)
    digest = hashlib.sha1()
    for p in sorted(src.rglob("*.py")):
        digest.update(p.read_bytes())
    root = Path(tempfile.gettempdir()) / "fastals_dense_schedule" / digest.hexdigest()[:12]
    if not (root / "fastals").is_dir():
        shutil.copytree(src, root / "fastals",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (root / "fastals" / "kernels" / "dense_fit.py").write_text(text)
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(HERE.parent))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=10)
    a = ap.parse_args()
    root = instrumented_copy(a.tree)
    code = CHILD % dict(bench=str(HERE), threads=a.threads, calls=a.calls)
    env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "1"}
    load0 = os.getloadavg()[0]
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    import json
    out = json.loads(res.stdout.strip().splitlines()[-1])
    one, many = out["1"], out[str(a.threads)]
    print(f"dense epoch by task, ms per epoch (medians), tree {Path(a.tree).resolve()}, "
          f"load {load0:.1f}-{os.getloadavg()[0]:.1f}")
    print(f"{'':22s} {'1 thread':>9s} {str(a.threads) + ' threads':>10s}")
    for key in sorted(k for k in one if k != "epoch wall"):
        if key.endswith("wait") and max(one[key], many.get(key, 0.0)) < 0.0005:
            continue
        print(f"{key:22s} {one[key]:9.3f} {many.get(key, 0.0):10.3f}")
    busy = sum(v for k, v in one.items() if k.endswith("busy"))
    busy_n = sum(v for k, v in many.items() if k.endswith("busy"))
    wall, wall_n = one["epoch wall"], many["epoch wall"]
    print(f"{'busy, all tasks':22s} {busy:9.3f} {busy_n:10.3f}")
    print(f"{'epoch wall':22s} {wall:9.3f} {wall_n:10.3f}")
    print(f"lost on {a.threads} threads: {wall_n - busy / a.threads:.3f} ms per epoch "
          f"(of it the tasks' own slowdown {(busy_n - busy) / a.threads:.3f}, waits and "
          f"idle {wall_n - busy_n / a.threads:.3f})")


if __name__ == "__main__":
    main()
