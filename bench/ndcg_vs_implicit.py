"""Ranking quality of fastals and implicit side by side, at equal settings.

Usage::

    python bench/ndcg_vs_implicit.py [--data DIR] [--values ratings|ones]
                                     [--seeds 4] [--unit-norm-start]

For each seed ``s`` in ``0 .. seeds-1``: ``u.data`` of MovieLens-100k is
split per user, 10 ratings held out at random
(:func:`fastals.evaluation.leave_k_out_split`, ``random_state=s``); both
libraries train on the rest (the rating as interaction strength, or 1 with
``--values ones``) with the same objective -- confidence ``alpha * r``,
unobserved weight 1 (implicit's; fastals' ``confidence="alpha_r"``) --, the
same factors, regularization, 15 iterations, float32 and ``random_state=s``,
with 3 CG steps (implicit's default ``use_cg=True``; fastals
``solver="cg"``) and with exact solves (``use_cg=False``;
``solver="cholesky"``).  Both are scored by implicit's own evaluator,
``implicit.evaluation.ndcg_at_k(model, train, test, K=10)`` (training items
filtered); fastals' factors are handed to it through
:class:`fastals.compat.implicit.AlternatingLeastSquares`.  Settings:
``k=32, lambda=0.1, alpha=1`` and ``k=64, lambda=0.1, alpha=5``.

``--unit-norm-start`` adds fastals started from unit-norm Gaussian rows
(its starting point before it adopted implicit's), to show the cause of
the former gap (docs/objectives.md, "Starting point").  Needs implicit
(``pip install fastals[bench]``).
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp

from fastals import FastALS
from fastals import evaluation as E
from fastals.compat.implicit import AlternatingLeastSquares as DropIn

from accuracy import default_root

SETTINGS = [dict(factors=32, regularization=0.1, alpha=1.0),
            dict(factors=64, regularization=0.1, alpha=5.0)]


class UnitNormStart(FastALS):
    """FastALS started from unit-norm Gaussian rows (fastals <= 0.1.0's start)."""

    def _init_factors(self, n, k, dtype, rng):
        part = rng.standard_normal((n, k))
        part /= np.maximum(np.linalg.norm(part, axis=1), 1e-12)[:, None]
        return part.astype(dtype)


def _implicit(params, solver, seed, train):
    from implicit.cpu.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(**params, iterations=15, random_state=seed,
                                    use_cg=solver == "cg", dtype=np.float32)
    model.fit(train, show_progress=False)
    return model


def _fastals(params, solver, seed, train, cls=FastALS):
    model = cls(**params, objective="implicit", confidence="alpha_r", solver=solver,
                iterations=15, random_state=seed, dtype=np.float32,
                calculate_training_loss=False).fit(train)
    wrapped = DropIn(factors=params["factors"])
    wrapped.user_factors, wrapped.item_factors = model.user_factors, model.item_factors
    return wrapped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=type(default_root()), default=default_root())
    ap.add_argument("--values", choices=["ratings", "ones"], default="ratings")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--unit-norm-start", action="store_true")
    args = ap.parse_args()
    import threadpoolctl
    from implicit.evaluation import ndcg_at_k

    d = np.loadtxt(args.data / "u.data", dtype=np.int64)
    users, items = d[:, 0] - 1, d[:, 1] - 1
    values = d[:, 2].astype(np.float32) if args.values == "ratings" \
        else np.ones(len(d), np.float32)
    shape = (users.max() + 1, items.max() + 1)

    def matrix(idx):
        return sp.csr_matrix((values[idx], (users[idx], items[idx])), shape=shape)

    libs = {"implicit": _implicit, "fastals": _fastals}
    if args.unit_norm_start:
        libs["fastals, unit-norm start"] = \
            lambda p, s, seed, tr: _fastals(p, s, seed, tr, UnitNormStart)
    t0 = time.perf_counter()
    rows = []
    with threadpoolctl.threadpool_limits(1, "blas"):   # as implicit recommends
        for params in SETTINGS:
            for solver in ("cg", "cholesky"):
                scores = {name: [] for name in libs}
                for seed in range(args.seeds):
                    tr, te = E.leave_k_out_split(users, k=10, random_state=seed)
                    train, test = matrix(tr), matrix(te)
                    for name, fit in libs.items():
                        model = fit(params, solver, seed, train)
                        scores[name].append(ndcg_at_k(model, train, test, K=10,
                                                      show_progress=False))
                for name, s in scores.items():
                    rows.append((params, solver, name, s))
                    print(f"k={params['factors']} lambda={params['regularization']} "
                          f"alpha={params['alpha']} {solver:8} {name:26} NDCG@10 "
                          f"mean {np.mean(s):.4f}  seeds {np.round(s, 4).tolist()}",
                          flush=True)
    print(f"\n| setting | solver | {' | '.join(libs)} |")
    print("|---|---|" + "---|" * len(libs))
    for i in range(0, len(rows), len(libs)):
        p, solver = rows[i][0], rows[i][1]
        cells = " | ".join(f"{np.mean(r[3]):.4f}" for r in rows[i:i + len(libs)])
        print(f"| k={p['factors']}, lambda={p['regularization']}, alpha={p['alpha']} "
              f"| {solver} | {cells} |")
    print(f"\n({args.values}, {args.seeds} seeds, {time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
