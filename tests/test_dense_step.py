"""The dense objective's fused half-step (``kernels.dense_step``) against
the naive dense reference, both dtypes, BLAS and loop paths, and bitwise
identical results for any thread count."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

import naive
from fastals import kernels as K

# float32: rounding of the products with an inverse of condition ~1e3
TOL = {np.float64: 1e-9, np.float32: 2e-3}


def problem(k, dtype, m=150, n=110, seed=0):
    rng = np.random.default_rng(seed)
    R = sp.random(m, n, density=0.1, format="csr", random_state=seed,
                  data_rvs=lambda s: rng.integers(1, 6, s).astype(float))
    # rows with 0, 1, k - 1, k and k + 1 ratings
    lil = R.tolil()
    for u, cnt in enumerate((0, 1, k - 1, k, k + 1)):
        lil.rows[u] = list(range(cnt))
        lil.data[u] = [float(1 + j % 5) for j in range(cnt)]
    R = lil.tocsr()
    R.sort_indices()
    Y = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
    return R, Y


def run(R, Y, lam, blas, inverse=False):
    """The half-step with ``M`` given (numpy's inverse) or, ``inverse``,
    computed by the kernel from ``G = Y^T Y`` and ``lam``."""
    dtype = Y.dtype
    k = Y.shape[1]
    indptr = R.indptr.astype(np.int64)
    indices = R.indices.astype(np.int32)
    data = R.data.astype(dtype)
    GY = Y.astype(np.float64).T @ Y.astype(np.float64)
    X = np.zeros((R.shape[0], k), dtype)
    bounds = K.dense_bounds(indptr, k)
    if inverse:
        G, cross = K.dense_step(indptr, indices, data, Y, None, X, bounds, G=GY,
                                lam=lam, blas=blas)
    else:
        M = np.linalg.inv(GY + lam * np.eye(k)).astype(dtype)
        G, cross = K.dense_step(indptr, indices, data, Y, M, X, bounds, blas=blas)
    return X, G, cross, (indptr, indices, data, bounds)


@pytest.mark.parametrize("k", [5, 20])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("inverse", [False, True])
def test_dense_step_against_naive(k, dtype, blas, inverse):
    blas = blas and K.USE_BLAS
    R, Y = problem(k, dtype)
    lam = 0.1
    X, G, cross, (indptr, indices, data, bounds) = run(R, Y, lam, blas, inverse)
    mask = R.toarray() != 0
    W, T = naive.cell_weights(R.toarray(), mask, "dense")
    want = naive.update_rows(W, T, Y.astype(np.float64), lam)
    tol = TOL[dtype]
    np.testing.assert_allclose(X, want, rtol=0, atol=tol * np.abs(want).max())
    assert not X[0].any()  # a row without ratings gets a zero factor
    Xd = X.astype(np.float64)
    np.testing.assert_allclose(G, Xd.T @ Xd, rtol=10 * tol, atol=tol * np.abs(G).max())
    np.testing.assert_array_equal(G, G.T)
    # cross term: sum_u x_u . (r_u Y) = sum_obs r x.y
    want_cross = float(np.sum(R.toarray() * (Xd @ Y.astype(np.float64).T)))
    assert cross == pytest.approx(want_cross, rel=10 * tol)
    # every thread (here small problems take the serial path)
    Xp = np.zeros_like(X)
    GY = Y.astype(np.float64).T @ Y.astype(np.float64)
    M = None if inverse else np.linalg.inv(GY + lam * np.eye(k)).astype(dtype)
    Gp, cp = K.dense_step(indptr, indices, data, Y, M, Xp, bounds, G=GY, lam=lam,
                          blas=blas, parallel=True)
    np.testing.assert_array_equal(Xp, X)
    np.testing.assert_array_equal(Gp, G)
    assert cp == cross
    # Gram only: X is left alone
    X0 = X.copy()
    G2, c2 = K.dense_step(indptr, indices, data, X, None, X, bounds, blas=blas)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(G2, G)
    assert c2 == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blas", [True, False])
def test_dense_step_chunks_of_several_blocks(dtype, blas):
    """Chunks of more than ``DENSE_BLOCK`` rows (over 32 x 128 rows): each
    chunk's Gram matrix is the sum of its blocks' (the register tiles add
    into the packed partial from the second block on); against numpy in
    float64, and the same on every thread."""
    from fastals.kernels.dense_fit import DENSE_BLOCK
    blas = blas and K.USE_BLAS
    k = 17  # float32: a last column tile overlapping the one before
    R, Y = problem(k, dtype, m=32 * DENSE_BLOCK + 300, n=40)
    lam = 0.1
    X, G, cross, (indptr, indices, data, bounds) = run(R, Y, lam, blas)
    assert np.diff(bounds).max() > DENSE_BLOCK
    Yd = Y.astype(np.float64)
    # as run() makes it (numpy forms Yd.T @ Yd of one array by SYRK: other bits)
    GY = Y.astype(np.float64).T @ Y.astype(np.float64)
    M = np.linalg.inv(GY + lam * np.eye(k)).astype(dtype).astype(np.float64)
    want = (R @ Yd) @ M
    tol = TOL[dtype]
    np.testing.assert_allclose(X, want, rtol=0, atol=tol * np.abs(want).max())
    Xd = X.astype(np.float64)
    np.testing.assert_allclose(G, Xd.T @ Xd, rtol=0, atol=1e-6 * np.abs(G).max())
    assert cross == pytest.approx(float(np.sum(Xd * (R @ Yd))), rel=1e-6)
    Xp = np.zeros_like(X)
    Gp, cp = K.dense_step(indptr, indices, data, Y, M.astype(dtype), Xp, bounds,
                          blas=blas, parallel=True)
    np.testing.assert_array_equal(Xp, X)
    np.testing.assert_array_equal(Gp, G)
    assert cp == cross


def test_dense_step_bitwise_across_threads():
    R, Y = problem(70, np.float32, m=2000, n=300)
    outs = []
    old = numba.get_num_threads()
    try:
        for t in (1,) + (numba.config.NUMBA_NUM_THREADS,) * 3:
            numba.set_num_threads(t)
            X, G, cross, _ = run(R, Y, 0.5, K.USE_BLAS, inverse=True)
            outs.append((X, G, np.float64(cross)))
    finally:
        numba.set_num_threads(old)
    assert K.dense_bounds(R.indptr.astype(np.int64), 70).size - 1 > 2
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_public_entry_point():
    R, Y = problem(20, np.float64)
    lam = 0.1
    X, G, cross, (indptr, indices, data, bounds) = run(R, Y, lam, K.USE_BLAS)
    M = np.linalg.inv(Y.T @ Y + lam * np.eye(20))
    X2 = np.zeros_like(X)
    G2, c2 = K.dense_step(indptr, indices, data, Y, M, X2, bounds)
    np.testing.assert_array_equal(X2, X)
    assert c2 == cross
    G3, _ = K.dense_step(indptr, indices, data, X, None, X, bounds)
    np.testing.assert_array_equal(G3, G)


@pytest.mark.parametrize("blas", [True, False])
def test_inverse_ridge_fallback(blas):
    """``G + lam I`` singular (``lam = 0``, fewer rows of ``Y`` than
    factors): the kernel's inverse takes the smallest ridge that makes it
    positive definite, as :func:`K.spd_inverse` does, instead of NaN."""
    blas = blas and K.USE_BLAS
    k = 20
    rng = np.random.default_rng(3)
    R = sp.random(30, 12, density=0.5, format="csr", random_state=3)
    Y = rng.standard_normal((12, k))   # rank 12 < k
    GY = Y.T @ Y
    indptr = R.indptr.astype(np.int64)
    X = np.zeros((30, k))
    bounds = K.dense_bounds(indptr, k)
    K.dense_step(indptr, R.indices.astype(np.int32), R.data, Y, None, X, bounds,
                 G=GY, lam=0.0, blas=blas)
    assert np.isfinite(X).all() and np.abs(X).max() > 0
    M = K.spd_inverse(GY)
    want = (R @ Y) @ M
    np.testing.assert_allclose(X, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_dense_bounds_as_chunk_bounds():
    """The numpy ``dense_bounds`` gives exactly the compiled ``chunk_bounds``
    split (empty rows, one row, long rows, every chunk count)."""
    from fastals.kernels.chunks import chunk_bounds
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 127, 128, 300, 5000):
        for k in (3, 100):
            counts = rng.integers(0, 50, n) * (rng.random(n) < 0.8)
            if n > 3:
                counts[rng.integers(0, n)] = 10_000
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            got = K.dense_bounds(indptr, k)
            want = chunk_bounds(indptr, k, got.size - 1)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gather_rows_against_scipy(dtype):
    """``X = R Z`` by the register-tiled row gather (kernels/gather.py) for
    every tile shape: k below one SIMD vector (plain loop), whole vectors,
    a last vector overlapping the one before, tiles of 13/8/4/2/1 vectors;
    empty rows and rows longer than the prefetch distance."""
    rng = np.random.default_rng(7)
    R = sp.random(40, 60, density=0.3, format="csr", random_state=7, dtype=dtype)
    R = sp.vstack([sp.csr_matrix((1, 60), dtype=dtype), R]).tocsr()  # an empty row
    R.sort_indices()
    indptr = R.indptr.astype(np.int64)
    indices = R.indices.astype(np.int32)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 52, 53, 63, 64, 65, 100, 104,
              105, 127, 128, 200):
        Z = rng.standard_normal((60, k)).astype(dtype)
        X = np.full((41, k), np.nan, dtype)
        K.sparse_times_dense(indptr, indices, R.data, Z, X, np.array([0, 20, 41]))
        want = R.astype(np.float64) @ Z.astype(np.float64)
        np.testing.assert_allclose(X, want, rtol=0, atol=tol * np.abs(want).max(),
                                   err_msg=f"k={k}")
        assert not X[0].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_tiles_against_numpy(dtype):
    """``X[u:u+b] = W[u:u+b] M`` by register tiles (kernels/dense_tiles.py)
    against numpy in float64 (relative to the largest entry: 1e-12 float64,
    1e-5 float32) for k a whole tile, k with a last tile overlapping the
    one before, blocks of fewer rows than a tile and a last row tile
    overlapping; every entry is the same sum whatever the tiling, so rows
    done one at a time give the block's values bitwise; rows outside the
    block are left alone."""
    from fastals.kernels.dense_tiles import _gemm_tiled
    rng = np.random.default_rng(3)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in (8, 16, 20, 31, 100):
        if k < 64 // np.dtype(dtype).itemsize:
            continue  # the tiles need one tile of columns
        W = rng.standard_normal((40, k)).astype(dtype)
        M = rng.standard_normal((k, k)).astype(dtype)
        want = W.astype(np.float64) @ M.astype(np.float64)
        for u, b in ((0, 40), (3, 5), (1, 6), (7, 13), (39, 1)):
            X = np.full((40, k), np.nan, dtype)
            _gemm_tiled(X, W, M, u, b)
            np.testing.assert_allclose(X[u:u + b], want[u:u + b], rtol=0,
                                       atol=tol * np.abs(want).max(),
                                       err_msg=f"k={k} rows {u}:{u + b}")
            assert np.isnan(X[:u]).all() and np.isnan(X[u + b:]).all()
            one = np.empty_like(X)
            for r in range(u, u + b):
                _gemm_tiled(one, W, M, r, 1)
            np.testing.assert_array_equal(one[u:u + b], X[u:u + b])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gram_tiles_against_numpy(dtype):
    """``P = X[u:u+b]^T X[u:u+b]`` (float64 packed upper triangle) by
    register tiles (kernels/dense_tiles.py) against numpy in float64
    (relative to the largest entry: 1e-12 float64, 1e-6 float32), every
    entry written; ``add=True`` adds the same values once (the last column
    tile overlaps the one before and must not add its columns twice, the
    diagonal tiles must leave the previous row's tail alone), for k a
    whole tile, k with an overlapping last tile, one row and a few rows;
    and the packed reduction of the fused step sums such triangles."""
    from fastals.kernels.dense_fit import _reduce, packed_size
    from fastals.kernels.dense_tiles import _gram_tiled
    rng = np.random.default_rng(4)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for k in (8, 16, 20, 31, 100):
        if k < 64 // np.dtype(dtype).itemsize:
            continue  # the tiles need one tile of columns
        X = rng.standard_normal((70, k)).astype(dtype)
        upper = np.triu_indices(k)  # row by row: the packed order
        parts = []
        for u, b in ((0, 70), (5, 1), (3, 7)):
            B = X[u:u + b].astype(np.float64)
            want = (B.T @ B)[upper]
            P = np.full(packed_size(k), np.nan)
            _gram_tiled(P, X, u, b, False)
            atol = tol * np.abs(want).max()
            np.testing.assert_allclose(P, want, rtol=0, atol=atol,
                                       err_msg=f"k={k} rows {u}:{u + b}")
            first = P.copy()
            _gram_tiled(P, X, u, b, True)
            np.testing.assert_array_equal(P, first + first)
            parts.append(first)
        out = np.full((k, k), np.nan)
        total = _reduce(np.array(parts), np.array([1.0, 2.0, 4.0]), out)
        full = np.zeros((k, k))
        full[upper] = parts[0] + parts[1] + parts[2]
        full = np.triu(full) + np.triu(full, 1).T
        np.testing.assert_array_equal(out, full)
        assert total == 7.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("blas", [True, False])
def test_dense_run_epochs_as_half_steps(dtype, blas):
    """``DenseRun``: epochs in one call give exactly the half-steps of
    ``dense_step`` one by one (users, then items), on any number of threads
    and split into calls of any length; its per-epoch loss terms are the
    cross term and the Gram matrices' products and traces."""
    blas = blas and K.USE_BLAS
    k, lam = 20, 0.1
    R, Y0 = problem(k, dtype, m=300, n=200)
    Rt = R.T.tocsr()
    Rt.sort_indices()
    sides = [(S.indptr.astype(np.int64), S.indices.astype(np.int32), S.data.astype(dtype))
             for S in (R, Rt)]
    b = [K.dense_bounds(s[0], k) for s in sides]
    X0 = np.zeros((R.shape[0], k), dtype)
    # reference: half-steps one by one
    X, Y = X0.copy(), Y0.copy()
    GY = K.dense_step(*sides[1], Y, None, Y, b[1], blas=blas)[0]
    GY0 = GY.copy()
    want = []
    for _ in range(3):
        GX, _ = K.dense_step(*sides[0], Y, None, X, b[0], G=GY, lam=lam, blas=blas)
        GY, cross = K.dense_step(*sides[1], X, None, Y, b[1], G=GX, lam=lam, blas=blas)
        want.append((cross, float(np.sum(GX * GY)), np.trace(GX), np.trace(GY)))
    old = numba.get_num_threads()
    try:
        for threads, calls in ((1, (3,)), (numba.config.NUMBA_NUM_THREADS, (3,)),
                               (numba.config.NUMBA_NUM_THREADS, (1, 2))):
            numba.set_num_threads(threads)
            X2, Y2 = X0.copy(), Y0.copy()
            run = K.DenseRun(sides[0] + (b[0],), sides[1] + (b[1],), X2, Y2, GY0, lam, 3,
                             blas=blas)
            run.parallel = threads > 1
            terms = np.concatenate([run.run(n)[0] for n in calls])
            np.testing.assert_array_equal(X2, X)
            np.testing.assert_array_equal(Y2, Y)
            np.testing.assert_array_equal(run.gram("GX"), GX)
            np.testing.assert_array_equal(run.gram("GY"), GY)
            np.testing.assert_allclose(terms, np.array(want), rtol=1e-12)
            assert terms[-1, 0] == want[-1][0]
    finally:
        numba.set_num_threads(old)


def test_dense_run_stops_on_non_finite():
    """A non-finite factor stops the program after the half-step that made
    it and reports which."""
    k = 20
    R, Y = problem(k, np.float64, m=300, n=200)
    Rt = R.T.tocsr()
    sides = [(S.indptr.astype(np.int64), S.indices.astype(np.int32), S.data.copy())
             for S in (R, Rt)]
    sides[1][2][0] = np.inf  # R^T has an infinite entry: the item step fails
    b = [K.dense_bounds(s[0], k) for s in sides]
    X = np.zeros((R.shape[0], k))
    run = K.DenseRun(sides[0] + (b[0],), sides[1] + (b[1],), X, Y, Y.T @ Y, 0.1, 4)
    terms, stop = run.run(4)
    assert stop == 2  # half-step 1, the first item step


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("call_work", [None, 1, 1_400_000])
def test_fit_epochs_in_one_call_as_per_epoch(dtype, call_work, monkeypatch):
    """The dense fit runs many epochs per call (``call_work``: all 6, one,
    or 3 per call here) unless something observes each epoch (here a
    callback): both give the same factors, histories and values passed to
    the callback as a per-epoch run."""
    from fastals import FastALS, _dense
    if call_work is not None:
        monkeypatch.setattr(_dense, "CALL_WORK", call_work)
    R, _ = problem(20, np.float64, m=300, n=200)
    kw = dict(objective="dense", factors=20, regularization=0.05, iterations=6,
              random_state=3, dtype=dtype)
    seen = []
    a = FastALS(**kw).fit(R)
    b = FastALS(callback=lambda e, loss, s: seen.append((e, loss)), **kw).fit(R)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    assert a.loss_history == b.loss_history
    assert a.objective_history == b.objective_history
    assert seen == list(enumerate(a.loss_history, 1))
    assert a.solver_report == b.solver_report and a.solver_report["epochs"] == 6
    # the loss is the MSE over all cells
    Rd = R.toarray()
    P = a.user_factors.astype(np.float64) @ a.item_factors.astype(np.float64).T
    assert a.loss_history[-1] == pytest.approx(np.mean((Rd - P) ** 2), rel=TOL[np.dtype(dtype).type])
