"""Conjugate-gradient row solves (Takacs et al. 2011), warm-started, and
the parallel half-step :func:`solve_cg`."""

import numpy as np
from numba import njit, prange

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
def _cg_gather(indices, conf, target, offset, Y, w0, p, n, B, wv, tv):
    """Copy entries ``p:p+n`` of a row into the block ``B`` with their
    weights ``c - w0`` and weighted targets ``c (t - offset)``."""
    k = Y.shape[1]
    for e in range(n):
        _prefetch_entry(indices, p + e + PREFETCH_AHEAD, Y)
        it = indices[p + e]
        cf = conf[p + e]
        wv[e] = cf - w0
        tv[e] = cf * (target[p + e] - offset[it])
        yr = Y[it]
        row = B[e]
        for j in range(k):
            row[j] = yr[j]


@njit(cache=True, fastmath=FASTMATH)
def _cg_accumulate(B, wv, tv, n, v, out, residual):
    """``out += sum_e s_e y_e`` over the block, 4 rows at a time, with
    ``s_e = tv_e - wv_e (y_e . v)`` (residual) or ``wv_e (y_e . v)``."""
    k = v.size
    e = 0
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


def solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
             bounds, steps):
    """Conjugate-gradient ALS half-step, warm-started from ``X``.

    Runs ``steps`` CG iterations on each row's system without forming
    ``A_u`` (Takacs et al. 2011): a product ``A_u v`` costs ``k^2`` for the
    shared ``w0 G v`` plus ``2 k`` per entry of the row.  The row's item
    vectors are gathered once into a contiguous block (up to ~1 MiB) that
    every CG step then streams from cache; longer rows are re-gathered block
    by block at each step.
    """
    k = Y.shape[1]
    work = (indptr[-1] * 4 * k + (indptr.size - 1) * k * k) * (steps + 1)
    return _call(_solve_cg, work, (indptr, indices, conf, target, offset, Y, G,
                                   lam, wr, w0, X, bounds, steps))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
             X, steps, cap):
    """CG for rows ``r0:r1`` (one chunk), scratch allocated once."""
    k = Y.shape[1]
    B = np.empty((cap, k), Y.dtype)
    wv = np.empty(cap, Y.dtype)
    tv = np.empty(cap, Y.dtype)
    r = np.empty(k, Y.dtype)
    d = np.empty(k, Y.dtype)
    Ad = np.empty(k, Y.dtype)
    Gv = np.zeros(k, Y.dtype)
    x = np.empty(k, Y.dtype)
    for u in range(r0, r1):
        start = indptr[u]
        end = indptr[u + 1]
        n = end - start
        if n == 0:
            # No ratings: the right-hand side is zero, so the exact solution
            # (Cholesky's, with the smallest ridge where lam_u = 0) is zero.
            # CG would stop at once on a zero residual and keep the start.
            for i in range(k):
                X[u, i] = 0
            continue
        reg = lam
        if wr:
            reg = lam * n
        for i in range(k):
            x[i] = X[u, i]
        once = n <= cap
        if once:
            _cg_gather(indices, conf, target, offset, Y, w0, start, n,
                       B, wv, tv)
        # r = b - A x
        if w0 != 0:
            _matvec(G, x, Gv)
        for i in range(k):
            r[i] = -w0 * Gv[i] - reg * x[i]
        if once:
            _cg_accumulate(B, wv, tv, n, x, r, True)
        else:
            p = start
            while p < end:
                m = min(cap, end - p)
                _cg_gather(indices, conf, target, offset, Y, w0, p, m,
                           B, wv, tv)
                _cg_accumulate(B, wv, tv, m, x, r, True)
                p += m
        rs = r[0] * r[0]
        for i in range(1, k):
            rs += r[i] * r[i]
        for i in range(k):
            d[i] = r[i]
        for _ in range(steps):
            if rs < 1e-20:
                break
            if w0 != 0:
                _matvec(G, d, Gv)
            for i in range(k):
                Ad[i] = w0 * Gv[i] + reg * d[i]
            if once:
                _cg_accumulate(B, wv, tv, n, d, Ad, False)
            else:
                p = start
                while p < end:
                    m = min(cap, end - p)
                    _cg_gather(indices, conf, target, offset, Y, w0, p,
                               m, B, wv, tv)
                    _cg_accumulate(B, wv, tv, m, d, Ad, False)
                    p += m
            dAd = d[0] * Ad[0]
            for i in range(1, k):
                dAd += d[i] * Ad[i]
            if not dAd > 0:
                break
            a = rs / dAd
            for i in range(k):
                x[i] += a * d[i]
                r[i] -= a * Ad[i]
            rs_new = r[0] * r[0]
            for i in range(1, k):
                rs_new += r[i] * r[i]
            beta = rs_new / rs
            for i in range(k):
                d[i] = r[i] + beta * d[i]
            rs = rs_new
        for i in range(k):
            X[u, i] = x[i]
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
             w0, X, mode, cap)
    return 0.0


_CG = _ChunkCallback("cg_rows", _cg_rows_c)
_cg_chunk = _CG.caller()


@_CG.guard
@njit(parallel=True, cache=True)
def _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
              bounds, mode):
    """``mode`` CG steps on every row, or (``mode`` :data:`LOSS_MODE`) the
    sum of the rows' loss terms."""
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
                                   False, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total
