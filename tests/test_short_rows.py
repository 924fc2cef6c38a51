"""Short rows: the Cholesky solver's n x n path (push-through / Woodbury)
against the naive dense reference of ``tests/naive.py``.

Rows with 0, 1, 2, k-1, k and k+1 ratings (and a few random lengths), both
dtypes, BLAS on and off (off, and below 16 factors: the k x k path only), explicit (``w0 = 0``) and implicit (``w0 = 1``,
with weights ``c == w0`` and rows with ``c < w0``), weighted
regularization, biases (a design column of ones and per-item offsets).
Tolerances, relative to the largest entry of the reference: 1e-9 in
float64, 1e-4 in float32 (measured about 1e-15 and 1e-6).  Not timed.
"""

import numba
import numpy as np
import pytest

from fastals import kernels as K
from fastals.kernels import rows as krows
from fastals.model import _Side

import naive
import scipy.sparse as sp


def problem(k, dtype, objective, bias=False, seed=0):
    """CSR rows of lengths 0, 1, 2, k-1, k, k+1 and random ones; weights,
    targets, offsets, item factors ``Y`` (last column 1 with ``bias``)."""
    rng = np.random.default_rng(seed)
    n_items = k + 30
    lengths = [0, 1, 2, k - 1, k, k + 1, 3, 0] + list(rng.integers(1, k + 5, 12))
    rows, cols = [], []
    for u, n in enumerate(lengths):
        rows += [u] * n
        cols += list(rng.choice(n_items, n, replace=False))
    R = sp.csr_matrix((rng.integers(1, 6, len(rows)).astype(float), (rows, cols)),
                      shape=(len(lengths), n_items))
    R.sort_indices()
    side = _Side(R, k, np.dtype(dtype))
    if objective == "explicit":
        conf = rng.uniform(0.5, 2.0, R.nnz)  # row weights (regularization_exponent)
        w0 = 0.0
    else:
        conf = 1.0 + R.data
        conf[rng.random(R.nnz) < 0.2] = 1.0  # c == w0: no rank-one term
        conf[R.indptr[6]:R.indptr[7]] = 0.5  # a row with c < w0
        w0 = 1.0
    conf = conf.astype(dtype)
    target = rng.random(R.nnz).astype(dtype)
    offset = (0.1 * rng.standard_normal(n_items)).astype(dtype)
    Y = (rng.standard_normal((n_items, k)) / np.sqrt(k)).astype(dtype)
    if bias:
        Y[:, -1] = 1
    G = (Y.astype(np.float64).T @ Y).astype(dtype)
    return R, side, conf, target, offset, Y, G, w0


def reference(R, conf, target, offset, Y, lam, wr, w0):
    """The naive dense update (``tests/naive.py``): weight ``c`` on the
    ratings and ``w0`` elsewhere, target ``t - offset`` on the ratings."""
    mask = R.toarray() != 0
    rows, cols = R.nonzero()
    W = np.full(R.shape, float(w0))
    T = np.zeros(R.shape)
    order = np.lexsort((cols, rows))  # CSR order
    W[rows[order], cols[order]] = conf.astype(np.float64)
    T[rows[order], cols[order]] = (target.astype(np.float64)
                                   - offset[cols[order]].astype(np.float64))
    assert mask.sum() == R.nnz
    counts = np.diff(R.indptr)
    full = counts > 0  # rows without ratings: b = 0, x = 0 (and naive's A
    X = np.zeros((R.shape[0], Y.shape[1]))  # is 0 for explicit, weighted)
    X[full] = naive.update_rows(W[full], T[full], Y.astype(np.float64), lam,
                                weighted=wr, counts=counts[full])
    return X


def solve(side, conf, target, offset, Y, G, lam, wr, w0, blas, short_rows=True,
          transform=None):
    """``(X, ridge fallbacks, mode)``; ``transform``: as
    :func:`~fastals.kernels.rows.short_row_setup` (None: what
    ``solve_cholesky`` would choose)."""
    dt = Y.dtype.type
    X = np.full((side.indptr.size - 1, Y.shape[1]), np.nan, Y.dtype)
    if transform is None:
        fb = krows.solve_cholesky(side.indptr, side.indices, conf, target, offset, Y,
                                  G, dt(lam), wr, dt(w0), X, side.bounds, blas,
                                  short_rows)
        return X, fb, None
    GB, mode = krows.short_row_setup(side.indptr, Y, G, dt(lam), wr, dt(w0),
                                     transform=transform)
    fb = krows._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, GB,
                               dt(lam), wr, dt(w0), X, side.bounds, blas, mode)
    return X, fb, mode


def short_mask(side, conf, k, w0, transformed=False):
    """Rows that take the n x n path: ratings, no weight below ``w0``, at
    most ``short_row_limit`` weights above it."""
    nmax = krows.short_row_limit(k, w0, transformed=transformed)
    out = []
    for u in range(side.indptr.size - 1):
        c = conf[side.indptr[u]:side.indptr[u + 1]].astype(np.float64) - w0
        out.append(c.size > 0 and (c >= 0).all() and (c > 0).sum() <= nmax)
    return np.array(out)


@pytest.mark.parametrize("k", [5, 20, 90])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("objective", ["explicit", "implicit"])
@pytest.mark.parametrize("wr,bias,transform", [(False, False, True), (False, True, False),
                                               (True, True, None)])
def test_short_rows_against_naive(k, dtype, blas, objective, wr, bias, transform):
    """``transform``: implicit rows through ``Y U^{-1}`` (True) or a
    triangular solve per row (False; always with weighted regularization)."""
    if blas and not K.USE_BLAS:
        pytest.skip("BLAS path not available here")
    R, side, conf, target, offset, Y, G, w0 = problem(k, dtype, objective, bias)
    lam = 0.3
    X, fb, mode = solve(side, conf, target, offset, Y, G, lam, wr, w0, blas,
                        transform=transform)
    transformed = bool(transform) and objective == "implicit"
    assert mode is None or mode & 1 == transformed
    ref = reference(R, conf, target, offset, Y, lam, wr, w0)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    # explicit, weighted: A = 0 for a row without ratings (ridge fallback, x = 0)
    assert fb == (np.sum(np.diff(R.indptr) == 0) if objective == "explicit" and wr else 0)
    np.testing.assert_allclose(X, ref, atol=tol * np.abs(ref).max(), rtol=0)
    # The n x n path ran: short rows differ from the k x k path's rounding,
    # the other rows are the k x k path's bit for bit.
    X_long = solve(side, conf, target, offset, Y, G, lam, wr, w0, blas, False)[0]
    short = short_mask(side, conf, k, w0, transformed)
    if not blas or k < krows.BLAS_MIN_FACTORS:  # the n x n path needs BLAS
        short[:] = False
    else:
        assert short.sum() >= 4 and (~short).sum() >= 3
    np.testing.assert_array_equal(X[~short], X_long[~short])
    if short.any():
        assert not np.array_equal(X[short], X_long[short])


@pytest.mark.parametrize("objective", ["explicit", "implicit"])
def test_singular_systems_take_the_kxk_path(objective):
    """``lam = 0``: no n x n solve (``B`` is not positive definite, or
    ``B = 0`` for the explicit objective); the rows, the ridge fallback and
    its count are the k x k path's, bit for bit."""
    k = 20
    R, side, conf, target, offset, Y, G, w0 = problem(k, np.float64, objective)
    if objective == "implicit":  # rank(G) = 10 < k: w0 G singular
        Y[:, 10:] = Y[:, :10]
        G = Y.T @ Y
    X, fb, _ = solve(side, conf, target, offset, Y, G, 0.0, False, w0, K.USE_BLAS)
    X_long, fb_long, _ = solve(side, conf, target, offset, Y, G, 0.0, False, w0,
                               K.USE_BLAS, False)
    assert fb == fb_long > 0
    np.testing.assert_array_equal(X, X_long)
    assert np.isfinite(X).all()


def assert_bitwise_across_threads(run):
    """``run()`` (a list of arrays) gives bitwise the same arrays at 1, 2,
    1 and 2 threads (a row per chunk, so that threads share the work)."""
    outs = []
    old = numba.get_num_threads()
    try:
        for t in (1, 2, 1, 2):
            numba.set_num_threads(min(t, numba.config.NUMBA_NUM_THREADS))
            outs.append(run())
    finally:
        numba.set_num_threads(old)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_short_rows_bitwise_identical_across_threads():
    k = 64

    def run():
        res = []
        for objective, wr, transform in (("explicit", True, None),
                                         ("implicit", True, None),
                                         ("implicit", False, True)):
            R, side, conf, target, offset, Y, G, w0 = problem(k, np.float32, objective)
            side.bounds = np.arange(side.indptr.size, dtype=np.int64)  # row per chunk
            res.append(solve(side, conf, target, offset, Y, G, 0.3, wr, w0,
                             K.USE_BLAS, transform=transform)[0])
        return res
    assert_bitwise_across_threads(run)


def test_short_row_limit():
    """The n x n path is chosen below k ratings only, later for the implicit
    objective (it pays a triangular solve with ``B``'s factor)."""
    for k in (4, 16, 64, 128, 300):
        ex, im = krows.short_row_limit(k, 0.0), krows.short_row_limit(k, 1.0)
        tr = krows.short_row_limit(k, 1.0, transformed=True)
        assert 0 <= im <= tr <= ex < k
        assert ex < krows._gather_cap.py_func(k)
    assert krows.short_row_limit(64, 1.0) > 16 and krows.short_row_limit(128, 0.0) > 64
