"""Format detection and the readers of mtx, npz and parquet files."""

import os
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..exceptions import DataFormatError, InputError
from .columns import _pick_columns
from .parse import _check_values, _one_line
from .ratings import Ratings
from .text import _read_text

__all__ = ["read_ratings", "FORMATS"]

_TEXT_SUFFIXES = {"", ".csv", ".tsv", ".dat", ".data", ".txt", ".base", ".test",
                  ".tab", ".ssv", ".psv"}
_BINARY_SUFFIXES = {".mtx": "mtx", ".mm": "mtx", ".npz": "npz",
                    ".parquet": "parquet", ".pq": "parquet"}
FORMATS = ("auto", "text", "mtx", "npz", "parquet")


def read_ratings(path, format="auto", delimiter=None, header=None, columns=None):
    """Read a ratings file.

    Parameters
    ----------
    path : str or path
    format : {"auto", "text", "mtx", "npz", "parquet"}
        ``"auto"`` picks by extension: ``.mtx``/``.mm``, ``.npz``,
        ``.parquet``/``.pq``; delimited text for ``.csv``, ``.tsv``,
        ``.dat``, ``.data``, ``.txt``, ``.base``, ``.test`` and no extension.
    delimiter : str, optional
        Text only: field separator; detected from the first line when None
        (``::``, tab, ``,``, ``;``, ``|``, else runs of whitespace).
    header : bool, optional
        Text only: whether the first line names the columns; detected when
        None (a first line with a non-numeric field where the second line
        is numeric).
    columns : sequence of int or str, optional
        ``(user, item, rating[, timestamp])`` columns by 0-based position or
        by header name.  Default: by name when the header uses common names
        (``userId``, ``movieId``, ``rating``, ...), else positions
        ``0, 1, 2`` (and ``3`` as timestamp when present).  A rating of
        ``None`` (or a file with two columns) gives every pair the value 1.

    Returns
    -------
    Ratings
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "auto":
        suffix = Path(path).suffix.lower()
        if suffix in _BINARY_SUFFIXES:
            format = _BINARY_SUFFIXES[suffix]
        elif suffix in _TEXT_SUFFIXES:
            format = "text"
        else:
            raise DataFormatError(
                f"{path}: unknown format {suffix!r}; supported: delimited text "
                "(.csv .tsv .dat .data .txt .base .test), .mtx, .npz, .parquet "
                "(format='text', or --format text, reads it as text anyway)")
    if os.path.isdir(path):
        raise DataFormatError(f"{path}: is a folder, not a ratings file")
    if not os.path.exists(path):
        raise DataFormatError(f"{path}: no such file")
    if format == "text":
        return _read_text(path, delimiter, header, columns)
    if format == "mtx":
        return _read_sparse(path, "mtx")
    if format == "npz":
        return _read_sparse(path, "npz")
    return _read_parquet(path, columns)


# --------------------------------------------------------------------------
# Sparse and parquet
# --------------------------------------------------------------------------
def _read_sparse(path, kind):
    import scipy.io

    try:
        if kind == "mtx":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = scipy.io.mmread(path)
        else:
            m = sp.load_npz(path)
    except Exception as exc:  # scipy raises many types on damaged files
        what = "Matrix Market" if kind == "mtx" else "scipy sparse .npz"
        raise DataFormatError(f"{path}: not a readable {what} file "
                              f"({_one_line(exc)})") from None
    if not sp.issparse(m):
        m = sp.coo_matrix(np.asarray(m))
    coo = m.tocoo()
    values = np.asarray(coo.data)
    if values.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: values of type {values.dtype} are not "
                              "numeric ratings")
    values = values.astype(np.float64)
    if values.size == 0:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{path}: entry {k + 1} (row {coo.row[k]}, column "
                              f"{coo.col[k]}) has a non-finite rating "
                              f"{float(values[k])!r}")
    return Ratings(coo.row.astype(np.int64), coo.col.astype(np.int64), values, None)


def _read_parquet(path, columns):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFormatError(f"{path}: reading parquet needs pyarrow; "
                              "pip install 'fastals[parquet]'") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable parquet file "
                              f"({_one_line(exc)})") from None
    names = list(table.column_names)
    picks = _pick_columns(path, names, len(names), columns)
    cols = [None if c is None else table.column(c).to_numpy()
            for c in picks]
    if cols[0] is None or len(cols[0]) == 0:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    users, items = (_ids_from_array(c) for c in cols[:2])
    if cols[2] is None:
        values = np.ones(len(users))
    else:
        try:
            values = np.asarray(cols[2], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataFormatError(f"{path}: rating column {names[picks[2]]!r} is "
                                  "not numeric") from None
    _check_values(path, values, lambda k: f"row {k + 1}")
    ts = None if cols[3] is None else np.asarray(cols[3])
    return Ratings(users, items, values, ts)


def _ids_from_array(col):
    col = np.asarray(col)
    if col.dtype.kind in "iu":
        return col.astype(np.int64)
    if col.dtype.kind == "f" and np.isfinite(col).all() and (col == np.round(col)).all():
        return col.astype(np.int64)
    return col.astype(str)

