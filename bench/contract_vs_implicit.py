"""The recommender contract of ``tests/recommender_contract.py`` on implicit itself.

``tests/test_compat_implicit.py`` checks fastals' drop-in
(:mod:`fastals.compat.implicit`) against the contract in the default test
run; this file runs the very same tests on
``implicit.cpu.als.AlternatingLeastSquares`` (0.7), which shows that the
contract describes implicit's behaviour and not only fastals'.  Skipped
without implicit (``pip install fastals[bench]``)::

    python -m pytest bench/contract_vs_implicit.py -q -p no:cacheprovider
"""

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

implicit_als = pytest.importorskip("implicit.cpu.als")

from recommender_contract import RecommenderContract  # noqa: E402

warnings.filterwarnings("ignore", message=".*OpenBLAS is configured.*")


class TestImplicitItself(RecommenderContract):
    model_class = implicit_als.AlternatingLeastSquares


def test_same_seed_same_model_as_implicit():
    # fastals starts from implicit's starting factors for the same seed and
    # solves the same objective: with exact solves the models agree up to
    # float32 rounding, and so do the reported losses.
    import numpy as np

    from fastals.compat.implicit import AlternatingLeastSquares
    from recommender_contract import PARAMS, _interactions

    R = _interactions()
    kw = dict(PARAMS, use_cg=False, calculate_training_loss=True)
    ours = AlternatingLeastSquares(**kw)
    theirs = implicit_als.AlternatingLeastSquares(**kw)
    losses = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        model.fit(R, show_progress=False,
                  callback=lambda it, t, loss, n=name: losses.setdefault(n, []).append(loss))
    np.testing.assert_allclose(ours.user_factors, theirs.user_factors, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours.item_factors, theirs.item_factors, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(losses["ours"], losses["theirs"], rtol=1e-4)


def test_cg_steps_are_implicits():
    # 3 warm-started CG steps per row: in float64, from the same starting
    # factors, both libraries compute the same model (to ~1e-7).  In float32
    # the truncated CG amplifies rounding (1e-3 after a few epochs), which
    # is why the NDCG of the two differs per seed by up to 2e-4
    # (bench/ndcg_vs_implicit.py).
    import numpy as np

    from fastals.compat.implicit import AlternatingLeastSquares
    from recommender_contract import K, N_ITEMS, N_USERS, PARAMS, _interactions

    R = _interactions()
    rng = np.random.default_rng(0)
    X0, Y0 = rng.random((N_USERS, K)) * 0.01, rng.random((N_ITEMS, K)) * 0.01
    models = []
    for cls in (AlternatingLeastSquares, implicit_als.AlternatingLeastSquares):
        model = cls(**PARAMS, use_cg=True, dtype=np.float64)
        model.user_factors, model.item_factors = X0.copy(), Y0.copy()
        model.fit(R, show_progress=False)
        models.append(model)
    np.testing.assert_allclose(models[0].user_factors, models[1].user_factors, atol=1e-6)
    np.testing.assert_allclose(models[0].item_factors, models[1].item_factors, atol=1e-6)


def test_model_files_cross_load(tmp_path):
    # a drop-in file loads in implicit and an implicit file in the drop-in
    import numpy as np

    from fastals.compat.implicit import AlternatingLeastSquares
    from recommender_contract import PARAMS, _interactions

    R = _interactions()
    ours = AlternatingLeastSquares(**PARAMS)
    ours.fit(R, show_progress=False)
    ours.save(str(tmp_path / "ours"))
    theirs = implicit_als.AlternatingLeastSquares.load(str(tmp_path / "ours"))
    np.testing.assert_array_equal(theirs.user_factors, ours.user_factors)
    np.testing.assert_array_equal(theirs.recommend(0, R[0], N=3)[0],
                                  ours.recommend(0, R[0], N=3)[0])
    theirs.save(str(tmp_path / "theirs"))
    back = AlternatingLeastSquares.load(str(tmp_path / "theirs"))
    np.testing.assert_array_equal(back.item_factors, ours.item_factors)
    assert back.alpha == ours.alpha and back.factors == ours.factors
