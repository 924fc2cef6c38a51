"""Format detection, decompression, and the mtx, npz and parquet readers."""

import bz2
import gzip
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..exceptions import DataFormatError, InputError
from .parse import _check_values, _one_line
from .ratings import Ratings, ReadInfo
from .tables import from_table
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
        The file; ``.gz``, ``.bz2`` and ``.zip`` (of one file, or of a
        MovieLens folder) are decompressed in memory first, and the name
        inside decides the format (``ratings.csv.gz`` is CSV).
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
        ``(user, item[, rating[, timestamp]])`` columns by 0-based position
        or by header name.  Default, with a header: user and item by name
        (``userId``, ``movieId``, ... see
        :data:`fastals.data.columns.ALIASES`; an error when either is not
        found), the rating by name or else as the only numeric column left
        (none left: implicit feedback, every pair counts 1), the timestamp
        by name.  Without a header: positions ``0, 1, 2`` (and ``3`` as
        timestamp), checked for plausibility (a
        :class:`~fastals.exceptions.DataWarning` names doubtful columns).
        A rating of ``None`` gives every pair the value 1.

    Returns
    -------
    Ratings
        ``info`` records which columns were used and how.
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise InputError(f"format must be one of {FORMATS}, got {format!r}")
    if os.path.isdir(path):
        raise DataFormatError(f"{path}: is a folder, not a ratings file")
    if not os.path.exists(path):
        raise DataFormatError(f"{path}: no such file" + _did_you_mean(path))
    raw, inner = _decompress(path)
    if format == "auto":
        suffix = Path(inner).suffix.lower()
        if suffix in _BINARY_SUFFIXES:
            format = _BINARY_SUFFIXES[suffix]
        elif suffix in _TEXT_SUFFIXES:
            format = "text"
        else:
            raise DataFormatError(
                f"{path}: unknown format {suffix!r}; supported: delimited text "
                "(.csv .tsv .dat .data .txt .base .test), .mtx, .npz, .parquet, "
                "each also as .gz, .bz2 or .zip (format='text', or --format "
                "text, reads it as text anyway)")
    if format == "text":
        return _read_text(path, delimiter, header, columns, raw=raw)
    source = path if raw is None else io.BytesIO(raw)
    if format in ("mtx", "npz"):
        return _read_sparse(path, format, source)
    return _read_parquet(path, columns, source)


_COMPRESSED = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zip": "zip"}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"PK\x03\x04", "zip"))
_RATINGS_NAMES = ("u.data", "ratings.dat", "ratings.csv")


def _decompress(path):
    """``(bytes or None, inner name)``: the decompressed content of a .gz,
    .bz2 or .zip file (None for other files, read later as they are)."""
    suffix = Path(path).suffix.lower()
    kind = _COMPRESSED.get(suffix)
    if kind is None:
        return None, path
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not any(magic.startswith(m) and k == kind for m, k in _MAGIC):
        raise DataFormatError(f"{path}: not a {kind} file (by its content), though "
                              f"its name ends in {suffix}")
    inner = path[:-len(suffix)]
    try:
        if kind == "gzip":
            with gzip.open(path, "rb") as f:
                return f.read(), inner
        if kind == "bz2":
            with bz2.open(path, "rb") as f:
                return f.read(), inner
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()
                       and not m.filename.startswith("__MACOSX/")
                       and not Path(m.filename).name.startswith(".")]
            if len(members) != 1:
                known = [m for m in members if Path(m.filename).name in _RATINGS_NAMES]
                if len(known) != 1:
                    shown = ", ".join(m.filename for m in members[:5])
                    raise DataFormatError(
                        f"{path}: the zip holds {len(members)} files ({shown}"
                        f"{', ...' if len(members) > 5 else ''}); unpack it and "
                        "pass the ratings file")
                members = known
            return zf.read(members[0]), members[0].filename
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise DataFormatError(f"{path}: damaged {kind} file ({_one_line(exc)})") \
            from None


def _did_you_mean(path):
    """`` (a data set name?)`` hint for a missing file that looks like a name."""
    import difflib

    from .movielens import DATASETS
    if os.sep in path or "/" in path:
        return ""
    close = difflib.get_close_matches(path.lower(), list(DATASETS), n=1, cutoff=0.6)
    if close:
        return f"; did you mean the data set {close[0]!r}?"
    return ""


# --------------------------------------------------------------------------
# Sparse and parquet
# --------------------------------------------------------------------------
def _read_sparse(path, kind, source=None):
    import scipy.io

    source = path if source is None else source
    try:
        if kind == "mtx":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = scipy.io.mmread(source)
        else:
            m = sp.load_npz(source)
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
    r = Ratings(coo.row.astype(np.int64), coo.col.astype(np.int64), values, None)
    return r.with_info(ReadInfo(str(path), ("row", "column", "value", None),
                                "matrix"))


def _read_parquet(path, columns, source=None):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFormatError(f"{path}: reading parquet needs pyarrow; "
                              "pip install 'fastals[parquet]'") from None
    try:
        table = pq.read_table(path if source is None else source)
    except Exception as exc:
        raise DataFormatError(f"{path}: not a readable parquet file "
                              f"({_one_line(exc)})") from None
    if table.num_rows == 0:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    try:
        r = from_table(table, columns, source=str(path))
    except DataFormatError:
        raise
    except InputError as exc:
        raise DataFormatError(str(exc) if str(exc).startswith(str(path))
                              else f"{path}: {exc}") from None
    _check_values(path, r.values, lambda k: f"row {k + 1}")
    return r
