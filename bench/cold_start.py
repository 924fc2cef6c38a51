"""Cold and warm starts of three first jobs, each in a fresh process.

    python bench/cold_start.py [--rounds 3] [--jobs recommend,dense,train]
                               [--trees OLD_CHECKOUT,.]

For each round and each job, a new empty ``NUMBA_CACHE_DIR`` is made; the
job runs once there (cold: everything it needs is compiled) and once more
(warm: loaded from that cache).  Jobs:

* ``recommend``: ``python -m fastals recommend MODEL --user 1`` on a model
  trained (beforehand, in a cache of its own) by plain ``fastals train``;
* ``dense``: ``FastALS(objective="dense", factors=32, iterations=1).fit``
  on a 300 x 200 synthetic set (import excluded, as bench/compile_time.py);
* ``train``: plain ``python -m fastals train`` (README's main job).

``recommend`` and ``train`` are timed as whole processes (wall clock,
interpreter start and imports included); ``dense`` reports the fit alone.
Jobs (and checkouts, with ``--trees``: before/after comparisons run the
same jobs in each source tree, alternating) take turns within each round;
the ranges over the rounds are printed, wall clock and, in brackets, the
CPU time (user + system) of the job's process, which moves much less than
the wall clock on a machine shared with other jobs.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DENSE = r"""
import json, time
from fastals import FastALS, make_ratings
import scipy.sparse as sp
r = make_ratings(n_users=300, n_items=200, n_ratings=5000, seed=0)
R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)))
t = time.perf_counter()
FastALS(objective="dense", factors=32, iterations=1, random_state=0).fit(R)
print(json.dumps({"fit_s": time.perf_counter() - t}))
"""


def _cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(args, cache, tree, parse=False):
    """``(seconds, cpu seconds)`` of one job: the wall clock of the process
    (of the fit alone with ``parse``) and the CPU time of the process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    c = _cpu_children()
    res = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t
    cpu = _cpu_children() - c
    if res.returncode:
        raise SystemExit(f"{args} failed:\n{res.stdout}\n{res.stderr}")
    if parse:
        return json.loads(res.stdout.strip().splitlines()[-1])["fit_s"], cpu
    return wall, cpu


def jobs(model):
    py = sys.executable
    return {
        "recommend": lambda c, t: _run([py, "-m", "fastals", "recommend", model,
                                        "--user", "1"], c, t),
        "dense": lambda c, t: _run([py, "-c", DENSE], c, t, parse=True),
        "train": lambda c, t: _run([py, "-m", "fastals", "train"], c, t),
    }


def main(rounds=3, only=None, trees=(ROOT,)):
    results = {}
    trees = [Path(t).resolve() for t in trees]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.npz")
        _run([sys.executable, "-m", "fastals", "train", "-o", model],
             os.path.join(tmp, "model-cache"), trees[0])
        todo = {k: v for k, v in jobs(model).items() if not only or k in only}
        for r in range(rounds):
            for name, job in todo.items():
                for i, tree in enumerate(trees):
                    cache = os.path.join(tmp, f"cache-{name}-{r}-{i}")
                    cold = job(cache, tree)
                    warm = job(cache, tree)
                    label = name if len(trees) == 1 else f"{name} [{tree}]"
                    results.setdefault(label, []).append((cold, warm))
                    print(f"round {r + 1} {label}: cold {cold[0]:.2f} s "
                          f"[cpu {cold[1]:.2f} s], warm {warm[0]:.2f} s "
                          f"[cpu {warm[1]:.2f} s] (load "
                          f"{os.getloadavg()[0]:.1f})", flush=True)

    def span(values):
        return f"{min(values):.2f}-{max(values):.2f} s"
    for label, runs in results.items():
        print(f"{label}: cold {span([c[0] for c, _ in runs])} "
              f"[cpu {span([c[1] for c, _ in runs])}], "
              f"warm {span([w[0] for _, w in runs])} "
              f"[cpu {span([w[1] for _, w in runs])}] over {len(runs)} rounds")
    return results


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", default="recommend,dense,train")
    ap.add_argument("--trees", default=str(ROOT),
                    help="comma-separated source trees to compare (alternating)")
    a = ap.parse_args()
    main(a.rounds, a.jobs.split(","), a.trees.split(","))
