"""The register-tiled Gram update and Cholesky of ``fastals.kernels.tiles``
(the k x k row solves for k a multiple of 16 in float32, of 8 in float64,
from 16 to 128 factors) against numpy and the naive reference of
``tests/naive.py``.

Rows with 0, 1, k-1, k and k+1 ratings, rows longer than an entry block of
the tiles (32 KiB) and than the gather block (``_gather_cap``), weights
``c`` below, equal to and above the unobserved weight ``w0`` (negative,
zero and positive ``c - w0`` in one row), weighted regularization, biases
(a design column of ones and per-item offsets), both dtypes, BLAS on and
off; bitwise identical across thread counts.  Tolerances relative to the
largest entry of the reference: 1e-9 in float64, 1e-4 in float32.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

import naive
from fastals import kernels as K
from fastals.kernels import rows as krows, tiles
from fastals.model import _Side

from test_short_rows import assert_bitwise_across_threads


@njit
def _syrk(alpha, B, r0, n, A, o):
    tiles._syrk_tiled(alpha, B, r0, n, A, o)


@njit
def _factor(A, one):
    return tiles._factor_tiled(A, one)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [16, 64])
@pytest.mark.parametrize("n", [0, 1, 5, 129, 600])
def test_syrk_tiled_against_numpy(dtype, k, n):
    """``A[o:, o:]`` upper triangle gains ``alpha B^T B`` of rows
    ``r0:r0+n``; nothing else of the upper triangle changes."""
    rng = np.random.default_rng(n)
    w = 64 // np.dtype(dtype).itemsize
    B = rng.standard_normal((n + 7, k)).astype(dtype)
    for alpha, o, r0 in ((1.0, 0, 0), (-1.0, 0, 3), (-1.0, w, 7), (1.0, k - w, 0)):
        if r0 + n > B.shape[0]:
            continue
        A0 = rng.standard_normal((k, k)).astype(dtype)
        A = A0.copy()
        _syrk(dtype(alpha), B, r0, n, A, o)
        Bs = B[r0:r0 + n].astype(np.float64)
        want = A0.astype(np.float64)
        want[o:, o:] += alpha * Bs[:, o:].T @ Bs[:, o:]
        up = np.triu(np.ones((k, k), bool))
        tol = (1e-12 if dtype == np.float64 else 1e-5) * max(n, 1)
        np.testing.assert_allclose(A[up], want[up], atol=tol, rtol=0)
        outside = up.copy()
        outside[o:, o:] = False
        np.testing.assert_array_equal(A[outside], A0[outside])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [16, 48, 128])
def test_factor_tiled_against_numpy(dtype, k):
    if k % (64 // np.dtype(dtype).itemsize):
        pytest.skip("not a multiple of the tile width")
    rng = np.random.default_rng(k)
    M = rng.standard_normal((2 * k, k))
    S = M.T @ M + 0.1 * np.eye(k)
    A = np.tril(rng.standard_normal((k, k)), -1).astype(dtype)  # junk below
    A += np.triu(S).astype(dtype)
    assert _factor(A, dtype(1))
    U = np.linalg.cholesky(S.astype(dtype).astype(np.float64)).T
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(np.triu(A), U, atol=tol * np.abs(U).max(), rtol=0)
    S[k // 2, k // 2] = -1.0  # not positive definite
    assert not _factor(np.triu(S).astype(dtype), dtype(1))


def problem(k, dtype, objective, bias, seed=0):
    """Rows of 0, 1, k-1, k, k+1 ratings, a row with every weight below
    ``w0``, rows longer than a tile's entry block and than the gather block."""
    rng = np.random.default_rng(seed)
    cap = krows._gather_cap.py_func(k)
    lengths = [0, 1, k - 1, k, k + 1, 3, 300, cap + 70]
    n_items = cap + 100
    rows, cols = [], []
    for u, n in enumerate(lengths):
        rows += [u] * n
        cols += list(rng.choice(n_items, n, replace=False))
    r = rng.integers(1, 6, len(rows)).astype(float)
    R = sp.csr_matrix((r, (rows, cols)), shape=(len(lengths), n_items))
    R.sort_indices()
    side = _Side(R, k, np.dtype(dtype))
    if objective == "explicit":
        conf, w0 = rng.uniform(0.5, 2.0, R.nnz), 0.0
    else:  # 0.25 r: below w0 = 1 for r <= 3, equal for r = 4, above for 5
        conf, w0 = 0.25 * R.data, 1.0
        conf[R.indptr[5]:R.indptr[6]] = 0.5
    conf = conf.astype(dtype)
    target = rng.random(R.nnz).astype(dtype)
    offset = (0.1 * rng.standard_normal(n_items)).astype(dtype)
    Y = (rng.standard_normal((n_items, k)) / np.sqrt(k)).astype(dtype)
    if bias:
        Y[:, -1] = 1
        target -= 0.2
    G = (Y.astype(np.float64).T @ Y).astype(dtype)
    return R, side, conf, target, offset, Y, G, w0


def reference(R, conf, target, offset, Y, lam, wr, w0):
    rows, cols = R.nonzero()
    order = np.lexsort((cols, rows))  # CSR order
    rows, cols = rows[order], cols[order]
    W = np.full(R.shape, float(w0))
    T = np.zeros(R.shape)
    W[rows, cols] = conf.astype(np.float64)
    T[rows, cols] = target.astype(np.float64) - offset[cols].astype(np.float64)
    counts = np.diff(R.indptr)
    full = counts > 0  # a row without ratings: x = 0
    X = np.zeros((R.shape[0], Y.shape[1]))
    X[full] = naive.update_rows(W[full], T[full], Y.astype(np.float64), lam,
                                weighted=wr, counts=counts[full])
    return X


def solve(side, conf, target, offset, Y, G, lam, wr, w0, blas):
    dt = Y.dtype.type
    X = np.full((side.indptr.size - 1, Y.shape[1]), np.nan, Y.dtype)
    fb = krows._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, G,
                               dt(lam), wr, dt(w0), X, side.bounds, blas, 0)
    return X, fb


@pytest.mark.parametrize("k", [16, 24, 64, 128])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("objective,wr,bias", [("implicit", False, False),
                                               ("implicit", True, True),
                                               ("explicit", True, False)])
def test_tiled_rows_against_naive(k, dtype, objective, wr, bias):
    """The k x k path (``k = 24``: tiled in float64 only) with BLAS on and
    off (the tiles do not depend on it: the same result bit for bit)."""
    R, side, conf, target, offset, Y, G, w0 = problem(k, dtype, objective, bias)
    lam = 0.3
    X, fb = solve(side, conf, target, offset, Y, G, lam, wr, w0, K.USE_BLAS)
    ref = reference(R, conf, target, offset, Y, lam, wr, w0)
    # explicit, weighted: A = 0 for the row without ratings (ridge fallback)
    assert fb == (1 if objective == "explicit" and wr else 0)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(X, ref, atol=tol * np.abs(ref).max(), rtol=0)
    X_loops, _ = solve(side, conf, target, offset, Y, G, lam, wr, w0, False)
    if k % (64 // np.dtype(dtype).itemsize) == 0:
        np.testing.assert_array_equal(X, X_loops)


def test_tiled_rows_bitwise_identical_across_threads():
    k = 64

    def run():
        res = []
        for dtype in (np.float32, np.float64):
            R, side, conf, target, offset, Y, G, w0 = problem(k, dtype, "implicit", True)
            side.bounds = np.arange(side.indptr.size, dtype=np.int64)  # row per chunk
            res.append(solve(side, conf, target, offset, Y, G, 0.3, True, w0,
                             K.USE_BLAS)[0])
        return res
    assert_bitwise_across_threads(run)
