"""Numba kernels for top-k recommendation, similarity and AUC.

Nothing here validates input or maps ids: :mod:`fastals.recommend` and
:mod:`fastals.evaluation` prepare canonical arrays and call these functions.

The kernels run in parallel over fixed chunks of output rows.  A chunk
gathers ``BLOCK_USERS`` query vectors, scores them against
``BLOCK_CANDIDATES`` candidates at a time with one BLAS GEMM into a buffer
that stays in cache (OpenBLAS runs single-threaded inside each of our
threads, as in :mod:`fastals.kernels.blas`), and feeds each row of the buffer
to that user's heap of the best ``n`` (:func:`heap_push`), where most
candidates cost one well-predicted comparison.  Buffers are allocated once
per chunk, never per row.  Without BLAS (``FASTALS_NO_BLAS`` or no
thread-local OpenBLAS control) the same buffer is filled by a loop that
scores ``TILE`` users per candidate load.  Top-k and AUC share this tile
loop (:func:`_score_tiles`) and differ only in what they do with a row's
scores of a candidate block (:func:`_topk_visit`, :func:`_auc_visit`).

Conventions
-----------
* ``U`` (queries) and ``V`` (candidates) are C-contiguous factor matrices of
  one dtype; ``rows`` are the rows of ``U`` to score, in output order.
* Exclusions are CSR arrays ``(excl_indptr, excl_indices)`` with one row per
  output row; ``excl_indices`` are item numbers, mapped to candidate rows
  of ``V`` by ``pos_of_item`` (``-1``: not a candidate) unless
  ``pos_of_item`` is empty, which means ``V`` holds every item in order.
* Order: higher score first, ties to the lower candidate row.  Chunks
  depend on the number of output rows only, never on the thread count, so
  results are deterministic and the same for any number of threads.  A
  user scored alone or in a batch gets the same scores in the tests; with
  BLAS that rests on the BLAS library computing each entry of a product
  the same way wherever it lies in the block.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange
from numba.extending import overload

from .blas import USE_BLAS, _blas_threads_local, _gemm
from .llvm import FASTMATH
from .openblas import single_threaded

#: Users scored together by the loop that stands in for BLAS.
TILE = 8
#: Query rows scored per GEMM (a multiple of ``TILE``).
BLOCK_USERS = 64
#: Candidates scored per GEMM: ``BLOCK_USERS x BLOCK_CANDIDATES`` scores
#: (1 MiB in float32) stay in cache until their heaps read them (measured:
#: 32 x 2048 to 128 x 2048 within 10 % of each other, 64 x 4096 among the best).
BLOCK_CANDIDATES = 4096
#: Below this many multiply-adds, :func:`topk` runs single-threaded.
SERIAL_WORK = 1 << 22


@single_threaded()
def topk(U, rows, V, n, excl_indptr=None, excl_indices=None, pos_of_item=None):
    """Best ``n`` rows of ``V`` for each ``U[rows[r]]`` by inner product.

    Parameters
    ----------
    U, V : C-contiguous 2-D arrays of one float dtype.
    rows : int64 array of rows of ``U``, in output order.
    n : int, ``1 <= n <= len(V)``.
    excl_indptr, excl_indices : optional CSR (one row per output row) of
        items never returned.
    pos_of_item : optional int64 map from item number to row of ``V``
        (``-1``: absent); None when ``V`` holds every item in order.

    Returns
    -------
    ids : int64 ``(len(rows), n)``, rows of ``V``, best first; ``-1`` where
        fewer than ``n`` candidates remain after exclusion.
    scores : ``(len(rows), n)`` of ``V``'s dtype; ``-inf`` at those places.
    """
    m = rows.size
    out_ids = np.empty((m, n), np.int64)
    out_scores = np.empty((m, n), V.dtype)
    if excl_indptr is None:
        excl_indptr = np.zeros(m + 1, np.int64)
        excl_indices = np.zeros(0, np.int32)
    if pos_of_item is None:
        pos_of_item = np.zeros(0, np.int64)
    rows = np.ascontiguousarray(rows, np.int64)
    if m * V.shape[0] * U.shape[1] >= SERIAL_WORK:
        topk_kernel(U, rows, V, n, excl_indptr, excl_indices, pos_of_item,
                    out_ids, out_scores, _block_bounds(m), USE_BLAS)
    elif m <= FEW_ROWS:
        _topk_few(U, rows, V, n, excl_indptr, excl_indices, pos_of_item,
                  out_ids, out_scores)
    else:
        # Small requests (one user) skip the parallel launch, which costs
        # more than the work (a lot more on a busy machine), and its
        # compilation: the rows form one chunk, cut into the same blocks.
        _topk_rows(U, rows, 0, m, V, n, excl_indptr, excl_indices,
                   pos_of_item, out_ids, out_scores, USE_BLAS)
    return out_ids, out_scores


#: Requests of at most this many rows (and below ``SERIAL_WORK``) are
#: answered by :func:`_topk_few` in numpy: a first ``recommend`` then
#: compiles nothing (the tile kernel took about 7 s to compile cold).
FEW_ROWS = 64


def _topk_few(U, rows, V, n, excl_indptr, excl_indices, pos_of_item, out_ids,
              out_scores):
    """:func:`topk` for a few rows, in numpy, row by row (a row's scores are
    one matrix-vector product, whatever the batch): the same ranking rule
    (score, then lower position), ``-inf`` and NaN never returned."""
    identity = pos_of_item.size == 0

    def scores(r):
        s = V @ U[rows[r]]
        ex = excl_indices[excl_indptr[r]:excl_indptr[r + 1]]
        if not identity:
            ex = pos_of_item[ex]
            ex = ex[ex >= 0]
        s[ex] = -np.inf
        s[np.isnan(s)] = -np.inf  # NaN never returned
        return s

    for r in range(rows.size):
        s = scores(r)
        valid = np.count_nonzero(s > -np.inf)
        if valid > n:
            # the n-th best score, by an in-place partition; the scores are
            # then computed again (one more matrix-vector product) rather
            # than copied: a request holds one score vector at a time
            kth = s.size - n
            s.partition(kth)
            thr = s[kth]
            del s
            s = scores(r)
            cand = np.flatnonzero(s >= thr)
        else:
            cand = np.flatnonzero(s > -np.inf)
        order = cand[np.lexsort((cand, -s[cand]))][:n]  # ties: lower position
        f = order.size
        out_ids[r, :f] = order
        out_scores[r, :f] = s[order]
        out_ids[r, f:] = -1
        out_scores[r, f:] = -np.inf


def _block_bounds(m):
    """Chunks of exactly ``BLOCK_USERS`` rows (the last one shorter)."""
    return np.append(np.arange(0, m, BLOCK_USERS, dtype=np.int64), np.int64(m))


@single_threaded()
def auc(U, V, train_indptr, train_indices, test_indptr, test_indices):
    """Per-row ROC AUC of ``U @ V.T`` (see :func:`auc_kernel`); NaN where undefined."""
    m = U.shape[0]
    return auc_kernel(U, V, train_indptr, train_indices, test_indptr,
                      test_indices, even_bounds(m, TILE), USE_BLAS)


@njit(cache=True, inline="always")
def _better(s1, i1, s2, i2):
    """Whether candidate ``(s1, i1)`` ranks before ``(s2, i2)``."""
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(cache=True, inline="always")
def _offer(s, j, n, hs, hi, size):
    """Offer one candidate ``(s, j)`` to the heap; returns the new size."""
    if not s > -np.inf:
        return size
    if size < n:
        pos = size
        size += 1
        while pos > 0:
            parent = (pos - 1) // 2
            if _better(hs[parent], hi[parent], s, j):
                hs[pos] = hs[parent]
                hi[pos] = hi[parent]
                pos = parent
            else:
                break
        hs[pos] = s
        hi[pos] = j
    elif s >= hs[0] and _better(s, j, hs[0], hi[0]):
        _sift_down(hs, hi, size, s, j)
    return size


@njit(cache=True)
def heap_push(scores, j0, n, hs, hi, size):
    """Offer candidates ``j0 + j`` with ``scores[j]`` to a heap of the best ``n``.

    The heap (``hs`` scores, ``hi`` positions, ``size`` entries) keeps the
    best candidates seen so far with the worst at the root.  Once it is
    full, a candidate costs one comparison with that worst entry unless it
    enters.  ``-inf`` and NaN never enter.  Returns the
    new size.
    """
    m = scores.size
    jj = 0
    while jj < m and size < n:
        size = _offer(scores[jj], j0 + jj, n, hs, hi, size)
        jj += 1
    if jj == m:
        return size
    # The scan is a separate loop over slices from index 0: Numba then knows
    # that indices are not negative, and LLVM keeps it tight (3-5x faster
    # than one loop with the heap update inside).
    rest = scores[jj:]
    j1 = j0 + jj
    q = 0
    while q < rest.size:
        d = _first_at_least(rest[q:], hs[0])
        if d < 0:
            break
        q += d
        size = _offer(rest[q], j1 + q, n, hs, hi, size)
        q += 1
    return size


@njit(cache=True)
def _first_at_least(a, x):
    """Index of the first ``a[i] >= x``, or -1."""
    for i in range(a.size):
        if a[i] >= x:
            return i
    return -1


@njit(cache=True)
def heap_drain(hs, hi, size, out_i, out_s):
    """Write the heap best first; pad with ``-1`` / ``-inf``.  Returns size."""
    found = size
    while size > 0:
        size -= 1
        out_s[size] = hs[0]
        out_i[size] = hi[0]
        if size > 0:
            _sift_down(hs, hi, size, hs[size], hi[size])
    for t in range(found, out_i.size):
        out_i[t] = -1
        out_s[t] = -np.inf
    return found


@njit(cache=True, inline="always")
def _sift_down(hs, hi, size, s, j):
    """Put ``(s, j)`` at the root of the heap of ``size`` and restore it."""
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        w = left
        right = left + 1
        if right < size and _better(hs[left], hi[left], hs[right], hi[right]):
            w = right
        if _better(s, j, hs[w], hi[w]):
            hs[pos] = hs[w]
            hi[pos] = hi[w]
            pos = w
        else:
            break
    hs[pos] = s
    hi[pos] = j


@njit(cache=True)
def even_bounds(n, per_chunk):
    """Chunk boundaries over ``n`` rows, about ``per_chunk`` rows per chunk."""
    n_chunks = max(1, min(1024, (n + per_chunk - 1) // per_chunk))
    bounds = np.empty(n_chunks + 1, np.int64)
    for c in range(n_chunks + 1):
        bounds[c] = (n * c) // n_chunks
    return bounds


@njit(cache=True)
def _gemm_scores(Ub, mb, V, j0, nb, buf, iw, fw, cw):
    """``buf[t, :nb] = V[j0:j0+nb] @ Ub[t]`` for ``t < mb`` (BLAS GEMM)."""
    # column-major: buf^T (nb x mb, ld = row length of buf)
    #             = V_block (k x nb, ld k)^T  Ub^T (k x mb, ld k)
    k = V.shape[1]
    _gemm(84, 78, nb, mb, k, V.ctypes.data + j0 * k * V.itemsize, k,
          Ub.ctypes.data, k, buf.ctypes.data, buf.shape[1], iw, fw, cw)


@njit(cache=True, fastmath=FASTMATH)
def _loop_scores(Ub, mb, V, j0, nb, buf, zero):
    """What :func:`_gemm_scores` computes, in loops (no BLAS).  ``Ub`` and
    ``buf`` have a multiple of ``TILE`` rows; rows of ``Ub`` past ``mb`` must
    be zero.  ``zero`` is a 0 of the factor dtype, so that float32
    accumulates in float32 and vectorizes."""
    k = V.shape[1]
    for t0 in range(0, mb, TILE):
        u0 = Ub[t0]
        u1 = Ub[t0 + 1]
        u2 = Ub[t0 + 2]
        u3 = Ub[t0 + 3]
        u4 = Ub[t0 + 4]
        u5 = Ub[t0 + 5]
        u6 = Ub[t0 + 6]
        u7 = Ub[t0 + 7]
        for j in range(nb):
            v = V[j0 + j]
            s0 = zero
            s1 = zero
            s2 = zero
            s3 = zero
            s4 = zero
            s5 = zero
            s6 = zero
            s7 = zero
            for f in range(k):
                vf = v[f]
                s0 += u0[f] * vf
                s1 += u1[f] * vf
                s2 += u2[f] * vf
                s3 += u3[f] * vf
                s4 += u4[f] * vf
                s5 += u5[f] * vf
                s6 += u6[f] * vf
                s7 += u7[f] * vf
            buf[t0, j] = s0
            buf[t0 + 1, j] = s1
            buf[t0 + 2, j] = s2
            buf[t0 + 3, j] = s3
            buf[t0 + 4, j] = s4
            buf[t0 + 5, j] = s5
            buf[t0 + 6, j] = s6
            buf[t0 + 7, j] = s7


@njit(cache=True)
def _gather(U, rows, r0, mb, Ub):
    """``Ub[t] = U[rows[r0 + t]]`` for ``t < mb``; zero the other rows."""
    k = U.shape[1]
    for t in range(Ub.shape[0]):
        dst = Ub[t]
        if t < mb:
            src = U[rows[r0 + t]]
            for f in range(k):
                dst[f] = src[f]
        else:
            for f in range(k):
                dst[f] = 0


@njit(cache=True)
def _scores(Ub, mb, V, j0, nb, buf, blas, iw, fw, cw):
    """Scores of the ``mb`` gathered rows in ``Ub`` against candidates
    ``j0 .. j0+nb`` of ``V`` into ``buf[:mb, :nb]``."""
    if blas:
        _gemm_scores(Ub, max(mb, TILE), V, j0, nb, buf, iw, fw, cw)
    else:
        _loop_scores(Ub, mb, V, j0, nb, buf, fw[2])


#: ``phase`` of a tile visitor (see :func:`_score_tiles`): before the sweeps
#: over the candidates, and after them.
START = -1
END = -2


@njit(cache=True)
def _score_tiles(U, rows, r0, r1, V, bu, bc, sweeps, blas, state):
    """The tile loop of :func:`topk_kernel` and :func:`auc_kernel`.

    Output rows ``r0 .. r1`` go ``bu`` at a time: their query vectors are
    gathered, then scored against ``bc`` candidates at a time into one
    buffer that stays in cache (:func:`_scores`), and each row's scores of
    the block are handed to the visitor of ``state``'s type
    (:func:`_visit`), with ``t``
    the row's place in the block, ``r`` its output row, ``srow`` its scores
    of candidates ``j0 .. j0 + srow.size``, ``phase`` the sweep (``0 ..
    sweeps - 1``; a second sweep sees the same scores again).  The visitor
    is also called once per row with ``phase`` :data:`START` before the
    sweeps and :data:`END` after them (``srow`` empty).  With one candidate
    block a second
    sweep reuses the first one's buffer: a visitor of several sweeps must
    not write to ``srow``.
    """
    nc = V.shape[0]
    k = V.shape[1]
    Ub = np.empty((bu, k), V.dtype)
    buf = np.empty((bu, bc), V.dtype)
    iw = np.empty(8, np.int32)
    fw = np.zeros(4, V.dtype)
    cw = np.empty(4, np.uint8)
    # typed (not literal) constants: one compiled visitor, not one per value
    start = np.int64(START)
    end = np.int64(END)
    none = np.int64(0)
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    b0 = r0
    while b0 < r1:
        mb = min(bu, r1 - b0)
        _gather(U, rows, b0, mb, Ub)
        for t in range(mb):
            _visit(state, t, b0 + t, buf[t, :0], none, start)
        for sweep in range(sweeps):
            for j0 in range(0, nc, bc):
                nb = min(bc, nc - j0)
                if sweep == 0 or nb < nc:  # one block: its scores are there
                    _scores(Ub, mb, V, j0, nb, buf, blas, iw, fw, cw)
                for t in range(mb):
                    _visit(state, t, b0 + t, buf[t, :nb], j0, sweep)
        for t in range(mb):
            _visit(state, t, b0 + t, buf[t, :0], none, end)
        b0 += mb
    if blas:
        _blas_threads_local(prev)


#: State of :func:`_topk_visit`: exclusions, heaps, output.
TopkState = namedtuple("TopkState", [
    "excl_indptr", "excl_indices", "pos_of_item", "n", "hs", "hi", "size",
    "out_ids", "out_scores"])
#: State of :func:`_auc_visit`: the rows' items, their marks, counts, output.
AucState = namedtuple("AucState", [
    "train_indptr", "train_indices", "test_indptr", "test_indices", "kind",
    "pos_scores", "npos", "nneg", "above", "ties", "out"])


def _visit(state, t, r, srow, j0, phase):
    """Visit one row's scores of a candidate block (see :func:`_score_tiles`)
    with the visitor of ``state``'s type: :func:`_topk_visit` for a
    :class:`TopkState`, :func:`_auc_visit` for an :class:`AucState`."""


@overload(_visit)
def _visit_impl(state, t, r, srow, j0, phase):
    # chosen at compile time by the state's type: a call, not a function
    # passed as a value (which Numba cannot cache)
    visitor = {TopkState: _topk_visit,
               AucState: _auc_visit}[state.instance_class]

    def impl(state, t, r, srow, j0, phase):
        visitor(state, t, r, srow, j0, phase)
    return impl


@njit(cache=True)
def _topk_visit(state, t, r, srow, j0, phase):
    """Top-k visitor of :func:`_score_tiles`: excluded items get ``-inf``,
    the row's heap takes what beats its current worst, and is drained into
    the output row at the end."""
    (excl_indptr, excl_indices, pos_of_item, n, hs, hi, size, out_ids,
     out_scores) = state
    if phase == START:
        size[t] = 0
    elif phase == END:
        heap_drain(hs[t], hi[t], size[t], out_ids[r], out_scores[r])
    else:
        nb = srow.size
        identity = pos_of_item.size == 0
        for p in range(excl_indptr[r], excl_indptr[r + 1]):
            item = excl_indices[p]
            pos = item if identity else pos_of_item[item]
            if pos >= j0 and pos < j0 + nb:
                srow[pos - j0] = -np.inf
        size[t] = heap_push(srow, j0, n, hs[t], hi[t], size[t])


@njit(cache=True)
def _topk_rows(U, rows, r0, r1, V, n, excl_indptr, excl_indices, pos_of_item,
               out_ids, out_scores, blas):
    """:func:`topk_kernel` for output rows ``r0 .. r1`` (one chunk).

    Rows go ``BLOCK_USERS`` at a time; candidates ``BLOCK_CANDIDATES`` at a
    time are scored into one buffer that stays in cache, excluded items get
    ``-inf``, and each row's heap takes what beats its current worst
    (:func:`_score_tiles` with :func:`_topk_visit`).
    """
    bu = min(BLOCK_USERS, ((r1 - r0 + TILE - 1) // TILE) * TILE)
    bc = min(BLOCK_CANDIDATES, V.shape[0])
    hs = np.empty((bu, n), V.dtype)
    hi = np.empty((bu, n), np.int64)
    size = np.zeros(bu, np.int64)
    state = TopkState(excl_indptr, excl_indices, pos_of_item, n, hs, hi, size,
                      out_ids, out_scores)
    _score_tiles(U, rows, r0, r1, V, bu, bc, 1, blas, state)


@njit(parallel=True, cache=True)
def topk_kernel(U, rows, V, n, excl_indptr, excl_indices, pos_of_item,
                out_ids, out_scores, bounds, blas):
    """Top ``n`` of ``U[rows[r]] . V[j]`` over ``j`` for every output row ``r``.

    Arguments as :func:`topk`, all given, plus ``out_ids`` / ``out_scores``
    ``(len(rows), n)`` to fill, ``bounds``, the chunk boundaries over the
    output rows, and ``blas``, whether to score with BLAS GEMM.
    """
    for c in prange(bounds.size - 1):
        _topk_rows(U, rows, bounds[c], bounds[c + 1], V, n, excl_indptr,
                   excl_indices, pos_of_item, out_ids, out_scores, blas)
    return 0


@njit(cache=True)
def _mark(kind, indptr, indices, u, value):
    """``kind[i] = value`` for the items ``i`` of CSR row ``u``."""
    for p in range(indptr[u], indptr[u + 1]):
        kind[indices[p]] = value


@njit(cache=True)
def _auc_visit(state, t, u, srow, j0, phase):
    """AUC visitor of :func:`_score_tiles`, two sweeps per row block.

    ``kind`` marks the row's items (0 negative, 1 positive, 2 other) while
    the row is visited and is all zero in between.  Sweep 0 keeps the
    scores of the row's positives in ``pos_scores[t]``; sweep 1 counts, per
    candidate block, the positives scored above (``above``) and equal to
    (``ties``) each negative.  The counts are integers, so the AUC does not
    depend on the candidate blocks.
    """
    (train_indptr, train_indices, test_indptr, test_indices, kind, pos_scores,
     npos, nneg, above, ties, out) = state
    if phase == START:
        # positives: test items not in the training row, each once
        _mark(kind, train_indptr, train_indices, u, 2)
        p_count = 0
        for p in range(test_indptr[u], test_indptr[u + 1]):
            if kind[test_indices[p]] == 0:
                kind[test_indices[p]] = 1
                p_count += 1
        marked = p_count
        for p in range(train_indptr[u], train_indptr[u + 1]):
            if kind[train_indices[p]] == 2:
                kind[train_indices[p]] = 3   # counted once even if listed twice
                marked += 1
        npos[t] = 0   # positives stored so far
        nneg[t] = kind.size - marked
        above[t] = 0
        ties[t] = 0
        if p_count == 0 or nneg[t] == 0:
            nneg[t] = -1   # undefined: NaN
        _mark(kind, train_indptr, train_indices, u, 0)
        _mark(kind, test_indptr, test_indices, u, 0)
        return
    if phase == END:
        if nneg[t] > 0:
            correct = float(above[t]) + 0.5 * float(ties[t])
            out[u] = correct / (float(npos[t]) * nneg[t])
        return
    if nneg[t] < 0:
        return
    nb = srow.size
    _mark(kind, train_indptr, train_indices, u, 2)
    for p in range(test_indptr[u], test_indptr[u + 1]):
        if kind[test_indices[p]] == 0:
            kind[test_indices[p]] = 1
    if phase == 0:
        ps = pos_scores[t]
        for p in range(test_indptr[u], test_indptr[u + 1]):
            i = test_indices[p]
            if kind[i] == 1 and i >= j0 and i < j0 + nb:
                kind[i] = 2   # stored once even if listed twice
                ps[npos[t]] = srow[i - j0]
                npos[t] += 1
    else:
        ps = pos_scores[t, :npos[t]]
        a = 0
        e = 0
        blk = kind[j0:j0 + nb]
        for q in range(ps.size):
            si = ps[q]
            for j in range(nb):  # branch-free: the comparisons are coin flips
                neg = blk[j] == 0
                sj = srow[j]
                a += (si > sj) & neg
                e += (si == sj) & neg
        above[t] += a
        ties[t] += e
    _mark(kind, train_indptr, train_indices, u, 0)
    _mark(kind, test_indptr, test_indices, u, 0)


@njit(cache=True)
def _auc_rows(U, rows, V, train_indptr, train_indices, test_indptr,
              test_indices, r0, r1, out, blas):
    """:func:`auc_kernel` for rows ``r0 .. r1`` (one chunk): ``TILE`` rows
    against ``BLOCK_CANDIDATES`` candidates per score block."""
    most = 1
    for u in range(r0, r1):
        most = max(most, test_indptr[u + 1] - test_indptr[u])
    state = AucState(train_indptr, train_indices, test_indptr, test_indices,
                     np.zeros(V.shape[0], np.int8),
                     np.empty((TILE, most), V.dtype), np.zeros(TILE, np.int64),
                     np.zeros(TILE, np.int64), np.zeros(TILE, np.int64),
                     np.zeros(TILE, np.int64), out)
    _score_tiles(U, rows, r0, r1, V, TILE, min(BLOCK_CANDIDATES, V.shape[0]),
                 2, blas, state)


@njit(parallel=True, cache=True)
def auc_kernel(U, V, train_indptr, train_indices, test_indptr, test_indices,
               bounds, blas):
    """ROC AUC of every row ``u`` of ``U`` with scores ``U[u] . V[j]``.

    Positives are the row's test items, negatives every item in neither its
    training nor its test row; ties count one half.  Rows without a positive
    or a negative get NaN.  Cost: ``n_items * (k + n_positives)`` per row,
    plus one more scoring pass where there are more than
    ``BLOCK_CANDIDATES`` items.  ``blas``: whether to score with BLAS GEMM.
    """
    out = np.full(U.shape[0], np.nan)
    rows = np.arange(U.shape[0])
    for c in prange(bounds.size - 1):
        _auc_rows(U, rows, V, train_indptr, train_indices, test_indptr,
                  test_indices, bounds[c], bounds[c + 1], out, blas)
    return out
