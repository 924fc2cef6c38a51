"""Dense building blocks: the Gram matrix ``Y^T Y``, the small SPD inverse,
the right multiply ``Y M``, the sparse x dense product, and the dense
objective's half-step fused into one pass (:func:`dense_step`)."""

import numpy as np
import scipy.linalg.lapack as _lapack
from numba import njit, prange

from .blas import (BLAS_MIN_FACTORS, _blas_threads_local, _gemm, _gemm_rows, _syrk,
                   _syrk_loops, _with_blas)
from .chunks import _call, chunk_bounds
from .llvm import FASTMATH, PREFETCH_AHEAD, _prefetch_entry, _take_next
from .rows import RIDGE_TRIES, _cholesky_upper, _ridge_solve


@njit(cache=True, fastmath=FASTMATH)
def _spd_inverse(G):
    k = G.shape[0]
    A = np.empty((k, k), np.float64)
    A0 = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(k):
            A0[i, j] = G[i, j]
            A[i, j] = G[i, j]
    one = 1.0
    b = np.zeros(k, np.float64)
    b0 = np.zeros(k, np.float64)
    if not _cholesky_upper(A, b, k, one):  # b = 0: only the factor matters
        # leaves the (ridged) factor in A
        _ridge_solve(A, A0, b, b0, k, one, 1e-6, RIDGE_TRIES)
    # U^{-1} (upper), by rows from the bottom: row i of U^{-1} needs rows > i
    V = np.zeros((k, k), np.float64)
    for i in range(k - 1, -1, -1):
        inv = 1.0 / A[i, i]
        vi = V[i]
        vi[i] = inv
        for p in range(i + 1, k):
            f = -A[i, p] * inv
            vp = V[p, p:]
            ti = vi[p:]
            for l in range(vp.size):
                ti[l] += f * vp[l]
    # A^{-1} = U^{-1} U^{-T}: entry (i, j) = V[i, m:] . V[j, m:], m = max(i, j)
    inv_ = np.empty((k, k), np.float64)
    for i in range(k):
        vi = V[i]
        for j in range(i, k):
            vj = V[j, j:]
            t = vi[j:]
            s = 0.0
            for l in range(vj.size):
                s += t[l] * vj[l]
            inv_[i, j] = s
            inv_[j, i] = s
    return inv_


def spd_inverse(G):
    """Inverse of a symmetric positive semi-definite matrix, in float64.

    LAPACK's Cholesky and inverse (``dpotrf``/``dpotri``, nothing to
    compile); a ``G`` that is not positive definite (for instance
    ``lam = 0`` and fewer rows than factors) takes the compiled Cholesky
    with the same ridge fallback as the row solves: the smallest ridge that
    makes it positive definite.
    """
    G = np.ascontiguousarray(G, dtype=np.float64)
    if G.shape[0] and np.isfinite(G).all():
        c, info = _lapack.dpotrf(G, lower=0, clean=0)
        if info == 0:
            inv, info = _lapack.dpotri(c, lower=0)
            if info == 0:
                upper = np.triu(inv)
                return upper + np.triu(upper, 1).T
    return _spd_inverse(G)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _right_multiply(Y, M, bounds, blas):
    n, k = Y.shape
    m = M.shape[1]
    Z = np.empty((n, m), Y.dtype)
    for c in prange(bounds.size - 1):
        r0 = bounds[c]
        rows = bounds[c + 1] - r0
        if rows == 0:
            continue
        if blas and k >= BLAS_MIN_FACTORS:
            iw = np.empty(8, np.int32)
            fw = np.empty(4, Y.dtype)
            cw = np.empty(4, np.uint8)
            prev = _blas_threads_local(1)
            _gemm_rows(Y, r0, rows, M, Z, iw, fw, cw)
            _blas_threads_local(prev)
        else:
            for u in range(r0, r0 + rows):
                z = Z[u]
                y = Y[u]
                for j in range(m):
                    z[j] = 0
                for a in range(k):
                    ya = y[a]
                    Ma = M[a]
                    for j in range(m):
                        z[j] += ya * Ma[j]
    return Z


@_with_blas
def right_multiply(Y, M, bounds, blas):
    """``Y @ M`` for a tall ``Y`` and a small square ``M``, row-parallel
    (one GEMM per chunk of rows)."""
    return _call(_right_multiply, Y.shape[0] * Y.shape[1] * M.shape[1],
                 (Y, M, bounds, blas))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _accumulate_row(u, indptr, indices, data, Z, x):
    """``x += R[u] Z`` for sparse row ``u`` (four entries at a time, the
    factor rows prefetched ahead)."""
    k = Z.shape[1]
    p = indptr[u]
    end = indptr[u + 1]
    while p + 4 <= end:
        for q in range(4):
            _prefetch_entry(indices, p + PREFETCH_AHEAD + q, Z)
        r0 = data[p]
        r1 = data[p + 1]
        r2 = data[p + 2]
        r3 = data[p + 3]
        z0 = Z[indices[p]]
        z1 = Z[indices[p + 1]]
        z2 = Z[indices[p + 2]]
        z3 = Z[indices[p + 3]]
        for i in range(k):
            x[i] += r0 * z0[i] + r1 * z1[i] + r2 * z2[i] + r3 * z3[i]
        p += 4
    while p < end:
        r0 = data[p]
        z0 = Z[indices[p]]
        for i in range(k):
            x[i] += r0 * z0[i]
        p += 1


def sparse_times_dense(indptr, indices, data, Z, X, bounds):
    """Dense-objective half-step ``X = R Z`` with ``Z = Y (G + lam I)^{-1}``.

    All rows share one system matrix, so its inverse is folded into ``Z``
    once per half-step and each row costs only ``nnz * k``.
    """
    return _call(_sparse_times_dense, indptr[-1] * Z.shape[1],
                 (indptr, indices, data, Z, X, bounds))


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _sparse_times_dense(indptr, indices, data, Z, X, bounds):
    k = Z.shape[1]
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            x = X[u]
            for i in range(k):
                x[i] = 0
            _accumulate_row(u, indptr, indices, data, Z, x)
    return 0


@njit(cache=True, fastmath=FASTMATH)
def _gram_rows(Y, u, end, P, blas):
    """``P[upper] += Y[u:end]^T Y[u:end]`` in blocks of up to 512 rows summed
    in the factors' dtype, then in float64."""
    k = Y.shape[1]
    block = 512
    T = np.empty((k, k), Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    while u < end:
        m = min(block, end - u)
        for i in range(k):
            Ti = T[i]
            for j in range(k):
                Ti[j] = 0
        if blas and k >= BLAS_MIN_FACTORS:
            _syrk(one, Y, u, m, T, iw, fw, cw)
        else:
            _syrk_loops(one, Y, u, m, T)
        for i in range(k):
            Pi = P[i]
            Ti = T[i]
            for j in range(i, k):
                Pi[j] += Ti[j]
        u += m
    if blas:
        _blas_threads_local(prev)


@njit(parallel=True, cache=True)
def _gram(Y, bounds, blas):
    n_chunks = bounds.size - 1
    k = Y.shape[1]
    # Plain loops, not np.zeros or +=: with parallel=True each array
    # expression becomes a parallel loop of its own, about a second to compile.
    parts = np.empty((n_chunks, k, k), np.float64)
    for c in prange(n_chunks):
        P = parts[c]
        for i in range(k):
            for j in range(k):
                P[i, j] = 0.0
        _gram_rows(Y, bounds[c], bounds[c + 1], P, blas)
    out = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(i, k):
            t = 0.0
            for c in range(n_chunks):  # fixed order: not a parallel reduction
                t += parts[c, i, j]
            out[i, j] = t
            out[j, i] = t
    return out


@_with_blas
def gram(Y, bounds, blas):
    """``Y^T Y`` in float64 over fixed chunks of rows (one SYRK per block
    of up to 512 rows in the factors' dtype, summed in float64).  Fewer than
    8192 rows are summed as one chunk; the split depends only on the data,
    never on the number of threads."""
    n = Y.shape[0]
    if n < 8192:  # one partial sum: 16 float64 k x k partials cost more than the SYRK
        bounds = np.array([0, n], np.int64)
    return _call(_gram, n * Y.shape[1] ** 2 // 2, (Y, bounds, blas))


# ---------------------------------------------------------------------------
# The dense objective's half-step in one pass
# ---------------------------------------------------------------------------
#: Rows of a side gathered per block of the fused dense step: ``W`` (block x
#: k, the rows' ``R Y``) stays in cache for its GEMM and SYRK.
DENSE_BLOCK = 128


@njit(cache=True, fastmath=FASTMATH)
def _dense_rows(r0, r1, indptr, indices, data, Y, M, X, P, W, T, solve, blas,
                iw, fw, cw):
    """Rows ``r0:r1`` of the dense half-step, block by block.

    With ``solve``: ``W = R[rows] Y`` (sparse x dense), ``X[rows] = W M``
    (GEMM) and the sum of ``x_r . w_r`` over the rows is returned (in
    float64; over the item step it is ``sum_obs r x.y``, the loss's cross
    term).  Always: ``P[upper] += X[rows]^T X[rows]``, summed per block in
    the factors' dtype (SYRK) and across blocks in float64.
    """
    k = X.shape[1]
    cap = W.shape[0]
    one = fw[3]
    use_blas = blas and k >= BLAS_MIN_FACTORS
    cross = 0.0
    u = r0
    while u < r1:
        b = min(cap, r1 - u)
        if solve:
            for r in range(b):
                w = W[r]
                for i in range(k):
                    w[i] = 0
                _accumulate_row(u + r, indptr, indices, data, Y, w)
            if use_blas:
                # column-major: X[u:u+b]^T (k x b) = M^T (k x k) W^T (k x b)
                _gemm(78, 78, k, b, k, M.ctypes.data, k, W.ctypes.data, k,
                      X.ctypes.data + u * k * X.itemsize, k, iw, fw, cw)
            else:
                for r in range(b):
                    x = X[u + r]
                    w = W[r]
                    for j in range(k):
                        x[j] = 0
                    for a in range(k):
                        wa = w[a]
                        Ma = M[a]
                        for j in range(k):
                            x[j] += wa * Ma[j]
            for r in range(b):
                x = X[u + r]
                w = W[r]
                s = x[0] * w[0]
                for i in range(1, k):
                    s += x[i] * w[i]
                cross += s
        for i in range(k):
            Ti = T[i]
            for j in range(k):
                Ti[j] = 0
        if use_blas:
            _syrk(one, X, u, b, T, iw, fw, cw)
        else:
            _syrk_loops(one, X, u, b, T)
        for i in range(k):
            Pi = P[i, i:]
            Ti = T[i, i:]
            for j in range(Pi.size):
                Pi[j] += Ti[j]
        u += b
    return cross


@njit(parallel=True, cache=True)
def _dense_step(indptr, indices, data, Y, M, X, bounds, solve, blas):
    n_chunks = bounds.size - 1
    k = X.shape[1]
    # Plain loops, not np.zeros: in a parallel function each array
    # expression becomes a parallel loop of its own (compile time).
    parts = np.empty((n_chunks, k, k), np.float64)
    cross = np.empty(n_chunks, np.float64)
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        W = np.empty((DENSE_BLOCK, k), X.dtype)
        T = np.empty((k, k), X.dtype)
        iw = np.empty(8, np.int32)
        fw = np.ones(4, X.dtype)
        cw = np.empty(4, np.uint8)
        prev = np.int32(1)
        if blas:
            prev = _blas_threads_local(1)
        c = _take_next(counter)
        while c < n_chunks:
            P = parts[c]
            for i in range(k):
                for j in range(k):
                    P[i, j] = 0.0
            cross[c] = _dense_rows(bounds[c], bounds[c + 1], indptr, indices,
                                   data, Y, M, X, P, W, T, solve, blas, iw, fw, cw)
            c = _take_next(counter)
        if blas:
            _blas_threads_local(prev)
    G = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(i, k):
            t = 0.0
            for c in range(n_chunks):  # fixed order: not a parallel reduction
                t += parts[c, i, j]
            G[i, j] = t
            G[j, i] = t
    total = 0.0
    for c in range(n_chunks):
        total += cross[c]
    return G, total


def dense_bounds(indptr, k):
    """Chunks of the fused dense step: one per 64 rows, at most 32, balanced
    by cost (each holds a ``k x k`` float64 partial Gram matrix).  Fixed by
    the data, never by the thread count."""
    n = indptr.size - 1
    return chunk_bounds(indptr, k, int(min(max(n // 64, 1), 32)))


@_with_blas
def dense_step(indptr, indices, data, Y, M, X, bounds, blas):
    """The dense objective's half-step ``X = (R Y) M`` in one pass.

    ``M = (Y^T Y + lam I)^{-1}`` is shared by every row (all cells count),
    so a row costs ``nnz k`` for ``w = r Y`` and ``k^2`` for ``x = w M``;
    in the same pass the new Gram matrix ``X^T X`` (float64, needed by the
    next half-step and the loss) and ``sum_r x_r . w_r`` are formed.  After
    the item step, that sum is ``sum_obs r_ui x_u . y_i``, the loss's cross
    term, so the loss needs no pass of its own.

    ``M=None``: only the Gram matrix of ``X`` (as it is).  Returns
    ``(X^T X, cross)``.  ``bounds`` from :func:`dense_bounds`.
    """
    k = X.shape[1]
    solve = M is not None
    if not solve:
        M = np.empty((k, k), X.dtype)
    work = X.shape[0] * k * k * (2 if solve else 1) // 2
    if solve:
        work += indptr[-1] * k
    return _call(_dense_step, work,
                 (indptr, indices, data, Y, M, X, bounds, solve, blas))
