"""Conjugate-gradient row solves (Takacs et al. 2011), warm-started, and
the parallel half-step :func:`solve_cg`."""

import numpy as np
from numba import njit, prange

from .blas import BLAS_MIN_FACTORS, USE_BLAS, _blas_threads_local, _gemm
from .chunks import _call
from .llvm import (FASTMATH, LOSS_MODE, PREFETCH_AHEAD, _ChunkCallback,
                   _chunk_views, _prefetch_entry, _take_next)
from .loss import _loss_rows


@njit(cache=True, fastmath=FASTMATH)
def _matvec(G, v, out, zero):
    """``out = G v`` for a small dense ``G``, four rows per sweep of ``v``
    (sums from a typed ``zero`` over all ``k`` entries: a loop from 1 to
    ``k`` left LLVM a scalar remainder of up to 15 iterations)."""
    k = v.size
    i = 0
    while i + 4 <= k:
        g0 = G[i]
        g1 = G[i + 1]
        g2 = G[i + 2]
        g3 = G[i + 3]
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        for j in range(k):
            vj = v[j]
            s0 += g0[j] * vj
            s1 += g1[j] * vj
            s2 += g2[j] * vj
            s3 += g3[j] * vj
        out[i] = s0
        out[i + 1] = s1
        out[i + 2] = s2
        out[i + 3] = s3
        i += 4
    while i < k:
        gi = G[i]
        s0 = zero
        for j in range(k):
            s0 += gi[j] * v[j]
        out[i] = s0
        i += 1


@njit(cache=True, fastmath=FASTMATH)
def _dot(a, b, zero):
    """``a . b`` summed from a typed ``zero`` (see :func:`_matvec`)."""
    s = zero
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@njit(cache=True, fastmath=FASTMATH)
def _cg_gather(indices, Y, p, n, B, q):
    """Copy the item vectors of entries ``p:p+n`` of a row into rows
    ``q:q+n`` of the block ``B``."""
    k = Y.shape[1]
    for e in range(n):
        _prefetch_entry(indices, p + e + PREFETCH_AHEAD, Y)
        yr = Y[indices[p + e]]
        row = B[q + e]
        for j in range(k):
            row[j] = yr[j]


@njit(cache=True, fastmath=FASTMATH)
def _cg_accumulate(indices, conf, target, offset, Y, w0, start, n, B, q, v,
                   out, residual, zero):
    """``out += sum_e s_e y_e`` over the entries ``start:start+n`` of one
    row, 4 entries at a time, with ``s_e = c_e (t_e - offset) - (c_e - w0)
    (y_e . v)`` (residual) or ``(c_e - w0) (y_e . v)``.

    The item vectors ``y_e`` are read from rows ``q:q+n`` of the gathered
    block ``B``, or where ``q < 0`` straight from ``Y`` (prefetched
    :data:`PREFETCH_AHEAD` entries ahead): a row that did not fit in the
    block is read in place at every CG step instead of being copied again.
    """
    k = v.size
    direct = q < 0
    e = 0
    while e + 4 <= n:
        p = start + e
        if direct:
            for a in range(4):
                _prefetch_entry(indices, p + a + PREFETCH_AHEAD, Y)
            y0 = Y[indices[p]]
            y1 = Y[indices[p + 1]]
            y2 = Y[indices[p + 2]]
            y3 = Y[indices[p + 3]]
        else:
            y0 = B[q + e]
            y1 = B[q + e + 1]
            y2 = B[q + e + 2]
            y3 = B[q + e + 3]
        d0 = zero
        d1 = zero
        d2 = zero
        d3 = zero
        for i in range(k):
            vi = v[i]
            d0 += y0[i] * vi
            d1 += y1[i] * vi
            d2 += y2[i] * vi
            d3 += y3[i] * vi
        c0 = conf[p]
        c1 = conf[p + 1]
        c2 = conf[p + 2]
        c3 = conf[p + 3]
        s0 = (c0 - w0) * d0
        s1 = (c1 - w0) * d1
        s2 = (c2 - w0) * d2
        s3 = (c3 - w0) * d3
        if residual:
            s0 = c0 * (target[p] - offset[indices[p]]) - s0
            s1 = c1 * (target[p + 1] - offset[indices[p + 1]]) - s1
            s2 = c2 * (target[p + 2] - offset[indices[p + 2]]) - s2
            s3 = c3 * (target[p + 3] - offset[indices[p + 3]]) - s3
        for i in range(k):
            out[i] += s0 * y0[i] + s1 * y1[i] + s2 * y2[i] + s3 * y3[i]
        e += 4
    while e < n:
        p = start + e
        if direct:
            y0 = Y[indices[p]]
        else:
            y0 = B[q + e]
        d0 = zero
        for i in range(k):
            d0 += y0[i] * v[i]
        c0 = conf[p]
        s0 = (c0 - w0) * d0
        if residual:
            s0 = c0 * (target[p] - offset[indices[p]]) - s0
        for i in range(k):
            out[i] += s0 * y0[i]
        e += 1


#: Rows solved together: each CG step multiplies the block's search
#: directions by the shared ``G`` in one matrix product (SGEMM of
#: ``nb x k`` by ``k x k``, one thread: about 50 GFLOP/s at 64 rows and
#: 60-70 at 128-256 rows for k=128, 15-25 at 8-16 rows).
BLOCK_ROWS = 128
#: Gathered entries of a block, times ``k`` (1 MiB of item vectors in
#: float32): a block's rows are copied into a contiguous scratch block that
#: every CG step then reads from cache, and the block ends where the next
#: row no longer fits.  A row longer than this is solved alone and read in
#: place from ``Y`` at every step.  Measured (one thread, CPU time, loaded
#: machine, k=128): one pass over gathered short rows took 0.45-0.6 of a
#: pass reading ``Y`` in place, the gather itself 0.7 of such a pass; 256
#: KiB and 1 MiB blocks alike within noise, 4 MiB 10-30 % slower.
GATHER_VALUES = 262144
#: Entries of a row too long for the gathered block that are still gathered,
#: times ``k`` (4 MiB of item vectors in float32): such a row is solved alone
#: from its own scratch block (allocated once per chunk, the size of the
#: chunk's longest such row), which its CG steps read from the last-level
#: cache instead of reading ``Y`` in place at random; longer rows are read
#: in place.  (On the short-row 3M set at k=128, item rows of 2049-8192
#: ratings hold 13 % of the ratings; rows of more, 17 %.)
LONG_GATHER_VALUES = 1 << 20
#: Fewer rows than this in a block: one matrix-vector loop per row instead
#: of a GEMM (a GEMM per single row measured 4-6x slower than the loop).
GEMM_MIN_ROWS = 12


def solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
             bounds, steps):
    """Conjugate-gradient ALS half-step, warm-started from ``X``.

    Runs ``steps`` CG iterations on each row's system without forming
    ``A_u`` (Takacs et al. 2011): a product ``A_u v`` costs ``k^2`` for the
    shared ``w0 G v`` plus ``2 k`` per entry of the row.  Rows are solved
    in blocks of up to :data:`BLOCK_ROWS` consecutive rows, so that the
    shared part of every CG step is one matrix product ``D G`` per block
    (BLAS GEMM) instead of one matrix-vector product per row; each row
    keeps its own step sizes and stops on its own (zero residual).  The
    item vectors of a block's rows are gathered once into a contiguous
    scratch block, as many rows as fit (:data:`GATHER_VALUES`), which
    every CG step then reads from cache; the other rows (long ones) are
    read in place from ``Y``.  Blocks depend on the data only, never on
    the number of threads.
    """
    k = Y.shape[1]
    work = (indptr[-1] * 4 * k + (indptr.size - 1) * k * k) * (steps + 1)
    return _call(_solve_cg, work, (indptr, indices, conf, target, offset, Y, G,
                                   lam, wr, w0, X, bounds, USE_BLAS, steps))


@njit(cache=True, fastmath=FASTMATH)
def _times_g(M, m0, nb, G, GV, active, use_blas, iw, fw, cw, zero):
    """``GV[j] = M[m0 + j] G`` for the rows ``j < nb`` of a block (``G``
    symmetric): one GEMM, or one matrix-vector loop per active row."""
    if use_blas and nb >= GEMM_MIN_ROWS:
        # column-major: GV^T (k x nb) = G^T (k x k) M^T (k x nb)
        k = G.shape[1]
        _gemm(78, 78, k, nb, k, G.ctypes.data, k,
              M.ctypes.data + m0 * k * M.itemsize, k, GV.ctypes.data, k,
              iw, fw, cw)
    else:
        for j in range(nb):
            if active[j]:
                _matvec(G, M[m0 + j], GV[j], zero)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
             X, steps, cap, blas):
    """CG for rows ``r0:r1`` (one chunk) in blocks, scratch allocated once;
    ``cap``: entries gathered per block.

    Pass 0 of a block computes the residuals ``r = b - A x`` of its rows,
    passes ``1..steps`` are the CG steps; both share one loop body (the
    products ``A v`` differ only in ``v`` and the sign), which halves the
    code to compile.
    """
    k = Y.shape[1]
    nbmax = BLOCK_ROWS
    B = np.empty((cap, k), Y.dtype)
    # rows too long for B but gathered alone: one scratch for the longest
    lcap = max(cap, LONG_GATHER_VALUES // k)
    longest = 0
    for u in range(r0, r1):
        n = indptr[u + 1] - indptr[u]
        if cap < n <= lcap and n > longest:
            longest = n
    L = np.empty((longest, k), Y.dtype)
    R = np.empty((nbmax, k), Y.dtype)
    D = np.empty((nbmax, k), Y.dtype)
    GV = np.zeros((nbmax, k), Y.dtype)
    ad = np.empty(k, Y.dtype)
    rs = np.empty(nbmax, Y.dtype)
    regs = np.empty(nbmax, np.float64)  # lam * n_u, as a float64 scalar before
    active = np.zeros(nbmax, np.bool_)
    offs = np.empty(nbmax, np.int64)  # row j's place in B, -1: read in place
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    zero = GV[0, 0]  # typed: sums stay in the factors' dtype
    use_blas = blas and k >= BLAS_MIN_FACTORS
    shared = w0 != 0
    prev = np.int32(1)
    if use_blas:
        prev = _blas_threads_local(1)
    u0 = r0
    while u0 < r1:
        # The block: up to ``nbmax`` consecutive rows while their entries
        # fit in the gathered block ``B``; a longer row alone, gathered into
        # ``L`` or (longer than ``lcap``) read in place.  Rows are gathered
        # in pass 0, each just before its first pass over the data.
        u1 = u0
        used = 0
        S = B
        while u1 < r1 and u1 - u0 < nbmax:
            n = indptr[u1 + 1] - indptr[u1]
            if used + n > cap:
                if u1 == u0:
                    offs[0] = -1
                    if n <= lcap:
                        offs[0] = 0
                        S = L
                    u1 += 1
                break
            offs[u1 - u0] = used
            used += n
            u1 += 1
        nb = u1 - u0
        for j in range(nb):
            u = u0 + j
            n = indptr[u + 1] - indptr[u]
            active[j] = n > 0
            rs[j] = 1  # pass 0 runs on every row with ratings
            if n == 0:
                # No ratings: the right-hand side is zero, so the exact
                # solution (Cholesky's, with the smallest ridge where
                # lam_u = 0) is zero.  CG would stop at once on a zero
                # residual and keep the start.
                for i in range(k):
                    X[u, i] = 0
                    D[j, i] = 0  # finite, for the block's GEMM
            regs[j] = lam * n if wr else lam
        for it in range(steps + 1):
            first = it == 0
            live = False
            for j in range(nb):
                if active[j] and rs[j] < 1e-20:
                    active[j] = False  # converged: its d may be stale
                live = live or active[j]
            if not live:
                break
            # pass 0: v = x, out = r = b - A x; steps: v = d, out = A d
            M = D
            m0 = u0 - u0
            if first:
                M = X
                m0 = u0
            if shared:
                _times_g(M, m0, nb, G, GV, active, use_blas, iw, fw, cw, zero)
            for j in range(nb):
                if not active[j]:
                    continue
                u = u0 + j
                x = X[u]
                r = R[j]
                d = D[j]
                v = M[m0 + j]
                out = ad
                if first:
                    out = r
                reg = regs[j]
                if shared:  # pass 0: r = -(w0 G x + reg x) + ...
                    g = GV[j]
                    if first:
                        for i in range(k):
                            out[i] = -(w0 * g[i] + reg * v[i])
                    else:
                        for i in range(k):
                            out[i] = w0 * g[i] + reg * v[i]
                elif first:
                    for i in range(k):
                        out[i] = -(reg * v[i])
                else:
                    for i in range(k):
                        out[i] = reg * v[i]
                n = indptr[u + 1] - indptr[u]
                if first and offs[j] >= 0:
                    _cg_gather(indices, Y, indptr[u], n, S, offs[j])
                _cg_accumulate(indices, conf, target, offset, Y, w0, indptr[u],
                               n, S, offs[j], v, out, first, zero)
                if first:
                    rs[j] = _dot(r, r, zero)
                    for i in range(k):
                        d[i] = r[i]
                    continue
                dAd = _dot(d, ad, zero)
                if not dAd > 0:
                    active[j] = False
                    continue
                a = rs[j] / dAd
                for i in range(k):
                    x[i] += a * d[i]
                    r[i] -= a * ad[i]
                rs_new = _dot(r, r, zero)
                beta = rs_new / rs[j]
                for i in range(k):
                    d[i] = r[i] + beta * d[i]
                rs[j] = rs_new
        u0 = u1
    if use_blas:
        _blas_threads_local(prev)
    return 0


def _cg_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
               G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap,
               mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr != 0,
             w0, X, mode, cap, blas != 0)
    return 0.0


_CG = _ChunkCallback("cg_rows", _cg_rows_c)
_cg_chunk = _CG.caller()


@_CG.guard
@njit(parallel=True, cache=True)
def _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
              bounds, blas, mode):
    """``mode`` CG steps on every row, or (``mode`` :data:`LOSS_MODE`) the
    sum of the rows' loss terms; ``blas``: block products by GEMM."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    cap = max(BLOCK_ROWS, GATHER_VALUES // k)
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_chunks:
            partial[c] = _cg_chunk(bounds[c], bounds[c + 1], indptr, indices,
                                   conf, target, offset, Y, G, lam, wr, w0, X,
                                   blas, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total
