"""Numba kernels for alternating least squares.

Nothing in this module validates input or touches files: the public API in
:mod:`fastals.model` prepares canonical arrays and calls these functions.

Conventions
-----------
* A sparse side is given as CSR arrays ``(indptr, indices, ...)`` with
  ``indptr`` int64 and ``indices`` int32; row ``u`` owns entries
  ``indptr[u]:indptr[u + 1]``.
* Every per-entry array (``conf``, ``target``) has the dtype of the factors.
* Work is split into ``chunks`` (row boundaries, balanced by estimated cost)
  and the parallel loop runs over chunks, so scratch buffers are allocated
  once per chunk, never per row, and partial sums are reduced in a fixed
  order: results do not depend on the number of threads.

The weighted row update solved for every row ``u`` is::

    A_u = w0 * G + sum_{i in u} (c_ui - w0) y_i y_i^T + lam_u I
    b_u = sum_{i in u} c_ui * t_ui * y_i
    x_u = A_u^{-1} b_u

with ``G = Y^T Y`` and ``t_ui = target - offset[i]``.  ``w0 = 0`` and
``c = 1`` is explicit-feedback ALS, ``w0 = 1, c = 1 + alpha r, t = 1`` is
Hu, Koren & Volinsky's implicit ALS, and the dense objective (every cell
counts, missing cells are 0) is ``w0 = 1, c = 1`` where the per-row term
vanishes and every row shares ``G + lam I`` (see :func:`sparse_times_dense`).
"""

import numpy as np
from numba import njit, prange

# Safe fast-math: allow reassociation and contraction (FMA) but keep NaN/inf
# semantics so that non-finite checks still work.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True)
def chunk_bounds(indptr, k, n_chunks):
    """Split rows into ``n_chunks`` contiguous chunks of similar cost.

    The cost of a row is ``nnz * k + k * k`` (Gram build plus solve, in units
    of ``k`` flops), so a few very long rows do not leave threads idle.
    """
    n = indptr.size - 1
    total = 0.0
    for u in range(n):
        total += (indptr[u + 1] - indptr[u]) * k + k * k
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    c = 1
    acc = 0.0
    for u in range(n):
        acc += (indptr[u + 1] - indptr[u]) * k + k * k
        while c < n_chunks and acc >= total * c / n_chunks:
            bounds[c] = u + 1
            c += 1
    while c <= n_chunks:
        bounds[c] = n
        c += 1
    return bounds


@njit(cache=True, fastmath=FASTMATH)
def _cholesky_factor(A, k):
    """Overwrite the lower triangle of ``A`` with its Cholesky factor ``L``.

    Returns ``False`` if ``A`` is not numerically positive definite.
    """
    for j in range(k):
        s = A[j, j]
        for p in range(j):
            s -= A[j, p] * A[j, p]
        if not s > 0.0:
            return False
        d = np.sqrt(s)
        A[j, j] = d
        inv = 1.0 / d
        for i in range(j + 1, k):
            s = A[i, j]
            for p in range(j):
                s -= A[i, p] * A[j, p]
            A[i, j] = s * inv
    return True


@njit(cache=True, fastmath=FASTMATH)
def _cholesky_substitute(L, b, k):
    """Solve ``L L^T x = b`` in place given the factor in ``L``'s lower triangle."""
    for i in range(k):
        s = b[i]
        for p in range(i):
            s -= L[i, p] * b[p]
        b[i] = s / L[i, i]
    for i in range(k - 1, -1, -1):
        s = b[i]
        for p in range(i + 1, k):
            s -= L[p, i] * b[p]
        b[i] = s / L[i, i]


@njit(cache=True, fastmath=FASTMATH)
def _cholesky_solve(A, b, k):
    """Solve ``A x = b`` in place (``b`` becomes ``x``) by Cholesky.

    Only the lower triangle of ``A`` is read; it is overwritten by the
    factor.  Returns ``False`` if ``A`` is not numerically positive
    definite; ``A`` and ``b`` are then in an undefined state.
    """
    if not _cholesky_factor(A, k):
        return False
    _cholesky_substitute(A, b, k)
    return True


@njit(cache=True, fastmath=FASTMATH)
def _robust_solve(A, A0, b, b0, k):
    """Cholesky solve with a fallback for matrices that are not PD.

    ``A0``/``b0`` hold untouched copies.  On failure, a growing ridge
    ``delta * (mean diagonal + 1)`` is added until the factorization
    succeeds; the result is then a (slightly) regularized least-squares
    solution instead of NaN.  Returns the number of retries needed.
    """
    for i in range(k):
        for j in range(i + 1):
            A[i, j] = A0[i, j]
        b[i] = b0[i]
    if _cholesky_solve(A, b, k):
        return 0
    scale = 0.0
    for i in range(k):
        scale += abs(A0[i, i])
    scale = scale / k + 1.0
    delta = 1e-6
    for attempt in range(1, 30):
        for i in range(k):
            for j in range(i + 1):
                A[i, j] = A0[i, j]
            A[i, i] += delta * scale
            b[i] = b0[i]
        if _cholesky_solve(A, b, k):
            return attempt
        delta *= 10.0
    for i in range(k):
        b[i] = 0.0
    return 30


@njit(cache=True, fastmath=FASTMATH)
def _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
               A, b):
    """Fill the lower triangle of ``A`` and ``b`` for row ``u``."""
    k = Y.shape[1]
    start = indptr[u]
    end = indptr[u + 1]
    for i in range(k):
        for j in range(i + 1):
            A[i, j] = w0 * G[i, j]
        b[i] = 0.0
    for p in range(start, end):
        it = indices[p]
        c = conf[p]
        cw = c - w0
        ct = c * (target[p] - offset[it])
        y = Y[it]
        for i in range(k):
            yi = y[i]
            b[i] += ct * yi
            if cw != 0.0:
                s = cw * yi
                for j in range(i + 1):
                    A[i, j] += s * y[j]
    reg = lam
    if wr:
        reg = lam * (end - start)
    for i in range(k):
        A[i, i] += reg


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                   X, bounds):
    """Exact ALS half-step: overwrite every row of ``X`` with its solution.

    Returns the number of rows whose system was not positive definite and
    needed the ridge fallback.
    """
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    fallbacks = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        A = np.empty((k, k), Y.dtype)
        A0 = np.empty((k, k), Y.dtype)
        b = np.empty(k, Y.dtype)
        b0 = np.empty(k, Y.dtype)
        for u in range(bounds[c], bounds[c + 1]):
            _build_row(u, indptr, indices, conf, target, offset, Y, G, lam,
                       wr, w0, A0, b0)
            for i in range(k):
                for j in range(i + 1):
                    A[i, j] = A0[i, j]
                b[i] = b0[i]
            if not _cholesky_solve(A, b, k):
                if _robust_solve(A, A0, b, b0, k) > 0:
                    fallbacks[c] += 1
            for i in range(k):
                X[u, i] = b[i]
    total = 0
    for c in range(n_chunks):
        total += fallbacks[c]
    return total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
             bounds, steps):
    """Conjugate-gradient ALS half-step, warm-started from ``X``.

    Runs ``steps`` CG iterations on each row's system without forming
    ``A_u`` (Takacs et al. 2011): a product ``A_u v`` costs ``k^2`` for the
    shared ``w0 G v`` plus ``2 k`` per entry of the row.
    """
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    for c in prange(n_chunks):
        r = np.empty(k, Y.dtype)
        d = np.empty(k, Y.dtype)
        Ad = np.empty(k, Y.dtype)
        x = np.empty(k, Y.dtype)
        for u in range(bounds[c], bounds[c + 1]):
            start = indptr[u]
            end = indptr[u + 1]
            reg = lam
            if wr:
                reg = lam * (end - start)
            for i in range(k):
                x[i] = X[u, i]
            # r = b - A x
            for i in range(k):
                s = 0.0
                for j in range(k):
                    s += G[i, j] * x[j]
                r[i] = -w0 * s - reg * x[i]
            for p in range(start, end):
                it = indices[p]
                cf = conf[p]
                y = Y[it]
                dot = 0.0
                for i in range(k):
                    dot += y[i] * x[i]
                s = cf * (target[p] - offset[it]) - (cf - w0) * dot
                for i in range(k):
                    r[i] += s * y[i]
            rs = 0.0
            for i in range(k):
                d[i] = r[i]
                rs += r[i] * r[i]
            for _ in range(steps):
                if rs < 1e-20:
                    break
                for i in range(k):
                    s = 0.0
                    for j in range(k):
                        s += G[i, j] * d[j]
                    Ad[i] = w0 * s + reg * d[i]
                for p in range(start, end):
                    it = indices[p]
                    y = Y[it]
                    dot = 0.0
                    for i in range(k):
                        dot += y[i] * d[i]
                    s = (conf[p] - w0) * dot
                    for i in range(k):
                        Ad[i] += s * y[i]
                dAd = 0.0
                for i in range(k):
                    dAd += d[i] * Ad[i]
                if not dAd > 0.0:
                    break
                a = rs / dAd
                rs_new = 0.0
                for i in range(k):
                    x[i] += a * d[i]
                    r[i] -= a * Ad[i]
                    rs_new += r[i] * r[i]
                beta = rs_new / rs
                for i in range(k):
                    d[i] = r[i] + beta * d[i]
                rs = rs_new
            for i in range(k):
                X[u, i] = x[i]
    return 0


@njit(cache=True)
def spd_inverse(G):
    """Inverse of a symmetric positive semi-definite matrix, in float64.

    Cholesky with the same ridge fallback as the row solves: a singular
    ``G`` (for instance ``lam = 0`` and fewer rows than factors) gets the
    smallest ridge that makes it positive definite.
    """
    k = G.shape[0]
    A = np.empty((k, k), np.float64)
    A0 = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(k):
            A0[i, j] = G[i, j]
    inv = np.empty((k, k), np.float64)
    b = np.empty(k, np.float64)
    e = np.zeros(k, np.float64)
    e[0] = 1.0
    _robust_solve(A, A0, b, e, k)  # leaves the (ridged) factor in A
    inv[:, 0] = b
    for col in range(1, k):
        b[:] = 0.0
        b[col] = 1.0
        _cholesky_substitute(A, b, k)
        inv[:, col] = b
    return inv


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def right_multiply(Y, M, bounds):
    """``Y @ M`` for a tall ``Y`` and a small square ``M``, row-parallel."""
    n, k = Y.shape
    Z = np.empty((n, M.shape[1]), Y.dtype)
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            z = Z[u]
            z[:] = 0.0
            for a in range(k):
                ya = Y[u, a]
                Ma = M[a]
                for j in range(z.size):
                    z[j] += ya * Ma[j]
    return Z


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def sparse_times_dense(indptr, indices, data, Z, X, bounds):
    """Dense-objective half-step ``X = R Z`` with ``Z = Y (G + lam I)^{-1}``.

    All rows share one system matrix, so its inverse is folded into ``Z``
    once per half-step and each row costs only ``nnz * k``.
    """
    k = Z.shape[1]
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            x = X[u]
            x[:] = 0.0
            for p in range(indptr[u], indptr[u + 1]):
                r = data[p]
                z = Z[indices[p]]
                for i in range(k):
                    x[i] += r * z[i]
    return 0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def loss_terms(indptr, indices, conf, target, offset, X, Y, w0, bounds):
    """Per-entry part of the weighted loss, summed in float64.

    Returns ``sum_{(u,i) observed} c (t - x_u.y_i)^2 - w0 (x_u.y_i)^2``.
    The unobserved cells contribute ``w0 * sum_all (x_u.y_i)^2``, which the
    caller adds as ``w0 * trace((X^T X)(Y^T Y))`` without densifying.
    """
    n_chunks = bounds.size - 1
    k = X.shape[1]
    partial = np.zeros(n_chunks, np.float64)
    for c in prange(n_chunks):
        acc = 0.0
        for u in range(bounds[c], bounds[c + 1]):
            x = X[u]
            for p in range(indptr[u], indptr[u + 1]):
                it = indices[p]
                y = Y[it]
                dot = 0.0
                for i in range(k):
                    dot += np.float64(x[i]) * y[i]
                e = (target[p] - offset[it]) - dot
                acc += conf[p] * e * e - w0 * dot * dot
        partial[c] = acc
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def gram(Y, bounds):
    """``Y^T Y`` accumulated in float64 over fixed chunks of rows.

    Rows are taken four at a time so that each partial-sum entry is loaded
    and stored once per four rows.
    """
    n_chunks = bounds.size - 1
    k = Y.shape[1]
    parts = np.zeros((n_chunks, k, k), np.float64)
    for c in prange(n_chunks):
        P = parts[c]
        u = bounds[c]
        end = bounds[c + 1]
        while u + 4 <= end:
            y0 = Y[u]
            y1 = Y[u + 1]
            y2 = Y[u + 2]
            y3 = Y[u + 3]
            for i in range(k):
                a0 = np.float64(y0[i])
                a1 = np.float64(y1[i])
                a2 = np.float64(y2[i])
                a3 = np.float64(y3[i])
                Pi = P[i]
                for j in range(i + 1):
                    Pi[j] += a0 * y0[j] + a1 * y1[j] + a2 * y2[j] + a3 * y3[j]
            u += 4
        while u < end:
            y = Y[u]
            for i in range(k):
                yi = np.float64(y[i])
                Pi = P[i]
                for j in range(i + 1):
                    Pi[j] += yi * y[j]
            u += 1
    out = np.zeros((k, k), np.float64)
    for c in range(n_chunks):
        out += parts[c]
    for i in range(k):
        for j in range(i + 1, k):
            out[i, j] = out[j, i]
    return out
