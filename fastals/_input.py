"""Turn what users pass to ``fit`` into canonical CSR arrays.

Canonical form: a ``scipy.sparse.csr_matrix`` of float64 values, users x
items, sorted indices, no duplicate entries, ``indptr`` int64 and
``indices`` int32; plus the raw ids of its rows and columns (``None`` where
the caller's indices are used as they are).
"""

import numpy as np
import scipy.sparse as sp

from .exceptions import InputError

DUPLICATE_POLICIES = ("auto", "last", "mean", "sum", "error")


def resolve_duplicates(policy, implicit):
    """The policy ``"auto"`` stands for: ``"sum"`` for implicit feedback
    (interaction counts add up), ``"last"`` for explicit ratings (a user who
    rates a film twice changed their mind: the latest rating counts)."""
    if policy not in DUPLICATE_POLICIES:
        raise InputError(f"duplicates must be one of {DUPLICATE_POLICIES}, "
                         f"got {policy!r}")
    if policy == "auto":
        return "sum" if implicit else "last"
    return policy


def _check_finite(values, what="values"):
    bad = ~np.isfinite(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{what} contain {int(bad.sum())} non-finite value(s) (NaN or inf); "
            f"first at position {pos}: {values[pos]!r}")


def id_array(raw):
    """Raw ids as an array, integers kept exact.

    numpy turns a list of Python ints that do not all fit in int64 into
    float64 (losing digits); such ids become uint64 when they are all in
    ``[0, 2**64)``, int64 when they fit it, and stay objects otherwise.
    Arrays are returned as they are.
    """
    if isinstance(raw, np.ndarray):
        return raw
    arr = np.asarray(raw)
    if arr.dtype.kind in "fO" and arr.size:
        obj = np.asarray(raw, dtype=object)
        flat = obj.ravel()
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
               for v in flat):
            lo, hi = int(min(flat)), int(max(flat))
            for dtype in (np.int64, np.uint64):
                info = np.iinfo(dtype)
                if info.min <= lo and hi <= info.max:
                    return np.array([int(v) for v in flat], dtype).reshape(obj.shape)
            return obj
    return arr


def _as_index_array(ids, what):
    arr = id_array(ids)
    if arr.ndim != 1:
        raise InputError(f"{what} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_integral(raw, what):
    """Float ids must be finite whole numbers (1.0, not 1.5)."""
    _check_finite(raw, what)
    if not np.all(raw == np.round(raw)):
        pos = int(np.flatnonzero(raw != np.round(raw))[0])
        raise InputError(f"{what} must be integers or strings; "
                         f"position {pos} holds {raw[pos]!r}")


def encode_ids(raw, what):
    """Map arbitrary hashable ids to ``0..n-1``.

    Returns ``(codes, uniques)`` with ``uniques`` sorted, so that
    ``uniques[codes] == raw``.
    """
    if raw.dtype.kind == "f":
        _check_integral(raw, what)
        if raw.size and np.abs(raw).max() >= 2.0 ** 63:
            raise InputError(f"{what} hold floats beyond the int64 range; pass "
                             "large integer ids as integers (uint64)")
        raw = raw.astype(np.int64)
    if raw.dtype.kind == "O":
        raw = raw.astype(str)
    if raw.dtype.kind == "b":
        raw = raw.astype(np.int64)
    if raw.size and raw.dtype.kind in "iu":
        lo = raw.min()  # in raw's dtype: uint64 ids >= 2**63 stay exact
        span = int(raw.max()) - int(lo)
        if span <= 4 * raw.size + 1024:
            # Dense id range: a lookup table, O(n) and far faster than sorting.
            off = (raw - lo).astype(np.int64)  # in [0, span]: no overflow
            seen = np.zeros(span + 1, bool)
            seen[off] = True
            present = np.flatnonzero(seen)
            table = np.empty(span + 1, np.int64)
            table[present] = np.arange(present.size)
            return table[off], present.astype(raw.dtype) + lo
    # General case (strings, sparse integer ranges): one stable sort.
    # (np.unique(return_inverse=True) is an order of magnitude slower on
    # some numpy versions.)
    order = np.argsort(raw, kind="stable")
    ordered = raw[order]
    new = np.empty(raw.size, bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    codes = np.empty(raw.size, np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes, ordered[new]


def combine_duplicates(rows, cols, values, n_cols, policy, timestamps=None):
    """Resolve repeated ``(row, col)`` pairs by ``policy``.

    Returns sorted-by-(row, col) arrays with each pair once.  ``last`` keeps
    the value with the latest timestamp when ``timestamps`` are given (ties:
    the later in input order), else the value that comes last in the input.
    ``policy`` must be resolved already (not ``"auto"``).
    """
    if policy not in DUPLICATE_POLICIES or policy == "auto":
        raise InputError(f"duplicates must be one of {DUPLICATE_POLICIES}, "
                         f"got {policy!r}")
    key0 = rows.astype(np.int64) * np.int64(n_cols) + cols.astype(np.int64)
    order = np.argsort(key0, kind="stable")
    key = key0[order]
    if key.size == 0:
        return rows[:0], cols[:0], values[order]
    first = np.empty(key.size, bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    if policy == "last" and timestamps is not None and not first.all():
        order = np.lexsort((np.asarray(timestamps), key0))  # stable
    values = values[order]
    if first.all():
        ukey, out = key, values
    else:
        if policy == "error":
            pos = int(np.flatnonzero(~first)[0])
            r, c = divmod(int(key[pos]), n_cols)
            raise InputError(
                f"{int((~first).sum())} duplicate (user, item) pair(s), e.g. "
                f"row {r}, column {c}; pass duplicates='last', 'mean' or 'sum' "
                "(--duplicates at the command line)")
        starts = np.flatnonzero(first)
        ukey = key[starts]
        if policy == "last":
            ends = np.append(starts[1:], key.size) - 1
            out = values[ends]
        else:
            out = np.add.reduceat(values, starts)
            if policy == "mean":
                out = out / np.diff(np.append(starts, key.size))
    return ukey // n_cols, ukey % n_cols, out


def to_csr(X, duplicates="auto", shape=None, implicit=False, columns=None):
    """Canonicalize ``X`` for training.

    Parameters
    ----------
    X : scipy.sparse matrix, tuple ``(user_ids, item_ids, values)``, or Ratings
        A sparse matrix is users x items and keeps its row and column
        numbers as ids; stored zeros are dropped (a zero in a sparse matrix
        means "no entry").  Triplets may use any integer or string ids;
        every value is an observation, zeros included.  (Tables are turned
        into Ratings by :func:`fastals.data.tables.from_table` before.)  A
        dense 2-D array is refused: wrap a users x items matrix in
        ``scipy.sparse.csr_matrix``.
    duplicates : {"auto", "last", "mean", "sum", "error"}
        What to do with repeated (user, item) pairs (see
        :func:`resolve_duplicates`).
    implicit : bool
        The values are implicit feedback (for ``duplicates="auto"``).
    columns : None
        Must be None here (tables are read before, with their columns).

    Returns
    -------
    csr : scipy.sparse.csr_matrix
    user_ids, item_ids : ndarray or None
        Raw id of each row / column, or ``None`` for the identity mapping.
    """
    timestamps = None
    if columns is not None:
        raise InputError("columns= only applies to a DataFrame or pyarrow Table")
    if isinstance(X, tuple) and all(hasattr(X, a) for a in
                                    ("user_ids", "item_ids", "values")):
        # a fastals.data.Ratings
        implicit = implicit or bool(getattr(X, "implicit", False))
        timestamps = getattr(X, "timestamps", None)
        X = (X.user_ids, X.item_ids, X.values)
    duplicates = resolve_duplicates(duplicates, implicit)
    if isinstance(X, tuple):
        if len(X) != 3:
            raise InputError("triplet input must be (user_ids, item_ids, values), "
                             f"got a tuple of {len(X)}")
        users = _as_index_array(X[0], "user_ids")
        items = _as_index_array(X[1], "item_ids")
        values = np.asarray(X[2], dtype=np.float64)
        if values.ndim != 1:
            raise InputError(f"values must be one-dimensional, got shape {values.shape}")
        if not (users.size == items.size == values.size):
            raise InputError("user_ids, item_ids and values differ in length: "
                             f"{users.size}, {items.size}, {values.size}")
        if values.size == 0:
            raise InputError("no ratings: the input is empty")
        _check_finite(values, "values")
        ucodes, user_ids = encode_ids(users, "user_ids")
        icodes, item_ids = encode_ids(items, "item_ids")
        m, n = user_ids.size, item_ids.size
        r, c, v = combine_duplicates(ucodes, icodes, values, n, duplicates,
                                     timestamps)
        csr = _from_sorted(r, c, v, (m, n))
        return csr, user_ids, item_ids

    return matrix_to_csr(X, duplicates), None, None


def matrix_to_csr(X, duplicates="sum", allow_empty=False):
    """Canonical CSR of a sparse matrix or 2-D array, rows x columns.

    The one path every matrix input takes (``fit`` and fold-in alike):
    stored zeros are dropped (a zero in a sparse matrix means "no entry"),
    then repeated ``(row, col)`` entries are resolved by ``duplicates``
    (:func:`combine_duplicates`).

    Parameters
    ----------
    X : scipy.sparse matrix or 2-D numeric array
    duplicates : {"sum", "mean", "last", "error"}
    allow_empty : bool, default False
        Accept a matrix without entries (fold-in of rows without
        interactions); ``fit`` refuses it.
    """
    if sp.issparse(X) and X.format == "csr" and X.ndim == 2 and min(X.shape) > 0:
        fast = _canonical_csr(X, duplicates)
        if fast is not None:
            return fast
    if sp.issparse(X):
        coo = X.tocoo()
        if coo.ndim != 2:
            raise InputError(f"X must be two-dimensional, got {coo.ndim} dimensions")
        values = np.asarray(coo.data, dtype=np.float64)
        rows, cols = coo.row, coo.col
    else:
        raise InputError(_not_sparse_message(X))
    m, n = coo.shape
    if (m == 0 or n == 0) and not allow_empty:
        raise InputError(f"X has shape {coo.shape}: no users or no items")
    _check_finite(values, "values of X")
    keep = values != 0
    if not keep.all():
        rows, cols, values = rows[keep], cols[keep], values[keep]
    if values.size == 0 and not allow_empty:
        raise InputError("no ratings: X has no non-zero entry")
    r, c, v = combine_duplicates(rows, cols, values, n, duplicates)
    return _from_sorted(r, c, v, (m, n))


def _not_sparse_message(X):
    """Why ``X`` is refused, and how to pass it."""
    how = ("pass the columns as a tuple: fit((user_ids, item_ids, ratings)), "
           "or a DataFrame with named columns")
    if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        return ("X must be a scipy.sparse matrix, a tuple (user_ids, item_ids, "
                "values), Ratings or a DataFrame, not a file name; read the file "
                "with fastals.load_ratings(path) first")
    if isinstance(X, list) and X and isinstance(X[0], (tuple, list)):
        return (f"X is a list of {len(X):,} rows like {tuple(X[0])!r}, which fit "
                f"does not guess at; {how}: fit(tuple(zip(*rows))) turns rows of "
                "(user, item, rating) into columns")
    try:
        arr = np.asarray(X)
    except Exception:  # noqa: BLE001 - anything numpy cannot take
        arr = None
    if arr is not None and arr.ndim == 2:
        if arr.shape[1] in (2, 3, 4) and arr.shape[0] > arr.shape[1]:
            return (f"X is a {arr.shape[0]:,} x {arr.shape[1]} array: rows of "
                    "(user, item, rating)? fit does not guess; pass "
                    "fit((X[:, 0], X[:, 1], X[:, 2])) for triplets, or "
                    "fit(scipy.sparse.csr_matrix(X)) if it really is a users x "
                    "items matrix (zeros mean no rating)")
        return (f"X is a dense {arr.shape[0]:,} x {arr.shape[1]:,} array, which "
                "fit does not take as a users x items matrix by guess; pass "
                "fit(scipy.sparse.csr_matrix(X)) for a matrix (zeros mean no "
                f"rating), or, for rows of (user, item, rating), {how}")
    return ("X must be a scipy.sparse matrix, a tuple (user_ids, item_ids, "
            "values), Ratings or a DataFrame; got " + type(X).__name__)


def _canonical_csr(X, duplicates):
    """A CSR input that is already canonical, without the COO round trip.

    Returns None unless ``X`` has sorted indices, no duplicates and no
    stored zeros; then only the values are copied (to float64) and the
    index arrays cast where needed, instead of sorting every entry again.
    """
    if not X.has_canonical_format or X.nnz == 0:
        return None
    values = np.asarray(X.data, dtype=np.float64)
    # min and max propagate NaN and show inf: two passes, no temporaries
    if not (np.isfinite(values.min()) and np.isfinite(values.max())):
        _check_finite(values, "values of X")
    if np.count_nonzero(values) != values.size:
        return None
    if values is X.data:
        values = values.copy()
    csr = sp.csr_matrix((values, X.indices.astype(np.int32, copy=False),
                         X.indptr.astype(np.int64, copy=False)), shape=X.shape)
    csr.has_sorted_indices = True
    return csr


def _from_sorted(rows, cols, values, shape):
    m, n = shape
    indptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=m), out=indptr[1:])
    csr = sp.csr_matrix((values.astype(np.float64), cols.astype(np.int32), indptr),
                        shape=shape)
    csr.has_sorted_indices = True
    return csr


#: From this many entries :func:`transpose_csr` runs the compiled parallel
#: transpose (20M ratings, 2 threads: about 3x faster than SciPy's serial
#: one); smaller inputs use SciPy's, so that a first small fit has nothing
#: more to compile.
COMPILED_TRANSPOSE_FROM = 1 << 21


def transpose_csr(csr):
    """CSR of the transpose with int64 indptr / int32 indices, sorted."""
    if csr.nnz >= COMPILED_TRANSPOSE_FROM:
        from .kernels.sparse import transpose
        indptr, indices = kernel_arrays(csr)
        tp, ti, td = transpose(indptr, indices, csr.data, csr.shape[1])
        t = sp.csr_matrix((csr.shape[1], csr.shape[0]), dtype=td.dtype)
        t.data, t.indices, t.indptr = td, ti, tp  # no checks, no casts
        t.has_sorted_indices = True
        return t
    t = csr.T.tocsr()
    t.sort_indices()
    return sp.csr_matrix((t.data, t.indices.astype(np.int32),
                          t.indptr.astype(np.int64)), shape=t.shape)


def kernel_arrays(csr):
    """``(indptr int64, indices int32)`` ready for the kernels."""
    return (np.ascontiguousarray(csr.indptr, dtype=np.int64),
            np.ascontiguousarray(csr.indices, dtype=np.int32))
