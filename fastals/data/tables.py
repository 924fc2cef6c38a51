"""Ratings from a table in long format: pandas, polars or pyarrow.

One row per rating, columns picked by name exactly as for a file with a
header (:mod:`fastals.data.columns`): ``FastALS().fit(df)`` and
``FastALS().fit((df.user, df.item, df.rating))`` give the same model.  No
table library is imported here: tables are recognized by what they offer
(``column_names`` and ``column()`` for pyarrow; ``columns`` and
``df[name].to_numpy()`` for pandas and polars).
"""

import numpy as np

from ..exceptions import InputError
from .columns import check_plausible, pick_columns
from .ratings import Ratings, ReadInfo

__all__ = ["from_table", "is_table"]


def _kind(X):
    """"arrow", "frame" or None."""
    if hasattr(X, "column_names") and hasattr(X, "column") and hasattr(X, "num_rows"):
        return "arrow"
    cols = getattr(X, "columns", None)
    if cols is not None and not isinstance(X, np.ndarray) and hasattr(X, "__getitem__") \
            and getattr(X, "ndim", 2) == 2 and hasattr(X, "shape") \
            and not hasattr(X, "tocsr"):
        return "frame"
    return None


def is_table(X):
    """True for a pandas / polars DataFrame or a pyarrow Table."""
    return _kind(X) is not None


def _column(X, kind, name):
    col = X.column(name) if kind == "arrow" else X[name]
    nulls = getattr(col, "null_count", 0)  # pyarrow: a number; polars: a method
    nulls = int((nulls() if callable(nulls) else nulls) or 0)
    if nulls:
        raise InputError(f"column {name!r} has {nulls} missing value(s); drop or "
                         "fill them first")
    arr = np.asarray(col.to_numpy())
    if arr.ndim != 1:
        raise InputError(f"column {name!r} is not one-dimensional (shape "
                         f"{arr.shape}); is a column name repeated?")
    return arr


def _ids(arr, name):
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"id column {name!r} has missing or non-finite values; "
                             "drop them first")
        if (arr == np.round(arr)).all():
            return arr.astype(np.int64)
        raise InputError(f"id column {name!r} holds decimal numbers like "
                         f"{arr[arr != np.round(arr)][0]!r}: is it the rating "
                         "column? Pass columns=(user, item, rating)")
    if arr.dtype.kind == "O":
        missing = [k for k, v in enumerate(arr[:100000]) if v is None or v != v]
        if missing:
            raise InputError(f"id column {name!r} has missing values (first at row "
                             f"{missing[0]}); drop or fill them first")
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
               for v in arr):
            return arr.astype(np.int64)
    return arr.astype(str)


def from_table(X, columns=None, source=None):
    """:class:`Ratings` from a table in long format (one row per rating).

    Parameters
    ----------
    X : pandas.DataFrame, polars.DataFrame or pyarrow.Table
    columns : sequence of str or int, optional
        ``(user, item[, rating[, timestamp]])`` by name or 0-based
        position; default: by name as for a file header (``userId``,
        ``movieId``, ``rating``, ...; the rating column may also be the only
        numeric column left).
    source : str, optional
        Name used in messages (default: the type, e.g. ``"DataFrame"``).

    Returns
    -------
    Ratings
        ``info`` says which columns were used.
    """
    kind = _kind(X)
    if kind is None:
        raise InputError(f"expected a DataFrame or a pyarrow Table, got "
                         f"{type(X).__name__}")
    source = source or type(X).__name__
    names = list(X.column_names if kind == "arrow" else X.columns)
    if not all(isinstance(n, str) for n in names):
        if columns is None and list(names) == list(range(len(names))):
            names_for_pick = None  # a frame made from an unlabelled array
        else:
            names_for_pick = [str(n) for n in names]
    else:
        names_for_pick = names
    n_rows = int(X.num_rows if kind == "arrow" else X.shape[0])
    if n_rows == 0:
        raise InputError(f"{source}: no ratings (the table has no rows)")
    arrays = {}

    def get(c):
        if c not in arrays:
            arrays[c] = _column(X, kind, names[c])
        return arrays[c]

    numeric = [get(c).dtype.kind in "biuf" for c in range(len(names))]
    if names_for_pick is None and columns is None:
        raise InputError(f"{source}: the columns have no names (0, 1, 2, ...); "
                         "name them (user, item, rating) or pass "
                         "columns=(0, 1, 2)")
    picks, how, notes = pick_columns(source, names_for_pick, len(names), columns,
                                     numeric)
    label = lambda c: None if c is None else str(names[c])  # noqa: E731
    users = _ids(get(picks[0]), names[picks[0]])
    items = _ids(get(picks[1]), names[picks[1]])
    if picks[2] is None:
        values = np.ones(n_rows)
    else:
        try:
            values = np.asarray(get(picks[2]), dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{source}: rating column {names[picks[2]]!r} is not "
                             "numeric; name the rating column: columns=(user, "
                             "item, rating)") from None
    ts = None
    if picks[3] is not None:
        ts = np.asarray(get(picks[3]))
        if ts.dtype.kind == "M":
            ts = ts.astype("datetime64[ns]").astype(np.int64)
    info = ReadInfo(source, tuple(label(c) for c in picks), how, notes)
    r = Ratings(users, items, values, ts)
    if how == "given" and names_for_pick is None:
        info = ReadInfo(source, info.columns, how, notes,
                        tuple(check_plausible(source, r, picks)))
    return r.with_info(info)
