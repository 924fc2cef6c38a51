"""Read ratings files and fetch the MovieLens data sets.

One entry point, :func:`load`, takes a file, a folder or the name of a
MovieLens set and returns :class:`Ratings`, four aligned arrays that
:meth:`fastals.FastALS.fit` accepts as they are (``model.fit(r[:3])``) or
through :meth:`Ratings.to_csr`.

Formats
-------
* Delimited text: MovieLens-100k ``u.data`` / ``ua.base`` (tab, no header),
  MovieLens-1M/10M ``ratings.dat`` (``::``), MovieLens-20M/25M/latest
  ``ratings.csv`` (header), and any CSV/TSV/``;``/``|``/whitespace file.
  The delimiter and the header line are detected; columns are picked by
  name or position.  Parsing is a compiled pass over the bytes (Numba; a
  second pass for string ids) with an exact pure-Python fallback for what
  it does not handle (quoted fields, decimals with more than 15 digits,
  integer ids with more than 18).
* Matrix Market ``.mtx`` and scipy sparse ``.npz`` (ids are the 0-based row
  and column numbers).
* Parquet (``.parquet``), when ``pyarrow`` is installed
  (``pip install 'fastals[parquet]'``).

Any problem with a file raises :class:`~fastals.exceptions.DataFormatError`
naming the file and, for text, the line.
"""

import csv
import hashlib
import io
import math
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

import numba
import numpy as np
import scipy.sparse as sp

from .exceptions import DataFormatError, FastALSError, InputError

__all__ = ["Ratings", "load", "read_ratings", "fetch_movielens", "DATASETS",
           "DownloadError"]


class DownloadError(FastALSError, OSError):
    """A named data set is not on disk and cannot be downloaded or verified."""


# --------------------------------------------------------------------------
# Ratings
# --------------------------------------------------------------------------
class Ratings(NamedTuple):
    """Ratings as four aligned one-dimensional arrays.

    Attributes
    ----------
    user_ids, item_ids : ndarray
        Raw ids, ``int64`` when every id in the column is an integer,
        unicode strings otherwise.
    values : ndarray of float64
        The ratings (or interaction counts).
    timestamps : ndarray or None
        The timestamp column when the file has one.

    ``model.fit(ratings[:3])`` trains on the triplets with the raw ids kept
    in ``model.user_ids`` / ``model.item_ids``.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    values: np.ndarray
    timestamps: Optional[np.ndarray] = None

    @property
    def n_ratings(self):
        """Number of rows (ratings)."""
        return int(self.values.size)

    def to_csr(self, ids="observed", duplicates="sum"):
        """Users x items sparse matrix and the raw id of each row and column.

        Parameters
        ----------
        ids : {"observed", "range", "auto"}
            ``"observed"``: one row per distinct user id, one column per
            distinct item id (sorted), as ``FastALS.fit`` does with triplets.
            ``"range"``: integer ids used as positions -- rows are the ids
            ``lo..max`` with ``lo`` = 1 when every id is >= 1 (MovieLens) and 0
            otherwise, so catalogue entries absent from this file (two
            MovieLens-100k items are absent from ``ua.base``) keep an empty row.
            ``"auto"``: ``"range"`` for non-negative integer ids that fill at
            least half of their range, ``"observed"`` otherwise.
        duplicates : {"sum", "mean", "last", "error"}
            Policy for repeated (user, item) pairs.

        Returns
        -------
        csr : scipy.sparse.csr_matrix
            float64 values, int32 indices, sorted.
        user_ids, item_ids : ndarray
            Raw id of each row / column.
        """
        from ._input import combine_duplicates, to_csr

        if ids not in ("observed", "range", "auto"):
            raise InputError(f"ids must be 'observed', 'range' or 'auto', got {ids!r}")
        if ids == "auto":
            ids = "range" if (_fills_range(self.user_ids)
                              and _fills_range(self.item_ids)) else "observed"
        if ids == "observed":
            return to_csr((self.user_ids, self.item_ids, self.values), duplicates)
        spans = []
        for raw, what in ((self.user_ids, "user"), (self.item_ids, "item")):
            if raw.dtype.kind not in "iu" or raw.size == 0 or raw.min() < 0:
                raise InputError(f"ids='range' needs non-negative integer {what} ids")
            lo = 1 if raw.min() >= 1 else 0
            spans.append((lo, int(raw.max())))
        (ulo, uhi), (ilo, ihi) = spans
        m, n = uhi - ulo + 1, ihi - ilo + 1
        values = np.asarray(self.values, np.float64)
        if not np.isfinite(values).all():
            raise InputError("values contain NaN or inf")
        r, c, v = combine_duplicates(self.user_ids - ulo, self.item_ids - ilo,
                                     values, n, duplicates)
        indptr = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(r, minlength=m), out=indptr[1:])
        csr = sp.csr_matrix((v, c.astype(np.int32), indptr), shape=(m, n))
        csr.has_sorted_indices = True
        return (csr, np.arange(ulo, uhi + 1, dtype=np.int64),
                np.arange(ilo, ihi + 1, dtype=np.int64))


def _fills_range(raw):
    if raw.dtype.kind not in "iu" or raw.size == 0 or raw.min() < 0:
        return False
    lo = 1 if raw.min() >= 1 else 0
    span = int(raw.max()) - lo + 1
    return np.unique(raw).size * 2 >= span


# --------------------------------------------------------------------------
# Named data sets
# --------------------------------------------------------------------------
DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

#: name -> (zip file, folder inside the zip, ratings file, MD5 of the zip).
#: The MD5 sums are the ones GroupLens publishes beside each zip
#: (``<zip>.md5``); ml-latest-small is rebuilt from time to time, so it has
#: no pinned sum.
DATASETS = {
    "ml-100k": ("ml-100k.zip", "ml-100k", "u.data",
                "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": ("ml-1m.zip", "ml-1m", "ratings.dat",
              "c4d9eecfca2ab87c1945afe126590906"),
    "ml-10m": ("ml-10m.zip", "ml-10M100K", "ratings.dat",
               "ce571fd55effeba0271552578f2648bd"),
    "ml-20m": ("ml-20m.zip", "ml-20m", "ratings.csv",
               "cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": ("ml-25m.zip", "ml-25m", "ratings.csv",
               "6b51fb2759a8657d3bfcbfc42b592ada"),
    "ml-latest-small": ("ml-latest-small.zip", "ml-latest-small", "ratings.csv",
                        None),
}


def _cache_dir():
    env = os.environ.get("FASTALS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fastals"


def fetch_movielens(name, data_home=None, base_url=None, checksum=None,
                    download=True, progress=None):
    """Path of the ratings file of a MovieLens set, downloading it if needed.

    Looks in ``$FASTALS_DATA/<name>/``, then in the cache
    (``$FASTALS_CACHE``, default ``~/.cache/fastals``), and otherwise
    downloads ``<base_url><name>.zip`` into the cache, checks its checksum and
    unpacks it.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``ml-100k``, ``ml-1m``, ``ml-10m``,
        ``ml-20m``, ``ml-25m``, ``ml-latest-small``).
    data_home : path, optional
        Cache folder (default ``$FASTALS_CACHE`` or ``~/.cache/fastals``).
    base_url : str, optional
        Where the zips live (default ``$FASTALS_BASE_URL`` or GroupLens).
    checksum : str, optional
        Expected ``"sha256:<hex>"`` or ``"md5:<hex>"`` of the zip, replacing
        the pinned one (for mirrors and tests).
    download : bool
        ``False``: fail instead of downloading.
    progress : bool or None
        Show a download progress bar (needs ``tqdm``); None: when stderr is
        a terminal.

    Returns
    -------
    pathlib.Path
    """
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    zip_name, folder, ratings_file, md5 = DATASETS[name]
    candidates = []
    if os.environ.get("FASTALS_DATA"):
        root = Path(os.environ["FASTALS_DATA"])
        candidates += [root / name / ratings_file, root / folder / ratings_file]
    cache = Path(data_home) if data_home is not None else _cache_dir()
    target = cache / name
    candidates.append(target / ratings_file)
    for path in candidates:
        if path.is_file():
            return path
    base = base_url or os.environ.get("FASTALS_BASE_URL") or DEFAULT_BASE_URL
    url = base.rstrip("/") + "/" + zip_name
    if not download:
        raise DownloadError(f"{name} is not on disk (looked in {candidates[0].parent}"
                            f"); download it from {url}")
    if checksum is None:
        checksum = f"md5:{md5}" if md5 else None
    cache.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        zpath = tmpdir / zip_name
        _download(url, zpath, name, progress)
        _verify(zpath, checksum, url)
        unpacked = tmpdir / "unpacked"
        _safe_extract(zpath, unpacked, url)
        src = unpacked / folder
        if not (src / ratings_file).is_file():
            raise DownloadError(f"{url} does not hold {folder}/{ratings_file}")
        if target.exists() and not (target / ratings_file).is_file():
            shutil.rmtree(target)  # left over from an older, broken unpack
        try:
            os.replace(src, target)
        except OSError:
            if not (target / ratings_file).is_file():  # lost a race: fine
                raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return target / ratings_file


def _download(url, dest, name, progress):
    hint = (f"cannot download {name} from {url} ({{}}); check the network, or "
            f"unpack {name}.zip yourself into $FASTALS_DATA/{name}/ "
            "(or set FASTALS_BASE_URL to a mirror)")
    try:
        resp = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(hint.format(reason)) from None
    total = int(resp.headers.get("Content-Length") or 0) or None
    bar = None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=name)
        except ImportError:
            bar = None
    try:
        with resp, open(dest, "wb") as out:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except OSError as exc:
        raise DownloadError(hint.format(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    if total is not None and dest.stat().st_size != total:
        raise DownloadError(hint.format(f"got {dest.stat().st_size} of {total} bytes"))


def _verify(path, checksum, url):
    if checksum is None:
        return
    algo, _, expected = checksum.partition(":")
    if algo not in ("sha256", "md5") or not expected:
        raise InputError(f"checksum must be 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected.lower():
        raise DownloadError(f"{url}: {algo} checksum mismatch (got {h.hexdigest()}, "
                            f"expected {expected}); the download is corrupt or "
                            "the file changed upstream")


def _safe_extract(zpath, dest, url):
    try:
        with zipfile.ZipFile(zpath) as zf:
            for member in zf.namelist():
                p = Path(member)
                if p.is_absolute() or ".." in p.parts:
                    raise DownloadError(f"{url}: unsafe path {member!r} in the zip")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{url}: not a valid zip file ({exc})") from None


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------
_TEXT_SUFFIXES = {"", ".csv", ".tsv", ".dat", ".data", ".txt", ".base", ".test",
                  ".tab", ".ssv", ".psv"}
_BINARY_SUFFIXES = {".mtx": "mtx", ".mm": "mtx", ".npz": "npz",
                    ".parquet": "parquet", ".pq": "parquet"}
FORMATS = ("auto", "text", "mtx", "npz", "parquet")


def load(source, **kwargs):
    """Ratings from a file, a folder or a MovieLens name.

    Parameters
    ----------
    source : str or path
        A ratings file (see :func:`read_ratings`), a folder holding
        ``u.data``, ``ratings.dat`` or ``ratings.csv`` (an unpacked
        MovieLens zip), or a name from :data:`DATASETS` such as ``"ml-1m"``
        (see :func:`fetch_movielens`).
    **kwargs
        Passed to :func:`read_ratings`.

    Returns
    -------
    Ratings
    """
    source = os.fspath(source)
    if source in DATASETS and not os.path.exists(source):
        return read_ratings(fetch_movielens(source), **kwargs)
    if os.path.isdir(source):
        for fname in ("u.data", "ratings.dat", "ratings.csv"):
            if os.path.isfile(os.path.join(source, fname)):
                return read_ratings(os.path.join(source, fname), **kwargs)
        raise DataFormatError(f"{source}: a folder without u.data, ratings.dat "
                              "or ratings.csv; pass the ratings file itself")
    return read_ratings(source, **kwargs)


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


def _check_values(path, values, where):
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{path}: {where(k)}: rating {float(values[k])!r} is "
                              "not a finite number")


# --------------------------------------------------------------------------
# Delimited text
# --------------------------------------------------------------------------
_ALIASES = (
    ("user", "userid", "user_id", "uid", "users", "customer", "customer_id"),
    ("item", "itemid", "item_id", "iid", "movie", "movieid", "movie_id", "items",
     "product", "product_id"),
    ("rating", "ratings", "score", "value", "count", "weight", "preference"),
    ("timestamp", "time", "ts", "date", "datetime"),
)
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _is_number(field):
    """Numeric-looking field (NaN and inf included: bad data, not a header)."""
    return bool(_NUMBER.match(field)) or field.strip().lower().lstrip("+-") in (
        "nan", "inf", "infinity")


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _split(line, delimiter):
    if delimiter is None:
        return line.split()
    if len(delimiter) == 1:
        return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
    return line.split(delimiter)


def _sniff_delimiter(line):
    for d in ("::", "\t", ",", ";", "|"):
        if d in line:
            return d
    return None


def _pick_columns(path, names, ncols, columns):
    """Positions of (user, item, rating, timestamp); None where absent."""
    lowered = [str(n).strip().strip('"').lower() for n in names] if names else None
    if columns is not None:
        columns = list(columns)
        if len(columns) not in (2, 3, 4):
            raise InputError("columns must list (user, item[, rating[, timestamp]])")
        columns += [None] * (4 - len(columns))
        picks = []
        for c in columns:
            if c is None:
                picks.append(None)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= c < ncols:
                    raise DataFormatError(f"{path}: column {c} does not exist "
                                          f"(the file has {ncols} columns)")
                picks.append(int(c))
            else:
                if lowered is None or str(c).lower() not in lowered:
                    raise DataFormatError(f"{path}: no column named {c!r}"
                                          + (f" (columns: {', '.join(map(str, names))})"
                                             if names else " (the file has no header)"))
                picks.append(lowered.index(str(c).lower()))
        if picks[0] is None or picks[1] is None:
            raise InputError("columns: the user and item columns are required")
        return picks
    if lowered is not None:
        found = [next((lowered.index(a) for a in aliases if a in lowered), None)
                 for aliases in _ALIASES]
        if found[0] is not None and found[1] is not None:
            return found
    if ncols < 2:
        raise DataFormatError(f"{path}: line 1 has {ncols} field(s); a ratings "
                              "file needs at least user and item columns")
    return [0, 1, 2 if ncols >= 3 else None, 3 if ncols >= 4 else None]


def _read_text(path, delimiter=None, header=None, columns=None, engine="auto"):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in raw[:65536]:
        raise DataFormatError(f"{path}: binary content, not a delimited text "
                              "ratings file (unknown format)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    # Leading blank lines are skipped; keep the count for line numbers.
    first = second = None
    skipped = 0
    offset = 0
    second_no = 0
    for number, line in enumerate(io.BytesIO(raw), 1):
        if line.strip():
            if first is None:
                first = line
            else:
                second, second_no = line, number
                break
        elif first is None:
            skipped += 1
            offset += len(line)
    if first is None:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    try:
        first_s = first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: line {skipped + 1} is not UTF-8 text "
                              "(unknown format)") from None
    try:
        second_s = second.decode("utf-8").rstrip("\r\n") if second else None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: line {second_no} is not UTF-8 text") from None
    if delimiter is None:
        delimiter = _sniff_delimiter(first_s)
    elif delimiter.isspace() and delimiter != "\t":
        delimiter = None
    f1 = _split(first_s, delimiter)
    if header is None and columns is not None and any(
            isinstance(c, str) for c in columns):
        header = True  # columns named: the first line names them
    if header is None:
        nonnum1 = [not _is_number(x) for x in f1]
        if second_s is None:
            header = any(nonnum1)
        else:
            f2 = _split(second_s, delimiter)
            header = any(a and i < len(f2) and _is_number(f2[i])
                         for i, a in enumerate(nonnum1))
    names = f1 if header else None
    ncols = len(f1)
    picks = _pick_columns(path, names, ncols, columns)
    body_start = offset + (len(first) if header else 0)
    first_line_no = skipped + (2 if header else 1)
    if header and second is None:
        raise DataFormatError(f"{path}: empty file (a header line, no ratings)")

    result = None
    if engine in ("auto", "numba") and raw.find(b'"', body_start) < 0:
        result = _read_text_fast(path, raw, body_start, first_line_no, delimiter,
                                 ncols, picks)
    if result is None:
        if engine == "numba":
            raise DataFormatError(f"{path}: the fast parser cannot read this file")
        result = _read_text_slow(path, raw[body_start:], first_line_no, delimiter,
                                 ncols, picks)
    return result


def _finish(path, cols, picks, line_of):
    """Build Ratings from parsed columns; ``cols`` index by role."""
    users, items, values, ts = cols
    if users.size == 0:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    if values is None:
        values = np.ones(users.size)
    _check_values(path, values, lambda k: f"line {line_of(k)}")
    return Ratings(users, items, values, ts)


# Status codes of the compiled parser.
_OK, _FEW, _MANY, _BAD, _STRID, _LONGID = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, nogil=True)
def _parse_int(buf, a, b):
    """Parse buf[a:b] as an integer id.

    Returns ``(code, value, start, end)`` with the field trimmed of spaces,
    tabs and CR: code 0 an integer (``[-+]?[0-9]+``, at most 18 significant
    digits), 1 not an integer (a string id), 2 an integer too long for the
    exact fast path.
    """
    while a < b and (buf[a] == 32 or buf[a] == 9):
        a += 1
    while b > a and (buf[b - 1] == 32 or buf[b - 1] == 9 or buf[b - 1] == 13):
        b -= 1
    s, e = a, b
    if a >= b:
        return 1, np.int64(0), s, e
    neg = False
    if buf[a] == 45 or buf[a] == 43:
        neg = buf[a] == 45
        a += 1
        if a >= b:
            return 1, np.int64(0), s, e
    v = np.int64(0)
    nd = 0
    while a < b:
        c = buf[a]
        if c < 48 or c > 57:
            return 1, np.int64(0), s, e
        if v != 0 or c != 48:
            nd += 1
            if nd > 18:
                return 2, np.int64(0), s, e
        v = v * 10 + (c - 48)
        a += 1
    if neg:
        v = -v
    return 0, v, s, e


@numba.njit(cache=True, nogil=True)
def _gather_spans(buf, start, end, out):
    for k in range(start.size):
        for j in range(end[k] - start[k]):
            out[k, j] = buf[start[k] + j]


@numba.njit(cache=True, nogil=True)
def _parse_number(buf, a, b):
    """Parse buf[a:b] as a decimal number exactly, or report failure.

    Returns ``(ok, value, integral)``.  Only numbers whose digits fit in 15
    significant digits and whose decimal exponent is within 22 are taken:
    for those ``mantissa * 10**e`` (or ``/``) is a single correctly rounded
    operation, identical to Python's ``float``.
    """
    while a < b and (buf[a] == 32 or buf[a] == 9):
        a += 1
    while b > a and (buf[b - 1] == 32 or buf[b - 1] == 9 or buf[b - 1] == 13):
        b -= 1
    if a >= b:
        return False, 0.0, False
    neg = False
    if buf[a] == 45 or buf[a] == 43:
        neg = buf[a] == 45
        a += 1
    mant = np.int64(0)
    ndig = 0
    frac = 0
    seen_dot = False
    any_digit = False
    while a < b:
        c = buf[a]
        if 48 <= c <= 57:
            any_digit = True
            if mant == 0 and c == 48 and not seen_dot:
                pass  # leading zero
            else:
                if ndig >= 15:
                    return False, 0.0, False
                mant = mant * 10 + (c - 48)
                if mant != 0:
                    ndig += 1
            if seen_dot:
                frac += 1
        elif c == 46 and not seen_dot:
            seen_dot = True
        else:
            break
        a += 1
    if not any_digit:
        return False, 0.0, False
    exp = 0
    saw_exp = False
    if a < b and (buf[a] == 101 or buf[a] == 69):
        saw_exp = True
        a += 1
        eneg = False
        if a < b and (buf[a] == 45 or buf[a] == 43):
            eneg = buf[a] == 45
            a += 1
        if a >= b:
            return False, 0.0, False
        while a < b and 48 <= buf[a] <= 57:
            exp = exp * 10 + (buf[a] - 48)
            if exp > 1000:
                return False, 0.0, False
            a += 1
        if eneg:
            exp = -exp
    if a != b:
        return False, 0.0, False
    e = exp - frac
    value = float(mant)
    if mant != 0:
        if e > 22 or e < -22:
            return False, 0.0, False
        if e > 0:
            value = value * 10.0 ** e
        elif e < 0:
            value = value / 10.0 ** (-e)
    # Integer *syntax* (no dot, no exponent), as the Python parser's rule.
    integral = not seen_dot and exp == 0 and not saw_exp
    if neg:
        value = -value
    return True, value, integral


@numba.njit(cache=True, nogil=True)
def _parse_buffer(buf, start, d0, d1, whitespace, ncols, role, out, integral,
                  ids, span_mode, spans):
    """One pass over ``buf[start:]``; fills ``out[row, role]`` (rating,
    timestamp), ``ids[row, role]`` (integer ids) or, for an id column in
    ``span_mode``, ``spans[row, role]`` (trimmed byte range of a string id).

    Returns ``(status, n_rows, line_index, column, field_start, field_end)``;
    ``line_index`` counts every line after ``start`` (blank ones too).
    """
    n = buf.size
    pos = start
    row = 0
    line = 0
    while pos < n:
        q = pos
        while q < n and (buf[q] == 32 or buf[q] == 9 or buf[q] == 13):
            q += 1
        if q >= n:
            break
        if buf[q] == 10:  # blank line
            line += 1
            pos = q + 1
            continue
        col = 0
        a = q if whitespace else pos
        eol = n
        while True:
            b = a
            if whitespace:
                while b < n and buf[b] != 32 and buf[b] != 9 and buf[b] != 13 \
                        and buf[b] != 10:
                    b += 1
            elif d1 < 0:
                while b < n and buf[b] != d0 and buf[b] != 10:
                    b += 1
            else:
                while b < n and buf[b] != 10 and not (
                        buf[b] == d0 and b + 1 < n and buf[b + 1] == d1):
                    b += 1
            if col >= ncols:
                return _MANY, row, line, col, a, b
            r = role[col]
            if r == 0 or r == 1:
                code, iv, s0, e0 = _parse_int(buf, a, b)
                if span_mode[r]:
                    spans[row, r, 0] = s0
                    spans[row, r, 1] = e0
                elif code == 0:
                    ids[row, r] = iv
                elif code == 1:
                    return _STRID, row, line, col, a, b
                else:
                    return _LONGID, row, line, col, a, b
            elif r >= 0:
                ok, v, isint = _parse_number(buf, a, b)
                if not ok:
                    return _BAD, row, line, col, a, b
                out[row, r] = v
                if not isint:
                    integral[r] = False
            col += 1
            if whitespace:
                c = b
                while c < n and (buf[c] == 32 or buf[c] == 9 or buf[c] == 13):
                    c += 1
                if c >= n or buf[c] == 10:
                    eol = c
                    break
                a = c
            else:
                if b >= n or buf[b] == 10:
                    eol = b
                    break
                a = b + 1 if d1 < 0 else b + 2
        if col < ncols:
            return _FEW, row, line, col, pos, eol
        row += 1
        line += 1
        pos = eol + 1
    return _OK, row, line, 0, 0, 0


def _read_text_fast(path, raw, body_start, first_line_no, delimiter, ncols, picks):
    """Compiled parse; None when the file needs the exact Python parser."""
    if delimiter is not None:
        d = delimiter.encode("utf-8")
        if len(d) > 2:
            return None
        d0, d1 = d[0], (d[1] if len(d) == 2 else -1)
    else:
        d0, d1 = 32, -1
    role = np.full(ncols, -1, np.int64)
    for r, c in enumerate(picks):
        if c is not None:
            role[c] = r
    buf = np.frombuffer(raw, np.uint8)
    n_lines = raw.count(b"\n", body_start) + 1
    out = np.empty((n_lines, 4), np.float64)
    ids = np.empty((n_lines, 2), np.int64)
    span_mode = np.zeros(2, np.bool_)
    for _ in range(3):  # a restart per id column found to hold strings
        integral = np.ones(4, np.bool_)
        spans = np.empty((n_lines if span_mode.any() else 1, 2, 2), np.int64)
        status, rows, line, col, a, b = _parse_buffer(
            buf, body_start, d0, d1, delimiter is None, ncols, role, out, integral,
            ids, span_mode, spans)
        if status != _STRID:
            break
        span_mode[role[col]] = True
    line_no = first_line_no + line
    if status == _FEW:
        raise DataFormatError(f"{path}: line {line_no} has {col} field(s), expected "
                              f"{ncols} (line cut short?)")
    if status == _MANY:
        raise DataFormatError(f"{path}: line {line_no} has more than {ncols} fields")
    if status == _LONGID:
        return None  # integers beyond int64's exact fast path
    if status == _BAD:
        text = raw[a:b].decode("utf-8", "replace").strip()
        r = role[col]
        _bad_number(path, line_no, "rating" if r == 2 else "timestamp", text)
        return None  # valid but beyond the exact fast path
    # map row -> line number only for errors (blank lines are rare)
    line_of = _line_mapper(raw, body_start, first_line_no)
    cols = []
    for r in range(4):
        if picks[r] is None:
            cols.append(None)
        elif r in (0, 1):
            if span_mode[r]:
                c = _span_strings(buf, spans[:rows, r, 0], spans[:rows, r, 1])
                if c is None:
                    return None  # not UTF-8: the Python parser names the line
            else:
                c = ids[:rows, r].copy()
            cols.append(c)
        else:
            c = out[:rows, r]
            if r == 3 and integral[r] and (np.abs(c) < 2.0 ** 53).all():
                c = c.astype(np.int64)
            else:
                c = np.ascontiguousarray(c)
            cols.append(c)
    return _finish(path, cols, picks, line_of)


def _span_strings(buf, start, end):
    """Unicode array of the byte ranges ``buf[start:end]`` (vectorized)."""
    width = max(int((end - start).max()) if start.size else 1, 1)
    mat = np.zeros((start.size, width), np.uint8)
    _gather_spans(buf, start, end, mat)
    raw = mat.view(f"S{width}").ravel()
    if (mat < 128).all():
        text = raw.astype(f"U{width}")  # ASCII: a C cast
        if not ((mat > 0) & (mat < 32)).any():
            return text  # the kernel already trimmed spaces, tabs and CR
    else:
        try:
            text = np.char.decode(raw, "utf-8")
        except UnicodeDecodeError:
            return None
    return np.char.strip(text)  # as str.strip(): other Unicode whitespace


def _bad_number(path, line_no, what, text):
    try:
        v = float(text)
    except ValueError:
        raise DataFormatError(f"{path}: line {line_no}: {what} {text!r} is not a "
                              "number") from None
    if not math.isfinite(v):
        raise DataFormatError(f"{path}: line {line_no}: {what} {text!r} is not a "
                              "finite number")


def _line_mapper(raw, body_start, first_line_no):
    def line_of(k):
        lines = raw[body_start:].split(b"\n")
        seen = -1
        for i, ln in enumerate(lines):
            if ln.strip():
                seen += 1
                if seen == k:
                    return first_line_no + i
        return first_line_no + k
    return line_of


def _read_text_slow(path, body, first_line_no, delimiter, ncols, picks):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line_no + body[:exc.start].count(b"\n")
        raise DataFormatError(f"{path}: line {line} is not UTF-8 text") from None
    fields = [[] for _ in range(4)]
    line_numbers = []
    if delimiter is not None and len(delimiter) == 1:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter,
                            skipinitialspace=True, strict=True)
        def rows():
            try:
                for rec in reader:
                    yield reader.line_num, rec
            except csv.Error as exc:
                raise DataFormatError(f"{path}: line {first_line_no + reader.line_num - 1}:"
                                      f" {_one_line(exc)}") from None
    else:
        def rows():
            for i, ln in enumerate(text.split("\n")):
                yield i + 1, _split(ln, delimiter)
    for num, rec in rows():
        if not rec or all(not x.strip() for x in rec):
            continue
        line_no = first_line_no + num - 1
        if len(rec) != ncols:
            if len(rec) < ncols:
                raise DataFormatError(f"{path}: line {line_no} has {len(rec)} "
                                      f"field(s), expected {ncols} (line cut short?)")
            raise DataFormatError(f"{path}: line {line_no} has {len(rec)} fields, "
                                  f"expected {ncols}")
        for r, c in enumerate(picks):
            if c is not None:
                fields[r].append(rec[c].strip())
        line_numbers.append(line_no)
    if not line_numbers:
        raise DataFormatError(f"{path}: empty file (no ratings)")
    cols = []
    for r in range(4):
        if picks[r] is None:
            cols.append(None)
        elif r in (0, 1):
            cols.append(_parse_ids(fields[r]))
        else:
            what = "rating" if r == 2 else "timestamp"
            out = np.empty(len(fields[r]))
            for k, s in enumerate(fields[r]):
                try:
                    out[k] = float(s)
                except ValueError:
                    _bad_number(path, line_numbers[k], what, s)
                if r == 3 and not math.isfinite(out[k]):
                    _bad_number(path, line_numbers[k], what, s)
            if r == 3 and all(_INT.match(s) for s in fields[r]) \
                    and (np.abs(out) < 2.0 ** 53).all():
                out = out.astype(np.int64)
            cols.append(out)
    return _finish(path, cols, picks, lambda k: line_numbers[k])


_INT = re.compile(r"^[-+]?\d+$")


def _parse_ids(strings):
    if all(_INT.match(s) for s in strings):
        try:
            return np.array([int(s) for s in strings], dtype=np.int64)
        except OverflowError:
            pass
    return np.array(strings, dtype=str)
