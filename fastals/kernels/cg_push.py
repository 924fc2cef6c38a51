"""The CG half-step with its longest rows in the other side's row order
("push" form) beside the gather form of :mod:`.cg`: :func:`solve_cg_split`.

The gather form solves one row at a time and reads the vectors of its
entries from the other side's (rotated) factors at random; a row too long
for its scratch block (more than :data:`.cg.LONG_GATHER_VALUES` ``// k``
entries: on a power-law log, a few items hold a fifth of the ratings) is
read in place again at every CG pass.  In the push form the pushed rows of
a block take their CG steps in lockstep, and every pass walks the block's
entries ordered by the other side's row (:class:`PushLayout`, made once
per fit): each user's vector is loaded once per pass and block, in
ascending order, and pushed into the accumulators of the block's rows it
rated, which stay in L1.  In the eigenbasis of the shared Gram matrix as
in :mod:`.cg` (one eigendecomposition and one rotation of the other side
for both forms); the per-row scalar CG updates between passes are those
of :func:`.cg._cg_row` (the last step's pass forming only the dots for
``d . A d``, no ``A d``).  Pushing every row (the whole items side) was
measured slower than gathering: the per-entry work is the same, and the
rows' vectors no longer fit in cache (docs/benchmarks.md, round 4).

Every row sums its entries in ascending order of the other side's rows,
whatever the blocks are and whichever thread takes a block, so results do
not depend on the number of blocks or threads.
"""

import numpy as np
from numba import carray, njit, prange

from .blas import USE_BLAS
from .cg import (_CG, DOTS, LONG_GATHER_VALUES, PRODUCT, RESIDUAL, SKIP_LONG,
                 _cg_chunk, _eigenbasis, _rotated_other, _solve_cg)
from .chunks import _call
from .llvm import FASTMATH, _ChunkCallback, _prefetch_row, _take_next

#: Entries ahead (in the other side's CSR order) whose block rows of the
#: iterate and the accumulator are prefetched.
PUSH_AHEAD = 8


@njit(cache=True, inline="always")
def _prefetch_rows(indices, e, i0, i1, V, O):
    """Prefetch the rows ``indices[e] - i0`` of ``V`` and ``O`` if entry
    ``e`` exists and falls in the block ``i0:i1``."""
    if e < indices.size:
        j = indices[e]
        if j >= i0 and j < i1:
            _prefetch_row(V, j - i0)
            _prefetch_row(O, j - i0)


#: Blocks of the pushed rows (fewer for fewer rows), handed out to the
#: threads by a queue: each block streams the other side's rows that rated
#: it once per pass.
PUSH_BLOCKS = 4


#: Smallest vector of the other side (``k`` times the item size, bytes)
#: for which the push form pays (short-row 3M set, items, one thread, the
#: 9-23 longest rows pushed: 0.84-1.01 of the gather form's time at k=128
#: float32, 1.06-1.25 at k=64).
PUSH_MIN_VECTOR_BYTES = 512
#: Smallest size of the other side's factors (bytes) for which the push
#: form pays: where they fit in the last-level cache (32 MiB here) the
#: gather form's reads in place are cheap (20M set, k=128, one thread:
#: users side, 27k items = 14 MB, 1.04-1.25 of the gather form's time;
#: items side, 140k users = 72 MB, 0.66-0.84).
PUSH_MIN_OTHER_BYTES = 32 << 20


def push_above(k, itemsize, n_other):
    """The row length above which a CG half-step with ``k`` columns of
    ``itemsize`` bytes in its design, against ``n_other`` rows of the
    other side, pushes a row instead of gathering it: the rows the gather
    form cannot gather and reads in place at every pass (more than
    :data:`.cg.LONG_GATHER_VALUES` ``// k`` entries), where the vectors
    are at least :data:`PUSH_MIN_VECTOR_BYTES` long and the other side's
    factors at least :data:`PUSH_MIN_OTHER_BYTES`; else -1 (no row).  By
    shape only, never by thread count."""
    if k * itemsize < PUSH_MIN_VECTOR_BYTES or \
            n_other * k * itemsize < PUSH_MIN_OTHER_BYTES:
        return -1
    return LONG_GATHER_VALUES // k


def push_blocks(counts, n_blocks=PUSH_BLOCKS):
    """Contiguous blocks of rows with similar entry counts (at most
    ``n_blocks``, fewer for few rows; fixed by the data)."""
    n = counts.size
    nb = int(max(1, min(n_blocks, n)))
    cum = np.cumsum(counts, dtype=np.float64)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, nb) / nb, side="right") \
        if n else np.zeros(0, np.int64)
    bounds = np.concatenate([[0], np.minimum(cuts, n), [n]]).astype(np.int64)
    return np.unique(bounds)


class PushLayout:
    """The entries of the rows ``sel`` of a side in the order of the push
    form, made once per fit: grouped by block of those rows
    (:func:`push_blocks`), then by row of the other side, then by row.

    Parameters
    ----------
    indptr, indices : arrays
        The side's CSR (``indices``: rows of the other side).
    sel : int64 array
        The rows to push, ascending.
    n_blocks : int
        At most this many blocks.

    Attributes: ``sel``; ``rows`` (int64: the other side's row of each
    entry) and ``indices`` (int32: the entry's position in ``sel``), in
    the layout's order; ``bounds`` (blocks of ``sel``), ``ebounds`` (entry
    range of each block) and ``pos`` (each entry's position in the side's
    CSR: :meth:`take`).
    """

    def __init__(self, indptr, indices, sel, n_blocks=PUSH_BLOCKS):
        self.sel = np.asarray(sel, np.int64)
        counts = indptr[self.sel + 1] - indptr[self.sel]
        first = np.cumsum(counts) - counts
        total = int(counts.sum())
        pos = np.arange(total, dtype=np.int64) + np.repeat(indptr[self.sel] - first,
                                                           counts)
        sub = np.repeat(np.arange(self.sel.size, dtype=np.int64), counts)
        other = indices[pos].astype(np.int64)
        self.bounds = push_blocks(counts, n_blocks)
        block = np.searchsorted(self.bounds, sub, side="right") - 1
        # by block, then other row, then row: one stable sort of a combined
        # key (the entries are in row order already); np.lexsort took
        # 1.7-2.1 s against 0.8-1.1 s for 6M entries (the 20M set at k=128)
        key = block * (int(other.max(initial=-1)) + 1) + other
        order = np.argsort(key, kind="stable")
        self.pos = pos[order]
        self.rows = other[order]
        self.indices = sub[order].astype(np.int32)
        self.ebounds = np.searchsorted(block[order], np.arange(self.bounds.size)
                                       ).astype(np.int64)

    def take(self, values):
        """``values`` (per entry of the side, in its CSR order) in this
        layout's order."""
        return np.ascontiguousarray(values[self.pos])


def solve_cg_push(layout, conf, target, offset, Y, G, lam, wr, w0, X, steps):
    """Conjugate-gradient half-step of the rows ``layout.sel`` of ``X`` in
    the push form, in place (only those rows of ``X`` are read or written).

    The same system and steps as :func:`.cg.solve_cg`; ``conf`` and
    ``target`` are the entries' values in the layout's order
    (:meth:`PushLayout.take`), ``offset`` is indexed by the rows of ``Y``
    as in the gather form.
    """
    return solve_cg_split(None, None, None, None, offset, Y, G, lam, wr, w0, X,
                          None, steps, (layout, conf, target))


def solve_cg_split(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
                   bounds, steps, push):
    """:func:`.cg.solve_cg` with the rows of ``push = (layout, conf,
    target)`` (:class:`PushLayout` and its entries' values; None: no row)
    in the push form.  ``layout.sel`` must be every row of more than ``m``
    entries for some ``m`` (the longest rows, whose vectors the gather form
    reads in place at every pass), the other rows are solved by the gather
    form.  One eigenbasis and one rotation of ``Y`` serve both forms.
    ``indptr`` None: the pushed rows only."""
    if push is None:
        return _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr,
                         w0, X, bounds, USE_BLAS, steps)
    layout, pconf, ptarget = push
    X_out = X
    k = Y.shape[1]
    blas = USE_BLAS
    QS, rotate = _eigenbasis(G, w0, k, Y.dtype)
    if rotate:
        Y = _rotated_other(Y, QS, lam, wr, w0, blas)
    Xs = X[layout.sel]
    if rotate:  # rows rotated in and out by the same kernel as Y: Q, Q^T
        Xs = _rotated_other(Xs, QS, lam, wr, w0, blas)
    work = layout.indices.size * 4 * k * (steps + 1) + Xs.shape[0] * k * k * 2
    mode = steps
    if indptr is None:  # no gathered rows
        indptr = np.zeros(1, np.int64)
        indices = np.zeros(0, np.int32)
        conf = target = np.zeros(0, Y.dtype)
        bounds = indptr
        X = Xs
    else:
        counts = indptr[layout.sel + 1] - indptr[layout.sel]
        mode += (int(counts.min()) if counts.size else indices.size + 1) * SKIP_LONG
        work += (indptr[-1] * 4 * k + (indptr.size - 1) * k * 8) * (steps + 1)
    _call(_solve_split_rows, work,
          (indptr, indices, conf, target, offset, Y, QS, lam, wr, w0, X, bounds,
           blas, mode, layout.rows, layout.indices, pconf, ptarget, Xs,
           layout.bounds, layout.ebounds, steps))
    if rotate:
        QT = np.ascontiguousarray(np.vstack([QS[:k].T, QS[k:]]))
        Xs = _rotated_other(Xs, QT, lam, wr, w0, blas)
    X_out[layout.sel] = Xs
    return None


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _push4(y, off, V, O, vav, sl, pe, conf, target, w0, mode, zero):
    """Four entries of one other-side row ``y``: ``d = y . V[j]``, ``s =
    (c - w0) d`` (``mode`` :data:`.cg.RESIDUAL`: ``c (t - off) - (c - w0)
    d``), ``O[j] += s y`` (not for :data:`.cg.DOTS`) and ``vav[j] += (c -
    w0) d^2`` for the block rows ``j = sl[0..3]``; an unused lane (``pe <
    0``) has a zero row of ``V`` and a junk row of ``O`` and ``vav`` of its
    own, so every entry takes the same arithmetic whatever its lane."""
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
    vav[sl[0]] += s0 * s[0]
    vav[sl[1]] += s1 * s[1]
    vav[sl[2]] += s2 * s[2]
    vav[sl[3]] += s3 * s[3]
    if mode == DOTS:
        return
    if mode == RESIDUAL:
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
def _sweep(e0, e1, i0, i1, rows, indices, conf, target, offset, Y, w0, act, V,
           O, vav, mode, sl, pe, zero):
    """One pass over the block's entries ``e0:e1`` (ordered by the other
    side's row ``rows[e]``, then by ``indices[e]``): ``O[j] += sum_e s_e
    y_e`` and ``vav[j] += sum_e (c_e - w0) d_e^2`` for every active block
    row ``j`` (row ``i0 + j``), four entries of one other-side row at a
    time (see :func:`_push4`)."""
    nb = i1 - i0
    p = e0
    while p < e1:
        u = rows[p]
        y = Y[u]
        off = offset[u]
        m = 0
        while p < e1 and rows[p] == u:
            _prefetch_rows(indices, p + PUSH_AHEAD, i0, i1, V, O)
            j = indices[p] - i0
            if act[j]:
                sl[m] = j
                pe[m] = p
                m += 1
                if m == 4:
                    _push4(y, off, V, O, vav, sl, pe, conf, target, w0, mode,
                           zero)
                    m = 0
            p += 1
        if m > 0:
            for q in range(m, 4):
                sl[q] = nb + q  # a zero row of V, a junk row of O
                pe[q] = -1
            _push4(y, off, V, O, vav, sl, pe, conf, target, w0, mode, zero)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _push_block(e0, e1, i0, i1, rows, indices, conf, target, offset, Y, QS,
                lam, wr, w0, X, steps, blas):
    """``steps`` CG steps in lockstep on rows ``i0:i1`` of ``X`` (one block),
    scratch allocated once; ``X`` and ``Y`` already rotated, ``QS`` as
    :func:`.cg._eigenbasis` makes it."""
    k = Y.shape[1]
    nb = i1 - i0
    dt = Y.dtype
    ws = QS[QS.shape[0] - 1]  # w0 * eigenvalues of G
    V = np.zeros((nb + 4, k), dt)  # iterates; rows nb.. stay zero (lanes)
    R = np.zeros((nb + 4, k), dt)  # residuals
    D = np.zeros((nb + 4, k), dt)  # directions
    AD = np.zeros((nb + 4, k), dt)  # products A d
    rs = np.zeros(nb, dt)
    vav = np.zeros(nb + 4, dt)  # d . A d of each row (lanes: junk)
    cnt = np.zeros(nb, np.int64)
    act = np.zeros(nb, np.uint8)
    dg = np.empty(k, dt)
    sl = np.empty(4, np.int64)
    pe = np.empty(4, np.int64)
    zero = np.zeros(1, dt)[0]  # typed: sums stay in the factors' dtype
    for p in range(e0, e1):  # entries per row of the block
        cnt[indices[p] - i0] += 1
    # phase 0: the block copied into V; phase 1: solved, copied back
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
                last = it == steps and not first
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
                        vav[j] = 0
                        for i in range(k):
                            AD[j, i] = dg[i] * D[j, i]
                if live == 0:
                    break
                if first:
                    _sweep(e0, e1, i0, i1, rows, indices, conf, target, offset, Y, w0,
                           act, V, R, vav, RESIDUAL, sl, pe, zero)
                else:
                    _sweep(e0, e1, i0, i1, rows, indices, conf, target, offset, Y, w0,
                           act, D, AD, vav, DOTS if last else PRODUCT, sl, pe,
                           zero)
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
                    if last:  # ad = dg * d only: the entries' part from the dots
                        dAd += vav[j]
                    if not dAd > 0:
                        act[j] = 0
                        continue
                    al = rs[j] / dAd
                    if last:
                        for i in range(k):
                            x[i] += al * d[i]
                        continue
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
        for j in range(nb):
            for i in range(k):
                dst[d0 + j, i] = src[s0 + j, i]
    return 0


def _push_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
                 G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap,
                 mode):
    # r0:r1: the block's entries; cap: its rows of X, i0 << 32 | i1;
    # indptr_p: the other side's row (of Y) of each entry
    rows = carray(indptr_p, nnz)
    indices = carray(indices_p, nnz)
    conf = carray(conf_p, nnz)
    target = carray(target_p, nnz)
    offset = carray(offset_p, n_other)
    Y = carray(Y_p, (n_other, k))
    QS = carray(G_p, (n_g, k))
    X = carray(X_p, (n_rows, k))
    _push_block(r0, r1, cap >> 32, cap & 0xFFFFFFFF, rows, indices, conf,
                target, offset, Y, QS, lam, wr != 0, w0, X, mode, blas != 0)
    return 0.0


_PUSH = _ChunkCallback("cg_push", _push_rows_c)
_push_chunk = _PUSH.caller()


@_PUSH.guard
@_CG.guard
@njit(parallel=True, cache=True)
def _solve_split_rows(indptr, indices, conf, target, offset, Y, QS, lam, wr, w0,
                      X, bounds, blas, mode, prows, pindices, pconf, ptarget, Xs,
                      pbounds, pebounds, steps):
    """The parallel loop of :func:`solve_cg_split`: one queue hands out the
    blocks ``pbounds`` of pushed rows (of ``Xs``, first: the costliest)
    and then the gather form's chunks ``bounds`` of rows of ``X`` (``mode``:
    its steps and skipped rows, see :data:`.cg.SKIP_LONG`), so that neither
    form waits for the other."""
    n_push = pbounds.size - 1
    n_all = n_push + bounds.size - 1
    cap = LONG_GATHER_VALUES // Y.shape[1]
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_all):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_all:
            if c < n_push:
                _push_chunk(pebounds[c], pebounds[c + 1], prows, pindices, pconf,
                            ptarget, offset, Y, QS, lam, wr, w0, Xs, blas,
                            (pbounds[c] << 32) | pbounds[c + 1], steps)
            else:
                g = c - n_push
                _cg_chunk(bounds[g], bounds[g + 1], indptr, indices, conf,
                          target, offset, Y, QS, lam, wr, w0, X, blas, cap, mode)
            c = _take_next(counter)
    return 0.0
