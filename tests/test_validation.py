"""Bad input at the API boundary: each case fails early with a clear error."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS, InputError, NotFittedError, NumericalError


def small():
    return sp.csr_matrix(np.array([[5.0, 0, 1], [0, 2, 0], [2, 3, 0]]))


@pytest.mark.parametrize("values,where", [
    ([1.0, np.nan, 3.0], "position 1"),
    ([1.0, 2.0, np.inf], "position 2"),
    ([-np.inf, 2.0, 3.0], "position 0"),
])
def test_non_finite_values_are_rejected_with_position(values, where):
    with pytest.raises(InputError, match=f"non-finite.*{where}"):
        FastALS(factors=2).fit(([0, 1, 2], [0, 1, 2], values))


def test_non_finite_in_sparse_matrix():
    X = small()
    X.data[1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        FastALS(factors=2).fit(X)


def test_non_integer_ids_are_rejected():
    with pytest.raises(InputError, match="user_ids must be integers or strings"):
        FastALS(factors=2).fit(([0.5, 1, 2], [0, 1, 2], [1, 2, 3]))
    with pytest.raises(InputError, match="item_ids"):
        FastALS(factors=2).fit(([0, 1, 2], [0, np.nan, 2], [1, 2, 3]))


def test_mismatched_lengths():
    with pytest.raises(InputError, match="differ in length: 3, 2, 3"):
        FastALS(factors=2).fit(([0, 1, 2], [0, 1], [1, 2, 3]))


@pytest.mark.parametrize("X", [
    ([], [], []),
    sp.csr_matrix((3, 4)),
    sp.csr_matrix((0, 4)),
])
def test_empty_input(X):
    with pytest.raises(InputError, match="no ratings|no users"):
        FastALS(factors=2).fit(X)


def test_wrong_input_types():
    with pytest.raises(InputError, match="scipy.sparse matrix"):
        FastALS(factors=2).fit("ratings.csv")
    with pytest.raises(InputError, match="triplet input"):
        FastALS(factors=2).fit(([0], [1]))


def test_explicit_zeros_and_unsorted_indices_are_canonicalized():
    dense = np.array([[5.0, 0, 1], [0, 2, 0], [2, 3, 0]])
    ref = FastALS(factors=2, iterations=3, random_state=0).fit(sp.csr_matrix(dense))
    # same matrix with stored zeros and reversed column order inside rows
    indptr = np.array([0, 3, 5, 7])
    indices = np.array([2, 1, 0, 1, 0, 1, 0])
    data = np.array([1.0, 0.0, 5.0, 2.0, 0.0, 3.0, 2.0])
    messy = sp.csr_matrix((data, indices, indptr), shape=(3, 3))
    assert not messy.has_sorted_indices
    got = FastALS(factors=2, iterations=3, random_state=0).fit(messy)
    np.testing.assert_array_equal(ref.user_factors, got.user_factors)
    np.testing.assert_array_equal(ref.item_factors, got.item_factors)


@pytest.mark.parametrize("policy,expected", [
    ("sum", 7.0), ("mean", 3.5), ("last", 4.0)])
def test_duplicate_policy(policy, expected):
    from fastals._input import to_csr
    csr, _, _ = to_csr(([1, 1, 2], [9, 9, 9], [3.0, 4.0, 1.0]), duplicates=policy)
    assert csr.shape == (2, 1)
    assert csr[0, 0] == expected
    # the sparse-matrix path applies the same policy
    coo = sp.coo_matrix(([3.0, 4.0, 1.0], ([0, 0, 1], [0, 0, 0])), shape=(2, 1))
    csr2, _, _ = to_csr(coo, duplicates=policy)
    assert csr2[0, 0] == expected


def test_duplicate_policy_error():
    with pytest.raises(InputError, match="1 duplicate .* pass duplicates="):
        FastALS(factors=2, duplicates="error").fit(([1, 1], [2, 2], [3.0, 4.0]))
    with pytest.raises(InputError, match="duplicates must be one of"):
        FastALS(factors=2, duplicates="max").fit(([1], [2], [3.0]))


@pytest.mark.parametrize("params,match", [
    ({"factors": 0}, "factors must be a positive integer"),
    ({"factors": -3}, "factors must be a positive integer"),
    ({"factors": 2.5}, "factors must be a positive integer"),
    ({"factors": True}, "factors must be a positive integer"),
    ({"regularization": -0.1}, "regularization must be a finite number >= 0"),
    ({"regularization": np.nan}, "regularization must be a finite number"),
    ({"alpha": -1}, "alpha must be a finite number >= 0"),
    ({"iterations": -1}, "iterations must be a non-negative integer"),
    ({"objective": "svd"}, "objective must be one of"),
    ({"confidence": "cubic"}, "confidence must be one of"),
    ({"solver": "qr"}, "solver must be one of"),
    ({"cg_steps": 0}, "cg_steps must be a positive integer"),
    ({"dtype": np.int32}, "dtype must be float32 or float64"),
    ({"dtype": "complex"}, "dtype must be float32 or float64"),
    ({"num_threads": -1}, "num_threads must be an integer >= 0"),
    ({"use_bias": True, "objective": "implicit"}, "use_bias=True needs"),
    ({"tol": -1.0}, "tol must be None"),
    ({"callback": 3}, "callback must be callable"),
    ({"epsilon": 0.0}, "epsilon must be > 0"),
])
def test_absurd_hyperparameters_are_rejected_before_any_work(params, match, monkeypatch):
    import fastals.model as M

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("input was processed before validation")
    monkeypatch.setattr(M, "to_csr", boom)
    with pytest.raises(InputError, match=match):
        FastALS(**params).fit(small())


def test_unknown_parameter_in_set_params():
    with pytest.raises(InputError, match="unknown parameter 'factor'"):
        FastALS().set_params(factor=3)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        FastALS()._require_fitted()


def test_zero_iterations_returns_initial_factors():
    model = FastALS(factors=2, iterations=0, random_state=0).fit(small())
    assert model.loss_history == []
    assert np.isfinite(model.user_factors).all()


@pytest.mark.parametrize("objective", ["explicit", "implicit", "dense"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_singular_systems_fall_back_instead_of_nan(objective, dtype):
    # lambda = 0, k = 6 and rows with one or two entries: A_u is singular
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 2)
    items = rng.integers(0, 15, 40)
    X = (users, items, rng.integers(1, 6, 40).astype(float))
    model = FastALS(objective=objective, factors=6, regularization=0.0,
                    iterations=4, random_state=0, dtype=dtype).fit(X)
    assert np.isfinite(model.user_factors).all()
    assert np.isfinite(model.item_factors).all()
    assert np.isfinite(model.loss_history).all()


def test_divergence_is_reported_not_returned():
    X = ([0, 0, 1, 1, 2], [0, 1, 1, 2, 0], [3e38, -3e38, 3e38, 3e38, -3e38])
    with pytest.raises(NumericalError, match="NaN or infinite.*regularization"):
        FastALS(factors=4, iterations=3, random_state=0, dtype=np.float32).fit(X)


def test_users_without_ratings_in_implicit_are_zero():
    X = sp.csr_matrix(np.array([[1.0, 0, 2], [0, 0, 0], [0, 3, 0]]))
    model = FastALS(objective="implicit", factors=2, iterations=3, random_state=0).fit(X)
    np.testing.assert_array_equal(model.user_factors[1], 0)


def test_values_beyond_float32_range():
    X = ([0, 1], [0, 1], [1e39, 2.0])
    with pytest.raises(InputError, match="does not fit in float32.*float64"):
        FastALS(factors=2).fit(X)
    FastALS(factors=2, iterations=1, dtype=np.float64).fit(X)


def test_fit_accepts_a_ratings_record():
    from fastals import make_ratings
    r = make_ratings(30, 20, 200, seed=1)
    a = FastALS(factors=2, iterations=2, random_state=0).fit(r)
    b = FastALS(factors=2, iterations=2, random_state=0).fit((r.user_ids, r.item_ids, r.values))
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
