"""The :class:`Ratings` container every reader returns."""

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import scipy.sparse as sp

from ..exceptions import InputError

__all__ = ["Ratings", "ReadInfo"]


@dataclass(frozen=True)
class ReadInfo:
    """How a reader found the ratings in its source.

    Attributes
    ----------
    source : str
        The file (or ``"DataFrame"``, ...).
    columns : tuple of 4 (str or None)
        Name (or 0-based position) of the user, item, rating and timestamp
        columns; None where absent.  No rating column: implicit feedback.
    how : str
        ``"header"`` (by name), ``"position"`` (no header), ``"given"``
        (``columns=``) or ``"matrix"`` (row and column numbers of a sparse
        matrix file).
    notes, warnings : tuple of str
        Remarks for the ``Loaded ...`` line; plausibility warnings.
    """

    source: str
    columns: tuple = (None, None, None, None)
    how: str = "header"
    notes: tuple = ()
    warnings: tuple = ()

    @property
    def implicit(self):
        """True when there is no rating column (every pair counts 1)."""
        return self.how != "matrix" and self.columns[2] is None

    def describe(self):
        """One line: which columns were used and how they were found."""
        if self.how == "matrix":
            return "rows are users, columns are items"
        roles = ("user", "item", "rating", "timestamp")
        used = ", ".join(f"{r}={c}" for r, c in zip(roles, self.columns)
                         if c is not None)
        how = {"header": "by name", "position": "by position, no header",
               "given": "as given"}.get(self.how, self.how)
        text = f"columns {used} ({how})"
        for note in self.notes:
            text += f"; {note}"
        if self.implicit:
            text += "; no rating column: implicit feedback, each pair counts 1"
        return text


class _RatingsTuple(NamedTuple):
    user_ids: np.ndarray
    item_ids: np.ndarray
    values: np.ndarray
    timestamps: Optional[np.ndarray] = None


class Ratings(_RatingsTuple):
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
    in ``model.user_ids`` / ``model.item_ids``; ``model.fit(ratings)``
    also uses the timestamps to resolve repeated pairs (the latest wins).

    ``info`` (a :class:`ReadInfo`, or None for ratings built by hand) says
    which columns of the source were used.
    """

    info = None  # set by the readers (instances have a __dict__)

    @property
    def n_ratings(self):
        """Number of rows (ratings)."""
        return int(self.values.size)

    @property
    def implicit(self):
        """True when the source had no rating column (every value is 1)."""
        return bool(self.info is not None and self.info.implicit)

    def with_info(self, info):
        """This object with ``info`` set (returns self)."""
        self.info = info
        return self

    def take(self, idx):
        """The ratings at positions ``idx`` (same ``info``)."""
        ts = None if self.timestamps is None else self.timestamps[idx]
        out = Ratings(self.user_ids[idx], self.item_ids[idx], self.values[idx], ts)
        out.info = self.info
        return out

    def to_csr(self, ids="observed", duplicates="auto"):
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
        duplicates : {"auto", "last", "mean", "sum", "error"}
            Policy for repeated (user, item) pairs.  ``"auto"``: ``"sum"``
            for implicit feedback (no rating column), else ``"last"`` (the
            latest by timestamp when there are timestamps, else the last
            in file order).

        Returns
        -------
        csr : scipy.sparse.csr_matrix
            float64 values, int32 indices, sorted.
        user_ids, item_ids : ndarray
            Raw id of each row / column.
        """
        from .._input import combine_duplicates, resolve_duplicates, to_csr

        duplicates = resolve_duplicates(duplicates, implicit=self.implicit)

        if ids not in ("observed", "range", "auto"):
            raise InputError(f"ids must be 'observed', 'range' or 'auto', got {ids!r}")
        if ids == "auto":
            ids = "range" if (_fills_range(self.user_ids)
                              and _fills_range(self.item_ids)) else "observed"
        if ids == "observed":
            return to_csr(self, duplicates)
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
                                     values, n, duplicates, self.timestamps)
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

