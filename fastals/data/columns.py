"""Which column holds what: header aliases, positions, plausibility checks.

Shared by the file readers and by the table reader behind
``FastALS.fit(DataFrame)``, so that every way of passing the same ratings
picks the same columns.

With column names (a header line, a parquet file, a DataFrame):

* the user and the item columns are found by name (:data:`ALIASES`,
  case-insensitive); when either is missing the reader stops and asks for
  ``columns=``;
* the rating column is found by name or, failing that, as the one numeric
  column left (besides user, item and timestamp); with several candidates
  the reader stops and asks; with none the data are implicit feedback and
  every pair counts 1;
* the timestamp column is found by name only.

Without names (a headerless file) the columns are taken by position,
``user, item[, rating[, timestamp]]`` as MovieLens writes them, and
:func:`check_plausible` warns (:class:`~fastals.exceptions.DataWarning`)
when the values do not look like what they are read as.
"""

import re
import warnings

import numpy as np

from ..exceptions import DataFormatError, DataWarning, InputError

ROLES = ("user", "item", "rating", "timestamp")

#: Column names recognized for (user, item, rating, timestamp), lower case.
ALIASES = (
    ("user", "u", "userid", "user_id", "uid", "users", "customer", "customer_id",
     "username", "user_name", "member_id", "visitor_id"),
    ("item", "i", "itemid", "item_id", "iid", "movie", "movieid", "movie_id", "items",
     "product", "product_id", "artist", "artist_id", "track", "track_id",
     "book", "book_id", "isbn", "asin"),
    ("rating", "r", "ratings", "score", "value", "count", "weight", "preference",
     "stars", "star", "rate", "plays", "playcount", "play_count", "clicks",
     "quantity", "qty"),
    ("timestamp", "t", "time", "ts", "date", "datetime", "unix_time", "unixtime"),
)
_ALIASES = ALIASES  # the name used before the data package split
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")

#: Plausibility thresholds for headerless files (see :func:`check_plausible`).
MIN_ROWS_TO_JUDGE = 50
FEW_DISTINCT = 10
SAMPLE = 100_000  # lines looked at (evenly spread) in a longer file


def _is_number(field):
    """Numeric-looking field (NaN and inf included: bad data, not a header)."""
    return bool(_NUMBER.match(field)) or field.strip().lower().lstrip("+-") in (
        "nan", "inf", "infinity")


def _clean(name):
    return str(name).strip().strip('"').strip()


def _label(names, c):
    return _clean(names[c]) if names else str(c)


def _names_hint(names):
    return ", ".join(repr(_clean(n)) for n in names)


def normalize_columns(columns):
    """``columns`` as a list: ``"user,item,3"`` is split at commas, digit
    strings are positions, ``"none"`` (or empty) is None."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = columns.split(",")
    out = []
    for c in columns:
        if isinstance(c, str):
            c = c.strip()
            if c.lower() in ("", "none", "-"):
                c = None
            elif c.isdigit():
                c = int(c)
        out.append(c)
    return out


def pick_columns(source, names, ncols, columns, numeric=None):
    """Positions of (user, item, rating, timestamp) and how they were chosen.

    Parameters
    ----------
    source : str
        What is read (a path, "DataFrame"), for messages.
    names : list of str or None
        Column names (header line, table columns); None without a header.
    ncols : int
    columns : sequence of int or str, or None
        The caller's choice ``(user, item[, rating[, timestamp]])`` by
        0-based position or by name.
    numeric : list of bool, optional
        Per column, whether its values are numbers (decides the rating
        column when no name does).

    Returns
    -------
    picks : list of 4 (int or None)
    how : str
        ``"given"``, ``"header"`` or ``"position"``.
    notes : tuple of str
        Human-readable remarks for the ``Loaded ...`` line.
    """
    lowered = [_clean(n).lower() for n in names] if names else None
    columns = normalize_columns(columns)
    if columns is not None:
        if len(columns) not in (2, 3, 4):
            raise InputError("columns must list (user, item[, rating[, timestamp]])")
        columns = list(columns) + [None] * (4 - len(columns))
        picks = []
        for c in columns:
            if c is None:
                picks.append(None)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= c < ncols:
                    raise DataFormatError(f"{source}: column {c} does not exist "
                                          f"(there are {ncols} columns, 0..{ncols - 1})")
                picks.append(int(c))
            else:
                if lowered is None or str(c).lower() not in lowered:
                    raise DataFormatError(
                        f"{source}: no column named {c!r}"
                        + (f" (columns: {_names_hint(names)})" if names
                           else " (there is no header; give positions 0, 1, ...)"))
                picks.append(lowered.index(str(c).lower()))
        if picks[0] is None or picks[1] is None:
            raise InputError("columns: the user and item columns are required")
        used = [p for p in picks if p is not None]
        if len(set(used)) != len(used):
            raise InputError(f"columns: one column given for two roles: {columns}")
        return picks, "given", ()
    if lowered is None:
        if ncols < 2:
            raise DataFormatError(f"{source}: line 1 has {ncols} field(s); a ratings "
                                  "file needs at least user and item columns")
        return [0, 1, 2 if ncols >= 3 else None, 3 if ncols >= 4 else None], \
            "position", ()
    found = [next((lowered.index(a) for a in aliases if a in lowered), None)
             for aliases in ALIASES]
    if found[0] is None or found[1] is None:
        missing = " and ".join(r for r, f in zip(ROLES[:2], found[:2]) if f is None)
        raise DataFormatError(
            f"{source}: cannot tell the {missing} column from the names "
            f"{_names_hint(names)}; name them: columns=(user, item, rating) "
            "(--columns USER,ITEM,RATING at the command line), or rename them "
            "user, item, rating")
    notes = []
    if found[2] is None:
        taken = {f for f in found if f is not None}
        rest = [c for c in range(ncols) if c not in taken]
        nums = [c for c in rest if numeric is None or numeric[c]]
        if len(nums) == 1:
            found[2] = nums[0]
            notes.append(f"rating column {_label(names, nums[0])!r} is the only "
                         "other numeric column")
        elif len(nums) > 1:
            raise DataFormatError(
                f"{source}: no column is named as the rating and "
                f"{_names_hint([names[c] for c in nums])} could each be it; "
                "name it: columns=(user, item, rating) (--columns at the command "
                "line), or rename it rating")
        elif rest:
            notes.append(f"ignored the non-numeric column(s) "
                         f"{_names_hint([names[c] for c in rest])}")
    return found, "header", tuple(notes)


# Kept for code written against the single-module fastals.data.
def _pick_columns(path, names, ncols, columns):
    return pick_columns(path, names, ncols, columns)[0]


def _distinct(a):
    """Number of distinct values (by sorting: np.unique's hash path is far
    slower on some numpy versions)."""
    a = np.sort(np.asarray(a))
    return int(a.size > 0) + int(np.count_nonzero(a[1:] != a[:-1]))


def check_plausible(source, ratings, picks):
    """Warnings for a headerless file whose columns look out of order.

    Checks, on files of at least :data:`MIN_ROWS_TO_JUDGE` ratings: an id
    column with at most :data:`FEW_DISTINCT` distinct values where the
    rating column has more, or with a different value on every line; a rating column with more distinct values than
    an id column, or with values like Unix times; a timestamp column of a
    few small values; id columns holding decimal numbers.  A file longer
    than :data:`SAMPLE` lines is judged on an evenly spaced sample of that
    many (the checks then cost a few ms).  Returns the
    messages (one at most; the caller warns).
    """
    out = []
    step = max(1, ratings.values.size // SAMPLE)  # a strided sample: cheap
    ratings = type(ratings)(*(None if a is None else a[::step] for a in ratings))
    n = ratings.values.size
    over = f"over {n:,} ratings" if step == 1 else \
        f"in a sample of {n:,} evenly spaced lines"
    ids = {0: ratings.user_ids, 1: ratings.item_ids}
    nd = {}
    for role, arr in ids.items():
        if arr.dtype.kind == "U" and arr.size and all(
                _is_number(s) for s in arr[:1000]) and np.char.find(
                    arr[:1000], ".").max() >= 0:
            out.append(f"{source}: column {picks[role]} (read as {ROLES[role]} ids) "
                       f"holds decimal numbers like {arr[0]!r}")
        nd[role] = _distinct(arr)
    has_rating = picks[2] is not None
    nd_r = _distinct(ratings.values) if has_rating else 0
    if n >= MIN_ROWS_TO_JUDGE:
        for role in (0, 1):
            if nd[role] <= FEW_DISTINCT and (nd_r > nd[role] or not has_rating):
                out.append(f"{source}: column {picks[role]} (read as {ROLES[role]} "
                           f"ids) has only {nd[role]} distinct values {over}")
            if nd[role] == n:
                out.append(f"{source}: column {picks[role]} (read as {ROLES[role]} "
                           f"ids) has a different value on every line ({over}; "
                           "timestamps or line numbers?)")
        if has_rating and nd_r > FEW_DISTINCT and nd_r > min(nd.values()):
            role = 0 if nd[0] <= nd[1] else 1
            out.append(f"{source}: column {picks[2]} (read as ratings) has more "
                       f"distinct values ({nd_r:,}) than column {picks[role]} "
                       f"(read as {ROLES[role]} ids, {nd[role]:,})")
        ts = ratings.timestamps
        if ts is not None and ts.size and 2 <= _distinct(ts) <= FEW_DISTINCT \
                and np.abs(ts).max() <= 100:  # (a constant is a placeholder)
            out.append(f"{source}: column {picks[3]} (read as timestamps) holds only "
                       f"{_distinct(ts)} small distinct values, like ratings")
    if has_rating and ratings.values.size and ratings.values.min() >= 1e8:
        out.append(f"{source}: column {picks[2]} (read as ratings) holds values "
                   f"like {ratings.values[0]:.0f}, which look like Unix times")
    reasons = []
    for msg in out:
        msg = msg[len(f"{source}: "):]
        if msg not in reasons:
            reasons.append(msg)
    if not reasons:
        return []
    return [f"{source}: the columns may not hold what they are read as: "
            + "; ".join(reasons) + ". If they are in another order, give it: "
            "columns=(user, item, rating[, timestamp]) by 0-based position "
            "(--columns at the command line), or add a header line"]


def warn_all(messages):
    for msg in messages:
        warnings.warn(msg, DataWarning, stacklevel=3)
