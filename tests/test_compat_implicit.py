"""The implicit drop-in (:mod:`fastals.compat.implicit`) against the shared contract.

implicit itself is not imported: ``bench/contract_vs_implicit.py`` runs the
same contract on implicit's class.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS
from fastals.compat.implicit import AlternatingLeastSquares
from recommender_contract import PARAMS, RecommenderContract, _interactions


class TestImplicitDropIn(RecommenderContract):
    model_class = AlternatingLeastSquares


class TestDropInSpecifics:
    """What the contract leaves open: how the drop-in maps onto FastALS."""

    def test_trains_fastals_implicit_alpha_r(self):
        R = _interactions()
        for use_cg, solver in ((True, "cg"), (False, "cholesky")):
            drop = AlternatingLeastSquares(**PARAMS, use_cg=use_cg)
            drop.fit(R, show_progress=False)
            ref = FastALS(objective="implicit", confidence="alpha_r", solver=solver,
                          calculate_training_loss=False, **PARAMS).fit(R)
            np.testing.assert_array_equal(drop.user_factors, ref.user_factors)
            np.testing.assert_array_equal(drop.item_factors, ref.item_factors)

    def test_pads_exactly_like_implicit(self):
        # implicit 0.7 fills places beyond the candidates with the excluded
        # ids at -FLT_MAX, and places beyond the number of items with 0 / 0.
        R = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 1, 0, 0]], np.float32))
        model = AlternatingLeastSquares(factors=2, random_state=0, iterations=2)
        model.fit(R, show_progress=False)
        ids, scores = model.recommend(0, R[0], N=6)
        assert ids.shape == (6,)
        assert set(ids[:2]) == {1, 2} and np.all(scores[:2] > -1e30)
        np.testing.assert_array_equal(ids[2:4], [0, 3])
        np.testing.assert_array_equal(scores[2:4], -np.finfo(np.float32).max)
        np.testing.assert_array_equal(ids[4:], 0)
        np.testing.assert_array_equal(scores[4:], 0)

    def test_fit_refuses_factors_of_another_shape(self):
        model = AlternatingLeastSquares(**PARAMS)
        model.fit(_interactions(), show_progress=False)
        with pytest.raises(ValueError, match="user_factors"):
            model.fit(_interactions()[:10], show_progress=False)

    def test_use_gpu_warns_and_fits_on_cpu(self):
        model = AlternatingLeastSquares(**PARAMS, use_gpu=True)
        with pytest.warns(RuntimeWarning, match="CPU"):
            model.fit(_interactions(), show_progress=False)
        assert model.user_factors.shape[1] == PARAMS["factors"]

    def test_save_is_atomic_and_keeps_no_temporary(self, tmp_path):
        model = AlternatingLeastSquares(**PARAMS)
        model.fit(_interactions(), show_progress=False)
        model.save(tmp_path / "m.npz")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
