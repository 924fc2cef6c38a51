"""How FastALS's explicit-objective defaults were chosen (see docs/accuracy.md).

Usage::

    python bench/choose_defaults.py [--data DIR] [--quick]

Protocol (as ``bench/accuracy.py``; no test file is ever used for the choice):

1. Choice.  10% of ``ua.base`` is cut at random (seed 0) as a validation
   set; every candidate below is trained on the other 90% and scored by RMSE
   on the validation set.  Candidates: biases on, ``factors`` in
   {32, 64, 100}, 15 iterations, and three penalty shapes
   ``lambda * n ** e`` (``weighted_regularization=True``):
   ``e = 0`` (plain), ``e = 0.5``, ``e = 1`` (ALS-WR), each with its own
   grid of ``lambda``.  The lowest validation RMSE wins.
2. Check on data the choice never saw: the winner, unchanged, is trained on
   ``u1.base`` ... ``u5.base`` and scored on ``u1.test`` ... ``u5.test``, and
   on ``ua.base`` -> ``ua.test``.
3. ``FastALS()`` with no arguments on ``ua.base`` -> ``ua.test`` (the
   defaults as shipped; must match the winner).
"""

import argparse
import time

import numpy as np

from fastals import FastALS
from fastals import evaluation as E

from accuracy import default_root, load

LAMBDAS = {0.0: [5.0, 10.0, 20.0], 0.5: [0.9, 1.25, 1.6], 1.0: [0.06, 0.09, 0.12]}
FACTORS = [32, 64, 100]
BASE = dict(use_bias=True, weighted_regularization=True, iterations=15,
            random_state=0, calculate_training_loss=False)


def grid(quick=False):
    out = []
    for e, lams in LAMBDAS.items():
        out.append({"factors": [64] if quick else FACTORS,
                    "regularization_exponent": [e], "regularization": lams})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=type(default_root()), default=default_root())
    ap.add_argument("--quick", action="store_true", help="64 factors only")
    args = ap.parse_args()
    root = args.data
    t0 = time.perf_counter()
    base = load(root / "ua.base")
    tr, va = E.random_split(len(base[0]), test_size=0.1, random_state=0)
    best, results = E.grid_search(FastALS(**BASE), grid(args.quick),
                                  E.subset(base, tr), E.subset(base, va),
                                  metric="rmse")
    print("validation RMSE (90/10 split of ua.base, seed 0):")
    for params, score in sorted(results, key=lambda r: r[1]):
        print(f"  {score:.4f}  {params}")
    print(f"chosen: {best}  ({time.perf_counter() - t0:.0f}s)")
    rows = []
    for name in ["u1", "u2", "u3", "u4", "u5", "ua"]:
        train, test = load(root / f"{name}.base"), load(root / f"{name}.test")
        model = FastALS(**BASE).set_params(**best).fit(train[:3])
        rows.append((name, E.evaluate_ratings(model, *test[:3])["rmse"]))
    print("\nchosen defaults, test RMSE:")
    print("| " + " | ".join(n for n, _ in rows) + " | mean u1-u5 |")
    print("|" + "---|" * (len(rows) + 1))
    print("| " + " | ".join(f"{r:.4f}" for _, r in rows)
          + f" | {np.mean([r for _, r in rows[:5]]):.4f} |")
    train, test = load(root / "ua.base"), load(root / "ua.test")
    t1 = time.perf_counter()
    model = FastALS().fit(train[:3])
    fit_s = time.perf_counter() - t1
    print(f"\nFastALS() on ua.base -> ua.test: RMSE "
          f"{E.evaluate_ratings(model, *test[:3])['rmse']:.4f} (fit {fit_s:.1f}s); "
          f"{model!r}")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
