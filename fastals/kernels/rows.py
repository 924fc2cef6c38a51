"""Exact row solves: the weighted row system, Cholesky with the ridge
fallback, and the parallel half-step :func:`solve_cholesky`.
"""

import numpy as np
from numba import njit, prange

from .blas import (BLAS_MIN_FACTORS, LAPACK_MIN_FACTORS, _blas_threads_local,
                   _potrf, _syrk, _syrk_loops, _with_blas)
from .chunks import _call
from .llvm import (FASTMATH, LOSS_MODE, PREFETCH_AHEAD, _ChunkCallback,
                   _chunk_views, _prefetch_entry, _take_next)
from .loss import _loss_rows

#: Factorizations tried per row before it is set to zero: the exact system,
#: then ridges of 1e-6 ... 1e21 times (mean diagonal + 1).
RIDGE_TRIES = 30


# ---------------------------------------------------------------------------
# Small dense building blocks (row-major upper triangle, typed scalars)
# ---------------------------------------------------------------------------
# Loops are written over slices from index 0: Numba's negative-index
# wraparound on ``A[i, j]`` with ``j`` starting at ``i`` stops LLVM from
# vectorizing them.  Scalars that enter inner loops are of the array dtype
# (``one`` is passed in) so float32 never silently widens to float64.


@njit(cache=True, fastmath=FASTMATH)
def _cholesky_upper(A, b, k, one):
    """Solve ``A x = b`` in place; ``A``'s row-major upper triangle is read.

    ``A`` is overwritten by its factor ``U`` (``A = U^T U``).  Returns False
    if ``A`` is not numerically positive definite (``A`` and ``b`` are then
    undefined).
    """
    if not _factor_upper(A, k, one):
        return False
    _solve_upper(A, b, k)
    return True


@njit(cache=True, fastmath=FASTMATH)
def _factor_upper(A, k, one):
    """Right-looking Cholesky ``A = U^T U`` of the row-major upper triangle,
    in panels of 4 rows: the panel is factored unblocked, then every
    trailing row gets one rank-4 update of its contiguous upper part."""
    j = 0
    while j < k:
        jb = min(4, k - j)
        for q in range(jb):
            r = j + q
            d = A[r, r]
            if not d > 0:
                return False
            d = np.sqrt(d)
            A[r, r] = d
            inv = one / d
            ur = A[r, r + 1:]
            for l in range(ur.size):
                ur[l] *= inv
            for s in range(r + 1, j + jb):
                f = A[r, s]
                As = A[s, s:]
                us = A[r, s:]
                for l in range(As.size):
                    As[l] -= f * us[l]
        if jb == 4:
            for i in range(j + 4, k):
                f0 = A[j, i]
                f1 = A[j + 1, i]
                f2 = A[j + 2, i]
                f3 = A[j + 3, i]
                Ai = A[i, i:]
                v0 = A[j, i:]
                v1 = A[j + 1, i:]
                v2 = A[j + 2, i:]
                v3 = A[j + 3, i:]
                for l in range(Ai.size):
                    Ai[l] -= (f0 * v0[l] + f1 * v1[l]) + (f2 * v2[l] + f3 * v3[l])
        else:
            for q in range(jb):
                r = j + q
                for i in range(j + jb, k):
                    f = A[r, i]
                    Ai = A[i, i:]
                    v = A[r, i:]
                    for l in range(Ai.size):
                        Ai[l] -= f * v[l]
        j += jb
    return True


@njit(cache=True, fastmath=FASTMATH)
def _solve_upper(A, b, k):
    """``b <- (U^T U)^{-1} b``: ``U^T z = b`` by column sweeps, then
    ``U x = z`` by row dot products."""
    for i in range(k):
        zi = b[i] / A[i, i]
        b[i] = zi
        bs = b[i + 1:]
        ui = A[i, i + 1:]
        for l in range(bs.size):
            bs[l] -= zi * ui[l]
    for i in range(k - 1, -1, -1):
        ui = A[i, i + 1:]
        bs = b[i + 1:]
        s = b[i]
        for l in range(bs.size):
            s -= ui[l] * bs[l]
        b[i] = s / A[i, i]


@njit(cache=True, fastmath=FASTMATH)
def _ridge_solve(A, A0, b, b0, k, one, delta, tries):
    """Fallback for a system that is not numerically positive definite.

    ``A0``/``b0`` hold the system (upper triangle of ``A0`` read).  A ridge
    ``delta * (mean diagonal + 1)``, ``delta`` growing tenfold per attempt,
    is added until the factorization succeeds; the result is then a
    (slightly) regularized least-squares solution instead of NaN.  After
    ``tries - 1`` failed attempts ``b`` is set to zero.  Returns the number
    of attempts.
    """
    scale = 0.0
    for i in range(k):
        scale += abs(A0[i, i])
    scale = scale / k + 1.0
    for attempt in range(1, tries):
        for i in range(k):
            for j in range(i, k):
                A[i, j] = A0[i, j]
            A[i, i] += delta * scale
            b[i] = b0[i]
        if _cholesky_upper(A, b, k, one):
            return attempt
        delta *= 10.0
    for i in range(k):
        b[i] = 0
    return tries


# ---------------------------------------------------------------------------
# Row solves
# ---------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
               A, b, B, iw, fw, cw, blas, one):
    """Fill the upper triangle of ``A`` and ``b`` for row ``u``.

    The row's item vectors are gathered into the contiguous block ``B``,
    scaled by ``sqrt|c - w0|`` (positive weights from the top, negative ones
    from the bottom), and added to ``A`` by a SYRK per block.

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
            if use_blas:
                _syrk(alpha, B, r0, m, A, iw, fw, cw)
            else:
                _syrk_loops(alpha, B, r0, m, A)
        p = q
    reg = lam
    if wr:
        reg = lam * (end - start)
    for i in range(k):
        A[i, i] += reg


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cholesky_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                   wr, w0, X, blas, cap):
    """Solve rows ``r0:r1`` (one chunk) with scratch allocated once; returns
    the number of rows that needed the ridge fallback.

    A row whose system is not numerically positive definite (``lam = 0``
    with fewer ratings than factors, say) is rebuilt with a growing ridge
    ``delta * (mean diagonal + 1)``, ``delta = 1e-6, 1e-5, ...``, until the
    factorization succeeds: a (slightly) regularized least-squares solution
    instead of NaN; after 29 tries the row is set to zero.  Each helper has
    one call site, which keeps compilation short.  Inlined into its C
    callback (see "Chunk functions behind C symbols"), never into a parallel
    loop's body, which is much more expensive to compile.
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
    fallbacks = 0
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    for u in range(r0, r1):
        delta = 0.0
        ok = False
        for attempt in range(RIDGE_TRIES):
            _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr,
                       w0, A, b, B, iw, fw, cw, blas, one)
            if attempt > 0:
                scale = 0.0
                for i in range(k):
                    scale += abs(A[i, i])
                shift = delta * (scale / k + 1.0)
                for i in range(k):
                    A[i, i] += shift
            if lapack:
                ok = _potrf(A, iw, cw) == 0
                if ok:
                    _solve_upper(A, b, k)
            else:
                ok = _cholesky_upper(A, b, k, one)
            if ok:
                break
            if attempt == 0:
                fallbacks += 1
                delta = 1e-6
            else:
                delta *= 10.0
        x = X[u]
        for i in range(k):
            x[i] = b[i] if ok else 0
    if blas:
        _blas_threads_local(prev)
    return fallbacks


def _cholesky_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                     Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                     blas, cap, mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    return float(_cholesky_rows(r0, r1, indptr, indices, conf, target, offset,
                                Y, G, lam, wr != 0, w0, X, blas != 0, cap))


_CHOLESKY = _ChunkCallback("cholesky_rows", _cholesky_rows_c)
_cholesky_chunk = _CHOLESKY.caller()


@_CHOLESKY.guard
@njit(parallel=True, cache=True)
def _solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                    X, bounds, blas, mode):
    """Solve every row (``mode`` 0: returns the number of ridge fallbacks)
    or sum the loss terms of every row (``mode`` :data:`LOSS_MODE`)."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)  # np.zeros: a parallel loop more
    cap = max(64, 65536 // k)  # gathered rows per SYRK: 256 KiB in float32
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_chunks:
            partial[c] = _cholesky_chunk(bounds[c], bounds[c + 1], indptr,
                                         indices, conf, target, offset, Y, G,
                                         lam, wr, w0, X, blas, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


@_with_blas
def solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                   X, bounds, blas):
    """Exact ALS half-step: overwrite every row of ``X`` with its solution.

    Per row: gather the row's item vectors into a contiguous per-chunk block,
    accumulate ``A`` with a SYRK (symmetric: one triangle), solve by
    Cholesky.  Returns the number of rows whose system was not positive
    definite and needed the ridge fallback.
    """
    k = Y.shape[1]
    work = indptr[-1] * k * (k + 1) // 2 + (indptr.size - 1) * k ** 3 // 3
    return int(_call(_solve_cholesky, work,
                     (indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                      X, bounds, blas, 0)))
