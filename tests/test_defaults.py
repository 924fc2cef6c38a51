"""Objective-dependent defaults of :class:`fastals.FastALS` (None = the objective's)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS
from fastals import evaluation as E
from fastals.model import AUTO_PARAMS, EXPLICIT_LAMBDA


def test_explicit_defaults():
    m = FastALS()
    assert (m.factors, m.use_bias, m.weighted_regularization,
            m.regularization_exponent, m.regularization, m.iterations) == \
        (32, True, True, 0.5, 1.25, 15)
    assert all(m.get_params()[p] is None for p in AUTO_PARAMS)
    assert repr(m) == "FastALS()"


@pytest.mark.parametrize("objective", ["implicit", "dense"])
def test_other_objectives_keep_implicits_defaults(objective):
    m = FastALS(objective=objective)
    assert (m.factors, m.use_bias, m.weighted_regularization,
            m.regularization_exponent, m.regularization, m.alpha, m.iterations) == \
        (100, False, False, 1.0, 0.01, 1.0, 15)
    m._validated()


def test_lambda_follows_the_penalty_shape():
    assert FastALS(regularization_exponent=1.0).regularization == EXPLICIT_LAMBDA[1.0]
    # weighted_regularization=True alone keeps its old meaning: ALS-WR
    wr = FastALS(weighted_regularization=True)
    assert wr.regularization_exponent == 1.0 and wr.regularization == EXPLICIT_LAMBDA[1.0]
    assert FastALS(weighted_regularization=True, regularization=0.1).regularization == 0.1
    assert FastALS(weighted_regularization=False).regularization == EXPLICIT_LAMBDA[0.0]
    mid = FastALS(regularization_exponent=0.75).regularization
    assert EXPLICIT_LAMBDA[1.0] < mid < EXPLICIT_LAMBDA[0.5]
    assert FastALS(regularization=0.3).regularization == 0.3
    assert FastALS(nonnegative=True).use_bias is False


def test_given_values_win_and_clones_follow_the_new_objective():
    m = FastALS(use_bias=False, factors=7)
    assert m.use_bias is False and m.factors == 7
    base = FastALS()
    clone = E._clone(base, objective="implicit")
    assert clone.use_bias is False and clone.regularization == 0.01
    clone._validated()


def test_pickle_and_old_pickles():
    m = FastALS(regularization=0.2)
    again = pickle.loads(pickle.dumps(m))
    assert again.regularization == 0.2 and again.get_params()["use_bias"] is None
    # state of a pickle made before the objective-dependent defaults
    old = FastALS.__new__(FastALS)
    state = dict(FastALS().__dict__)
    for p in AUTO_PARAMS:
        state.pop(f"_{p}_param")
    state.update(factors=5, regularization=0.01, use_bias=False,
                 weighted_regularization=False, regularization_exponent=1.0)
    old.__setstate__(state)
    assert (old.factors, old.use_bias, old.regularization) == (5, False, 0.01)


def test_default_model_fits_small_data():
    rng = np.random.default_rng(0)
    R = sp.random(30, 20, density=0.3, random_state=1, format="csr")
    R.data = rng.integers(1, 6, R.nnz).astype(float)
    m = FastALS(random_state=0, iterations=3).fit(R)
    assert m.user_factors.shape == (30, 32) and np.isfinite(m.user_biases).all()
