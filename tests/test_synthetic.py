"""Tests of fastals.data.synthetic."""

import time

import numpy as np
import pytest

from fastals import FastALS
from fastals.exceptions import InputError
from fastals.data.synthetic import ML100K_SHAPE, make_ratings


@pytest.fixture(scope="module")
def default():
    return make_ratings()


def test_default_is_shaped_like_movielens_100k(default):
    users, items, values, ts = default
    assert ML100K_SHAPE == (943, 1682, 100_000)
    assert values.size == 100_000 and ts is None
    assert np.unique(users).size == 943 and np.unique(items).size == 1682
    assert users.min() == 0 and users.max() == 942 and items.max() == 1681
    keys = users.astype(np.int64) * 1682 + items
    assert np.unique(keys).size == 100_000  # distinct pairs
    assert np.all(np.diff(keys) > 0)  # sorted by (user, item)
    assert set(np.unique(values)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.0 < values.mean() < 4.0 and 0.8 < values.std() < 1.4


def test_deterministic_from_seed(default):
    again = make_ratings()
    for a, b in zip(default[:3], again[:3]):
        np.testing.assert_array_equal(a, b)
    other = make_ratings(seed=1)
    assert not np.array_equal(default.values, other.values) \
        or not np.array_equal(default.item_ids, other.item_ids)


def test_power_law_popularity():
    def top_share(r, exponent_ids, n):
        counts = np.sort(np.bincount(exponent_ids, minlength=n))[::-1]
        return counts[: n // 10].sum() / counts.sum()

    skewed = make_ratings(2000, 2000, 50_000, item_exponent=1.0, user_exponent=1.0)
    flat = make_ratings(2000, 2000, 50_000, item_exponent=0.0, user_exponent=0.0)
    # the 10% most popular items hold far more than 10% of the ratings
    assert top_share(skewed, skewed.item_ids, 2000) > 0.4
    assert top_share(skewed, skewed.user_ids, 2000) > 0.4
    assert top_share(flat, flat.item_ids, 2000) < 0.15


def test_planted_structure_is_learnable(default):
    # A low-rank model fitted on 90% predicts the held-out 10% much better
    # than the mean rating: the ratings are not noise.
    users, items, values, _ = default
    rng = np.random.default_rng(0)
    test = rng.random(values.size) < 0.1
    model = FastALS(factors=10, regularization=0.1, iterations=8, use_bias=True,
                    weighted_regularization=True, random_state=0)
    model.fit((users[~test], items[~test], values[~test]))
    pred = model.predict(users[test], items[test], unknown="default")
    rmse = np.sqrt(np.mean((pred - values[test]) ** 2))
    baseline = np.sqrt(np.mean((values[~test].mean() - values[test]) ** 2))
    assert rmse < 0.8 * baseline, (rmse, baseline)


def test_implicit_counts():
    r = make_ratings(500, 800, 20_000, implicit=True, seed=3)
    assert r.values.min() >= 1 and np.all(r.values == np.round(r.values))
    assert r.values.max() > 5  # heavy tail, not just ones


def test_large_sparse_shape_never_allocates_users_by_items():
    # 10^6 x 10^6 dense would be 8 TB; this must take well under a second or two.
    t0 = time.perf_counter()
    r = make_ratings(1_000_000, 1_000_000, 300_000, rank=4, seed=5)
    assert r.values.size == 300_000
    assert time.perf_counter() - t0 < 20
    assert r.user_ids.dtype == np.int32


def test_small_and_invalid_arguments():
    r = make_ratings(10, 10, 5)  # fewer ratings than users + items: no coverage
    assert r.values.size == 5
    for kwargs in ({"n_users": 0}, {"rank": 1.5}, {"noise": -1},
                   {"item_exponent": float("nan")}, {"n_ratings": 60,
                                                     "n_users": 10, "n_items": 10}):
        with pytest.raises(InputError):
            make_ratings(**{"n_users": 10, "n_items": 10, "n_ratings": 5, **kwargs})
