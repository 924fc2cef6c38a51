"""Property tests (hypothesis) for input canonicalization and ``fit``."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastals import FastALS, InputError
from fastals._input import to_csr

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

ids = st.one_of(st.integers(-5, 40), st.sampled_from(["a", "b", "zz", "é", "10"]))


@st.composite
def triplets(draw, max_size=40, values=None):
    n = draw(st.integers(1, max_size))
    kind_u = draw(st.sampled_from(["int", "str"]))
    kind_i = draw(st.sampled_from(["int", "str"]))

    def column(kind):
        if kind == "int":
            return draw(st.lists(st.integers(-5, 40), min_size=n, max_size=n))
        return draw(st.lists(st.sampled_from(["a", "b", "zz", "é", "10", "x y"]),
                             min_size=n, max_size=n))
    vals = values or st.integers(-3, 5).map(float)
    return (np.array(column(kind_u)), np.array(column(kind_i)),
            np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype=float))


@SETTINGS
@given(triplets(), st.sampled_from(["sum", "mean", "last"]))
def test_to_csr_matches_a_dictionary_reference(data, policy):
    users, items, values = data
    csr, uids, iids = to_csr((users, items, values), duplicates=policy)
    ref = {}
    for u, i, v in zip(users.tolist(), items.tolist(), values.tolist()):
        ref.setdefault((u, i), []).append(v)
    expect = {key: {"sum": sum(v), "mean": sum(v) / len(v), "last": v[-1]}[policy]
              for key, v in ref.items()}
    assert list(uids) == sorted(set(users.tolist()))
    assert list(iids) == sorted(set(items.tolist()))
    assert csr.has_sorted_indices and csr.nnz == len(expect)
    coo = csr.tocoo()
    got = {(uids[r].item(), iids[c].item()): v for r, c, v in zip(coo.row, coo.col, coo.data)}
    assert got.keys() == expect.keys()
    for key in expect:
        assert got[key] == pytest.approx(expect[key])


@SETTINGS
@given(triplets(), st.sampled_from(["explicit", "implicit", "dense"]),
       st.integers(1, 4), st.sampled_from([np.float32, np.float64]))
def test_fit_gives_finite_factors_of_the_right_shape(data, objective, k, dtype):
    users, items, values = data
    model = FastALS(objective=objective, factors=k, iterations=2, random_state=0,
                    dtype=dtype, regularization=0.01)
    model.fit((users, items, values))
    assert model.user_factors.shape == (len(set(users.tolist())), k)
    assert model.item_factors.shape == (len(set(items.tolist())), k)
    assert model.user_factors.dtype == dtype
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.item_factors).all()
    assert np.isfinite(model.loss_history).all()


@SETTINGS
@given(triplets(), st.randoms(use_true_random=False))
def test_fit_does_not_depend_on_input_order(data, rnd):
    users, items, values = data
    perm = np.arange(users.size)
    rnd.shuffle(perm)
    # "sum" (and "mean"): order-free policies; the default for explicit
    # ratings, "last", depends on the order by design.
    a = FastALS(factors=2, iterations=2, random_state=1,
                duplicates="sum").fit((users, items, values))
    b = FastALS(factors=2, iterations=2, random_state=1, duplicates="sum").fit(
        (users[perm], items[perm], values[perm]))
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)


@SETTINGS
@given(triplets(), st.data())
def test_any_non_finite_value_is_rejected(data, draw):
    users, items, values = data
    pos = draw.draw(st.integers(0, values.size - 1))
    values = values.copy()
    values[pos] = draw.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with pytest.raises(InputError, match=f"non-finite.*position {pos}"):
        FastALS(factors=2).fit((users, items, values))


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 8), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_sparse_formats_give_the_same_model(m, n, density, seed):
    R = sp.random(m, n, density=density, random_state=seed, format="coo") * 5
    if R.nnz == 0:
        with pytest.raises(InputError):
            FastALS(factors=2).fit(R)
        return
    ref = FastALS(factors=2, iterations=2, random_state=0).fit(R.tocsr())
    for other in (R, R.tocsc(), R.todok(), R.tolil()):
        got = FastALS(factors=2, iterations=2, random_state=0).fit(other)
        np.testing.assert_array_equal(ref.user_factors, got.user_factors)
