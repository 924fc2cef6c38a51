"""What the implicit-feedback information buys in myFM, on MovieLens-100k:
its Bayesian FM with user and item one-hot features, with and without the
items each user rated as a third feature group (SVD++ / libFM style).

Usage::

    python bench/bayes_implicit_myfm.py {val,test} [--splits ua,u1,u2] [--seed 0]

``val``: on the validation splits that ``bench/bayes_defaults.py`` carves
from each training file (the ``.test`` files are not read); ``test``: fit on
``.base``, score on ``.test``.  The user block of each rating (relation
blocks: myFM's shared computation for repeated rows) is the user's one-hot
vector and, with the term, ``1/sqrt(n_u)`` on each item the user rated in
the *fitting* data; ``group_shapes`` gives the user, rated-items and item
features one hyperprior group each.  ``MyFMRegressor(rank=10)``, 200
iterations, 195 kept; predictions clipped to [1, 5].  Needs the ``bench``
extra (``myfm``).  Nothing from the data set is written anywhere.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("TQDM_DISABLE", "1")  # myFM's progress bar

from bayes_defaults import carve  # noqa: E402
from bayes_vs_myfm import N_ITEMS, N_USERS, default_root, load, rmse  # noqa: E402


def blocks(fit, users, items, implicit):
    """Relation blocks (and group shapes) for the ratings ``(users, items)``."""
    import myfm
    R = sp.csr_matrix((np.ones(fit[0].size), (fit[0] - 1, fit[1] - 1)),
                      shape=(N_USERS, N_ITEMS))
    R.data[:] = 1.0                                  # repeated pairs: once
    count = np.diff(R.indptr)
    R = sp.diags(1 / np.sqrt(np.maximum(count, 1))) @ R
    ub = sp.identity(N_USERS, format="csr")
    if implicit:
        ub = sp.hstack([ub, R]).tocsr()
    rel = [myfm.RelationBlock(users - 1, ub),
           myfm.RelationBlock(items - 1, sp.identity(N_ITEMS, format="csr"))]
    return rel, ([N_USERS, N_ITEMS, N_ITEMS] if implicit else [N_USERS, N_ITEMS])


def main():
    import myfm
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["val", "test"])
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--splits", default="ua,u1,u2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"myfm {myfm.__version__}")
    for name in args.splits.split(","):
        base = load(args.data / f"{name}.base")
        fit, ev = carve(name, base) if args.mode == "val" else \
            (base, load(args.data / f"{name}.test"))
        cells = []
        for implicit in (False, True):
            t0 = time.perf_counter()
            rel, groups = blocks(fit, fit[0], fit[1], implicit)
            fm = myfm.MyFMRegressor(rank=10, random_seed=args.seed)
            fm.fit(sp.csr_matrix((fit[0].size, 0)), fit[2], X_rel=rel, n_iter=200,
                   n_kept_samples=195, group_shapes=groups,
                   callback=lambda *a: (False, None))
            pred = fm.predict(sp.csr_matrix((ev[0].size, 0)),
                              blocks(fit, ev[0], ev[1], implicit)[0])
            cells.append(f"{'with' if implicit else 'without'} {rmse(pred, ev[2]):.4f} "
                         f"({time.perf_counter() - t0:.1f} s)")
        print(f"{args.mode} {name}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
