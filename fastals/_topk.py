"""Top-k recommendation, similarity and AUC: blocked scoring plus Numba selection.

Nothing here validates input or maps ids: :mod:`fastals.recommend` and
:mod:`fastals.evaluation` prepare canonical arrays and call these functions.

Scoring ``U[rows] @ V.T`` is done one block of rows at a time with BLAS
(:func:`score_blocks`), into a reused buffer of a few MB that stays in
cache; the Numba kernels then work on each block in parallel over fixed
chunks of its rows, with scratch (the heap) allocated once per chunk, never
per row.  A full sort is never done: :func:`heap_select` keeps the best
``n`` in a small heap, one comparison per candidate that does not enter.

Conventions
-----------
* ``U`` (queries) and ``V`` (candidates) are C-contiguous factor matrices of
  one dtype; ``rows`` are the rows of ``U`` to score, in output order.
* Exclusions are CSR arrays ``(excl_indptr, excl_indices)`` with one row per
  output row; ``excl_indices`` are item numbers, mapped to candidate columns
  by ``pos_of_item`` (``-1``: not a candidate) unless ``pos_of_item`` is
  empty, which means the candidates are all items in order.
* Order: higher score first, ties to the lower candidate column, so results
  are deterministic and do not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

#: Bytes of the score block filled by one BLAS call.
BLOCK_BYTES = 1 << 23


def score_blocks(U, rows, V):
    """Yield ``(start, S)`` with ``S = U[rows[start:start + len(S)]] @ V.T``.

    ``S`` is a view of one reused buffer: consume it before the next step.
    """
    nc = V.shape[0]
    itemsize = np.dtype(V.dtype).itemsize
    block = int(min(max(BLOCK_BYTES // max(nc * itemsize, 1), 16), 4096))
    block = max(1, min(block, rows.size))
    buf = np.empty((block, nc), V.dtype)
    VT = V.T
    for start in range(0, rows.size, block):
        idx = rows[start:start + block]
        S = buf[:idx.size]
        np.matmul(np.take(U, idx, axis=0), VT, out=S)
        yield start, S


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
    for start, S in score_blocks(U, rows, V):
        select_topk(S, start, n, excl_indptr, excl_indices, pos_of_item,
                    out_ids, out_scores, even_bounds(S.shape[0], 8))
    return out_ids, out_scores


def auc(U, V, train_indptr, train_indices, test_indptr, test_indices):
    """Per-user ROC AUC of ``U @ V.T`` (see :func:`auc_rows`); NaN where undefined."""
    m = U.shape[0]
    out = np.empty(m, np.float64)
    rows = np.arange(m, dtype=np.int64)
    for start, S in score_blocks(U, rows, V):
        auc_rows(S, start, train_indptr, train_indices, test_indptr,
                 test_indices, out, even_bounds(S.shape[0], 4))
    return out


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


@njit(parallel=True, cache=True)
def select_topk(S, row0, n, excl_indptr, excl_indices, pos_of_item, out_ids,
                out_scores, bounds):
    """Top ``n`` columns of every row of a score block ``S``, in parallel.

    ``S`` holds the scores of output rows ``row0 .. row0 + len(S)`` against
    every candidate (it is used as scratch: excluded entries become
    ``-inf``).

    Parameters
    ----------
    S : 2-D float array, C-contiguous, ``(block rows, n_candidates)``.
    row0 : int, output row of ``S[0]``.
    n : int, ``1 <= n <= n_candidates``.
    excl_indptr, excl_indices : CSR of excluded items per output row
        (``excl_indptr`` all zeros when nothing is excluded).
    pos_of_item : int64 array mapping an item number to its candidate column
        (``-1``: not a candidate), or empty for the identity.
    out_ids : int64 ``(n_rows, n)``: candidate columns, best first, ``-1``
        past the available candidates.
    out_scores : ``(n_rows, n)``, ``-inf`` past them.
    bounds : int64 chunk boundaries over the rows of ``S``.
    """
    identity = pos_of_item.size == 0
    for c in prange(bounds.size - 1):
        hs = np.empty(n, S.dtype)
        hi = np.empty(n, np.int64)
        for b in range(bounds[c], bounds[c + 1]):
            r = row0 + b
            srow = S[b]
            for p in range(excl_indptr[r], excl_indptr[r + 1]):
                item = excl_indices[p]
                pos = item if identity else pos_of_item[item]
                if pos >= 0:
                    srow[pos] = -np.inf
            heap_select(srow, n, hs, hi, out_ids[r], out_scores[r])
    return 0


@njit(parallel=True, cache=True)
def auc_rows(S, row0, train_indptr, train_indices, test_indptr, test_indices,
             out, bounds):
    """ROC AUC of every row of a score block ``S`` (all items as columns).

    Positives are the row's test items, negatives every item in neither its
    training nor its test row; ties count one half.  ``out[row0 + b]`` gets
    NaN for a row without a positive or a negative.  Cost:
    ``n_items * n_positives`` per row.
    """
    nc = S.shape[1]
    for c in prange(bounds.size - 1):
        kind = np.zeros(nc, np.int8)   # 0 negative, 1 positive, 2 other
        for b in range(bounds[c], bounds[c + 1]):
            u = row0 + b
            srow = S[b]
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
            out[u] = np.nan
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
    return 0


@njit(cache=True)
def even_bounds(n, per_chunk):
    """Chunk boundaries over ``n`` rows, about ``per_chunk`` rows per chunk."""
    n_chunks = max(1, min(1024, (n + per_chunk - 1) // per_chunk))
    bounds = np.empty(n_chunks + 1, np.int64)
    for c in range(n_chunks + 1):
        bounds[c] = (n * c) // n_chunks
    return bounds
