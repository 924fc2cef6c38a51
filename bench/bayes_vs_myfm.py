"""BayesianALS against myFM on MovieLens-100k, side by side in one run.

Usage::

    python bench/bayes_vs_myfm.py [--data DIR] [--seed S] [--skip-myfm]
                                  [--threads N]

``DIR`` is the ``ml-100k`` folder (default: ``$FASTALS_DATA/ml-100k`` or
``../shared/data/ml-100k`` beside the repository).  Nothing from the data
set is written anywhere.

On each split (``ua.base -> ua.test`` and ``u1`` ... ``u5``), in turn:

* ``fastals.BayesianALS(random_state=S)``: its defaults, nothing tuned;
* myFM 0.4.0's Bayesian factorization machine on the same model (user and
  item one-hot features: global mean, user and item biases, rank-10 user
  and item factors): ``MyFMRegressor(rank=10, random_seed=S)``,
  ``fit(n_iter=200, n_kept_samples=195)``, with a callback that does
  nothing (its default one evaluates every 10 iterations) and its progress
  bar off.

Both predictions are clipped to [1, 5].  Time is the wall time of ``fit``
plus ``predict`` on the test file (and, beside it, the process CPU time of
the same, all threads: with ``--threads 1`` on a loaded machine the less
noisy comparison, myFM running on one thread); fastals's first fit includes no Numba
compilation (a small warm-up fit and prediction run before the clock starts).  Needs the
``bench`` extra (``myfm``); ``--skip-myfm`` runs fastals alone.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fastals

from fastals import BayesianALS  # noqa: E402

SPLITS = ["ua", "u1", "u2", "u3", "u4", "u5"]
N_USERS, N_ITEMS = 943, 1682


def default_root():
    env = os.environ.get("FASTALS_DATA")
    if env:
        return Path(env) / "ml-100k"
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ml-100k"


def load(path):
    d = np.loadtxt(path, dtype=np.int64)
    return d[:, 0], d[:, 1], d[:, 2].astype(np.float64)


def rmse(pred, truth):
    return float(np.sqrt(np.mean((np.clip(pred, 1, 5) - truth) ** 2)))


def run_fastals(train, test, seed, threads):
    t0, c0 = time.perf_counter(), time.process_time()
    model = BayesianALS(random_state=seed, num_threads=threads).fit(train)
    pred = model.predict(test[0], test[1], unknown="default")
    return rmse(pred, test[2]), time.perf_counter() - t0, time.process_time() - c0


def one_hot(users, items):
    n = users.size
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([users - 1, N_USERS + items - 1], axis=1).ravel()
    return sp.csr_matrix((np.ones(2 * n), (rows, cols)), shape=(n, N_USERS + N_ITEMS))


def run_myfm(train, test, seed):
    import myfm
    t0, c0 = time.perf_counter(), time.process_time()
    fm = myfm.MyFMRegressor(rank=10, random_seed=seed)
    fm.fit(one_hot(train[0], train[1]), train[2], n_iter=200, n_kept_samples=195,
           callback=lambda i, fm_, hyper, history: (False, None))
    pred = fm.predict(one_hot(test[0], test[1]))
    return rmse(pred, test[2]), time.perf_counter() - t0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="Numba threads of BayesianALS (0: all cores)")
    ap.add_argument("--skip-myfm", action="store_true")
    args = ap.parse_args()
    if not (args.data / "ua.base").is_file():
        raise SystemExit(f"MovieLens-100k not found at {args.data} (--data or "
                         "$FASTALS_DATA)")
    if not args.skip_myfm:
        import myfm
        print(f"myfm {myfm.__version__}")
    # warm-up: compile (or load from the cache) the kernels outside the clock
    # (predict too: after a change to a kernel module, every kernel in it
    # compiles again, pair_dots among them)
    warm = load(args.data / "u1.base")
    BayesianALS(iterations=2, burn_in=1, random_state=0).fit(
        tuple(a[:2000] for a in warm)).predict(warm[0][:10], warm[1][:10])

    res = {}
    for name in SPLITS:
        train, test = load(args.data / f"{name}.base"), load(args.data / f"{name}.test")
        res[name] = {"fastals": run_fastals(train, test, args.seed, args.threads)}
        if not args.skip_myfm:
            res[name]["myfm"] = run_myfm(train, test, args.seed)
        line = "  ".join(f"{k} {v[0]:.4f} ({v[1]:.1f} s)" for k, v in res[name].items())
        print(f"{name}: {line}", flush=True)

    libs = list(res["ua"])
    print("\n| library | ua.test | u1 | u2 | u3 | u4 | u5 | mean u1-u5 | "
          "time, 6 fits | CPU time, 6 fits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    total, cpu = {}, {}
    for lib in libs:
        folds = [res[f"u{i}"][lib][0] for i in range(1, 6)]
        total[lib] = sum(res[s][lib][1] for s in SPLITS)
        cpu[lib] = sum(res[s][lib][2] for s in SPLITS)
        cells = " | ".join(f"{f:.4f}" for f in folds)
        print(f"| {lib} | {res['ua'][lib][0]:.4f} | {cells} | {np.mean(folds):.4f} | "
              f"{total[lib]:.1f} s | {cpu[lib]:.1f} s |")
    if "myfm" in total:
        print(f"\nfastals / myFM time: {total['fastals'] / total['myfm']:.3f} "
              f"(myFM {total['myfm'] / total['fastals']:.1f}x slower); CPU time "
              f"(process, all threads; the fairer one on a loaded machine with "
              f"--threads 1): {cpu['fastals'] / cpu['myfm']:.3f}")


if __name__ == "__main__":
    main()
