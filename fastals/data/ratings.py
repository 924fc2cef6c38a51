"""The :class:`Ratings` container every reader returns."""

from typing import NamedTuple, Optional

import numpy as np
import scipy.sparse as sp

from ..exceptions import InputError

__all__ = ["Ratings"]


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
        from .._input import combine_duplicates, to_csr

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

