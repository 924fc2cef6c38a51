"""Outputs of the public API on small synthetic inputs, for the layout test.

``python tests/reference_outputs.py`` stores them in
``tests/data/reference_outputs.npz`` (run it only when a change of the
outputs is intended, and twice, so that the second run loads every kernel
from Numba's cache: see ``tests/test_reference_outputs.py``), which
``tests/test_reference_outputs.py`` recomputes and compares.  Synthetic data only (drawn here with numpy), nothing from
MovieLens.
"""

import os
import sys

import numpy as np
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # this checkout's fastals, not an installed one
    sys.path.insert(0, ROOT)

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                    "reference_outputs.npz")


def host_cpu():
    """The CPU Numba compiles for (bits may differ on another one)."""
    import llvmlite.binding as llvm
    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


def ratings(seed=0, n_users=80, n_items=60, nnz=1200):
    """A small explicit rating matrix with uneven rows (1..5 stars)."""
    rng = np.random.default_rng(seed)
    pu = rng.pareto(1.5, n_users) + 1
    pi = rng.pareto(1.5, n_items) + 1
    u = rng.choice(n_users, nnz, p=pu / pu.sum())
    i = rng.choice(n_items, nnz, p=pi / pi.sum())
    r = rng.integers(1, 6, nnz).astype(np.float64)
    R = sp.coo_matrix((r, (u, i)), shape=(n_users, n_items)).tocsr()
    R.sum_duplicates()
    R.data = np.minimum(R.data, 5.0)
    return R


def configurations():
    """(name, FastALS parameters) for every stored fit."""
    # the plain model (no biases, plain penalty) unless a configuration
    # asks for more: the explicit objective's defaults would add both
    base = dict(factors=8, iterations=3, random_state=7, regularization=0.1,
                use_bias=False, weighted_regularization=False)
    out = []
    for objective in ("explicit", "implicit", "dense"):
        for solver in ("cholesky", "cg"):
            if objective == "dense" and solver == "cg":
                continue  # dense has one solver (sparse x dense)
            for dtype in ("float32", "float64"):
                out.append((f"{objective}-{solver}-{dtype}",
                            dict(base, objective=objective, solver=solver,
                                 dtype=dtype)))
    for dtype in ("float32", "float64"):
        out.append((f"bias-{dtype}", dict(base, use_bias=True, dtype=dtype)))
        out.append((f"wr-{dtype}", dict(base, weighted_regularization=True,
                                         dtype=dtype)))
        out.append((f"wr-exp-{dtype}", dict(base, weighted_regularization=True,
                                             regularization_exponent=0.5,
                                             dtype=dtype)))
        out.append((f"nnls-explicit-{dtype}", dict(base, nonnegative=True,
                                                   dtype=dtype)))
        out.append((f"nnls-implicit-{dtype}", dict(base, nonnegative=True,
                                                   objective="implicit",
                                                   dtype=dtype)))
    # BLAS SYRK (k >= 16) and LAPACK Cholesky (k >= 64) paths, and lam = 0
    # (ridge fallback on short rows)
    out.append(("blas-implicit-float32", dict(base, factors=20, objective="implicit")))
    out.append(("blas-cg-float64", dict(base, factors=20, solver="cg", dtype="float64")))
    out.append(("lapack-explicit-float32", dict(base, factors=68)))
    out.append(("ridge-explicit-float64", dict(base, regularization=0.0,
                                               dtype="float64")))
    return out


def compute():
    """Every output, as a dict name -> array."""
    from fastals import FastALS
    from fastals.evaluation import ranking_metrics_at_k

    R = ratings()
    test = ratings(seed=1)
    users = np.array([0, 3, 17, 42, 79])
    out = {}
    for name, params in configurations():
        m = FastALS(**params).fit(R)
        out[f"{name}/user_factors"] = m.user_factors
        out[f"{name}/item_factors"] = m.item_factors
        out[f"{name}/loss_history"] = np.array(m.loss_history)
        out[f"{name}/objective_history"] = np.array(m.objective_history)
        if params.get("use_bias"):
            out[f"{name}/user_biases"] = np.asarray(m.user_biases)
            out[f"{name}/item_biases"] = np.asarray(m.item_biases)
            out[f"{name}/global_mean"] = np.asarray(m.global_mean)
        ids, scores = m.recommend(users, n=10)
        out[f"{name}/recommend_ids"] = np.asarray(ids)
        out[f"{name}/recommend_scores"] = np.asarray(scores)
        for item in (1, 30):
            ids, scores = m.similar_items(item, n=6)
            out[f"{name}/similar_ids_{item}"] = np.asarray(ids)
            out[f"{name}/similar_scores_{item}"] = np.asarray(scores)
        out[f"{name}/recalculate_user"] = np.asarray(
            m.recalculate_user(R[users[:1]]))
        rk = ranking_metrics_at_k(m, R, test, K=5)
        out[f"{name}/ranking"] = np.array([rk[key] for key in sorted(rk)],
                                          np.float64)
    return out


def main(argv):
    """``reference_outputs.py [PATH]``: write the outputs (default: the
    stored reference file)."""
    path = argv[0] if argv else PATH
    out = compute()
    import fastals
    assert os.path.dirname(os.path.dirname(fastals.__file__)) == ROOT, fastals.__file__
    np.savez_compressed(path, __host_cpu__=np.array(host_cpu()), **out)
    print(f"{len(out)} arrays, {os.path.getsize(path)} bytes -> {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
