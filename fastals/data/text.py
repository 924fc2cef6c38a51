"""Delimited text files: delimiter and header detection, the exact parser.

The compiled parser (:mod:`fastals.data.parse`) reads nearly every file;
the pure-Python parser here reads exactly what it leaves (quoted fields,
very long numbers) and gives the same result.
"""

import csv
import io
import math
import re

import numpy as np

from ..exceptions import DataFormatError
from .columns import (_clean, _is_number, check_plausible, normalize_columns,
                      pick_columns, warn_all)
from .parse import _bad_number, _finish, _one_line, _read_text_fast
from .ratings import ReadInfo


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



def _read_text(path, delimiter=None, header=None, columns=None, engine="auto",
               raw=None):
    """Ratings of a delimited text file (``raw``: its bytes, if already read).

    The result's ``info`` says which columns were used; for a headerless
    file the columns are checked for plausibility and the doubts are warned
    (:class:`~fastals.exceptions.DataWarning`) and kept in
    ``info.warnings``.
    """
    if raw is None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise DataFormatError(f"{path}: cannot read ({exc.strerror or exc})") \
                from None
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
    columns = normalize_columns(columns)
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
    numeric = None
    if header and second_s is not None:
        f2 = _split(second_s, delimiter)
        numeric = [i < len(f2) and _is_number(f2[i]) for i in range(ncols)]
    picks, how, notes = pick_columns(path, names, ncols, columns, numeric)
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
    labels = tuple(None if c is None else (_clean(names[c]) if names else str(c))
                   for c in picks)
    doubts = ()
    if names is None:
        doubts = tuple(check_plausible(path, result, picks))
        warn_all(doubts)
    return result.with_info(ReadInfo(str(path), labels, how, notes, doubts))



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
