"""The BLAS/LAPACK paths of the kernels (k >= 16 and k >= 64) against numpy.

``tests/test_als.py`` uses few factors, where the kernels run their own
loops; this file covers the paths used at realistic sizes: SYRK row builds,
xPOTRF factorizations, negative weights ``c - w0 < 0``, the ridge fallback,
CG, the Gram matrix and the dense right-multiply, with BLAS on and off, and
bitwise determinism across thread counts.  Not timed.

    python -m pytest tests/test_kernel_paths.py
"""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from fastals import _kernels as K
from fastals.model import _Side


def problem(k, dtype, seed=0, m=40, n=90, density=0.3):
    rng = np.random.default_rng(seed)
    R = sp.random(m, n, density=density, format="csr", random_state=seed,
                  data_rvs=lambda s: rng.integers(1, 6, s).astype(float))
    side = _Side(R, k, np.dtype(dtype))
    conf = (0.25 * R.data).astype(dtype)  # c < 1 = w0 for r <= 3: negative weights
    target = rng.random(R.nnz).astype(dtype)
    offset = (0.1 * rng.standard_normal(n)).astype(dtype)
    Y = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
    G = (Y.astype(np.float64).T @ Y).astype(dtype)
    return R, side, conf, target, offset, Y, G


def naive(R, conf, target, offset, Y, G, lam, wr, w0):
    k = Y.shape[1]
    Yd = Y.astype(np.float64)
    X = np.zeros((R.shape[0], k))
    for u in range(R.shape[0]):
        s, e = R.indptr[u], R.indptr[u + 1]
        idx = R.indices[s:e]
        c = conf[s:e].astype(np.float64)
        A = w0 * G.astype(np.float64) + (Yd[idx].T * (c - w0)) @ Yd[idx]
        A += (lam * (e - s) if wr else lam) * np.eye(k)
        b = Yd[idx].T @ (c * (target[s:e] - offset[idx]))
        X[u] = np.linalg.solve(A, b)
    return X


@pytest.mark.parametrize("k", [20, 70])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("w0,wr", [(1.0, False), (0.0, True)])
def test_cholesky_rows(k, dtype, blas, w0, wr):
    if blas and not K.USE_BLAS:
        pytest.skip("BLAS path not available here")
    R, side, conf, target, offset, Y, G, = problem(k, dtype)
    if w0 == 0:
        conf = np.ones_like(conf)
    lam = 0.5
    X = np.zeros((R.shape[0], k), dtype)
    fb = K._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, G,
                           dtype(lam), wr, dtype(w0), X, side.bounds, blas)
    ref = naive(R, conf, target, offset, Y, G, lam, wr, w0)
    tol = 1e-8 if dtype == np.float64 else 2e-3
    assert fb == 0
    np.testing.assert_allclose(X, ref, atol=tol * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("blas", [True, False])
def test_fallback_on_singular_rows(blas):
    k = 70
    R, side, conf, target, offset, Y, G = problem(k, np.float64, density=0.1)
    X = np.zeros((R.shape[0], k))
    fb = K._solve_cholesky(side.indptr, side.indices, np.ones_like(conf), target,
                           offset, Y, G, 0.0, False, 0.0, X, side.bounds,
                           blas and K.USE_BLAS)
    assert fb > 0  # fewer ratings than factors, no ridge: singular
    assert np.isfinite(X).all()


def test_cg_converges_to_cholesky():
    k = 70
    R, side, conf, target, offset, Y, G = problem(k, np.float64)
    conf = conf + 1.0  # positive definite without relying on lam
    ref = naive(R, conf, target, offset, Y, G, 0.5, False, 1.0)
    X = np.zeros_like(ref)
    K.solve_cg(side.indptr, side.indices, conf, target, offset, Y, G, 0.5, False,
               1.0, X, side.bounds, 3 * k)
    np.testing.assert_allclose(X, ref, atol=1e-6 * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("blas", [True, False])
def test_gram_and_right_multiply(blas):
    blas = blas and K.USE_BLAS
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((9000, 70)).astype(np.float32)
    bounds = np.linspace(0, 9000, 17).astype(np.int64)
    G = K._gram(Y, bounds, blas)
    ref = Y.astype(np.float64).T @ Y
    np.testing.assert_allclose(G, ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
    M = rng.standard_normal((70, 70)).astype(np.float32)
    Z = K._right_multiply(Y, M, bounds, blas)
    np.testing.assert_allclose(Z, Y.astype(np.float64) @ M, atol=1e-4, rtol=1e-4)


def test_bitwise_identical_across_threads():
    k = 70
    R, side, conf, target, offset, Y, G = problem(k, np.float32, m=300)
    outs = []
    old = numba.get_num_threads()
    try:
        for t in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(t)
            X = np.zeros((R.shape[0], k), np.float32)
            K._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, G,
                              np.float32(0.5), False, np.float32(1.0), X, side.bounds,
                              K.USE_BLAS)
            C = np.zeros_like(X)
            K._solve_cg(side.indptr, side.indices, conf, target, offset, Y, G,
                        np.float32(0.5), False, np.float32(1.0), C, side.bounds, 3)
            outs.append((X, C, K._gram(Y, np.linspace(0, Y.shape[0], 9).astype(np.int64),
                                       K.USE_BLAS)))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b)
