"""Accuracy of FastALS on MovieLens-100k (numbers reported in docs/accuracy.md).

Usage::

    python bench/accuracy.py [--data DIR] [--skip-ranking]

``DIR`` is the ``ml-100k`` folder (default: ``$FASTALS_DATA/ml-100k`` or
``../shared/data/ml-100k`` beside the repository).  Nothing from the data
set is written anywhere.

Protocol (no test data is ever used for tuning):

* Rating prediction, explicit objective.  For each split (``ua`` and ``u1``
  ... ``u5``) a validation set of 10% of the ratings is cut at random
  (seed 0) from the *training file*; :func:`fastals.evaluation.grid_search`
  picks the regularization (and its exponent: ``lambda * n`` as in ALS-WR
  or ``lambda * sqrt(n)``) on it; the chosen model is refitted on the
  whole training file and scored on the test file.  Done with and without
  biases (64 factors, ``weighted_regularization=True``, 15 iterations).
* Ranking, implicit objective.  ``u.data`` split per user, 10 ratings held
  out at random (seed 0); the grid is searched on a second leave-10-out
  split cut from the training part (NDCG@10), then precision@10, NDCG@10,
  MAP@10 and AUC are computed on the held-out ratings.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from fastals import FastALS
from fastals import evaluation as E

# Two penalty shapes: ALS-WR (lambda * n) and lambda * sqrt(n); lambda scales
# differ between them, hence one grid each.
EXPLICIT_GRID = [
    {"factors": [64], "regularization_exponent": [1.0],
     "regularization": [0.09, 0.12, 0.15]},
    {"factors": [64], "regularization_exponent": [0.5],
     "regularization": [0.9, 1.25, 1.6]},
]
EXPLICIT_BASE = dict(weighted_regularization=True, iterations=15, random_state=0,
                     calculate_training_loss=False)
IMPLICIT_GRID = {"factors": [32, 64], "regularization": [0.1, 10.0],
                 "alpha": [1.0, 5.0, 20.0]}
IMPLICIT_BASE = dict(objective="implicit", iterations=15, random_state=0,
                     calculate_training_loss=False)


def default_root():
    env = os.environ.get("FASTALS_DATA")
    if env:
        return Path(env) / "ml-100k"
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ml-100k"


def load(path):
    """``(users, items, ratings, timestamps)`` of a tab-separated MovieLens file."""
    d = np.loadtxt(path, dtype=np.int64)
    return d[:, 0], d[:, 1], d[:, 2].astype(np.float64), d[:, 3]


def tune_and_test(train, test, use_bias, grid, seed=0):
    """Grid search on a validation split of ``train``, refit, score on ``test``."""
    tr, va = E.random_split(len(train[0]), test_size=0.1, random_state=seed)
    base = FastALS(use_bias=use_bias, **EXPLICIT_BASE)
    best, _ = E.grid_search(base, grid, E.subset(train, tr), E.subset(train, va),
                            metric="rmse")
    model = FastALS(use_bias=use_bias, **EXPLICIT_BASE).set_params(**best)
    model.fit(train[:3])
    return best, E.evaluate_ratings(model, *test[:3])["rmse"]


def rating_table(root, grid):
    rows = []
    for use_bias in (True, False):
        res = {}
        for name in ["ua", "u1", "u2", "u3", "u4", "u5"]:
            t0 = time.perf_counter()
            best, err = tune_and_test(load(root / f"{name}.base"),
                                      load(root / f"{name}.test"), use_bias, grid)
            res[name] = err
            print(f"  bias={use_bias!s:5} {name}: RMSE {err:.4f}  params {best}  "
                  f"({time.perf_counter() - t0:.1f}s)", flush=True)
        folds = [res[f"u{i}"] for i in range(1, 6)]
        rows.append((use_bias, res["ua"], folds))
    print("\n| biases | ua.base -> ua.test | u1 | u2 | u3 | u4 | u5 | mean u1-u5 |")
    print("|---|---|---|---|---|---|---|---|")
    for use_bias, ua, folds in rows:
        cells = " | ".join(f"{f:.4f}" for f in folds)
        print(f"| {'yes' if use_bias else 'no'} | {ua:.4f} | {cells} | "
              f"{np.mean(folds):.4f} |")
    return rows


def ranking_table(root, grid):
    data = load(root / "u.data")
    tr, te = E.leave_k_out_split(data[0], k=10, random_state=0)
    train, test = E.subset(data, tr), E.subset(data, te)
    itr, iva = E.leave_k_out_split(train[0], k=10, random_state=1)
    inner_train, valid = E.subset(train, itr), E.subset(train, iva)
    ones = lambda d: (d[0], d[1], np.ones(len(d[0])))  # noqa: E731  (binary interactions)
    best, _ = E.grid_search(FastALS(**IMPLICIT_BASE), grid, ones(inner_train),
                            ones(valid), metric="ndcg", K=10)
    model = FastALS(**IMPLICIT_BASE).set_params(**best).fit(ones(train))
    res = E.evaluate_ranking(model, train, test, K=10)
    print(f"\nimplicit, leave-10-out of u.data, params {best}:")
    print("| precision@10 | recall@10 | NDCG@10 | MAP@10 | AUC |")
    print("|---|---|---|---|---|")
    print(f"| {res['precision']:.4f} | {res['recall']:.4f} | {res['ndcg']:.4f} | "
          f"{res['map']:.4f} | {res['auc']:.4f} |")
    return best, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--skip-ranking", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rating_table(args.data, EXPLICIT_GRID)
    if not args.skip_ranking:
        ranking_table(args.data, IMPLICIT_GRID)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
