"""Batched conjugate gradient (``fastals.kernels.cg``) against the naive
row-at-a-time CG of ``tests/naive.py``.

The kernel runs CG in the eigenbasis of the shared ``G`` (the other side
rotated once, the solved rows rotated in and out in blocks of consecutive
rows by one product each); each row must still get the same steps, warm
start and early stop as textbook CG on its own system.  Rows
with 0, 1, k-1, k and k+1 ratings, explicit and implicit weights (some
confidences below the unobserved weight), weighted regularization, biases
(a constant design column and offsets), chunks whose row counts are not
multiples of the block size, rows too long for the gathered block, rows
that stop at once on a zero residual, and bitwise equality across thread
counts.  Tolerances: ``1e-9`` (float64) and ``2e-3`` (float32) times the
largest magnitude of the reference.

    python -m pytest tests/test_cg_blocks.py
"""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

import naive
from fastals import kernels as K
from fastals.kernels import cg as kcg
from fastals.model import _Side

TOL = {np.float64: 1e-9, np.float32: 2e-3}


def problem(k, dtype, counts, n_items, seed=0, w0=1.0, bias=False):
    """Rows with the given numbers of ratings; confidences in [0.25, 3]
    (below ``w0 = 1`` for some), targets and offsets random."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts]
                          + [np.zeros(0, np.int64)])
    R = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(len(counts), n_items))
    R.sort_indices()
    side = _Side(R, k, np.dtype(dtype))
    nnz = side.indices.size
    conf = rng.uniform(0.25, 3.0, nnz).astype(dtype)
    if w0 == 0:
        conf = rng.uniform(0.5, 2.0, nnz).astype(dtype)
    target = rng.standard_normal(nnz).astype(dtype)
    offset = (0.3 * rng.standard_normal(n_items)).astype(dtype)
    Y = (rng.standard_normal((n_items, k)) / np.sqrt(k)).astype(dtype)
    if bias:
        Y[:, -1] = 1  # the solved row's own bias multiplies a constant 1
    G = (Y.astype(np.float64).T @ Y).astype(dtype)
    X0 = (0.1 * rng.standard_normal((len(counts), k))).astype(dtype)
    return side, conf, target, offset, Y, G, X0


def reference(side, conf, target, offset, Y, X0, lam, wr, w0, steps):
    """The naive CG on the dense weights and targets of the same system."""
    m, n = X0.shape[0], Y.shape[0]
    w0 = float(Y.dtype.type(w0))  # as the kernel sees it
    W = np.full((m, n), w0)
    T = np.zeros((m, n))
    rows = np.repeat(np.arange(m), np.diff(side.indptr))
    W[rows, side.indices] = conf
    T[rows, side.indices] = target - offset[side.indices].astype(np.float64)
    return naive.cg_rows(W, T, Y.astype(np.float64), X0.astype(np.float64),
                         float(Y.dtype.type(lam)), steps, weighted=wr,
                         counts=np.diff(side.indptr))


def run(side, conf, target, offset, Y, G, X0, lam, wr, w0, bounds, blas, steps):
    dt = Y.dtype.type
    X = X0.copy()
    kcg._solve_cg(side.indptr, side.indices, conf, target, offset, Y, G, dt(lam),
                  wr, dt(w0), X, bounds, blas, steps)
    return X


def edge_counts(k, m, rng, high):
    """0, 1, k-1, k and k+1 ratings, repeated between random row lengths."""
    counts = rng.integers(0, high, m)
    counts[::7] = 0
    counts[1::11] = 1
    counts[2::13] = k - 1
    counts[3::17] = k
    counts[4::19] = k + 1
    return counts


def bounds_variants(side, m):
    """Chunks as the model makes them (one row each at this size), one chunk
    (blocks of 64 rows and a rest), chunks of 70 rows (a rest of 6 rows, below
    the GEMM's minimum) and of 100 rows."""
    return [side.bounds, np.array([0, m], np.int64),
            np.unique(np.r_[np.arange(0, m, 70), m]).astype(np.int64),
            np.unique(np.r_[np.arange(0, m, 100), m]).astype(np.int64)]


CASES = {
    # name: (w0, weighted regularization, biases)
    "implicit": (1.0, False, False),
    "implicit-wr-bias": (1.0, True, True),
    "explicit-wr": (0.0, True, False),
    "explicit-bias": (0.0, False, True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_blocks_against_naive_cg(dtype, case):
    w0, wr, bias = CASES[case]
    k, m = 20, 230
    counts = edge_counts(k, m, np.random.default_rng(1), 30)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 60, w0=w0,
                                                   bias=bias)
    lam, steps = 0.3, 3
    want = reference(side, conf, target, offset, Y, X0, lam, wr, w0, steps)
    scale = np.abs(want).max()
    for blas in sorted({False, K.USE_BLAS}):
        for bounds in bounds_variants(side, m):
            got = run(side, conf, target, offset, Y, G, X0, lam, wr, w0, bounds,
                      blas, steps)
            assert np.isfinite(got).all()
            assert (got[counts == 0] == 0).all()
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale,
                                       err_msg=f"blas={blas} bounds={bounds}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_k128_long_rows(dtype):
    """k = 128 (LAPACK-sized), a long row (gathered into the chunk's
    scratch), one longer than the scratch may hold (its item vectors read
    in place at every step), rows of k-1, k, k+1, and more rows than one
    block rotated in and out of the eigenbasis by one GEMM."""
    k = 128
    lcap = kcg.LONG_GATHER_VALUES // k
    counts = np.array([3, 0, 1, k - 1, k, k + 1, 2085, 5, 2, 0, lcap + 3]
                      + [4] * (kcg.BLOCK_ROWS + 30))
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, lcap + 100,
                                                   seed=2)
    want = reference(side, conf, target, offset, Y, X0, 0.5, False, 1.0, 3)
    got = run(side, conf, target, offset, Y, G, X0, 0.5, False, 1.0,
              np.array([0, counts.size], np.int64), K.USE_BLAS, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_that_stop_at_once(dtype):
    """Rows whose residual is zero from the start (zero targets, zero warm
    start; in float64 also a warm start at the exact solution) stop without
    a step and keep their start, NaN-free, while the other rows of the same
    block take all their steps; CG run to convergence gives the exact
    solution of ``naive.update_rows``."""
    k, m = 24, 90
    counts = edge_counts(k, m, np.random.default_rng(3), 40)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 80, seed=3)
    still = np.zeros(m, bool)
    still[5::4] = True
    rows = np.repeat(np.arange(m), counts)
    target[still[rows]] = 0
    offset[:] = 0
    X0[still] = 0
    one = np.array([0, m], np.int64)
    want = reference(side, conf, target, offset, Y, X0, 0.2, False, 1.0, 3)
    got = run(side, conf, target, offset, Y, G, X0, 0.2, False, 1.0, one,
              K.USE_BLAS, 3)
    assert np.isfinite(got).all()
    assert (got[still] == 0).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * np.abs(want).max())
    # to convergence: the exact solution
    exact = reference(side, conf, target, offset, Y, X0, 0.2, False, 1.0, 10 * k)
    W = np.full((m, Y.shape[0]), 1.0)
    T = np.zeros_like(W)
    W[rows, side.indices] = conf
    T[rows, side.indices] = target
    solved = naive.update_rows(W, T, Y.astype(np.float64), 0.2)
    np.testing.assert_allclose(exact, solved, rtol=0, atol=1e-7 * np.abs(solved).max())
    got = run(side, conf, target, offset, Y, G, X0, 0.2, False, 1.0, one,
              K.USE_BLAS, 10 * k)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, solved, rtol=0,
                               atol=(1e-8 if dtype == np.float64 else 2e-3)
                               * np.abs(solved).max())
    if dtype == np.float64:
        # warm start at the solution: zero residual to rounding, no step
        Xs = np.where(still[:, None], 0.0, solved)
        again = run(side, conf, target, offset, Y, G, Xs, 0.2, False, 1.0, one,
                    K.USE_BLAS, 3)
        np.testing.assert_allclose(again, Xs, rtol=0, atol=1e-12 * np.abs(Xs).max())


def test_bitwise_identical_across_thread_counts():
    """Blocks are cut inside the data's chunks, never by thread: 1 and 2
    threads (repeated: chunks go to whichever thread is free) agree bit for
    bit, float32, with multi-row blocks."""
    k, m = 32, 700
    counts = edge_counts(k, m, np.random.default_rng(4), 25)
    side, conf, target, offset, Y, G, X0 = problem(k, np.float32, counts, 100,
                                                   seed=4)
    bounds = K.chunk_bounds(side.indptr, k, 5)
    outs = []
    old = numba.get_num_threads()
    try:
        for t in (1, 2, 2, 1, 2):
            numba.set_num_threads(min(t, numba.config.NUMBA_NUM_THREADS))
            outs.append(run(side, conf, target, offset, Y, G, X0, 0.4, True, 1.0,
                            bounds, K.USE_BLAS, 3))
    finally:
        numba.set_num_threads(old)
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


@pytest.mark.skipif(not K.USE_BLAS or numba.config.NUMBA_NUM_THREADS < 2,
                    reason="needs BLAS and two Numba threads")
def test_bitwise_identical_across_threads_with_gemm_blocks():
    """k = 128, float32, many chunks of GEMM-sized blocks: two threads
    (repeated) agree bit for bit with one.  OpenBLAS's 'local' thread count
    is process-wide in its pthreads build: a chunk that restored it while
    the other thread was inside a block's GEMM let that GEMM run threaded,
    rounded differently (failed here before kernels/openblas.py)."""
    k, m = 128, 6000
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 40, m)
    side, conf, target, offset, Y, G, X0 = problem(k, np.float32, counts, 400,
                                                   seed=5)
    bounds = K.chunk_bounds(side.indptr, k, 96)
    outs = []
    old = numba.get_num_threads()
    try:
        for t in (1, 2, 2, 2, 2):
            numba.set_num_threads(t)
            X = X0.copy()
            K.solve_cg(side.indptr, side.indices, conf, target, offset, Y, G,
                       np.float32(0.1), False, np.float32(1), X, bounds, 3)
            outs.append(X)
    finally:
        numba.set_num_threads(old)
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_gram_keeps_the_start(dtype):
    """A ``G`` with NaN (a diverged other side) has no eigenbasis: every row
    with ratings keeps its start bit for bit (CG stops on the NaN curvature
    and the identity rotation is exact), a row without ratings gets 0."""
    k, m = 24, 60
    counts = edge_counts(k, m, np.random.default_rng(6), 30)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 70, seed=6)
    G[3, 5] = G[5, 3] = np.nan
    for blas in sorted({False, K.USE_BLAS}):
        got = run(side, conf, target, offset, Y, G, X0, 0.3, False, 1.0,
                  np.array([0, m], np.int64), blas, 3)
        np.testing.assert_array_equal(got[counts > 0], X0[counts > 0])
        assert (got[counts == 0] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_step_count_against_naive_cg(dtype, case):
    """0 to 4 steps (the last step forms only ``d . A d`` from the entries'
    dots, no ``A d``): every count against the naive CG, rows with 0, 1,
    k-1, k and k+1 ratings, one chunk."""
    w0, wr, bias = CASES[case]
    k, m = 16, 90
    counts = edge_counts(k, m, np.random.default_rng(7), 24)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 50, seed=7,
                                                   w0=w0, bias=bias)
    one = np.array([0, m], np.int64)
    for steps in range(5):
        want = reference(side, conf, target, offset, Y, X0, 0.3, wr, w0, steps)
        got = run(side, conf, target, offset, Y, G, X0, 0.3, wr, w0, one,
                  K.USE_BLAS, steps)
        assert (got[counts == 0] == 0).all()
        np.testing.assert_allclose(got, want, rtol=0,
                                   atol=TOL[dtype] * np.abs(want).max(),
                                   err_msg=f"steps={steps}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_curvature_not_positive_stops(dtype):
    """A negative ridge: where ``A`` is negative definite every row stops
    at its first step (``d . A d <= 0``, summed from the diagonal part and
    the entries' dots) and keeps its start (to the rounding of the
    rotations into the eigenbasis and back), whatever the steps; where it
    is indefinite (float64), rows stop at different steps, as the naive
    CG's do."""
    k, m = 12, 60
    counts = edge_counts(k, m, np.random.default_rng(8), 20)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 40, seed=8)
    one = np.array([0, m], np.int64)
    big = 10 * (np.linalg.norm(G.astype(np.float64), 2)
                + 3 * (Y.astype(np.float64) ** 2).sum())
    for steps in (1, 2, 3):
        want = reference(side, conf, target, offset, Y, X0, -big, False, 1.0,
                         steps)
        assert (want[counts > 0] == X0[counts > 0]).all()  # no step taken
        got = run(side, conf, target, offset, Y, G, X0, -big, False, 1.0, one,
                  K.USE_BLAS, steps)
        # the start, rotated into the eigenbasis of G and back
        np.testing.assert_allclose(got, want, rtol=0,
                                   atol=TOL[dtype] * 1e-3 * np.abs(want).max())
        assert (got[counts == 0] == 0).all()
    if dtype == np.float32:
        return
    lam = -0.5 * np.linalg.norm(G, 2)
    stopped = set()
    prev = X0
    for steps in range(1, 5):
        want = reference(side, conf, target, offset, Y, X0, lam, False, 1.0, steps)
        got = run(side, conf, target, offset, Y, G, X0, lam, False, 1.0, one,
                  K.USE_BLAS, steps)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max(),
                                   err_msg=f"steps={steps}")
        stopped |= {steps} if ((want == prev).all(1) & (counts > 0)).any() else set()
        prev = want
    assert len(stopped) >= 2  # rows stop at more than one step
