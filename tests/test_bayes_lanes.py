"""fastals.kernels.lanes (eight rows side by side) against numpy: the
batched Cholesky and triangular solves against np.linalg per lane, the
vectorized Box-Muller against libm on the same uniforms, the whole-vector
intrinsics (among them the eight dot products at once and the
register-blocked sums of outer products) against plain numpy.

Tolerances: float64 linear algebra of well-conditioned 13 x 13 systems
agrees to 1e-10 relative; the polynomial log, cos and sin are within a few
units in the last place of libm (1e-14 absolute on normals below 9).
"""

import numpy as np
import pytest
from numba import njit

from fastals.kernels import gibbs, lanes
from fastals.kernels.lanes import LANES


def _spd(rng, w, n):
    M = rng.standard_normal((n, w, 3 * w))
    return M @ M.transpose(0, 2, 1) / w + 0.1 * np.eye(w)


def test_lane_factor_and_sample_match_numpy_per_lane():
    rng = np.random.default_rng(0)
    w = 13
    mats = _spd(rng, w, LANES)
    mats[5] = -np.eye(w)                       # not positive definite
    A = np.ascontiguousarray(mats.transpose(1, 2, 0))
    b0 = rng.standard_normal((w, LANES))
    z0 = rng.standard_normal((w, LANES))
    b, Z = b0.copy(), z0.copy()
    dinv, bad = np.empty((w, LANES)), np.zeros(LANES)
    lanes.lane_factor(A, w, dinv, bad)
    lanes.lane_sample(A, dinv, b, Z, w)
    assert np.array_equal(bad > 0, np.arange(LANES) == 5)
    for l in range(LANES):
        if l == 5:
            continue
        U = np.linalg.cholesky(mats[l]).T      # A = U^T U, U upper
        assert np.allclose(np.triu(A[:, :, l]), U, rtol=1e-10, atol=1e-12)
        assert np.allclose(dinv[:, l], 1 / np.diag(U), rtol=1e-12)
        assert np.allclose(b[:, l], np.linalg.solve(mats[l], b0[:, l]), rtol=1e-10, atol=1e-12)
        assert np.allclose(Z[:, l], np.linalg.solve(U, z0[:, l]), rtol=1e-10, atol=1e-12)


def test_lane_normals_are_box_muller_of_the_row_streams():
    rng = np.random.default_rng(1)
    rk = rng.integers(0, 2**63, LANES, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    n = 13
    Z = np.empty((n + 1, LANES))
    lanes.lane_normals(rk, Z, n, np.empty(LANES * n, np.uint64), np.empty((2, LANES * n)))
    for l in range(LANES):
        u = np.array([lanes.uniform(rk[l], j) for j in range(n + 1)])
        r = np.sqrt(-2 * np.log(u[0::2]))
        ref = np.empty(n + 1)
        ref[0::2] = r * np.cos(2 * np.pi * u[1::2])
        ref[1::2] = r * np.sin(2 * np.pi * u[1::2])
        assert np.allclose(Z[:, l], ref, rtol=0, atol=1e-14)
    # gibbs.row_normals: lane 0 of the same kernel
    key = np.uint64(gibbs.stream_key(0, 0, 0))
    z = gibbs.row_normals(key, 5, n)
    assert z.shape == (n,) and np.isfinite(z).all()


@njit
def _scalar_maths(x, h):
    out = np.empty((4, x.size))
    for i in range(x.size):
        out[0, i] = lanes.log_pos(x[i])
        out[1, i], out[2, i] = lanes.cos_sin_2pi(x[i])
        out[3, i] = lanes._unit(h[i])
    return out


def test_polynomial_log_cos_sin_and_uniform_bits():
    rng = np.random.default_rng(2)
    x = np.r_[rng.random(200_000), 2.0 ** -53, 1e-300, 0.5, 0.25, 0.75, 1.0, 0.125]
    h = rng.integers(0, 2**63, x.size, dtype=np.uint64) * np.uint64(2)
    h[:3] = [0, 2**64 - 1, 2**63]
    out = _scalar_maths(x, h)
    assert np.allclose(out[0], np.log(x), rtol=2e-15, atol=1e-16)
    assert np.allclose(out[1], np.cos(2 * np.pi * x), rtol=0, atol=2e-15)
    assert np.allclose(out[2], np.sin(2 * np.pi * x), rtol=0, atol=2e-15)
    # the uniform from bits is the very double of ((h >> 11) + 0.5) / 2^53
    want = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53
    assert np.array_equal(out[3], want)
    assert out[3].min() > 0 and out[3].max() <= 1  # 1.0 by rounding, for h >= 2^64 - 2^10


@njit
def _vector_ops(X, Y, Z, c):
    X1 = X.copy()
    lanes.v_fnma(X1, 3, Y, 8, Z, 1)
    X2 = X.copy()
    lanes.v_mul(X2, 2, Y, 0)
    X3 = X.copy()
    lanes.v_axpy4(X3, 1, Y, 0, 8, 3, 5, c[0], c[1], c[2], c[3])
    return X1, X2, X3


@njit
def _root(A, R, bad):
    lanes.v_root(A, 0, R, 0, bad)


def test_whole_vector_intrinsics_match_numpy():
    rng = np.random.default_rng(3)
    for dt in (np.float64, np.float32):
        X, Y, Z = (rng.standard_normal(n).astype(dt) for n in (16, 24, 12))
        c = rng.standard_normal(4).astype(dt)
        X1, X2, X3 = _vector_ops(X, Y, Z, c)
        tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
        want = X.copy()
        want[3:11] -= Y[8:16] * Z[1:9]
        assert np.allclose(X1, want, **tol) and X1.dtype == dt
        want = X.copy()
        want[2:10] *= Y[0:8]
        assert np.allclose(X2, want, **tol)
        want = X.copy()
        want[1:9] += c[0] * Y[0:8] + c[1] * Y[8:16] + c[2] * Y[3:11] + c[3] * Y[5:13]
        assert np.allclose(X3, want, **tol)
    # v_root: square roots, reciprocals, and the count of bad pivots
    A = np.array([4.0, 9.0, 0.0, -1.0, np.nan, 1.0, 0.25, 16.0])
    R, bad = np.empty(8), np.zeros(8)
    _root(A, R, bad)
    ok = np.array([1, 1, 0, 0, 0, 1, 1, 1], bool)
    assert np.array_equal(bad, (~ok).astype(float))
    assert np.allclose(A[ok], [2, 3, 1, 0.5, 4]) and np.all(A[~ok] == 1)
    assert np.allclose(R, 1 / A)


@njit
def _dots_axpy_gram(S, X, Y, o, c, G, D, idx, start, end, ci, nr, jb):
    lanes.v_dots8(S, X, 3, Y, o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7])
    X2 = X.copy()
    lanes.v_axpy(X2, 2, Y, 5, c)
    lanes.v_gram8(G, 2, 16, D, idx, start, end, ci, nr, jb)
    return X2


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_dots_axpy_and_blocked_gram_match_numpy(dt):
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal(16).astype(dt), rng.standard_normal(100).astype(dt)
    o = rng.integers(0, 92, 8)
    S = rng.standard_normal(8).astype(dt)
    D = rng.standard_normal((9, 16)).astype(dt)
    idx = rng.integers(0, 9, 30).astype(np.int32)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
    for ci, nr, jb in ((0, 8, 0), (8, 5, 8), (4, 1, 8)):
        G = np.full(16 * 9, np.nan, dt)
        S1 = S.copy()
        X2 = _dots_axpy_gram(S1, X, Y, o, dt(0.7), G, D, idx, 4, 27, ci, nr, jb)
        assert np.allclose(S1, S + [X[3:11] @ Y[q:q + 8] for q in o], **tol)
        want = X.copy()
        want[2:10] += dt(0.7) * Y[5:13]
        assert np.allclose(X2, want, **tol) and X2.dtype == dt
        F = D[idx[4:27]].astype(np.float64)
        full = F[:, ci:ci + 8].T @ F[:, jb:jb + 8]     # rows ci.., columns jb..
        got = G[2:2 + 16 * 8].reshape(8, 16)[:, :8]
        assert np.allclose(got[:nr], full[:nr], **tol)
        assert np.all(np.isnan(got[nr:])) and np.all(np.isnan(G[:2]))


@njit
def _fnma_sums(X, Y, Z, n):
    out = np.empty((4, X.size))
    for q in range(4):
        out[q] = X
    lanes.v_fnma_sum1(out[0], 2, Y, 1, 11, Z, 3, 9, n)
    lanes.v_fnma_sum2(out[1], 2, Y, 1, 11, Z, 3, 9, n)
    lanes.v_fnma_sum4(out[2], 2, Y, 1, 11, Z, 3, 9, n)
    for r in range(n):                  # the same by single updates, in order
        for c in range(4):
            lanes.v_fnma(out[3], 2 + 8 * c, Y, 1 + 11 * r, Z, 3 + 9 * r + 8 * c)
    return out


def test_fnma_sums_are_ordered_single_updates_bit_for_bit():
    """``v_fnma_sum{1,2,4}``: ``X`` less ``n`` products per vector, in the
    order of ``n`` ``v_fnma`` calls, bit for bit; and against numpy."""
    rng = np.random.default_rng(7)
    X, Y, Z = rng.standard_normal(40), rng.standard_normal(120), rng.standard_normal(140)
    for n in (0, 1, 5, 9):
        out = _fnma_sums(X, Y, Z, n)
        for q, width in enumerate((8, 16, 32)):
            assert np.array_equal(out[q, 2:2 + width], out[3, 2:2 + width]), (q, n)
            assert np.array_equal(out[q, 2 + width:], X[2 + width:])
        want = X.copy()
        for r in range(n):
            want[2:34] -= Y[1 + 11 * r:9 + 11 * r][np.arange(32) % 8] * Z[3 + 9 * r:35 + 9 * r]
        assert np.allclose(out[3], want, rtol=1e-13, atol=1e-13)
