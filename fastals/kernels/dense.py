"""Dense building blocks: the Gram matrix ``Y^T Y``, the small SPD inverse,
the right multiply ``Y M`` and the sparse x dense product (the dense
objective's fused half-step is in :mod:`.dense_fit`)."""

import numpy as np
import scipy.linalg.lapack as _lapack
from numba import njit, prange

from .blas import (BLAS_MIN_FACTORS, _blas_threads_local, _gemm_rows, _syrk,
                   _syrk_loops, _with_blas)
from .chunks import _call
from .gather import _gather_row
from .llvm import FASTMATH
from .factor import RIDGE_TRIES, _cholesky_upper, _ridge_solve


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


def sparse_times_dense(indptr, indices, data, Z, X, bounds):
    """Dense-objective half-step ``X = R Z`` with ``Z = Y (G + lam I)^{-1}``.

    All rows share one system matrix, so its inverse is folded into ``Z``
    once per half-step and each row costs only ``nnz * k``.
    """
    return _call(_sparse_times_dense, indptr[-1] * Z.shape[1],
                 (indptr, indices, data, Z, X, bounds))


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _sparse_times_dense(indptr, indices, data, Z, X, bounds):
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            _gather_row(u, indptr, indices, data, Z, X[u])
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
