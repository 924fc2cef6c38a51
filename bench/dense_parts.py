"""Where an epoch of the dense ML-100k fit goes, per source tree.

    python bench/dense_parts.py [--trees OLD,.] [--threads 1] [--repeats 5] [--cpu]

Runs, in a fresh process per tree (alternating over ``--rounds``), the fit
of ``bench/dense_ml100k.py`` (k=100, lambda 0.01, 100 epochs, float32) with
the parts of the fused dense objective timed by wrapping them: the kernel
call of each half-step (``kernels.dense_step``, per side; it includes the
inverse of ``G + lam I`` where the tree computes it inside), the inverse
where it is a separate call (``kernels.spd_inverse``), the loss and the
rest of the epoch.  Best of ``--repeats`` fits, per epoch.  ``--cpu``
times process CPU time instead of wall time (with ``--threads 1`` less
disturbed by other processes on a busy machine).
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
    f = getattr(mod, name)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default=str(HERE.parent))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpu", action="store_true")
    a = ap.parse_args()
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
