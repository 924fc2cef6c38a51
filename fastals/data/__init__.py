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

Modules
-------
``ratings``    the :class:`Ratings` container;
``formats``    format detection and the mtx, npz and parquet readers;
``text``       delimited text: delimiter, header and columns, exact parser;
``parse``      the compiled byte parser of delimited text;
``columns``    which column holds what (header aliases, positions);
``movielens``  the named MovieLens sets: download, checksum, cache;
``synthetic``  deterministic synthetic ratings (:func:`make_ratings`).
"""

import os

from ..exceptions import DataFormatError
from .formats import FORMATS, read_ratings
from .movielens import DATASETS, DownloadError, fetch_movielens
from .ratings import Ratings

__all__ = ["Ratings", "load", "read_ratings", "fetch_movielens", "DATASETS",
           "DownloadError", "FORMATS"]


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
