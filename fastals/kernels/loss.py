"""The per-entry part of the weighted loss of a chunk of rows.

Summed by a parallel kernel of its own here, or inside the row solvers'
kernels (:mod:`.rows`, :mod:`.cg`), which the fit has compiled already;
:func:`fastals.kernels.loss_terms` chooses.
"""

import numpy as np
from numba import njit, prange

from .llvm import FASTMATH, PREFETCH_AHEAD, _ChunkCallback, _chunk_views, _prefetch_entry


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y, w0):
    """The loss terms of rows ``r0:r1``, summed in float64."""
    k = X.shape[1]
    acc = 0.0
    for u in range(r0, r1):
        x = X[u]
        p = indptr[u]
        end = indptr[u + 1]
        while p + 4 <= end:  # four independent rows of Y in flight
            for q in range(4):
                _prefetch_entry(indices, p + PREFETCH_AHEAD + q, Y)
            y0 = Y[indices[p]]
            y1 = Y[indices[p + 1]]
            y2 = Y[indices[p + 2]]
            y3 = Y[indices[p + 3]]
            d0 = x[0] * y0[0]
            d1 = x[0] * y1[0]
            d2 = x[0] * y2[0]
            d3 = x[0] * y3[0]
            for i in range(1, k):
                xi = x[i]
                d0 += xi * y0[i]
                d1 += xi * y1[i]
                d2 += xi * y2[i]
                d3 += xi * y3[i]
            for q, dot in ((0, d0), (1, d1), (2, d2), (3, d3)):
                e_ = p + q
                d = np.float64(dot)
                e = (np.float64(target[e_]) - np.float64(offset[indices[e_]])) - d
                acc += np.float64(conf[e_]) * e * e - w0 * d * d
            p += 4
        while p < end:
            it = indices[p]
            y = Y[it]
            dot = x[0] * y[0]
            for i in range(1, k):
                dot += x[i] * y[i]
            d = np.float64(dot)
            e = (np.float64(target[p]) - np.float64(offset[it])) - d
            acc += np.float64(conf[p]) * e * e - w0 * d * d
            p += 1
    return acc


def _loss_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                 Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                 blas, cap, mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y, w0)


_LOSS = _ChunkCallback("loss_rows", _loss_rows_c)
_loss_chunk = _LOSS.caller()


@_LOSS.guard
@njit(parallel=True, cache=True)
def _loss_terms(indptr, indices, conf, target, offset, X, Y, w0, bounds):
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    G = np.empty((0, 0), Y.dtype)
    for c in prange(n_chunks):
        partial[c] = _loss_chunk(bounds[c], bounds[c + 1], indptr, indices, conf,
                                 target, offset, Y, G, w0, False, w0, X, False, 0,
                                 0)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total
