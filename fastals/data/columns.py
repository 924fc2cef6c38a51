"""Which column holds what: header aliases and positional defaults."""

import re

import numpy as np

from ..exceptions import DataFormatError, InputError


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

