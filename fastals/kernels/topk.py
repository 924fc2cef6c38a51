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
scores ``TILE`` users per candidate load.

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

import numpy as np
from numba import njit, prange

from .blas import USE_BLAS, _blas_threads_local, _gemm
from .llvm import FASTMATH

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
    else:
        # Small requests (one user) skip the parallel launch, which costs
        # more than the work (a lot more on a busy machine), and its
        # compilation: the rows form one chunk, cut into the same blocks.
        _topk_rows(U, rows, 0, m, V, n, excl_indptr, excl_indices,
                   pos_of_item, out_ids, out_scores, USE_BLAS)
    return out_ids, out_scores


def _block_bounds(m):
    """Chunks of exactly ``BLOCK_USERS`` rows (the last one shorter)."""
    return np.append(np.arange(0, m, BLOCK_USERS, dtype=np.int64), np.int64(m))


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


@njit(cache=True)
def _topk_rows(U, rows, r0, r1, V, n, excl_indptr, excl_indices, pos_of_item,
               out_ids, out_scores, blas):
    """:func:`topk_kernel` for output rows ``r0 .. r1`` (one chunk).

    Rows go ``BLOCK_USERS`` at a time; candidates ``BLOCK_CANDIDATES`` at a
    time are scored into one buffer that stays in cache, excluded items get
    ``-inf``, and each row's heap takes what beats its current worst.
    """
    nc = V.shape[0]
    k = V.shape[1]
    identity = pos_of_item.size == 0
    bu = min(BLOCK_USERS, ((r1 - r0 + TILE - 1) // TILE) * TILE)
    bc = min(BLOCK_CANDIDATES, nc)
    Ub = np.empty((bu, k), V.dtype)
    buf = np.empty((bu, bc), V.dtype)
    hs = np.empty((bu, n), V.dtype)
    hi = np.empty((bu, n), np.int64)
    size = np.zeros(bu, np.int64)
    iw = np.empty(8, np.int32)
    fw = np.zeros(4, V.dtype)
    cw = np.empty(4, np.uint8)
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    b0 = r0
    while b0 < r1:
        mb = min(bu, r1 - b0)
        _gather(U, rows, b0, mb, Ub)
        size[:] = 0
        for j0 in range(0, nc, bc):
            nb = min(bc, nc - j0)
            _scores(Ub, mb, V, j0, nb, buf, blas, iw, fw, cw)
            for t in range(mb):
                r = b0 + t
                srow = buf[t, :nb]
                for p in range(excl_indptr[r], excl_indptr[r + 1]):
                    item = excl_indices[p]
                    pos = item if identity else pos_of_item[item]
                    if pos >= j0 and pos < j0 + nb:
                        srow[pos - j0] = -np.inf
                size[t] = heap_push(srow, j0, n, hs[t], hi[t], size[t])
        for t in range(mb):
            heap_drain(hs[t], hi[t], size[t], out_ids[b0 + t],
                       out_scores[b0 + t])
        b0 += mb
    if blas:
        _blas_threads_local(prev)


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


@njit(parallel=True, cache=True)
def auc_kernel(U, V, train_indptr, train_indices, test_indptr, test_indices,
               bounds, blas):
    """ROC AUC of every row ``u`` of ``U`` with scores ``U[u] . V[j]``.

    Positives are the row's test items, negatives every item in neither its
    training nor its test row; ties count one half.  Rows without a positive
    or a negative get NaN.  Cost: ``n_items * (k + n_positives)`` per row.
    ``blas``: whether to score with BLAS GEMM.
    """
    m = U.shape[0]
    nc = V.shape[0]
    k = V.shape[1]
    out = np.full(m, np.nan)
    rows = np.arange(m)
    for c in prange(bounds.size - 1):
        buf = np.empty((TILE, nc), V.dtype)
        ub = np.empty((TILE, k), V.dtype)
        iw = np.empty(8, np.int32)
        fw = np.zeros(4, V.dtype)
        cw = np.empty(4, np.uint8)
        kind = np.zeros(nc, np.int8)   # 0 negative, 1 positive, 2 other
        prev = np.int32(1)
        if blas:
            prev = _blas_threads_local(1)
        r0 = bounds[c]
        end = bounds[c + 1]
        while r0 < end:
            nt = min(TILE, end - r0)
            _gather(U, rows, r0, nt, ub)
            _scores(ub, nt, V, 0, nc, buf, blas, iw, fw, cw)
            for t in range(nt):
                u = r0 + t
                srow = buf[t]
                for p in range(train_indptr[u], train_indptr[u + 1]):
                    kind[train_indices[p]] = 2
                npos = 0
                for p in range(test_indptr[u], test_indptr[u + 1]):
                    if kind[test_indices[p]] == 0:
                        kind[test_indices[p]] = 1
                        npos += 1
                nneg = 0
                for j in range(nc):
                    if kind[j] == 0:
                        nneg += 1
                if npos > 0 and nneg > 0:
                    correct = 0.0
                    for p in range(test_indptr[u], test_indptr[u + 1]):
                        i = test_indices[p]
                        if kind[i] != 1:
                            continue
                        kind[i] = 2   # counted once even if listed twice
                        si = srow[i]
                        for j in range(nc):
                            if kind[j] == 0:
                                sj = srow[j]
                                if si > sj:
                                    correct += 1.0
                                elif si == sj:
                                    correct += 0.5
                    out[u] = correct / (float(npos) * nneg)
                for p in range(train_indptr[u], train_indptr[u + 1]):
                    kind[train_indices[p]] = 0
                for p in range(test_indptr[u], test_indptr[u + 1]):
                    kind[test_indices[p]] = 0
            r0 += nt
        if blas:
            _blas_threads_local(prev)
    return out

