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
def _matvec(G, v, out):
    """``out = G v`` for a small dense ``G``, four rows per sweep of ``v``."""
    k = v.size
    i = 0
    while i + 4 <= k:
        g0 = G[i]
        g1 = G[i + 1]
        g2 = G[i + 2]
        g3 = G[i + 3]
        s0 = g0[0] * v[0]
        s1 = g1[0] * v[0]
        s2 = g2[0] * v[0]
        s3 = g3[0] * v[0]
        for j in range(1, k):
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
        s0 = gi[0] * v[0]
        for j in range(1, k):
            s0 += gi[j] * v[j]
        out[i] = s0
        i += 1


@njit(cache=True, fastmath=FASTMATH)
def _cg_gather(indices, conf, target, offset, Y, w0, p, n, B, wv, tv, q):
    """Copy entries ``p:p+n`` of a row into rows ``q:q+n`` of the block
    ``B`` with their weights ``c - w0`` and weighted targets
    ``c (t - offset)``."""
    k = Y.shape[1]
    for e in range(n):
        _prefetch_entry(indices, p + e + PREFETCH_AHEAD, Y)
        it = indices[p + e]
        cf = conf[p + e]
        wv[q + e] = cf - w0
        tv[q + e] = cf * (target[p + e] - offset[it])
        yr = Y[it]
        row = B[q + e]
        for j in range(k):
            row[j] = yr[j]


@njit(cache=True, fastmath=FASTMATH)
def _cg_accumulate(B, wv, tv, o, n, v, out, residual):
    """``out += sum_e s_e y_e`` over rows ``o:o+n`` of the block, 4 rows at
    a time, with ``s_e = tv_e - wv_e (y_e . v)`` (residual) or
    ``wv_e (y_e . v)``."""
    k = v.size
    e = o
    n = o + n
    while e + 4 <= n:
        y0 = B[e]
        y1 = B[e + 1]
        y2 = B[e + 2]
        y3 = B[e + 3]
        d0 = y0[0] * v[0]
        d1 = y1[0] * v[0]
        d2 = y2[0] * v[0]
        d3 = y3[0] * v[0]
        for i in range(1, k):
            vi = v[i]
            d0 += y0[i] * vi
            d1 += y1[i] * vi
            d2 += y2[i] * vi
            d3 += y3[i] * vi
        if residual:
            s0 = tv[e] - wv[e] * d0
            s1 = tv[e + 1] - wv[e + 1] * d1
            s2 = tv[e + 2] - wv[e + 2] * d2
            s3 = tv[e + 3] - wv[e + 3] * d3
        else:
            s0 = wv[e] * d0
            s1 = wv[e + 1] * d1
            s2 = wv[e + 2] * d2
            s3 = wv[e + 3] * d3
        for i in range(k):
            out[i] += s0 * y0[i] + s1 * y1[i] + s2 * y2[i] + s3 * y3[i]
        e += 4
    while e < n:
        y0 = B[e]
        d0 = y0[0] * v[0]
        for i in range(1, k):
            d0 += y0[i] * v[i]
        if residual:
            s0 = tv[e] - wv[e] * d0
        else:
            s0 = wv[e] * d0
        for i in range(k):
            out[i] += s0 * y0[i]
        e += 1


#: Rows solved together: each CG step multiplies the block's search
#: directions by the shared ``G`` in one matrix product.  Measured (one
#: thread, float32, short-row set): SGEMM of 64 x k by k x k ran at 15-20
#: GFLOP/s against 8-11 for one matrix-vector loop per row, 32 rows at
#: 13-16; blocks of 32-256 rows gave the same half-step time within noise.
BLOCK_ROWS = 64
#: Gathered entries of a block of several rows, times ``k`` (256 KiB of
#: item vectors in float32): the block's vectors are read at every CG step
#: and must stay in the L2 cache (1 MiB measured 20 % slower than row by
#: row on the 20M set at k=128, 143 ratings per row).  A longer row forms
#: a block of its own.
BLOCK_VALUES = 65536
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
    block's item vectors are gathered once into a contiguous scratch block
    that every CG step then reads from cache; a row too long for it is
    re-gathered piece by piece at each step.  Blocks depend on the data
    only, never on the number of threads.
    """
    k = Y.shape[1]
    work = (indptr[-1] * 4 * k + (indptr.size - 1) * k * k) * (steps + 1)
    return _call(_solve_cg, work, (indptr, indices, conf, target, offset, Y, G,
                                   lam, wr, w0, X, bounds, USE_BLAS, steps))


@njit(cache=True, fastmath=FASTMATH)
def _times_g(M, m0, nb, G, GV, active, use_blas, iw, fw, cw):
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
                _matvec(G, M[m0 + j], GV[j])


@njit(cache=True, fastmath=FASTMATH)
def _cg_correct(indices, conf, target, offset, Y, w0, start, n, streamed,
                B, wv, tv, o, v, out, residual):
    """``out += sum_e s_e y_e`` over one row's ``n >= 1`` entries (see
    :func:`_cg_accumulate`): from the block at ``o`` or, for a row that is
    ``streamed``, gathered piece by piece.  One call site per helper: each
    call site with other argument types is compiled once more."""
    p = start
    end = start + n
    while p < end:
        m = n
        q = o
        if streamed:
            m = min(B.shape[0], end - p)
            q = p - p
            _cg_gather(indices, conf, target, offset, Y, w0, p, m, B, wv, tv, q)
        _cg_accumulate(B, wv, tv, q, m, v, out, residual)
        p += m


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
             X, steps, cap, blas):
    """CG for rows ``r0:r1`` (one chunk) in blocks, scratch allocated once.

    Pass 0 of a block computes the residuals ``r = b - A x`` of its rows,
    passes ``1..steps`` are the CG steps; both share one loop body (the
    products ``A v`` differ only in ``v`` and the sign), which halves the
    code to compile.
    """
    k = Y.shape[1]
    nbmax = BLOCK_ROWS
    bcap = min(cap, max(nbmax, BLOCK_VALUES // k))
    B = np.empty((cap, k), Y.dtype)
    wv = np.empty(cap, Y.dtype)
    tv = np.empty(cap, Y.dtype)
    R = np.empty((nbmax, k), Y.dtype)
    D = np.empty((nbmax, k), Y.dtype)
    GV = np.zeros((nbmax, k), Y.dtype)
    ad = np.empty(k, Y.dtype)
    rs = np.empty(nbmax, Y.dtype)
    regs = np.empty(nbmax, np.float64)  # lam * n_u, as a float64 scalar before
    active = np.zeros(nbmax, np.bool_)
    offs = np.empty(nbmax + 1, np.int64)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    use_blas = blas and k >= BLAS_MIN_FACTORS
    shared = w0 != 0
    prev = np.int32(1)
    if use_blas:
        prev = _blas_threads_local(1)
    u0 = r0
    while u0 < r1:
        # The block: consecutive rows while they fit in ``bcap`` gathered
        # entries; a longer row alone (re-gathered per step beyond ``cap``).
        total = indptr[u0 + 1] - indptr[u0]
        u1 = u0 + 1
        if total <= bcap:
            while u1 < r1 and u1 - u0 < nbmax:
                n = indptr[u1 + 1] - indptr[u1]
                if total + n > bcap:
                    break
                total += n
                u1 += 1
        nb = u1 - u0
        streamed = total > cap
        offs[0] = 0
        for j in range(nb):
            u = u0 + j
            n = indptr[u + 1] - indptr[u]
            offs[j + 1] = offs[j] + (0 if streamed else n)
            if not streamed:
                _cg_gather(indices, conf, target, offset, Y, w0, indptr[u], n,
                           B, wv, tv, offs[j])
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
                _times_g(M, m0, nb, G, GV, active, use_blas, iw, fw, cw)
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
                if shared:
                    g = GV[j]
                    for i in range(k):
                        out[i] = w0 * g[i] + reg * v[i]
                else:
                    for i in range(k):
                        out[i] = reg * v[i]
                if first:
                    for i in range(k):
                        out[i] = -out[i]
                _cg_correct(indices, conf, target, offset, Y, w0, indptr[u],
                            indptr[u + 1] - indptr[u], streamed, B, wv, tv,
                            offs[j], v, out, first)
                if first:
                    s = r[0] * r[0]
                    for i in range(1, k):
                        s += r[i] * r[i]
                    rs[j] = s
                    for i in range(k):
                        d[i] = r[i]
                    continue
                dAd = d[0] * ad[0]
                for i in range(1, k):
                    dAd += d[i] * ad[i]
                if not dAd > 0:
                    active[j] = False
                    continue
                a = rs[j] / dAd
                for i in range(k):
                    x[i] += a * d[i]
                    r[i] -= a * ad[i]
                rs_new = r[0] * r[0]
                for i in range(1, k):
                    rs_new += r[i] * r[i]
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
    cap = max(256, 262144 // k)
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
