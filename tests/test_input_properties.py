"""Property tests of issue 16: every way of passing the same ratings gives
the same model, and a wrong-order headerless file is never read silently."""

import itertools
import os
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastals import FastALS
from fastals.data import Ratings, read_ratings
from fastals.exceptions import DataFormatError, DataWarning

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
NAMES = (("userId", "user_id", "user", "UID"), ("movieId", "item_id", "item", "product"),
         ("rating", "stars", "score", "my_rating"), ("timestamp", "ts", "time"))
_DIR = tempfile.mkdtemp(prefix="fastals-test-inputs-")


@st.composite
def tables(draw):
    """Realistic small tables: >10 users and items, stars, Unix times."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    nu, ni = draw(st.integers(12, 30)), draw(st.integers(12, 30))
    n = draw(st.integers(60, 150))
    half = draw(st.booleans())
    rng = np.random.default_rng(seed)
    n = min(n, nu * ni // 2)
    keys = rng.choice(nu * ni, n, replace=False)
    users, items = keys // ni + draw(st.integers(0, 3)), keys % ni + 1
    stars = rng.integers(2 if half else 1, 11 if half else 6, n)
    values = stars / 2.0 if half else stars.astype(np.float64)
    ts = 881250949 + rng.permutation(10 ** 6)[:n]
    assume(np.unique(users).size > 10 and np.unique(items).size > 10)
    assume(np.unique(values).size >= 2)
    return Ratings(users, items, values, ts)


def write(name, t, order, header=None, sep=","):
    cols = [t.user_ids.astype(str), t.item_ids.astype(str),
            np.array([repr(float(v)) if v % 1 else str(int(v)) for v in t.values]),
            t.timestamps.astype(str)]
    lines = [sep.join(header[k] for k in order)] if header else []
    lines += [sep.join(cols[k][j] for k in order) for j in range(t.values.size)]
    path = os.path.join(_DIR, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def fit(X, **kw):
    return FastALS(factors=2, iterations=2, **kw).fit(X)


def assert_same(a, b):
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)


@SETTINGS
@given(tables(), st.permutations(range(4)), st.data())
def test_every_way_of_passing_the_ratings_gives_the_same_model(t, order, data):
    ref = fit((t.user_ids, t.item_ids, t.values))
    header = [data.draw(st.sampled_from(n)) for n in NAMES]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # none of these is doubtful
        named = read_ratings(write("named.csv", t, order, header))
        plain = read_ratings(write("plain.tsv", t, range(4), sep="\t"))
    for r in (named, plain):
        np.testing.assert_array_equal(r.values, t.values)
        assert_same(fit(r), ref)
        assert_same(fit(r[:3]), ref)
    # a sparse users x items matrix of the same ratings (rows = sorted ids)
    _, u = np.unique(t.user_ids, return_inverse=True)
    _, i = np.unique(t.item_ids, return_inverse=True)
    assert_same(fit(sp.csr_matrix((t.values, (u, i)))), ref)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({header[k]: t[k] for k in order})
    assert_same(fit(frame), ref)


@SETTINGS
@given(tables(), st.sampled_from([p for p in itertools.permutations(range(4))
                                  if set(p[:2]) != {0, 1} or p[2] != 2]),
       st.booleans())
def test_a_wrong_order_headerless_file_is_never_read_silently(t, order, with_ts):
    if not with_ts:
        order = tuple(k for k in order if k != 3)
        if set(order[:2]) == {0, 1}:
            return  # only user and item swapped: indistinguishable, no data lost
    path = write("wrong.tsv", t, order, sep="\t")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            read_ratings(path)
        except DataFormatError:
            return  # refused: not silent either
    assert any(issubclass(w.category, DataWarning) for w in caught), order
