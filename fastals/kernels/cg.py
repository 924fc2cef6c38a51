"""Conjugate-gradient row solves (Takacs et al. 2011), warm-started, in the
eigenbasis of the shared Gram matrix, and the parallel half-step
:func:`solve_cg`."""

import numpy as np
from numba import carray, njit, prange

from .blas import (BLAS_MIN_FACTORS, USE_BLAS, _blas_threads_local, _dsyev,
                   _gemm)
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


#: ``mode`` of :func:`_cg_accumulate`: ``A v`` (a CG step), the residual
#: ``b - A x`` (pass 0), or only the dots (the last CG step: ``d . A d``
#: needs no ``A d``).
PRODUCT, RESIDUAL, DOTS = 0, 1, 2


@njit(cache=True, fastmath=FASTMATH)
def _cg_accumulate(indices, conf, target, offset, Y, w0, start, n, B, q, v,
                   out, mode, zero):
    """``out += sum_e s_e y_e`` over the entries ``start:start+n`` of one
    row, 8 entries at a time from the gathered block (then 4, then one),
    with ``s_e = (c_e - w0) (y_e . v)``
    (``mode`` :data:`PRODUCT`) or ``c_e (t_e - offset) - (c_e - w0) (y_e .
    v)`` (:data:`RESIDUAL`); :data:`DOTS`: ``out`` untouched.  Returns
    ``sum_e (c_e - w0) (y_e . v)^2`` (the entries' part of ``v . A v``).

    The item vectors ``y_e`` are read from rows ``q:q+n`` of the gathered
    block ``B``, or where ``q < 0`` straight from ``Y`` (prefetched
    :data:`PREFETCH_AHEAD` entries ahead): a row that did not fit in the
    block is read in place at every CG step instead of being copied again.

    Eight entries per group load each chunk of ``v`` once per eight dots
    and each chunk of ``out`` once per eight updates (against four):
    per entry and pass 0.63-0.85 of the time of groups of four on rows of
    8-64 entries in L1 (``bench/cg_l1.py``, k=128, one thread).
    """
    k = v.size
    direct = q < 0
    residual = mode == RESIDUAL
    update = mode != DOTS
    vav = zero
    e = 0
    while e + 8 <= n and not direct:
        p = start + e
        y0 = B[q + e]
        y1 = B[q + e + 1]
        y2 = B[q + e + 2]
        y3 = B[q + e + 3]
        y4 = B[q + e + 4]
        y5 = B[q + e + 5]
        y6 = B[q + e + 6]
        y7 = B[q + e + 7]
        d0 = zero
        d1 = zero
        d2 = zero
        d3 = zero
        d4 = zero
        d5 = zero
        d6 = zero
        d7 = zero
        for i in range(k):
            vi = v[i]
            d0 += y0[i] * vi
            d1 += y1[i] * vi
            d2 += y2[i] * vi
            d3 += y3[i] * vi
            d4 += y4[i] * vi
            d5 += y5[i] * vi
            d6 += y6[i] * vi
            d7 += y7[i] * vi
        s0 = (conf[p] - w0) * d0
        s1 = (conf[p + 1] - w0) * d1
        s2 = (conf[p + 2] - w0) * d2
        s3 = (conf[p + 3] - w0) * d3
        s4 = (conf[p + 4] - w0) * d4
        s5 = (conf[p + 5] - w0) * d5
        s6 = (conf[p + 6] - w0) * d6
        s7 = (conf[p + 7] - w0) * d7
        vav += ((s0 * d0 + s1 * d1) + (s2 * d2 + s3 * d3)) + \
            ((s4 * d4 + s5 * d5) + (s6 * d6 + s7 * d7))
        if residual:
            s0 = conf[p] * (target[p] - offset[indices[p]]) - s0
            s1 = conf[p + 1] * (target[p + 1] - offset[indices[p + 1]]) - s1
            s2 = conf[p + 2] * (target[p + 2] - offset[indices[p + 2]]) - s2
            s3 = conf[p + 3] * (target[p + 3] - offset[indices[p + 3]]) - s3
            s4 = conf[p + 4] * (target[p + 4] - offset[indices[p + 4]]) - s4
            s5 = conf[p + 5] * (target[p + 5] - offset[indices[p + 5]]) - s5
            s6 = conf[p + 6] * (target[p + 6] - offset[indices[p + 6]]) - s6
            s7 = conf[p + 7] * (target[p + 7] - offset[indices[p + 7]]) - s7
        if update:
            for i in range(k):
                out[i] += (s0 * y0[i] + s1 * y1[i] + s2 * y2[i] + s3 * y3[i]) + \
                    (s4 * y4[i] + s5 * y5[i] + s6 * y6[i] + s7 * y7[i])
        e += 8
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
        vav += (s0 * d0 + s1 * d1) + (s2 * d2 + s3 * d3)
        if residual:
            s0 = c0 * (target[p] - offset[indices[p]]) - s0
            s1 = c1 * (target[p + 1] - offset[indices[p + 1]]) - s1
            s2 = c2 * (target[p + 2] - offset[indices[p + 2]]) - s2
            s3 = c3 * (target[p + 3] - offset[indices[p + 3]]) - s3
        if update:
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
        vav += s0 * d0
        if residual:
            s0 = c0 * (target[p] - offset[indices[p]]) - s0
        if update:
            for i in range(k):
                out[i] += s0 * y0[i]
        e += 1
    return vav

#: Rows rotated into and out of the eigenbasis together (one GEMM with
#: ``Q`` each way per block of a chunk: ``nb x k`` by ``k x k``, one
#: thread: about 50 GFLOP/s at 64 rows and 60-70 at 128-256 rows for
#: k=128, 15-25 at 8-16 rows).
BLOCK_ROWS = 128
#: Entries of a row whose item vectors are gathered, times ``k`` (4 MiB of
#: item vectors in float32): the rotated vectors of a row's entries are
#: copied once, in pass 0, into a scratch block of the chunk (sized for its
#: longest such row) that every later CG step reads from cache (a short
#: row's from L1) instead of reading the rotated factors at random; longer
#: rows are read in place (prefetched).  (On the short-row 3M set at
#: k=128, item rows of 2049-8192 ratings hold 13 % of the ratings; rows of
#: more, 17 %.)
LONG_GATHER_VALUES = 1 << 20
#: Fewer rows than this in a block: one matrix-vector loop per row instead
#: of a GEMM (a GEMM per single row measured 4-6x slower than the loop).
GEMM_MIN_ROWS = 12
#: ``mode = steps + m * SKIP_LONG`` (``m > 0``): ``steps`` CG steps on the
#: rows of fewer than ``m`` entries; longer rows are skipped, their rows
#: of ``X`` left to the caller (the push form of :mod:`.cg_push` solves
#: them).
SKIP_LONG = 1 << 20
#: ``mode`` of the chunk callback that rotates rows of ``Y`` into ``X``
#: (``X[r] = Y[r] Q``) instead of solving (see :func:`_solve_cg`).
ROTATE_MODE = -2
#: ``mode`` of the chunk callback that writes the eigenbasis of ``G`` (given
#: as ``Y``) and ``w0`` times its eigenvalues into ``X`` (see
#: :func:`_eigenbasis`).
EIGEN_MODE = -3


def solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
             bounds, steps):
    """Conjugate-gradient ALS half-step, warm-started from ``X``.

    Runs ``steps`` CG iterations on each row's system without forming
    ``A_u`` (Takacs et al. 2011), in the eigenbasis of the shared ``G``
    (see :func:`_solve_cg`): a product ``A_u v`` costs ``k`` for the
    shared ``(w0 G + lam_u I) v`` plus ``2 k`` per entry of the row.
    """
    return _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                     X, bounds, USE_BLAS, steps)


def _eigenbasis(G, w0, k, dtype):
    """``(QS, rotate)``: ``QS`` is ``(k + 1) x k``, the eigenvectors of ``G``
    (columns of ``Q``, ``G = Q diag(s) Q^T``, in float64 then rounded) then
    ``w0 s`` in its last row; ``rotate`` False (``QS`` then ``1 x k``,
    zeros) where there is no shared part (``w0 = 0``).  A non-finite ``G``
    gives NaN in ``w0 s`` (every row then keeps its start, as before).

    LAPACK's xSYEV is called from the callback (:data:`EIGEN_MODE`), with
    OpenBLAS at one thread: ``numpy.linalg.eigh`` left OpenBLAS's worker
    threads spinning for about 0.1 s of CPU after each call, on a core the
    solve then needed."""
    if not w0:
        return np.zeros((1, k), dtype), False
    QS = np.empty((k + 1, k), dtype)
    if np.isfinite(G).all():
        none = np.zeros(0, dtype)
        G = np.ascontiguousarray(G, dtype)
        _solve_cg_rows(np.zeros(k + 2, np.int64), np.zeros(0, np.int32), none,
                       none, none, G, QS, dtype.type(0), False, dtype.type(w0),
                       QS, np.array([0, 1], np.int64), True, EIGEN_MODE)
    else:
        QS[:k] = np.eye(k)
        QS[k] = np.nan
    return QS, True


def _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
              bounds, blas, mode):
    """:func:`solve_cg` with ``blas`` (block products by GEMM) and ``mode``
    (the number of CG steps, or :data:`~.llvm.LOSS_MODE`: the sum of the
    rows' loss terms, ``X`` and ``Y`` as they are).

    Every row shares ``w0 G``, and its own penalty ``lam_u I`` is a multiple
    of the identity, so in the eigenbasis of ``G = Q diag(s) Q^T`` the
    shared part of every row's matrix is the diagonal ``w0 s + lam_u``.  CG
    is unchanged by an orthogonal change of variables (the same iterates
    up to rounding): the other side is rotated once per half-step
    (``Y Q``, one GEMM per chunk of its rows), each block of
    :data:`BLOCK_ROWS` rows of ``X`` is rotated in (``X Q``) and out
    (``X Q^T``) around its solves, and the CG steps in between cost ``k``
    per row for the shared part instead of a product with ``G``.  So a row
    no longer waits for the other rows of a block: it takes all its steps
    at once, on its item vectors gathered in pass 0 (from L1 for a short
    row).  Chunks and blocks depend on the data only, never on the number
    of threads.
    """
    if mode < 0:
        return _solve_cg_rows(indptr, indices, conf, target, offset, Y, G, lam,
                              wr, w0, X, bounds, blas, mode)
    k = Y.shape[1]
    QS, rotate = _eigenbasis(G, w0, k, Y.dtype)
    if rotate:
        Y = _rotated_other(Y, QS, lam, wr, w0, blas)
    work = (indptr[-1] * 4 * k + (indptr.size - 1) * k * 8) * (mode + 1) + \
        (indptr.size - 1) * k * k * 2
    return _call(_solve_cg_rows, work, (indptr, indices, conf, target, offset, Y,
                                        QS, lam, wr, w0, X, bounds, blas, mode))


def _rotated_other(Y, QS, lam, wr, w0, blas):
    """``Y Q`` (``Q = QS[:k]``), in chunks of rows of ``Y`` by the parallel
    kernel (:data:`ROTATE_MODE`)."""
    n_y, k = Y.shape
    none = np.zeros(0, Y.dtype)
    Yq = np.empty_like(Y)
    ybounds = np.linspace(0, n_y, min(max(n_y, 1), 16) + 1).astype(np.int64)
    _call(_solve_cg_rows, n_y * k * k,
          (np.zeros(n_y + 1, np.int64), np.zeros(0, np.int32), none, none,
           none, Y, QS, lam, wr, w0, Yq, ybounds, blas, ROTATE_MODE))
    return Yq


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _rotate(S, s0, nb, QS, D, d0, back, use_blas, iw, fw, cw, zero):
    """``D[d0:d0+nb] = S[s0:s0+nb] Q`` (``back``: ``Q^T``), ``Q = QS[:k]``:
    one GEMM, or a loop per row below :data:`GEMM_MIN_ROWS` rows."""
    k = QS.shape[1]
    if use_blas and nb >= GEMM_MIN_ROWS:
        # column-major: D^T (k x nb) = op(Q)^T... : Q's row-major memory is
        # Q^T column-major, so 'N' gives (S Q)^T = Q^T S^T, 'T' (S Q^T)^T
        _gemm(84 if back else 78, 78, k, nb, k, QS.ctypes.data, k,
              S.ctypes.data + s0 * k * S.itemsize, k,
              D.ctypes.data + d0 * k * D.itemsize, k, iw, fw, cw)
    elif back:
        for j in range(nb):
            _matvec(QS, S[s0 + j], D[d0 + j], zero)  # rows 0..k-1 of QS: Q
    else:
        for j in range(nb):
            src = S[s0 + j]
            dst = D[d0 + j]
            for i in range(k):
                dst[i] = zero
            for a in range(k):
                sa = src[a]
                qa = QS[a]
                for i in range(k):
                    dst[i] += sa * qa[i]


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _cg_row(indices, conf, target, offset, Y, w0, p, n, S, q, x, dg, r, d, ad,
            steps, zero):
    """``steps`` CG steps on one row (entries ``p:p+n``), in place on ``x``:
    ``A v = dg * v + sum_e (c_e - w0) (y_e . v) y_e``.  ``q``: 0 to gather
    the item vectors into ``S`` in pass 0 and read them from there, -1 to
    read them in place from ``Y``.

    Pass 0 computes the residual ``r = b - A x``, passes ``1..steps`` are
    the CG steps; both share one loop body (the products ``A v`` differ
    only in ``v`` and the sign), which halves the code to compile.  The
    last step needs no ``A d``, only ``d . A d = sum_i dg_i d_i^2 + sum_e
    (c_e - w0) (y_e . d)^2``: its pass forms only the entries' dots
    (:data:`DOTS`), and it updates only ``x``.  (Every step's ``d . A d``
    from the dots, instead of from the ``A d`` that updates ``r``, made
    float32 results less accurate: on the short-row set at k=128, 505
    rows more than 1e-3 off the float64 result against 71.)"""
    k = x.size
    rs = zero
    for it in range(steps + 1):
        first = it == 0
        v = d
        out = ad
        if first:
            v = x
            out = r
            for i in range(k):
                out[i] = -(dg[i] * v[i])
            if q >= 0:
                _cg_gather(indices, Y, p, n, S, q)
        else:
            if rs < 1e-20:
                break  # converged (or a zero right-hand side): keep x
            for i in range(k):
                out[i] = dg[i] * v[i]
        last = it == steps and not first
        vav = _cg_accumulate(indices, conf, target, offset, Y, w0, p, n, S, q,
                              v, out, RESIDUAL if first else
                              (DOTS if last else PRODUCT), zero)
        if first:
            rs = _dot(r, r, zero)
            for i in range(k):
                d[i] = r[i]
            continue
        dad = _dot(d, ad, zero)  # last step: ad = dg * d only
        if last:
            dad += vav
        if not dad > 0:
            break
        a = rs / dad
        if last:
            for i in range(k):
                x[i] += a * d[i]
            break
        rs_new = zero
        for i in range(k):
            x[i] += a * d[i]
            ri = r[i] - a * ad[i]
            r[i] = ri
            rs_new += ri * ri
        beta = rs_new / rs
        for i in range(k):
            d[i] = r[i] + beta * d[i]
        rs = rs_new


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, QS, lam, wr, w0,
             X, steps, cap, blas, skip):
    """CG for rows ``r0:r1`` (one chunk), scratch allocated once; ``Y``
    already rotated, ``QS`` as :func:`_eigenbasis` makes it; ``cap``: the
    longest row whose item vectors are gathered; ``skip``: rows of at least
    ``skip`` entries are not solved (0: none, see :data:`SKIP_LONG`)."""
    k = Y.shape[1]
    rotate = QS.shape[0] == k + 1
    ws = QS[QS.shape[0] - 1]  # w0 * eigenvalues of G
    longest = 0
    for u in range(r0, r1):
        n = indptr[u + 1] - indptr[u]
        if n <= cap and n > longest:
            longest = n
    S = np.empty((longest, k), Y.dtype)
    Z = np.empty((BLOCK_ROWS, k), Y.dtype)
    r = np.empty(k, Y.dtype)
    d = np.empty(k, Y.dtype)
    ad = np.empty(k, Y.dtype)
    dg = np.empty(k, Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    zero = np.zeros(1, Y.dtype)[0]  # typed: sums stay in the factors' dtype
    use_blas = blas and k >= BLAS_MIN_FACTORS
    prev = np.int32(1)
    if use_blas:
        prev = _blas_threads_local(1)
    solve = steps >= 0  # else ROTATE_MODE: X[r0:r1] = Y[r0:r1] Q
    u0 = r0
    while u0 < r1:
        nb = min(BLOCK_ROWS, r1 - u0)
        # phase 0: the block rotated in (X Q into Z); phase 1: its rows
        # solved, then rotated out (Z Q^T into X); one call site of the
        # rotation, which is inlined
        for phase in range(2 if solve else 1):
            back = phase == 1
            if back:
                for j in range(nb):
                    u = u0 + j
                    x = Z[j]
                    p = indptr[u]
                    n = indptr[u + 1] - p
                    if n == 0:
                        # No ratings: the right-hand side is zero, so the
                        # exact solution (Cholesky's, with the smallest
                        # ridge where lam_u = 0) is zero.  CG would stop at
                        # once on a zero residual and keep the start.
                        for i in range(k):
                            x[i] = 0
                        continue
                    if skip and n >= skip:
                        continue
                    reg = lam * n if wr else lam
                    for i in range(k):
                        dg[i] = ws[i] + reg
                    _cg_row(indices, conf, target, offset, Y, w0, p, n, S,
                            0 if n <= cap else -1, x, dg, r, d, ad, steps, zero)
            src = X
            s0 = u0
            dst = Z
            d0 = u0 - u0
            if back:
                src = Z
                s0 = d0
                dst = X
                d0 = u0
            elif not solve:
                src = Y
                dst = X
                d0 = u0
            if rotate:
                _rotate(src, s0, nb, QS, dst, d0, back, use_blas, iw, fw, cw,
                        zero)
            else:
                for j in range(nb):
                    for i in range(k):
                        dst[d0 + j, i] = src[s0 + j, i]
        u0 += nb
    if use_blas:
        _blas_threads_local(prev)
    return 0


@njit(cache=True, forceinline=True)
def _eigen(G, w0, QS):
    """``QS[:k] = Q`` and ``QS[k] = w0 s`` for ``G = Q diag(s) Q^T``
    (LAPACK DSYEV in float64, OpenBLAS at one thread)."""
    k = G.shape[0]
    A = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(k):
            A[i, j] = G[i, j]
    s = np.empty(k, np.float64)
    lwork = 66 * k + 64
    work = np.empty(lwork, np.float64)
    iw = np.empty(4, np.int32)
    iw[0] = k
    iw[1] = lwork
    iw[2] = 0
    cw = np.empty(2, np.uint8)
    cw[0] = 86  # 'V': eigenvectors too
    cw[1] = 76  # 'L' (G symmetric: either triangle)
    prev = _blas_threads_local(1)
    ip = iw.ctypes.data
    isz = iw.itemsize
    _dsyev(cw.ctypes.data, cw.ctypes.data + 1, ip, A.ctypes.data, ip,
           s.ctypes.data, work.ctypes.data, ip + isz, ip + 2 * isz)
    _blas_threads_local(prev)
    if iw[2] != 0:
        for i in range(k):
            s[i] = np.nan  # no convergence: every row keeps its start
    # column-major eigenvector columns are the rows of A: Q = A^T
    for i in range(k):
        for j in range(k):
            QS[i, j] = A[j, i]
        QS[k, i] = w0 * s[i]


def _cg_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
               G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap,
               mode):
    indptr, indices, conf, target, offset, Y, _, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, 0)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    QS = carray(G_p, (n_g, k))
    if mode == EIGEN_MODE:  # Y: G (k x k); G and X: QS
        _eigen(Y[:k], w0, QS)
        return 0.0
    skip = mode // SKIP_LONG if mode > 0 else 0
    _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, QS, lam, wr != 0,
             w0, X, mode - skip * SKIP_LONG, cap, blas != 0, skip)
    return 0.0


_CG = _ChunkCallback("cg_rows", _cg_rows_c)
_cg_chunk = _CG.caller()


@_CG.guard
@njit(parallel=True, cache=True)
def _solve_cg_rows(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
                   bounds, blas, mode):
    """The parallel loop of :func:`_solve_cg` over the chunks ``bounds``:
    ``mode`` CG steps on every row (``G``: the eigenbasis and ``w0 s``, see
    :func:`_eigenbasis`), the rows of ``Y`` rotated into ``X``
    (:data:`ROTATE_MODE`), or (:data:`LOSS_MODE`) the sum of the rows' loss
    terms."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    cap = LONG_GATHER_VALUES // k
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
