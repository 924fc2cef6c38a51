"""Exact row solves: the weighted row system, Cholesky with the ridge
fallback, the n x n system of short rows (push-through / Woodbury), and the
parallel half-step :func:`solve_cholesky`.
"""

import numpy as np
import scipy.linalg
from numba import carray, njit, prange

from .blas import (BLAS_MIN_FACTORS, LAPACK_MIN_FACTORS, USE_BLAS,
                   _blas_threads_local, _potrf, _syrk, _syrk_loops, _syrk_rows,
                   _trsm_rows)
from .chunks import _call
from .factor import RIDGE_TRIES, _factor_upper, _tri_solve
from .llvm import (FASTMATH, LOSS_MODE, PREFETCH_AHEAD, _ChunkCallback,
                   _chunk_views, _prefetch_entry, _take_next)
from .loss import _loss_rows
from .openblas import single_threaded
from .tiles import (_factor_tiled, _maybe_factor, _maybe_syrk, _syrk_tiled,
                    _tiles_fit, tiles_apply)


# ---------------------------------------------------------------------------
# Row solves
# ---------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
               A, b, B, iw, fw, cw, blas, one, syrk_t):
    """Fill the upper triangle of ``A`` and ``b`` for row ``u``.

    The row's item vectors are gathered into the contiguous block ``B``,
    scaled by ``sqrt|c - w0|`` (positive weights from the top, negative ones
    from the bottom), and added to ``A`` per block: by register tiles
    (:func:`.tiles._syrk_tiled`) where ``k`` is a multiple of the tile
    width (16 float32, 8 float64) from ``BLAS_MIN_FACTORS`` to
    ``TILE_MAX_FACTORS`` and ``syrk_t`` is that function (None: never;
    the tiles are then not compiled in), else by a BLAS SYRK (or its loops).

    Arithmetic is in the dtype of ``one`` (that of ``A``, ``b``, ``B`` and
    ``fw``): the factors' dtype in :func:`solve_cholesky`, where the
    ``* one`` below fold away, float64 in :mod:`.nnls`, which builds the
    same system from float32 factors without rounding each product to
    float32.  Entries below the diagonal of ``A`` are left at ``w0 G``.
    """
    k = Y.shape[1]
    cap = B.shape[0]
    start = indptr[u]
    end = indptr[u + 1]
    for i in range(k):
        Ai = A[i]
        Gi = G[i]
        for j in range(k):
            Ai[j] = w0 * Gi[j]
        b[i] = 0
    use_blas = blas and k >= BLAS_MIN_FACTORS
    tiled = syrk_t is not None and _tiles_fit(k, A)
    p = start
    while p < end:
        q = min(end, p + cap)
        # int64 from the start: a literal 0 here made Numba compile the
        # SYRK loop a second time for a constant row count.
        npos = np.int64(0)
        nneg = np.int64(0)
        for e in range(p, q):
            _prefetch_entry(indices, e + PREFETCH_AHEAD, Y)
            it = indices[e]
            cf = conf[e] * one
            cwt = cf - w0
            ct = cf * (target[e] * one - offset[it] * one)
            yr = Y[it]
            for j in range(k):
                b[j] += ct * yr[j]
            if cwt > 0:
                s = np.sqrt(cwt)
                row = B[npos]
                npos += 1
            elif cwt < 0:
                s = np.sqrt(-cwt)
                nneg += 1
                row = B[cap - nneg]
            else:
                continue
            for j in range(k):
                row[j] = s * yr[j]
        for seg in range(2):  # one call site each: less code to compile
            r0 = 0
            m = npos
            alpha = one
            if seg == 1:
                r0 = cap - nneg
                m = nneg
                alpha = -one
            if m == 0:
                continue
            if tiled:
                _maybe_syrk(syrk_t, alpha, B, r0, m, A)
            elif use_blas:
                _syrk(alpha, B, r0, m, A, iw, fw, cw)
            else:
                _syrk_loops(alpha, B, r0, m, A)
        p = q
    reg = lam
    if wr:
        reg = lam * (end - start)
    for i in range(k):
        A[i, i] += reg


# ---------------------------------------------------------------------------
# Short rows: the n x n system (push-through / Woodbury identity)
# ---------------------------------------------------------------------------
# A row with n ratings (n < k) has ``A = B + Z^T Z`` with ``B = w0 G + lam I``
# shared by every row (per ratings count under weighted regularization) and
# ``Z`` the n gathered item vectors scaled by ``sqrt(c - w0)``.  With
# ``B = U^T U`` factored once per half-step (:func:`short_row_setup`) and
# ``W = Z U^{-1}``, ``beta = U^{-T} b``:
#
#     x = U^{-1} (beta - W^T v),   (I + W W^T) v = W beta
#
# (n x n, eigenvalues >= 1), and for the explicit objective (``w0 = 0``,
# ``B = lam I``, no factor)
#
#     x = Z^T v,   (Z Z^T + lam I) v = sqrt(c) * t.
#
# A row costs about n k^2 / 2 + n^2 k / 2 + n^3 / 6 multiply-adds (no
# k^3 / 6 factorization; explicit: no n k^2 / 2 either).  Where one ``B``
# serves every row (no weighted regularization) and enough rows are short,
# the other side is transformed once per half-step, ``Y U^{-1}``: a row then
# gathers its rows of ``W`` (and ``beta``, a sum of them) without the
# triangular solve, and costs about n^2 k / 2 + n^3 / 6 + k^2 / 2 (the last
# ``U^{-1}`` as a product with the precomputed inverse: no dependent chain).  Rows with a weight
# ``c < w0`` (the correction would not be positive semidefinite), rows
# whose ``B`` is not positive definite (``lam = 0``) and rows whose n x n
# system does not factor take the k x k path, with its ridge fallback, and
# so does every row without BLAS or with fewer than ``BLAS_MIN_FACTORS``
# factors (the n x n path uses TRSM and SYRK only: less to compile).


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _short_system(u, indptr, indices, conf, target, offset, Y, GB, reg, w0,
                  nmax, fidx, Z, flat, v, iw, fw, cw, one, transformed):
    """Build row ``u``'s n x n system; returns ``n``, or -1 where the row
    must take the k x k path.

    ``GB[(1 + fidx) k:(2 + fidx) k]`` holds the upper factor ``U`` of
    ``B = w0 G + reg I`` (unused when ``w0 = 0``), and with
    ``transformed`` ``V = U^{-T}`` instead and ``GB[2 k:]`` holds
    ``Y U^{-1}``.  On return the
    system's upper triangle is in ``flat[:n * n]`` (row-major ``n x n``),
    its right-hand side in ``v[:n]``, ``W`` (``Z`` where ``w0 = 0``) in
    ``Z[:n]`` and ``beta`` in ``Z[n]``, for :func:`_short_finish`.
    """
    k = Y.shape[1]
    start = indptr[u]
    end = indptr[u + 1]
    # int64 from the start: a literal 0 made Numba compile every callee
    # of n once more for the constant.
    n = np.int64(0)
    for e in range(start, end):
        d = conf[e] * one - w0
        if d < 0:
            return -1
        if d > 0:
            n += 1
    diag = w0 == 0
    if n > nmax or (diag and not reg > 0):
        return -1
    base = (1 + fidx) * k
    if not diag and not GB[base, 0] > 0:  # B not positive definite (NaN factor)
        return -1
    U = GB[base:base + k]  # empty where diag
    src = Y
    if transformed:
        src = GB[2 * k:]  # Y U^{-1}: rows of W, b arrives as beta
    b = Z[n]  # b, then beta = U^{-T} b
    for j in range(k):
        b[j] = 0
    j = 0
    for e in range(start, end):
        _prefetch_entry(indices, e + PREFETCH_AHEAD, src)
        it = indices[e]
        cf = conf[e] * one
        d = cf - w0
        t = target[e] * one - offset[it] * one
        yr = src[it]
        if not diag:
            ct = cf * t
            for l in range(k):
                b[l] += ct * yr[l]
        if d > 0:
            sq = np.sqrt(d)
            row = Z[j]
            for l in range(k):
                row[l] = sq * yr[l]
            if diag:
                v[j] = sq * t
            j += 1
    if not diag and not transformed:
        _trsm_rows(U, Z, n + 1, iw, fw, cw)
    M = flat[:n * n].reshape((n, n))
    for i in range(n):
        Mi = M[i]
        for l in range(n):
            Mi[l] = 0
        Mi[i] = reg if diag else one
    if n > SMALL_GRAM:
        _syrk_rows(Z, n, M, iw, fw, cw)
    else:
        _gram_small(Z, n, M, one)
    if not diag:
        for i in range(n):
            zi = Z[i]
            acc = zi[0] * b[0]
            for q in range(1, k):
                acc += zi[q] * b[q]
            v[i] = acc
    return n


#: Up to this many rows, the n x n Gram matrix of a short row is summed by
#: :func:`_gram_small`'s loops instead of a BLAS SYRK call, whose fixed cost
#: (argument checks, buffer, packing) exceeds the work for such ``n``.
SMALL_GRAM = 64


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _gram_small(Z, n, M, one):
    """``M[upper] += Z[:n] Z[:n]^T`` by dot products, two rows of ``M`` at
    a time (each loaded row of ``Z`` serves both); sums from a typed zero
    over all entries (a loop from 1 leaves LLVM a scalar remainder)."""
    zero = one - one
    i = 0
    while i + 1 < n:
        z0 = Z[i]
        z1 = Z[i + 1]
        a0 = zero
        a1 = zero
        a2 = zero
        for l in range(z0.size):
            a0 += z0[l] * z0[l]
            a1 += z0[l] * z1[l]
            a2 += z1[l] * z1[l]
        M[i, i] += a0
        M[i, i + 1] += a1
        M[i + 1, i + 1] += a2
        for j in range(i + 2, n):
            zj = Z[j]
            a0 = zero
            a1 = zero
            for l in range(zj.size):
                a0 += z0[l] * zj[l]
                a1 += z1[l] * zj[l]
            M[i, j] += a0
            M[i + 1, j] += a1
        i += 2
    if i < n:
        z0 = Z[i]
        a0 = zero
        for l in range(z0.size):
            a0 += z0[l] * z0[l]
        M[i, i] += a0


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _short_finish(U, Z, n, vn, x, diag, transformed):
    """``x`` from the solved n x n system ``vn`` (see :func:`_short_system`):
    ``Z^T v`` where ``diag`` (``w0 = 0``), else
    ``U^{-1} (beta - W^T v)``: by back substitution with ``U``, or where
    ``transformed`` as ``V^T (beta - W^T v)`` with ``U`` holding
    ``V = U^{-T}`` (row-major lower triangle), a sum of ``k`` contiguous
    row prefixes of ``V`` with no chain of dependent steps (the
    substitution's chain cost more than the rest of a short row)."""
    k = x.size
    b = Z[n]
    if diag:
        for l in range(k):
            x[l] = 0
        for i in range(n):
            vi = vn[i]
            zi = Z[i]
            for l in range(k):
                x[l] += vi * zi[l]
        return
    for i in range(n):  # b <- beta - W^T v
        vi = vn[i]
        zi = Z[i]
        for l in range(k):
            b[l] -= vi * zi[l]
    if transformed:
        for l in range(k):
            x[l] = 0
        j = 0
        while j + 4 <= k:  # rows j..j+3 of V: one pass over x[:j+1]
            y0 = b[j]
            y1 = b[j + 1]
            y2 = b[j + 2]
            y3 = b[j + 3]
            v0 = U[j, :j + 1]
            v1 = U[j + 1, :j + 1]
            v2 = U[j + 2, :j + 1]
            v3 = U[j + 3, :j + 1]
            xs = x[:j + 1]
            for l in range(xs.size):
                xs[l] += (y0 * v0[l] + y1 * v1[l]) + (y2 * v2[l] + y3 * v3[l])
            x[j + 1] += y1 * U[j + 1, j + 1] + y2 * U[j + 2, j + 1] + y3 * U[j + 3, j + 1]
            x[j + 2] += y2 * U[j + 2, j + 2] + y3 * U[j + 3, j + 2]
            x[j + 3] += y3 * U[j + 3, j + 3]
            j += 4
        while j < k:
            yj = b[j]
            vj = U[j, :j + 1]
            xs = x[:j + 1]
            for l in range(xs.size):
                xs[l] += yj * vj[l]
            j += 1
    else:
        for l in range(k):
            x[l] = b[l]
        # (bool variables, not literals: one compiled _tri_solve for all sites)
        _tri_solve(U, x, k, diag, not diag)


#: ``mode`` of :func:`_cholesky_rows`: solve only the rows whose
#: ``X[u, 0]`` is NaN (left by :func:`_short_rows`).
LEFT_ROWS_MODE = 1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cholesky_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                   wr, w0, X, blas, cap, mode, syrk_t, factor_t):
    """Solve rows ``r0:r1`` (one chunk) through their k x k systems, with
    scratch allocated once; returns the number of rows that needed the
    ridge fallback.  ``mode`` :data:`LEFT_ROWS_MODE`: only the rows whose
    ``X[u, 0]`` is NaN (the rest were solved by :func:`_short_rows`).

    A row whose system is not numerically positive definite (``lam = 0``
    with fewer ratings than factors, say) is rebuilt with a growing ridge
    ``delta * (mean diagonal + 1)``, ``delta = 1e-6, 1e-5, ...``, until the
    factorization succeeds: a (slightly) regularized least-squares solution
    instead of NaN; after 29 tries the row is set to zero.  Every helper
    has one call site (each call site of an inlined helper is compiled
    once more).  The helpers are ``forceinline``: no separately compiled
    copy of them is ever called, so the code that runs is the same whether
    this callback was compiled in this process or loaded from the cache.
    Inlined into its C callback (see "Chunk functions behind C symbols"),
    never into a parallel loop's body, which is much more expensive to
    compile.
    """
    k = Y.shape[1]
    A = np.empty((k, k), Y.dtype)
    B = np.empty((cap, k), Y.dtype)
    b = np.empty(k, Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    lapack = blas and k >= LAPACK_MIN_FACTORS
    # (the gate of _build_row's tiled Gram update)
    tiled = factor_t is not None and _tiles_fit(k, A)
    left = mode == LEFT_ROWS_MODE
    fallbacks = 0
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    for u in range(r0, r1):
        x = X[u]
        if left and not np.isnan(x[0]):
            continue
        delta = 0.0
        ok = False
        for attempt in range(RIDGE_TRIES):
            _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr,
                       w0, A, b, B, iw, fw, cw, blas, one, syrk_t)
            if attempt > 0:
                scale = 0.0
                for i in range(k):
                    scale += abs(A[i, i])
                shift = delta * (scale / k + 1.0)
                for i in range(k):
                    A[i, i] += shift
            if tiled:
                ok = _maybe_factor(factor_t, A, one)
            elif lapack:
                ok = _potrf(A, iw, cw) == 0
            else:
                ok = _factor_upper(A, k, one)
            if ok:
                # (bool variables, not literals: one compiled _tri_solve)
                _tri_solve(A, b, k, ok, ok)
                break
            if attempt == 0:
                fallbacks += 1
                delta = 1e-6
            else:
                delta *= 10.0
        for i in range(k):
            x[i] = b[i] if ok else 0
    if blas:
        _blas_threads_local(prev)
    return fallbacks


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _short_rows(r0, r1, indptr, indices, conf, target, offset, Y, GB, lam, wr,
                w0, X, blas, mode):
    """Solve the short rows of ``r0:r1`` (one chunk) through their n x n
    systems; every other row (and a short row whose system does not
    factor) gets ``X[u, 0] = NaN``, for :func:`_cholesky_rows` in
    :data:`LEFT_ROWS_MODE`.

    ``GB[:k]`` is ``G``; ``mode = 2 nmax + transformed``: rows with at
    most ``nmax`` ratings of weight ``c > w0`` (factors of ``B`` in
    ``GB[k:]``, see :func:`short_row_setup`).  A C callback of its own,
    compiled only where a half-step has enough short rows (see
    :func:`solve_cholesky`): the first fit on small data does not wait for
    it.
    """
    k = Y.shape[1]
    nmax = mode >> 1
    transformed = (mode & 1) == 1
    Z = np.empty((nmax + 1, k), Y.dtype)
    flat = np.empty(nmax * nmax, Y.dtype)
    v = np.empty(max(nmax, 1), Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    diag = w0 == 0
    # BLAS only (TRSM, SYRK): without it, or where BLAS does not pay, the
    # k x k path's loops (tiny k: its factorization costs little anyway)
    short = nmax > 0 and blas and k >= BLAS_MIN_FACTORS
    n_factors = 1 if transformed else GB.shape[0] // k - 1
    prev = np.int32(1)
    if short:
        prev = _blas_threads_local(1)
    for u in range(r0, r1):
        n_u = indptr[u + 1] - indptr[u]
        n = np.int64(-1)
        base = k
        if short and n_u > 0:
            reg = lam * n_u if wr else lam
            fidx = n_u - 1 if wr else 0
            base = (1 + fidx) * k
            if diag or fidx < n_factors:
                n = _short_system(u, indptr, indices, conf, target, offset, Y,
                                  GB, reg, w0, nmax, fidx, Z, flat, v, iw, fw,
                                  cw, one, transformed)
        ok = False
        if n >= 0:
            M = flat[:n * n].reshape((n, n))
            vn = v[:n]
            if blas and n >= LAPACK_MIN_FACTORS:
                ok = _potrf(M, iw, cw) == 0
            else:
                ok = _factor_upper(M, n, one)
            if ok:
                _tri_solve(M, vn, n, ok, ok)
                _short_finish(GB[base:base + k], Z, n, vn, X[u], diag,
                              transformed)
        if not ok:
            X[u, 0] = np.nan  # left to the k x k path
    if short:
        _blas_threads_local(prev)
    return 0.0


@njit(inline="always")
def _rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p,
            X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap, mode,
            syrk_t, factor_t):
    """The body of the k x k callbacks (``syrk_t``, ``factor_t``: the
    register-tile functions or None, see :func:`_cholesky_rows`)."""
    indptr, indices, conf, target, offset, Y, _, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, 0)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    G = carray(G_p, (n_g, k))  # G (the first k rows of short_row_setup's GB)
    return float(_cholesky_rows(r0, r1, indptr, indices, conf, target, offset,
                                Y, G[:k], lam, wr != 0, w0, X, blas != 0, cap,
                                mode, syrk_t, factor_t))


def _cholesky_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                     Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                     blas, cap, mode):
    return _rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
                   G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas,
                   cap, mode, None, None)


def _tiled_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                  Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                  blas, cap, mode):
    return _rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
                   G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas,
                   cap, mode, _syrk_tiled, _factor_tiled)


def _short_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                  Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                  blas, cap, mode):
    indptr, indices, conf, target, offset, Y, _, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, 0)
    GB = carray(G_p, (n_g, k))  # G, then the factors of short_row_setup
    return _short_rows(r0, r1, indptr, indices, conf, target, offset, Y, GB,
                       lam, wr != 0, w0, X, blas != 0, mode)


# Two k x k callbacks: with the register tiles (factors that fit them) and
# without; the parallel kernels call either by address, so a fit compiles
# only the one it uses (the tiles add about 3 s of CPU to a cold compile).
_CHOLESKY = _ChunkCallback("cholesky_rows", _cholesky_rows_c)
_TILED = _ChunkCallback("cholesky_tiled", _tiled_rows_c)
_cholesky_chunk = _CHOLESKY.address_caller()
_SHORT = _ChunkCallback("short_rows", _short_rows_c)
_short_chunk = _SHORT.caller()


@njit(parallel=True, cache=True)
def _solve_long(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
                bounds, blas, mode, chunk):
    """Solve every row through its k x k system (``mode`` 0: returns the
    number of ridge fallbacks) or sum the loss terms of every row
    (``mode`` :data:`LOSS_MODE`); ``chunk``: the address of the callback
    (:func:`_solve_cholesky`)."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)  # np.zeros: a parallel loop more
    cap = _gather_cap(k)
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_chunks:
            partial[c] = _cholesky_chunk(chunk, bounds[c], bounds[c + 1],
                                         indptr, indices, conf, target, offset,
                                         Y, G, lam, wr, w0, X, blas, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


@_SHORT.guard
@njit(parallel=True, cache=True)
def _solve_short(indptr, indices, conf, target, offset, Y, GB, lam, wr, w0, X,
                 bounds, blas, mode, chunk):
    """Solve the short rows of each chunk through their n x n systems,
    then the chunk's other rows through their k x k systems; returns the
    number of ridge fallbacks.  ``GB`` and ``mode`` (> 0): see
    :func:`short_row_setup`."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    cap = _gather_cap(k)
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):
        c = _take_next(counter)
        while c < n_chunks:
            _short_chunk(bounds[c], bounds[c + 1], indptr, indices, conf,
                         target, offset, Y, GB, lam, wr, w0, X, blas, cap,
                         mode)
            partial[c] = _cholesky_chunk(chunk, bounds[c], bounds[c + 1],
                                         indptr, indices, conf, target, offset,
                                         Y, GB, lam, wr, w0, X, blas, cap,
                                         LEFT_ROWS_MODE)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


def _solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                    X, bounds, blas, mode):
    """Solve every row (``mode`` >= 0: returns the number of ridge
    fallbacks; ``mode`` > 0: short rows through the n x n system, ``G``
    then stacks the factors of :func:`short_row_setup` under ``G`` itself,
    which also gives ``mode``) or sum the loss terms of every row (``mode``
    :data:`LOSS_MODE`).  Two parallel kernels and three C callbacks: a fit
    without short rows never compiles the n x n path, and one whose factors
    do not fit the register tiles (:func:`tiles_apply`) never compiles them.
    Results are the same for any number of threads."""
    k = Y.shape[1]
    cb = _TILED if mode != LOSS_MODE and tiles_apply(k, Y.dtype) else _CHOLESKY
    chunk = cb.address(Y.dtype)
    if mode > 0:
        return _solve_short(indptr, indices, conf, target, offset, Y, G, lam,
                            wr, w0, X, bounds, blas, mode, chunk)
    with single_threaded():  # (_solve_short's guard does the same)
        return _solve_long(indptr, indices, conf, target, offset, Y, G, lam,
                           wr, w0, X, bounds, blas, mode, chunk)


@njit(cache=True)
def _gather_cap(k):
    """Rows of the per-chunk gather block: 256 KiB of float32 per SYRK."""
    return max(64, 65536 // k)


#: Cost of the n x n path relative to its multiply-add count, per ``w0 != 0``
#: (``> 1``: it runs at a lower rate than the k x k path's SYRK and
#: xPOTRF).  A row takes the n x n path where ``cost * short < long`` (see
#: :func:`short_row_limit`).  Measured with ``bench/short_rows.py`` (one
#: thread, float32, BLAS; loaded machine): implicit, short/long time 0.96 at
#: n=32 and 1.08 at n=38 for k=64, 0.90 at n=76 and 1.17 at n=96 for k=128
#: (limits 33 and 68 at cost 1); explicit 0.95 at n=57 (k=64), 0.71 at
#: n=96 and 1.13 at n=115 (k=128) (limits 54 and 108 at cost 1.3).
SHORT_ROW_COST = {"explicit": 1.3, "implicit": 1.0, "transformed": 1.3}

#: At most this many bytes of factors of ``B`` per half-step (weighted
#: regularization: one per ratings count).
SHORT_ROW_FACTOR_BYTES = 64 << 20


def short_row_limit(k, w0, cost=None, transformed=False):
    """Largest ratings count ``n`` of a row solved through the n x n system.

    Multiply-adds per row: the k x k path ``n k^2/2 + k^3/6 + 2 k^2``
    (SYRK, factorization, solve); the n x n path ``n^2 k/2 + n^3/6 + n k``
    for ``w0 = 0``, plus ``k^2 / 2 + n k`` with the other side
    ``transformed`` and ``n k^2 / 2 + k^2 + n k`` without (the triangular
    solves with ``B``'s factor).  Returns 0 where no ``n`` is cheaper that
    way.
    """
    path = "explicit" if not w0 else "transformed" if transformed else "implicit"
    cost = SHORT_ROW_COST[path] if cost is None else cost
    limit = 0
    for n in range(1, min(k, _gather_cap.py_func(k))):
        long = n * k * k / 2 + k ** 3 / 6 + 2 * k * k
        short = n * n * k / 2 + n ** 3 / 6 + n * k
        if w0 and transformed:
            short += k * k / 2 + n * k
        elif w0:
            short += n * k * k / 2 + n * k + k * k
        if not cost * short < long:
            break
        limit = n
    return limit


def short_row_setup(indptr, Y, G, lam, wr, w0, nmax=None, transform=None):
    """``(GB, mode)`` for :func:`_solve_cholesky`: ``G`` with the upper
    Cholesky factors ``U`` of ``B = w0 G + lam_u I`` stacked under it.

    One factor (``lam_u = lam``), or with weighted regularization one per
    ratings count ``n <= nmax`` (``lam_u = lam n``, factor ``n - 1``; only
    the counts that occur are factored).  A ``B`` that is not positive
    definite gets a NaN factor: its rows take the k x k path.  ``w0 = 0``
    needs no factor (``B = lam_u I``).  With one factor, where
    ``transform`` (default: where the short rows hold more ratings than
    ``Y`` has rows, so that it pays), the factor is replaced by
    ``V = U^{-T}`` (lower triangle) and ``Y U^{-1}`` is stacked under it,
    and the limit is then ``short_row_limit(..., transformed=True)``.
    ``nmax``: that limit instead of :func:`short_row_limit`'s.  Factors
    and inverse are computed in float64 from ``Y`` and ``G`` as the solver
    sees them, ``Y U^{-1}`` by one GEMM in their dtype, once per
    half-step.  ``mode`` is ``2 nmax + transformed`` (0: no short rows).
    """
    k = G.shape[0]
    if w0 == 0:
        return G, 2 * (short_row_limit(k, w0) if nmax is None else nmax)
    counts = np.diff(indptr)
    if not wr:
        nmax_t = short_row_limit(k, w0, transformed=True) if nmax is None else nmax
        if transform is None:
            transform = counts[counts <= nmax_t].sum() > Y.shape[0]
        if transform and nmax_t > 0:
            B = float(w0) * G.astype(np.float64)
            B[np.diag_indices(k)] += float(lam)
            try:
                U = np.triu(np.linalg.cholesky(B).T)
            except np.linalg.LinAlgError:
                return G, 0
            Ui = scipy.linalg.solve_triangular(U, np.eye(k))  # U^{-1}, upper
            GB = np.empty((2 * k + Y.shape[0], k), G.dtype)
            GB[:k] = G
            GB[k:2 * k] = Ui.T
            # Y U^{-1} as one GEMM in the factors' dtype (as the rows'
            # own triangular solves would be without the transform)
            np.matmul(Y, Ui.astype(G.dtype), out=GB[2 * k:])
            return GB, 2 * nmax_t + 1
    if nmax is None:
        nmax = short_row_limit(k, w0)
    if wr:
        nmax = int(min(nmax, SHORT_ROW_FACTOR_BYTES // (k * k * G.itemsize)))
        used = np.flatnonzero(np.bincount(counts[counts <= nmax], minlength=nmax + 1))
        used = used[used > 0]
        n_f = nmax
    else:
        used = np.array([1])
        n_f = 1
    if nmax <= 0 or used.size == 0:
        return G, 0
    GB = np.full(((1 + n_f) * k, k), np.nan, G.dtype)
    GB[:k] = G
    B0 = float(w0) * G.astype(np.float64)
    for n in used:
        B = B0.copy()
        B[np.diag_indices(k)] += float(lam) * (n if wr else 1)
        try:
            GB[n * k:(n + 1) * k] = np.triu(np.linalg.cholesky(B).T)
        except np.linalg.LinAlgError:
            pass
    return GB, 2 * nmax


#: A half-step takes the n x n path only where that saves at least this
#: many multiply-adds (:func:`short_row_saving`; about 10-20 ms of one
#: core).  The path is a C callback and a parallel kernel of their own,
#: about 5-7 s to compile on a cold cache: a first fit on small data (the
#: README's, MovieLens-100k: about 6e6 per item half-step) would wait
#: longer for them than they ever save it.
SHORT_ROW_MIN_SAVING = 1e8


def short_row_saving(indptr, k, w0):
    """Multiply-adds the n x n path saves on a half-step: the sum over rows
    with ``1 <= n <= short_row_limit(k, w0)`` ratings of the two paths'
    counts in :func:`short_row_limit` (its cost factor included; the
    untransformed count for ``w0 != 0``)."""
    nmax = short_row_limit(k, w0)
    counts = np.diff(indptr)
    n = counts[(counts > 0) & (counts <= nmax)].astype(np.float64)
    long = n * k * k / 2 + k ** 3 / 6 + 2 * k * k
    short = n * n * k / 2 + n ** 3 / 6 + n * k
    if w0:
        short += n * k * k / 2 + n * k + k * k
    cost = SHORT_ROW_COST["implicit" if w0 else "explicit"]
    return float((long - cost * short).sum())


def solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                   X, bounds, blas=None, short_rows=None):
    """Exact ALS half-step: overwrite every row of ``X`` with its solution.

    Per row: gather the row's item vectors into a contiguous per-chunk block,
    accumulate ``A`` with a SYRK (symmetric: one triangle), solve by
    Cholesky; or, for a row with few ratings (see :func:`short_row_limit`),
    solve the same system through an n x n one (push-through / Woodbury
    identity, see :func:`_short_system`): the same solution up to rounding.
    ``short_rows``: None (default) takes the n x n path where BLAS is used
    and it saves at least :data:`SHORT_ROW_MIN_SAVING` multiply-adds,
    True wherever rows are short enough, False never.  ``blas``: default
    :data:`.blas.USE_BLAS`.  Returns the number of rows whose system was
    not positive definite and needed the ridge fallback.
    """
    blas = USE_BLAS if blas is None else bool(blas)
    k = Y.shape[1]
    if short_rows is None:
        short_rows = (blas and k >= BLAS_MIN_FACTORS
                      and short_row_saving(indptr, k, w0) >= SHORT_ROW_MIN_SAVING)
    GB, mode = short_row_setup(indptr, Y, G, lam, wr, w0) if short_rows else (G, 0)
    work = indptr[-1] * k * (k + 1) // 2 + (indptr.size - 1) * k ** 3 // 3
    return int(_call(_solve_cholesky, work,
                     (indptr, indices, conf, target, offset, Y, GB, lam, wr, w0,
                      X, bounds, blas, mode)))
