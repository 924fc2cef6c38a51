"""Sparse-matrix plumbing of ``fit``'s set-up: the CSR transpose."""

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _transpose(indptr, indices, data, n_cols, bounds):
    n_chunks = bounds.size - 1
    nnz = indices.size
    # Column counts of each chunk of rows, then each chunk's first slot in
    # every column: chunk c's rows land after those of chunks < c, in row
    # order, so every column comes out sorted, whatever the chunks.
    start = np.empty((n_chunks, n_cols), np.int64)
    for c in prange(n_chunks):
        cnt = start[c]
        for j in range(n_cols):
            cnt[j] = 0
        for p in range(indptr[bounds[c]], indptr[bounds[c + 1]]):
            cnt[indices[p]] += 1
    t_indptr = np.empty(n_cols + 1, np.int64)
    t_indptr[0] = 0
    run = 0
    for j in range(n_cols):
        for c in range(n_chunks):
            v = start[c, j]
            start[c, j] = run
            run += v
        t_indptr[j + 1] = run
    t_indices = np.empty(nnz, np.int32)
    t_data = np.empty(nnz, data.dtype)
    for c in prange(n_chunks):
        pos = start[c]
        for u in range(bounds[c], bounds[c + 1]):
            for p in range(indptr[u], indptr[u + 1]):
                j = indices[p]
                q = pos[j]
                t_indices[q] = u
                t_data[q] = data[p]
                pos[j] = q + 1
    return t_indptr, t_indices, t_data


def transpose(indptr, indices, data, n_cols):
    """CSR arrays of the transpose of a CSR matrix with ``n_cols`` columns.

    Returns ``(indptr int64, indices int32, data)`` with sorted indices in
    every row.  A counting sort over chunks of rows (one per thread, of
    similar entry counts) run in parallel; the result does not depend on
    the chunks.
    """
    n_rows = indptr.size - 1
    nnz = int(indptr[-1])
    # at most one counter per column per 8 entries: memory stays O(nnz)
    n_chunks = max(1, min(numba.get_num_threads(), n_rows,
                          nnz // (8 * max(n_cols, 1))))
    cuts = np.linspace(0, nnz, n_chunks + 1).astype(np.int64)
    bounds = np.searchsorted(indptr, cuts, side="left").astype(np.int64)
    bounds[0] = 0
    bounds[-1] = n_rows
    return _transpose(indptr, indices, data, np.int64(n_cols), bounds)
