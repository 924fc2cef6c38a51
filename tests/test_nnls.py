import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

import naive
from fastals import FastALS, InputError
from fastals.kernels import nnls as _nnls
from fastals._input import kernel_arrays


def _scratch(k):
    return (np.empty((k, k)), np.empty((k, k)), np.empty(k), np.empty(k),
            np.empty(k, np.int64), np.empty(k, np.bool_), np.empty(k, np.bool_))


def _objective(A, b, x):
    return 0.5 * x @ A @ x - b @ x


@pytest.mark.parametrize("seed", range(40))
def test_nnls_normal_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 15))
    m = int(rng.integers(1, 40))
    M = rng.standard_normal((m, k))
    y = rng.standard_normal(m) + rng.choice([0.0, 2.0])
    lam = float(rng.choice([0.0, 0.01, 1.0]))
    A = M.T @ M + lam * np.eye(k)
    b = M.T @ y
    x = np.empty(k)
    it = _nnls.nnls_normal(A, b, k, x, *_scratch(k), 3 * k + 30)
    assert it >= 0
    ref, _ = so.nnls(np.vstack([M, np.sqrt(lam) * np.eye(k)]),
                     np.concatenate([y, np.zeros(k)]))
    assert (x >= 0).all()
    # same minimum; same minimizer when the problem is strictly convex
    assert _objective(A, b, x) <= _objective(A, b, ref) + 1e-9 * (1 + abs(_objective(A, b, ref)))
    if lam > 0:
        np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-8)


def test_nnls_normal_edge_cases():
    k = 3
    x = np.empty(k)
    A = np.eye(k)
    _nnls.nnls_normal(A, -np.ones(k), k, x, *_scratch(k), 100)
    assert (x == 0).all()                              # all gradients negative
    _nnls.nnls_normal(A, np.array([1.0, -2.0, 3.0]), k, x, *_scratch(k), 100)
    np.testing.assert_allclose(x, [1.0, 0.0, 3.0])


@pytest.mark.parametrize("objective,wr", [("explicit", False), ("explicit", True),
                                          ("implicit", False)])
def test_solve_nnls_rows_match_scipy_weighted_least_squares(objective, wr):
    rng = np.random.default_rng(7)
    m, n, k = 12, 15, 4
    R, mask = naive.random_ratings(rng, m, n, density=0.4)
    csr = sp.csr_matrix(R)
    Y = rng.standard_normal((n, k))
    model = FastALS(objective=objective, alpha=2.0, dtype=np.float64,
                    weighted_regularization=False, use_bias=False)
    conf, target = model._conf_target(csr.data, np.dtype(np.float64))
    w0 = model._w0()
    G = Y.T @ Y if w0 else np.zeros((k, k))
    lam = 0.3
    indptr, indices = kernel_arrays(csr)
    X = np.empty((m, k))
    capped = _nnls.solve_nnls(indptr, indices, conf, target, np.zeros(n), Y, G, lam,
                              wr, w0, X, np.array([0, 5, m], np.int64))
    assert capped == 0
    W, T = naive.cell_weights(R, mask, objective, alpha=2.0)
    for u in range(m):
        lam_u = lam * mask[u].sum() if wr else lam
        sw = np.sqrt(W[u])
        M = np.vstack([sw[:, None] * Y, np.sqrt(lam_u) * np.eye(k)])
        ref, _ = so.nnls(M, np.concatenate([sw * T[u], np.zeros(k)]))
        np.testing.assert_allclose(X[u], ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("objective", ["explicit", "implicit"])
def test_fit_nonnegative_is_exact_block_minimization(objective):
    rng = np.random.default_rng(11)
    R, mask = naive.random_ratings(rng, 20, 16, density=0.35)
    lam = 0.2
    model = FastALS(factors=3, iterations=6, regularization=lam, objective=objective,
                    nonnegative=True, dtype=np.float64, random_state=0,
                    weighted_regularization=False).fit(sp.csr_matrix(R))
    U, V = model.user_factors, model.item_factors
    assert (U >= 0).all() and (V >= 0).all() and U.any() and V.any()
    hist = model.objective_history
    assert all(b <= a * (1 + 1e-9) for a, b in zip(hist, hist[1:]))
    # the last half-step (items) is the NNLS optimum given the user factors
    W, T = naive.cell_weights(R, mask, objective)
    for i in range(R.shape[1]):
        sw = np.sqrt(W[:, i])
        M = np.vstack([sw[:, None] * U, np.sqrt(lam) * np.eye(3)])
        ref, _ = so.nnls(M, np.concatenate([sw * T[:, i], np.zeros(3)]))
        np.testing.assert_allclose(V[i], ref, rtol=1e-6, atol=1e-9)
    # fold-in uses the same constrained solve
    assert (model.recalculate_user(R[0]) >= 0).all()


def test_nonnegative_fold_in_matches_scipy():
    rng = np.random.default_rng(12)
    R, mask = naive.random_ratings(rng, 15, 12, density=0.4)
    model = FastALS(factors=3, iterations=3, regularization=0.5, nonnegative=True,
                    dtype=np.float64, random_state=0, weighted_regularization=False).fit(sp.csr_matrix(R))
    row = R[3]
    x = model.recalculate_user(row)
    m = row != 0
    Y = model.item_factors
    ref, _ = so.nnls(np.vstack([Y[m], np.sqrt(0.5) * np.eye(3)]),
                     np.concatenate([row[m], np.zeros(3)]))
    np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-9)


def test_nonnegative_validation_and_params():
    with pytest.raises(InputError, match="nonnegative"):
        FastALS(nonnegative=True, objective="dense").fit(sp.csr_matrix(np.eye(3)))
    with pytest.raises(InputError, match="nonnegative"):
        FastALS(nonnegative=True, use_bias=True).fit(sp.csr_matrix(np.eye(3)))
    m = FastALS(nonnegative=True)
    assert m.get_params()["nonnegative"] is True
    assert "nonnegative=True" in repr(m)
    assert m.set_params(nonnegative=False).nonnegative is False
