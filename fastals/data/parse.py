"""The compiled byte parser of delimited ratings text.

One Numba pass over the bytes fills the id, rating and timestamp columns
(a restart per id column found to hold strings, whose byte spans are then
decoded in one vectorized step).  It returns None for what it does not read
exactly (quoted fields, integers beyond 18 digits, decimals beyond 15), and
the exact Python parser in :mod:`fastals.data.text` takes over.
"""

import math

import numba
import numpy as np

from ..exceptions import DataFormatError
from .ratings import Ratings


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_values(path, values, where):
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{path}: {where(k)}: rating {float(values[k])!r} is "
                              "not a finite number")



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

