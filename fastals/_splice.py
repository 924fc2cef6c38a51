"""Replace or append whole rows or columns of a canonical CSR matrix.

``partial_fit_users`` / ``partial_fit_items`` keep the stored training
interactions (users x items) up to date.  Rebuilding the matrix from COO
costs a sort of every rating per call; these functions instead copy the
unchanged entries as contiguous blocks and place the new ones by binary
search, so the work beyond plain memory copies is proportional to the rows
or columns that change.

Input and output are canonical: sorted indices, no duplicates, ``indptr``
int64, ``indices`` int32, ``data`` float64.
"""

import numpy as np
import scipy.sparse as sp


def _csr(data, indices, indptr, shape):
    out = sp.csr_matrix((data, indices, indptr), shape=shape)
    out.has_sorted_indices = True
    return out


def replace_rows(ui, target, rows, n_rows):
    """``ui`` with rows ``target[j]`` set to row ``j`` of ``rows``.

    ``target`` holds distinct row numbers; those ``>= ui.shape[0]`` are new
    rows (the result has ``n_rows`` rows, every new row among ``target``).
    """
    m_old, n_cols = ui.shape
    old_ptr = ui.indptr.astype(np.int64, copy=False)
    lens = np.zeros(n_rows, np.int64)
    lens[:m_old] = np.diff(old_ptr)
    lens[target] = np.diff(rows.indptr)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    data = np.empty(indptr[-1], np.float64)
    indices = np.empty(indptr[-1], np.int32)

    def copy_old(r0, r1):  # unchanged old rows r0:r1, one block
        if r1 > r0:
            a, b = old_ptr[r0], old_ptr[r1]
            d = indptr[r0]
            data[d:d + b - a] = ui.data[a:b]
            indices[d:d + b - a] = ui.indices[a:b]

    order = np.argsort(target, kind="stable")
    prev = 0
    for j in order.tolist():  # one pass per changed row, not per row
        r = int(target[j])
        copy_old(prev, min(r, m_old))
        a, b = rows.indptr[j], rows.indptr[j + 1]
        data[indptr[r]:indptr[r + 1]] = rows.data[a:b]
        indices[indptr[r]:indptr[r + 1]] = rows.indices[a:b]
        prev = max(prev, r + 1)
    copy_old(min(prev, m_old), m_old)
    return _csr(data, indices, indptr, (n_rows, n_cols))


def replace_columns(ui, target, cols, n_cols):
    """``ui`` with columns ``target[j]`` set to row ``j`` of ``cols``.

    ``cols`` is items x users (one row per changed column of ``ui``);
    ``target`` holds distinct column numbers, those ``>= ui.shape[1]`` new.
    """
    m, n_old = ui.shape
    indptr = ui.indptr.astype(np.int64, copy=False)
    indices = ui.indices
    data = ui.data
    existing = np.unique(target[target < n_old])
    if existing.size:  # drop the replaced columns' entries (one pass)
        drop = np.isin(indices, existing)
        if drop.any():
            removed = np.zeros(indices.size + 1, np.int64)
            np.cumsum(drop, out=removed[1:])
            indptr = indptr - removed[indptr]
            indices = indices[~drop]
            data = data[~drop]
    sub = cols.tocoo()
    users = sub.col.astype(np.int64)
    columns = target[sub.row].astype(np.int64)
    order = np.lexsort((columns, users))
    users, columns, values = users[order], columns[order], sub.data[order]
    # Where each new entry goes in its row: after the entries with a lower
    # column.  New columns are numbered past every old one: the row's end.
    pos = indptr[users + 1].copy()
    old_cols = np.flatnonzero(columns < n_old)
    for e in old_cols.tolist():  # one binary search per changed entry
        u = users[e]
        lo, hi = indptr[u], indptr[u + 1]
        pos[e] = lo + np.searchsorted(indices[lo:hi], columns[e])
    out_indices = np.insert(indices, pos, columns.astype(np.int32))
    out_data = np.insert(data, pos, values)
    grow = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=m), out=grow[1:])
    return _csr(out_data, out_indices.astype(np.int32, copy=False),
                indptr + grow, (m, n_cols))
