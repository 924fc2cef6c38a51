"""Numba kernels for top-k recommendation, similarity and AUC.

Nothing here validates input or maps ids: :mod:`fastals.recommend` and
:mod:`fastals.evaluation` prepare canonical arrays and call these functions.

The kernels run in parallel over fixed chunks of output rows.  Each chunk
owns a score buffer of ``TILE x n_candidates`` and a heap of ``n`` entries,
allocated once per chunk, never per row.  Users are scored ``TILE`` at a
time (:func:`_score_tile`: each candidate vector is loaded once for the
``TILE`` users), then :func:`heap_select` keeps the best ``n`` in a small
heap -- one comparison per candidate that does not enter, never a full sort.
Scoring is done in Numba rather than by BLAS: with BLAS and Numba thread
pools both busy-waiting, the BLAS path was twice slower on 2 cores.

Conventions
-----------
* ``U`` (queries) and ``V`` (candidates) are C-contiguous factor matrices of
  one dtype; ``rows`` are the rows of ``U`` to score, in output order.
* Exclusions are CSR arrays ``(excl_indptr, excl_indices)`` with one row per
  output row; ``excl_indices`` are item numbers, mapped to candidate rows
  of ``V`` by ``pos_of_item`` (``-1``: not a candidate) unless
  ``pos_of_item`` is empty, which means ``V`` holds every item in order.
* Order: higher score first, ties to the lower candidate row.  A row's
  scores are computed by the same instructions whatever batch it is in, so
  results are deterministic and do not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: Users scored together.
TILE = 8
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
    # Small requests (one user) skip the parallel launch: waking the thread
    # pool costs more than the work, a lot more on a busy machine.
    kernel = topk_kernel if m * V.shape[0] * U.shape[1] >= SERIAL_WORK \
        else topk_serial
    kernel(U, np.ascontiguousarray(rows, np.int64), V, n, excl_indptr,
           excl_indices, pos_of_item, out_ids, out_scores,
           even_bounds(m, 4 * TILE))
    return out_ids, out_scores


def auc(U, V, train_indptr, train_indices, test_indptr, test_indices):
    """Per-row ROC AUC of ``U @ V.T`` (see :func:`auc_kernel`); NaN where undefined."""
    m = U.shape[0]
    return auc_kernel(U, V, train_indptr, train_indices, test_indptr,
                      test_indices, even_bounds(m, TILE))


@njit(cache=True, inline="always")
def _better(s1, i1, s2, i2):
    """Whether candidate ``(s1, i1)`` ranks before ``(s2, i2)``."""
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(cache=True)
def heap_push(scores, j0, n, hs, hi, size):
    """Offer candidates ``j0 + j`` with ``scores[j]`` to a heap of the best ``n``.

    The heap (``hs`` scores, ``hi`` positions, ``size`` entries) keeps the
    best candidates seen so far with the worst at the root, so a candidate
    costs one comparison unless it enters.  ``-inf`` and NaN are skipped.
    Returns the new size.
    """
    for jj in range(scores.size):
        s = scores[jj]
        if not s > -np.inf:
            continue
        j = j0 + jj
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


@njit(cache=True)
def heap_select(scores, n, hs, hi, out_i, out_s):
    """Top ``n`` of ``scores`` (skipping ``-inf`` and NaN), best first.

    Ties go to the lower position.  Returns the number found; the rest of
    ``out_i`` / ``out_s`` is ``-1`` / ``-inf``.
    """
    size = heap_push(scores, 0, n, hs, hi, 0)
    return heap_drain(hs, hi, size, out_i, out_s)


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


@njit(cache=True, fastmath=FASTMATH)
def _score_tile(U, rows, r0, nt, V, ub, buf, zero):
    """``buf[t, j] = U[rows[r0 + t]] . V[j]`` for ``t < TILE`` (rows past
    ``nt`` are scored against zeros); ``zero`` is a 0 of the factor dtype so
    that float32 accumulates in float32 and vectorizes."""
    k = U.shape[1]
    for t in range(TILE):
        if t < nt:
            src = U[rows[r0 + t]]
            for f in range(k):
                ub[t, f] = src[f]
        else:
            for f in range(k):
                ub[t, f] = zero
    for j in range(V.shape[0]):
        v = V[j]
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
            s0 += ub[0, f] * vf
            s1 += ub[1, f] * vf
            s2 += ub[2, f] * vf
            s3 += ub[3, f] * vf
            s4 += ub[4, f] * vf
            s5 += ub[5, f] * vf
            s6 += ub[6, f] * vf
            s7 += ub[7, f] * vf
        buf[0, j] = s0
        buf[1, j] = s1
        buf[2, j] = s2
        buf[3, j] = s3
        buf[4, j] = s4
        buf[5, j] = s5
        buf[6, j] = s6
        buf[7, j] = s7


@njit(parallel=True, cache=True)
def topk_kernel(U, rows, V, n, excl_indptr, excl_indices, pos_of_item,
                out_ids, out_scores, bounds):
    """Top ``n`` of ``U[rows[r]] . V[j]`` over ``j`` for every output row ``r``.

    Arguments as :func:`topk`, all given, plus ``out_ids`` / ``out_scores``
    ``(len(rows), n)`` to fill and ``bounds``, the chunk boundaries over the
    output rows.
    """
    nc = V.shape[0]
    k = U.shape[1]
    identity = pos_of_item.size == 0
    for c in prange(bounds.size - 1):
        buf = np.empty((TILE, nc), V.dtype)
        ub = np.empty((TILE, k), U.dtype)
        zero = np.zeros(1, U.dtype)[0]
        hs = np.empty(n, V.dtype)
        hi = np.empty(n, np.int64)
        r0 = bounds[c]
        end = bounds[c + 1]
        while r0 < end:
            nt = min(TILE, end - r0)
            _score_tile(U, rows, r0, nt, V, ub, buf, zero)
            for t in range(nt):
                r = r0 + t
                srow = buf[t]
                for p in range(excl_indptr[r], excl_indptr[r + 1]):
                    item = excl_indices[p]
                    pos = item if identity else pos_of_item[item]
                    if pos >= 0:
                        srow[pos] = -np.inf
                heap_select(srow, n, hs, hi, out_ids[r], out_scores[r])
            r0 += nt
    return 0


@njit(parallel=True, cache=True)
def auc_kernel(U, V, train_indptr, train_indices, test_indptr, test_indices,
               bounds):
    """ROC AUC of every row ``u`` of ``U`` with scores ``U[u] . V[j]``.

    Positives are the row's test items, negatives every item in neither its
    training nor its test row; ties count one half.  Rows without a positive
    or a negative get NaN.  Cost: ``n_items * (k + n_positives)`` per row.
    """
    m = U.shape[0]
    nc = V.shape[0]
    k = U.shape[1]
    out = np.full(m, np.nan)
    rows = np.arange(m)
    for c in prange(bounds.size - 1):
        buf = np.empty((TILE, nc), V.dtype)
        ub = np.empty((TILE, k), U.dtype)
        zero = np.zeros(1, U.dtype)[0]
        kind = np.zeros(nc, np.int8)   # 0 negative, 1 positive, 2 other
        r0 = bounds[c]
        end = bounds[c + 1]
        while r0 < end:
            nt = min(TILE, end - r0)
            _score_tile(U, rows, r0, nt, V, ub, buf, zero)
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
    return out


#: :func:`topk_kernel` compiled without threads (``prange`` runs as ``range``).
topk_serial = njit(cache=True)(topk_kernel.py_func)
