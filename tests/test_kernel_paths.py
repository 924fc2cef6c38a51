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

from fastals import kernels as K
from fastals.kernels import cg as kcg, dense as kdense, rows as krows
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
    fb = krows._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, G,
                           dtype(lam), wr, dtype(w0), X, side.bounds, blas, 0)
    ref = naive(R, conf, target, offset, Y, G, lam, wr, w0)
    tol = 1e-8 if dtype == np.float64 else 2e-3
    assert fb == 0
    np.testing.assert_allclose(X, ref, atol=tol * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("blas", [True, False])
def test_fallback_on_singular_rows(blas):
    k = 70
    R, side, conf, target, offset, Y, G = problem(k, np.float64, density=0.1)
    X = np.zeros((R.shape[0], k))
    fb = krows._solve_cholesky(side.indptr, side.indices, np.ones_like(conf), target,
                           offset, Y, G, 0.0, False, 0.0, X, side.bounds,
                           blas and K.USE_BLAS, 0)
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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_terms_every_route(dtype):
    """The loss through its own kernel and through each solver's kernel
    (``LOSS_MODE``) against numpy, X unchanged."""
    k = 20
    R, side, conf, target, offset, Y, G = problem(k, dtype)
    X = (np.random.default_rng(5).standard_normal((R.shape[0], k)) / 4).astype(dtype)
    w0 = 0.3
    D = (X.astype(np.float64) @ Y.astype(np.float64).T)
    rows = np.repeat(np.arange(R.shape[0]), np.diff(side.indptr))
    d = D[rows, side.indices]
    wq = float(dtype(w0))
    e = target.astype(np.float64) - offset[side.indices].astype(np.float64) - d
    want = float(np.sum(conf * e * e - wq * d * d))
    X0 = X.copy()
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for solver in (None, "cholesky", "cg"):
        got = K.loss_terms(side.indptr, side.indices, conf, target, offset, X, Y,
                           w0, side.bounds, solver)
        assert got == pytest.approx(want, rel=tol), solver
        np.testing.assert_array_equal(X, X0)


@pytest.mark.parametrize("blas", [True, False])
def test_gram_and_right_multiply(blas):
    blas = blas and K.USE_BLAS
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((9000, 70)).astype(np.float32)
    bounds = np.linspace(0, 9000, 17).astype(np.int64)
    G = kdense._gram(Y, bounds, blas)
    ref = Y.astype(np.float64).T @ Y
    np.testing.assert_allclose(G, ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
    M = rng.standard_normal((70, 70)).astype(np.float32)
    Z = kdense._right_multiply(Y, M, bounds, blas)
    np.testing.assert_allclose(Z, Y.astype(np.float64) @ M, atol=1e-4, rtol=1e-4)


def test_bitwise_identical_across_threads():
    k = 70
    R, side, conf, target, offset, Y, G = problem(k, np.float32, m=300)
    outs = []
    old = numba.get_num_threads()
    try:
        # repeated: chunks go to whichever thread is free (see kernels.llvm._take_next)
        for t in (1,) + (numba.config.NUMBA_NUM_THREADS,) * 3:
            numba.set_num_threads(t)
            X = np.zeros((R.shape[0], k), np.float32)
            krows._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y, G,
                              np.float32(0.5), False, np.float32(1.0), X, side.bounds,
                              K.USE_BLAS, 0)
            C = np.zeros_like(X)
            kcg._solve_cg(side.indptr, side.indices, conf, target, offset, Y, G,
                        np.float32(0.5), False, np.float32(1.0), C, side.bounds,
                        K.USE_BLAS, 3)
            outs.append((X, C, kdense._gram(Y, np.linspace(0, Y.shape[0], 9).astype(np.int64),
                                       K.USE_BLAS)))
    finally:
        numba.set_num_threads(old)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


def test_every_chunk_solved_once_on_all_threads():
    """Chunks are handed out dynamically: with one row per chunk on every
    thread, each row is still solved (against numpy), and the chunks' ridge
    fallback counts and loss terms are each summed once."""
    k = 20
    R, side, conf, target, offset, Y, G = problem(k, np.float64, m=120)
    bounds = np.arange(R.shape[0] + 1, dtype=np.int64)
    want = naive(R, conf, target, offset, Y, G, 0.5, False, 1.0)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for rep in range(3):
            for solve in ("cholesky", "cg"):
                X = np.full((R.shape[0], k), np.nan)
                if solve == "cholesky":
                    fallbacks = krows._solve_cholesky(side.indptr, side.indices, conf, target,
                                                  offset, Y, G, 0.5, False, 1.0, X, bounds,
                                                  K.USE_BLAS, 0)
                    assert fallbacks == 0
                    np.testing.assert_allclose(X, want, rtol=1e-8, atol=1e-10)
                else:
                    X[:] = want  # warm start at the solution: CG stays there
                    kcg._solve_cg(side.indptr, side.indices, conf, target, offset, Y, G,
                                0.5, False, 1.0, X, bounds, K.USE_BLAS, 2)
                    np.testing.assert_allclose(X, want, rtol=1e-6, atol=1e-8)
            loss = krows._solve_cholesky(side.indptr, side.indices, conf, target, offset, Y,
                                     G, 0.5, False, 1.0, want, bounds, K.USE_BLAS,
                                     K.LOSS_MODE)
            assert loss == pytest.approx(K.loss_terms(side.indptr, side.indices, conf,
                                                      target, offset, want, Y, 1.0,
                                                      side.bounds, None), rel=1e-12)
    finally:
        numba.set_num_threads(old)


# ---------------------------------------------------------------------------
# Top-k: GEMM blocks and the loop fallback
# ---------------------------------------------------------------------------
from fastals.kernels import topk as T  # noqa: E402


def _naive_topk(S, n, excluded):
    """Best ``n`` columns of each row of ``S`` by a full sort (ties: lower
    column first), skipping ``excluded[r]``; padded with -1."""
    out = np.full((S.shape[0], n), -1)
    for r in range(S.shape[0]):
        keep = [j for j in range(S.shape[1]) if j not in excluded[r]]
        best = sorted(keep, key=lambda j: (-S[r, j], j))[:n]
        out[r, :len(best)] = best
    return out


@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("subset", [False, True])
def test_topk_blocks_against_sort(blas, subset):
    """Rows and candidates span several blocks (with short last blocks);
    float64 so that the order is exact, exclusions on both sides of block
    boundaries, a candidate subset mapped through ``pos_of_item``."""
    if blas and not K.USE_BLAS:
        pytest.skip("BLAS path not available here")
    rng = np.random.default_rng(3)
    n_items, k, n = T.BLOCK_CANDIDATES + 700, 9, 7
    U = rng.standard_normal((T.BLOCK_USERS * 2 + 5, k))
    rows = rng.permutation(U.shape[0])[:T.BLOCK_USERS + 11].astype(np.int64)
    if subset:
        cand = np.sort(rng.choice(n_items, T.BLOCK_CANDIDATES + 50, replace=False))
        pos_of_item = np.full(n_items, -1, np.int64)
        pos_of_item[cand] = np.arange(cand.size)
    else:
        cand = np.arange(n_items)
        pos_of_item = np.zeros(0, np.int64)
    V = np.ascontiguousarray(rng.standard_normal((cand.size, k)))
    S = U[rows] @ V.T
    # exclude each row's 3 best candidates, a few random items (some not
    # candidates) and the items around the block boundary
    excl = []
    for r in range(rows.size):
        best = cand[np.argsort(-S[r])[:3]]
        extra = rng.choice(n_items, 20, replace=False)
        edge = np.arange(T.BLOCK_CANDIDATES - 2, T.BLOCK_CANDIDATES + 2)
        excl.append(np.unique(np.concatenate([best, extra, edge])))
    indptr = np.concatenate([[0], np.cumsum([e.size for e in excl])]).astype(np.int64)
    indices = np.concatenate(excl).astype(np.int32)
    ids = np.empty((rows.size, n), np.int64)
    scores = np.empty((rows.size, n))
    T.topk_kernel(U, rows, V, n, indptr, indices, pos_of_item, ids, scores,
                  T._block_bounds(rows.size), blas)
    excluded_pos = [set(np.flatnonzero(np.isin(cand, e)).tolist()) for e in excl]
    np.testing.assert_array_equal(ids, _naive_topk(S, n, excluded_pos))
    np.testing.assert_allclose(scores, np.take_along_axis(S, ids, 1), rtol=1e-12)


@pytest.mark.parametrize("blas", [True, False])
def test_topk_float32_and_padding(blas):
    """float32 scores agree with float64 ones to float32 rounding; asking for
    more than remains pads with -1 / -inf; the serial and parallel kernels
    and any thread count give identical output."""
    if blas and not K.USE_BLAS:
        pytest.skip("BLAS path not available here")
    rng = np.random.default_rng(4)
    U = rng.standard_normal((70, 16)).astype(np.float32)
    V = rng.standard_normal((30, 16)).astype(np.float32)
    rows = np.arange(70, dtype=np.int64)
    excl = [np.arange(r % 5) for r in range(70)]
    indptr = np.concatenate([[0], np.cumsum([e.size for e in excl])]).astype(np.int64)
    indices = np.concatenate(excl).astype(np.int32)
    outs = []
    old = numba.get_num_threads()
    try:
        for serial, threads in ((False, 1), (False, old), (True, 1)):
            numba.set_num_threads(threads)
            ids = np.empty((70, 28), np.int64)
            sc = np.empty((70, 28), np.float32)
            if serial:   # what topk() runs for small requests: one chunk
                T._topk_rows(U, rows, 0, 70, V, 28, indptr, indices,
                             np.zeros(0, np.int64), ids, sc, blas)
            else:
                T.topk_kernel(U, rows, V, 28, indptr, indices, np.zeros(0, np.int64),
                              ids, sc, T._block_bounds(70), blas)
            outs.append((ids, sc))
    finally:
        numba.set_num_threads(old)
    for ids, sc in outs[1:]:
        np.testing.assert_array_equal(ids, outs[0][0])
        np.testing.assert_array_equal(sc, outs[0][1])
    ids, sc = outs[0]
    S = U.astype(np.float64) @ V.T.astype(np.float64)
    for r in range(70):
        got = ids[r][ids[r] >= 0]
        assert got.size == min(28, 30 - r % 5) and not set(got) & set(excl[r].tolist())
        assert np.isneginf(sc[r, got.size:]).all() and (ids[r, got.size:] == -1).all()
        np.testing.assert_allclose(sc[r, :got.size], S[r, got], rtol=1e-5, atol=1e-5)
        assert (np.diff(sc[r, :got.size]) <= 0).all()


@pytest.mark.parametrize("blas", [True, False])
def test_auc_across_candidate_blocks(blas):
    """AUC scored per candidate block (more items than ``BLOCK_CANDIDATES``,
    positives in both blocks) equals the naive pair count exactly: integer
    factors make many ties, within and across blocks; a positive listed
    twice, a test item also in training, rows with no positive (NaN)."""
    import naive_metrics
    if blas and not K.USE_BLAS:
        pytest.skip("BLAS path not available here")
    rng = np.random.default_rng(5)
    n_items, m, k = T.BLOCK_CANDIDATES + 300, 11, 3
    U = rng.integers(-2, 3, (m, k)).astype(np.float64)
    V = rng.integers(-2, 3, (n_items, k)).astype(np.float64)
    train = [rng.choice(n_items, 40, replace=False) for _ in range(m)]
    test = [rng.choice(n_items, 6, replace=False) for _ in range(m)]
    test[0] = np.concatenate([test[0], test[0][:1], train[0][:2]])
    test[1] = train[1][:3]             # only training items: NaN
    test[2] = np.zeros(0, np.int64)    # nothing to rank: NaN
    test[3] = np.array([5, n_items - 5, T.BLOCK_CANDIDATES - 1,
                        T.BLOCK_CANDIDATES])

    def csr(rows):
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        return indptr.astype(np.int64), np.concatenate(rows).astype(np.int32)

    got = T.auc_kernel(U, V, *csr(train), *csr(test), T.even_bounds(m, T.TILE),
                       blas)
    S = U @ V.T
    want = [naive_metrics.auc(list(S[u]), test[u].tolist(), train[u].tolist())
            for u in range(m)]
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1]) and np.isnan(got[2]) and not np.isnan(got).all()
