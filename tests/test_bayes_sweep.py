"""BayesianALS per-sweep bookkeeping kernels (fastals.kernels.gibbs:
row_moments, design, keep_sample) against plain numpy, and the
hyperparameter draws from moments against the textbook (centered) formula
on the same random stream.

Tolerances: float64 sums agree to 1e-12 relative; copies are exact.
"""

import numpy as np
import pytest
from numba import njit

from fastals.bayes import (_BETA0, _normal_gamma, _normal_gamma_moments,
                           _normal_wishart, _normal_wishart_moments)
from fastals.kernels import gibbs, lanes


def test_row_moments_match_numpy():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((57, 5)).astype(np.float32)
    s, G = np.empty(5), np.empty((5, 5))
    gibbs.row_moments(F, s, G)
    F64 = F.astype(np.float64)
    assert np.allclose(s, F64.sum(0), rtol=1e-12, atol=1e-12)
    assert np.allclose(G, F64.T @ F64, rtol=1e-12, atol=1e-12)
    assert np.array_equal(G, G.T)


def test_design_and_keep_sample_match_numpy():
    rng = np.random.default_rng(1)
    m, n, w, kept_max = 6, 4, 4, 3
    k = w - 1
    V = rng.standard_normal((n, w)).astype(np.float32)
    D = np.zeros((n, 8), np.float32)
    D[:, 5:] = 0  # padding stays zero
    o = np.empty(n, np.float32)
    gibbs.design(V, 0.25, D, o)
    assert np.array_equal(D[:, :k], V[:, :k]) and np.all(D[:, k] == 1)
    assert np.all(D[:, w:] == 0)
    assert np.array_equal(o, V[:, k] + np.float32(0.25))
    U = rng.standard_normal((m, w)).astype(np.float32)
    M = rng.standard_normal((m, w)).astype(np.float32)
    Us, Ur = np.zeros((m, k * kept_max), np.float32), np.zeros((m, k * kept_max), np.float32)
    Vs = np.zeros((n, k * kept_max), np.float32)
    ub, ib = np.zeros((m, kept_max), np.float32), np.zeros((n, kept_max), np.float32)
    ub_mean = np.full(m, 0.5)
    gibbs.keep_sample(1, M, U, D, o, 0.25, Us, Ur, Vs, ub, ub_mean, ib)
    j = slice(k, 2 * k)
    assert np.array_equal(Us[:, j], M[:, :k]) and np.array_equal(Ur[:, j], U[:, :k])
    assert np.array_equal(Vs[:, j], D[:, :k])
    assert not Us[:, :k].any() and not Us[:, 2 * k:].any()
    assert np.array_equal(ub[:, 1], U[:, k]) and not ub[:, [0, 2]].any()
    assert np.allclose(ub_mean, 0.5 + M[:, k].astype(np.float64), rtol=0, atol=0)
    assert np.array_equal(ib[:, 1], o - np.float32(0.25))


def _wishart_reference(F, rng):
    """The Normal-Wishart draw written from the centered scatter matrix."""
    N, w = F.shape
    xbar = F.mean(axis=0)
    C = F - xbar
    beta = _BETA0 + N
    Winv = np.eye(w) + C.T @ C + (_BETA0 * N / beta) * np.outer(xbar, xbar)
    W = np.linalg.inv(Winv)
    L = np.linalg.cholesky((W + W.T) / 2)
    A = np.zeros((w, w))
    A[np.diag_indices(w)] = np.sqrt(rng.chisquare(w + N - np.arange(w)))
    A[np.tril_indices(w, -1)] = rng.standard_normal(w * (w - 1) // 2)
    Lam = (L @ A) @ (L @ A).T
    Lc = np.linalg.cholesky(Lam)
    m = N * xbar / beta + np.linalg.solve(Lc.T, rng.standard_normal(w)) / np.sqrt(beta)
    return Lam, Lam @ m


def test_hyperparameter_draws_from_moments_follow_the_same_stream():
    rng = np.random.default_rng(2)
    F = rng.normal(0.3, 0.5, size=(200, 4))
    for seed in range(3):
        got = _normal_wishart(F, np.random.default_rng(seed))
        want = _wishart_reference(F, np.random.default_rng(seed))
        for a, b in zip(got, want):
            assert np.allclose(a, b, rtol=1e-9, atol=1e-12)
    N, s, G = F.shape[0], F.sum(0), F.T @ F
    a = _normal_gamma(F, np.random.default_rng(5))
    b = _normal_gamma_moments(N, s, G, np.random.default_rng(5))
    for x, y in zip(a, b):
        assert np.allclose(x, y, rtol=1e-12)
    # moments give the centered sum of squares of the textbook draw
    rg = np.random.default_rng(6)
    xbar = F.mean(0)
    ss = ((F - xbar) ** 2).sum(0)
    lam = rg.gamma(1 + 0.5 * N, 1 / (1 + 0.5 * ss + 0.5 * N * xbar ** 2 / (1 + N)))
    assert np.allclose(np.diag(_normal_gamma_moments(N, s, G, np.random.default_rng(6))[0]),
                       lam, rtol=1e-10)
    assert _normal_wishart_moments(N, s, G, np.random.default_rng(0))[0].shape == (4, 4)


def test_lane_bounds_cover_the_rows_on_lane_multiples():
    from fastals.bayes import _lane_bounds
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 100, 943, 5000):
        indptr = np.r_[0, np.cumsum(rng.integers(0, 50, n))].astype(np.int64)
        b = _lane_bounds(indptr, 13)
        assert b[0] == 0 and b[-1] == n and np.all(np.diff(b) > 0)
        assert np.all(b[1:-1] % gibbs.LANES == 0)
        assert b.size - 1 <= 256


@pytest.mark.parametrize("w", [3, 8, 13, 20])
def test_row_systems_match_numpy(w):
    """``_gram_row``: the upper blocks of ``sum d_i d_i^T`` (per group of
    eight rows, in registers) and ``sum (t - o_i) d_i`` against numpy, for
    rows of 0 to 11 entries (float64: 1e-12 relative)."""
    rng = np.random.default_rng(w)
    L = gibbs.LANES
    wp = -(-w // L) * L
    n = 9
    D = np.zeros((n, wp))
    D[:, :w] = rng.standard_normal((n, w))
    off = rng.standard_normal(n)
    indices = rng.integers(0, n, 40).astype(np.int32)
    target = rng.standard_normal(40)
    for start, end in ((0, 0), (3, 4), (5, 12), (20, 31)):
        S = np.full((w, wp), np.nan)
        s = np.full(wp, np.nan)
        gibbs._gram_row(start, end, indices, target, off, D, S, s, w)
        F = D[indices[start:end]]
        full = F.T @ F
        for i in range(w):
            jb = (i // L) * L
            assert np.allclose(S[i, jb:], full[i, jb:], rtol=1e-12, atol=1e-12), (i, start)
        want = F.T @ (target[start:end] - off[indices[start:end]])
        assert np.allclose(s, want, rtol=1e-12, atol=1e-12)


def test_pair_dots_match_numpy_and_zero_unknown_pairs():
    rng = np.random.default_rng(3)
    U = rng.standard_normal((9, 37)).astype(np.float32)
    V = rng.standard_normal((7, 37)).astype(np.float32)
    u = rng.integers(-1, 9, 600)
    i = rng.integers(-1, 7, 600)
    out = np.empty(600)
    gibbs.pair_dots(U, V, u, i, out)
    ref = np.einsum("pj,pj->p", U[np.maximum(u, 0)].astype(np.float64),
                    V[np.maximum(i, 0)].astype(np.float64))
    ref[(u < 0) | (i < 0)] = 0.0
    assert np.allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert np.all(out[(u < 0) | (i < 0)] == 0.0)


@njit
def _gram16(S, D, indices, target, offset, start, end):
    lanes.v_gram16(S, D, indices, target, offset, start, end)


@pytest.mark.parametrize("w", [9, 13, 15])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gram16_is_gram_row_bit_for_bit_with_the_rhs_in_column_15(w, dt):
    """``lanes.v_gram16`` (16 design columns, the right-hand side in the
    spare 16th): the upper blocks of ``S`` and ``S[:w, 15]`` are those of
    ``_gram_row`` bit for bit (same products, order and fused adds), and
    against numpy; ``S[15, 15] = sum (t - o_i)^2``; the lower-left block is
    not written."""
    rng = np.random.default_rng(w)
    n = 11
    D = np.zeros((n, 16), dt)
    D[:, :w] = rng.standard_normal((n, w))
    off = rng.standard_normal(n).astype(dt)
    indices = rng.integers(0, n, 60).astype(np.int32)
    target = rng.standard_normal(60).astype(dt)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for start, end in ((0, 0), (3, 4), (5, 12), (20, 57)):
        S, s = np.full((16, 16), np.nan, dt), np.full(16, np.nan, dt)
        gibbs._gram_row(start, end, indices, target, off, D, S, s, w)
        G = np.full((16, 16), np.nan, dt)
        _gram16(G, D, indices, target, off, start, end)
        for i in range(w):
            jb = (i // 8) * 8
            assert np.array_equal(G[i, jb:w], S[i, jb:w]), (i, start)
        assert np.array_equal(G[:w, 15], s[:w])
        assert np.all(np.isnan(G[8:, :8]))
        F = D[indices[start:end]].astype(np.float64)
        r = target[start:end].astype(np.float64) - off[indices[start:end]]
        full = F.T @ F
        for i in range(w):
            assert np.allclose(G[i, i:w], full[i, i:w], **tol)
        assert np.allclose(G[:w, 15], F[:, :w].T @ r, **tol)
        assert np.allclose(G[15, 15], r @ r, **tol)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n_kept, keep", [(0, False), (0, True), (3, True), (3, False)])
def test_residual_pass_matches_numpy_in_whole_and_partial_groups(dt, n_kept, keep):
    """Rows of 0-29 entries: whole groups of eight go through the lanes
    (lanes.v_resid8), the rest through the scalar tail; float64 references,
    tolerance of the dtype's dot products (float32: 1e-5 relative)."""
    rng = np.random.default_rng(7)
    n_rows, n_cols, w = 23, 40, 13
    lens = rng.integers(0, 30, n_rows)
    lens[:4] = [0, 8, 16, 7]
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(n_cols, n, replace=False))
                              for n in lens]).astype(np.int32)
    target = rng.integers(1, 6, indices.size).astype(dt)
    offset = rng.standard_normal(n_cols).astype(dt)
    X = rng.standard_normal((n_rows, w)).astype(dt)
    D = np.zeros((n_cols, 16), dt)
    D[:, :w] = rng.standard_normal((n_cols, w))
    pred0 = rng.uniform(0, 15, indices.size).astype(dt)
    pred = pred0.copy()
    out = np.full((n_rows, 3), np.nan)
    gibbs.residual_pass(indptr, indices, target, offset, X, D, pred, n_kept, keep, out)
    rows = np.repeat(np.arange(n_rows), lens)
    p = offset[indices].astype(np.float64) + np.einsum(
        "ej,ej->e", X[rows].astype(np.float64), D[indices, :w].astype(np.float64))
    r = target - p
    tol = 1e-5 if dt == np.float32 else 1e-12
    assert np.allclose(out[:, 0], np.bincount(rows, r, n_rows), rtol=tol, atol=tol * 100)
    assert np.allclose(out[:, 1], np.bincount(rows, r * r, n_rows), rtol=tol, atol=tol * 100)
    want = pred0.astype(np.float64) + p if keep else pred0.astype(np.float64)
    assert np.allclose(pred, want, rtol=tol, atol=tol)
    if not keep:
        assert np.array_equal(pred, pred0)
    q = (target - pred.astype(np.float64) / n_kept) ** 2 if n_kept else 0.0 * r
    assert np.allclose(out[:, 2], np.bincount(rows, q, n_rows), rtol=tol, atol=tol * 100)
