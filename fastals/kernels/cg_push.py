"""Conjugate-gradient half-step of a side with few rows, in the other
side's row order ("push" form): :func:`solve_cg_push`.

The gather form (:mod:`.cg`) solves one row at a time and reads the
vectors of its entries from the other side's factors at random.  For a side
whose rows are few and long (the items of a log with many users) those
reads dominate: the users' rotated vectors are far larger than the caches,
and a long row is read again at every CG pass.  Here all rows of a block
of this side take their CG steps in lockstep, and every pass streams the
other side's CSR (the users' rows, item ids ascending within a row): each
user's vector is loaded once per pass and block, sequentially, and pushed
into the accumulators of the block's rows it rated, which are small and
hot (the rows of this side are few).  In the eigenbasis of the shared Gram
matrix as in :mod:`.cg`; the per-row scalar CG updates between passes are
those of :func:`.cg._cg_row`.

Every row sums its entries in ascending order of the other side's rows,
whatever the blocks are and whichever thread takes a block, so results do
not depend on the number of blocks or threads.
"""

import numpy as np
from numba import carray, njit, prange

from .blas import BLAS_MIN_FACTORS, USE_BLAS, _blas_threads_local
from .cg import _eigenbasis, _rotate, _rotated_other
from .chunks import _call
from .llvm import FASTMATH, _ChunkCallback, _take_next

#: Most memory (bytes) the push form may hold for the lockstep vectors of
#: the solved side (four ``n_rows x k`` arrays: the iterate, residual,
#: direction and product): above it the gather form is used.
PUSH_MAX_BYTES = 256 << 20
#: The push form is used where the solved side has at most this fraction
#: of the other side's rows (its lockstep vectors are then small against
#: the other side's factors, which every pass streams) ...
PUSH_MAX_ROW_RATIO = 0.5
#: ... and its rows hold at least this many entries on average (a pass
#: streams every row of the other side once per block: short rows do not
#: pay for it).
PUSH_MIN_MEAN_ROW = 32


def push_form(n_rows, n_other, nnz, k, itemsize):
    """True where the push form should solve a side of ``n_rows`` rows
    against ``n_other`` rows of the other side (``nnz`` entries, ``k``
    factors of ``itemsize`` bytes): by shape only, never by thread count
    (see :data:`PUSH_MAX_ROW_RATIO`, :data:`PUSH_MIN_MEAN_ROW`,
    :data:`PUSH_MAX_BYTES`)."""
    if n_rows == 0 or n_other == 0:
        return False
    return (n_rows <= PUSH_MAX_ROW_RATIO * n_other
            and nnz >= PUSH_MIN_MEAN_ROW * n_rows
            and 4 * (n_rows + 4) * k * itemsize <= PUSH_MAX_BYTES)


def push_blocks(counts, n_blocks=8):
    """Contiguous blocks of rows with similar entry counts (at most
    ``n_blocks``, fewer for few rows; fixed by the data)."""
    n = counts.size
    nb = int(max(1, min(n_blocks, n // 64)))
    cum = np.cumsum(counts, dtype=np.float64) + np.arange(1, n + 1)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, nb) / nb, side="right") \
        if n else np.zeros(0, np.int64)
    bounds = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    return np.unique(bounds)


def solve_cg_push(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
                  bounds, steps):
    """Conjugate-gradient half-step of the rows of ``X`` in the push form.

    The same system and steps as :func:`.cg.solve_cg` (``X`` warm start,
    solved in place), but ``indptr, indices, conf, target`` are the OTHER
    side's CSR (rows of ``Y``; ``indices``: rows of ``X``, ascending within
    a row; ``conf``/``target`` the values of the solved rows' entries in
    that order) and ``offset`` is indexed by the rows of ``Y`` as in the
    gather form.  ``bounds``: blocks of rows of ``X`` (:func:`push_blocks`).
    """
    return _solve_push(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                       X, bounds, USE_BLAS, steps)


def _solve_push(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
                bounds, blas, steps):
    k = Y.shape[1]
    QS, rotate = _eigenbasis(G, w0, k, Y.dtype)
    if rotate:
        Y = _rotated_other(Y, QS, lam, wr, w0, blas)
    work = indices.size * 4 * k * (steps + 1) + X.shape[0] * k * k * 2
    return _call(_solve_push_rows, work, (indptr, indices, conf, target, offset,
                                          Y, QS, lam, wr, w0, X, bounds, blas,
                                          steps))


@njit(cache=True, inline="always")
def _lower(indices, a, b, value):
    """First position in ``indices[a:b]`` (ascending) whose value is at
    least ``value`` (``b`` if none)."""
    while a < b:
        m = (a + b) >> 1
        if indices[m] < value:
            a = m + 1
        else:
            b = m
    return a


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _push4(y, off, V, O, sl, pe, conf, target, w0, residual, zero):
    """Four entries of one other-side row ``y``: ``d = y . V[j]``, ``s =
    (c - w0) d`` (``residual``: ``c (t - off) - (c - w0) d``), ``O[j] += s
    y`` for the block rows ``j = sl[0..3]``; an unused lane (``pe < 0``)
    has a zero row of ``V`` and a junk row of ``O`` of its own, so every
    entry takes the same arithmetic whatever its lane."""
    k = y.size
    v0 = V[sl[0]]
    v1 = V[sl[1]]
    v2 = V[sl[2]]
    v3 = V[sl[3]]
    d0 = zero
    d1 = zero
    d2 = zero
    d3 = zero
    for i in range(k):
        yi = y[i]
        d0 += v0[i] * yi
        d1 += v1[i] * yi
        d2 += v2[i] * yi
        d3 += v3[i] * yi
    s = (d0, d1, d2, d3)
    c0 = zero
    c1 = zero
    c2 = zero
    c3 = zero
    t0 = zero
    t1 = zero
    t2 = zero
    t3 = zero
    if pe[0] >= 0:
        c0 = conf[pe[0]]
        t0 = target[pe[0]]
    if pe[1] >= 0:
        c1 = conf[pe[1]]
        t1 = target[pe[1]]
    if pe[2] >= 0:
        c2 = conf[pe[2]]
        t2 = target[pe[2]]
    if pe[3] >= 0:
        c3 = conf[pe[3]]
        t3 = target[pe[3]]
    s0 = (c0 - w0) * s[0]
    s1 = (c1 - w0) * s[1]
    s2 = (c2 - w0) * s[2]
    s3 = (c3 - w0) * s[3]
    if residual:
        s0 = c0 * (t0 - off) - s0
        s1 = c1 * (t1 - off) - s1
        s2 = c2 * (t2 - off) - s2
        s3 = c3 * (t3 - off) - s3
    o0 = O[sl[0]]
    o1 = O[sl[1]]
    o2 = O[sl[2]]
    o3 = O[sl[3]]
    for i in range(k):
        yi = y[i]
        o0[i] += s0 * yi
        o1[i] += s1 * yi
        o2[i] += s2 * yi
        o3[i] += s3 * yi


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _sweep(i0, i1, indptr, indices, conf, target, offset, Y, w0, act, V, O,
           residual, sl, pe, zero):
    """One pass over the other side's rows: ``O[j] += sum_e s_e y_e`` for
    every active block row ``j`` (row ``i0 + j``), entries in ascending
    order of the other side's rows, four at a time (see :func:`_push4`)."""
    nb = i1 - i0
    for u in range(indptr.size - 1):
        a = indptr[u]
        b = indptr[u + 1]
        if a == b or indices[a] >= i1 or indices[b - 1] < i0:
            continue
        lo = _lower(indices, a, b, i0)
        hi = _lower(indices, lo, b, i1)
        y = Y[u]
        off = offset[u]
        m = 0
        for p in range(lo, hi):
            j = indices[p] - i0
            if act[j]:
                sl[m] = j
                pe[m] = p
                m += 1
                if m == 4:
                    _push4(y, off, V, O, sl, pe, conf, target, w0, residual,
                           zero)
                    m = 0
        if m > 0:
            for q in range(m, 4):
                sl[q] = nb + q  # a zero row of V, a junk row of O
                pe[q] = -1
            _push4(y, off, V, O, sl, pe, conf, target, w0, residual, zero)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _push_block(i0, i1, indptr, indices, conf, target, offset, Y, QS, lam, wr,
                w0, X, steps, blas):
    """``steps`` CG steps in lockstep on rows ``i0:i1`` of ``X`` (one block),
    scratch allocated once; ``Y`` already rotated, ``QS`` as
    :func:`.cg._eigenbasis` makes it."""
    k = Y.shape[1]
    nb = i1 - i0
    dt = Y.dtype
    rotate = QS.shape[0] == k + 1
    ws = QS[QS.shape[0] - 1]  # w0 * eigenvalues of G
    V = np.zeros((nb + 4, k), dt)  # iterates; rows nb.. stay zero (lanes)
    R = np.zeros((nb + 4, k), dt)  # residuals
    D = np.zeros((nb + 4, k), dt)  # directions
    AD = np.zeros((nb + 4, k), dt)  # products A d
    rs = np.zeros(nb, dt)
    cnt = np.zeros(nb, np.int64)
    act = np.zeros(nb, np.uint8)
    dg = np.empty(k, dt)
    sl = np.empty(4, np.int64)
    pe = np.empty(4, np.int64)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, dt)
    cw = np.empty(4, np.uint8)
    zero = np.zeros(1, dt)[0]  # typed: sums stay in the factors' dtype
    use_blas = blas and k >= BLAS_MIN_FACTORS
    prev = np.int32(1)
    if use_blas:
        prev = _blas_threads_local(1)
    for u in range(indptr.size - 1):  # entries per row of the block
        a = indptr[u]
        b = indptr[u + 1]
        if a == b or indices[a] >= i1 or indices[b - 1] < i0:
            continue
        lo = _lower(indices, a, b, i0)
        for p in range(lo, _lower(indices, lo, b, i1)):
            cnt[indices[p] - i0] += 1
    # phase 0: the block rotated in (X Q into V), then solved; phase 1:
    # rotated out (V Q^T into X); one call site of the rotation
    for phase in range(2):
        back = phase == 1
        if back:
            for j in range(nb):
                if cnt[j] == 0:
                    # No ratings: b = 0, the exact solution is zero (see
                    # :func:`.cg._cg_rows`).
                    for i in range(k):
                        V[j, i] = 0
                else:
                    act[j] = 1
            for it in range(steps + 1):
                first = it == 0
                live = 0
                for j in range(nb):
                    if act[j] == 0:
                        continue
                    if not first and rs[j] < 1e-20:
                        act[j] = 0  # converged (or a zero right-hand side)
                        continue
                    live += 1
                    reg = lam * cnt[j] if wr else lam
                    for i in range(k):
                        dg[i] = ws[i] + reg
                    if first:
                        for i in range(k):
                            R[j, i] = -(dg[i] * V[j, i])
                    else:
                        for i in range(k):
                            AD[j, i] = dg[i] * D[j, i]
                if live == 0:
                    break
                if first:
                    _sweep(i0, i1, indptr, indices, conf, target, offset, Y, w0,
                           act, V, R, True, sl, pe, zero)
                else:
                    _sweep(i0, i1, indptr, indices, conf, target, offset, Y, w0,
                           act, D, AD, False, sl, pe, zero)
                for j in range(nb):
                    if act[j] == 0:
                        continue
                    r = R[j]
                    d = D[j]
                    if first:
                        s = zero
                        for i in range(k):
                            s += r[i] * r[i]
                            d[i] = r[i]
                        rs[j] = s
                        continue
                    ad = AD[j]
                    x = V[j]
                    dAd = zero
                    for i in range(k):
                        dAd += d[i] * ad[i]
                    if not dAd > 0:
                        act[j] = 0
                        continue
                    al = rs[j] / dAd
                    rs_new = zero
                    for i in range(k):
                        x[i] += al * d[i]
                        ri = r[i] - al * ad[i]
                        r[i] = ri
                        rs_new += ri * ri
                    beta = rs_new / rs[j]
                    for i in range(k):
                        d[i] = r[i] + beta * d[i]
                    rs[j] = rs_new
        src = X
        s0 = i0
        dst = V
        d0 = i0 - i0
        if back:
            src = V
            s0 = d0
            dst = X
            d0 = i0
        if rotate:
            _rotate(src, s0, nb, QS, dst, d0, back, use_blas, iw, fw, cw, zero)
        else:
            for j in range(nb):
                for i in range(k):
                    dst[d0 + j, i] = src[s0 + j, i]
    if use_blas:
        _blas_threads_local(prev)
    return 0


def _push_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
                 G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap,
                 mode):
    # indptr: the other side's rows (those of Y); X: the solved rows
    indptr = carray(indptr_p, n_other + 1)
    indices = carray(indices_p, nnz)
    conf = carray(conf_p, nnz)
    target = carray(target_p, nnz)
    offset = carray(offset_p, n_other)
    Y = carray(Y_p, (n_other, k))
    QS = carray(G_p, (n_g, k))
    X = carray(X_p, (n_rows, k))
    _push_block(r0, r1, indptr, indices, conf, target, offset, Y, QS, lam,
                wr != 0, w0, X, mode, blas != 0)
    return 0.0


_PUSH = _ChunkCallback("cg_push", _push_rows_c)
_push_chunk = _PUSH.caller()


@_PUSH.guard
@njit(parallel=True, cache=True)
def _solve_push_rows(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                     X, bounds, blas, steps):
    """The parallel loop of :func:`solve_cg_push` over the blocks
    ``bounds`` of rows of ``X``, handed out by a queue."""
    n_blocks = bounds.size - 1
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_blocks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_blocks:
            _push_chunk(bounds[c], bounds[c + 1], indptr, indices, conf, target,
                        offset, Y, G, lam, wr, w0, X, blas, 0, steps)
            c = _take_next(counter)
    return 0.0
