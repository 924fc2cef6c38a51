"""The ALS kernels against the naive references in ``naive.py``.

Tolerances: float64 factors after one epoch agree with the reference to 1e-6
(relative to the largest entry); objectives never increase by more than
1e-9 relative (rounding of the float64 sums).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS

import naive

TOL = 1e-6


def make(objective, **kw):
    kw.setdefault("factors", 3)
    kw.setdefault("regularization", 0.1)
    # the plain model the naive references describe (explicit defaults
    # would add biases and a sqrt(n) penalty)
    kw.setdefault("use_bias", False)
    kw.setdefault("weighted_regularization", False)
    kw.setdefault("regularization_exponent", 1.0)
    return FastALS(objective=objective, dtype=np.float64, random_state=7, **kw)


CASES = [
    ("explicit", {}),
    ("explicit", {"weighted_regularization": True}),
    ("dense", {}),
    ("implicit", {}),
    ("implicit", {"alpha": 2.0, "confidence": "alpha_r", "unobserved_weight": 0.5}),
    ("implicit", {"alpha": 3.0, "confidence": "log", "epsilon": 0.5}),
    ("implicit", {"solver": "cholesky", "regularization": 0.0}),
]


@pytest.mark.parametrize("objective,kw", CASES)
def test_one_epoch_matches_reference(objective, kw):
    rng = np.random.default_rng(0)
    m, n = 9, 7
    R, mask = naive.random_ratings(rng, m, n)
    model = make(objective, iterations=1, **kw).fit(sp.csr_matrix(R))
    k = model.factors
    init = np.random.default_rng(7)
    model._init_factors(m, k, np.float64, init)  # X0: overwritten before use
    Y0 = model._init_factors(n, k, np.float64, init)
    W, T = naive.cell_weights(R, mask, objective, **{
        key: kw[key] for key in ("alpha", "confidence", "epsilon", "unobserved_weight")
        if key in kw})
    lam = model.regularization
    wr = kw.get("weighted_regularization", False)
    X1 = naive.update_rows(W, T, Y0, lam, wr)
    Y1 = naive.update_rows(W.T, T.T, X1, lam, wr)
    scale = max(1.0, np.abs(X1).max())
    np.testing.assert_allclose(model.user_factors, X1, atol=TOL * scale, rtol=0)
    np.testing.assert_allclose(model.item_factors, Y1, atol=TOL * scale, rtol=0)
    counts = (np.count_nonzero(W, 1), np.count_nonzero(W, 0)) if wr else None
    err, obj = naive.objective(W, T, X1, Y1, lam, counts)
    norm = W.sum()
    assert model.loss_history[0] == pytest.approx(err / norm, rel=1e-9)
    assert model.objective_history[0] == pytest.approx(obj / norm, rel=1e-9)


def test_bias_epoch_matches_reference():
    rng = np.random.default_rng(1)
    m, n, k = 8, 6, 2
    R, mask = naive.random_ratings(rng, m, n)
    model = make("explicit", factors=k, iterations=1, use_bias=True).fit(sp.csr_matrix(R))
    mu = R[mask].mean()
    init = np.random.default_rng(7)
    model._init_factors(m, k + 1, np.float64, init)
    Y0 = model._init_factors(n, k + 1, np.float64, init)
    Y0[:, k] = 0
    W, T = naive.cell_weights(R - mu, mask, "explicit")
    Xb = naive.update_rows_bias(W, T, Y0[:, :k], Y0[:, k], 0.1)
    Yb = naive.update_rows_bias(W.T, T.T, Xb[:, :k], Xb[:, k], 0.1)
    np.testing.assert_allclose(model.user_factors, Xb[:, :k], atol=TOL)
    np.testing.assert_allclose(model.user_biases, Xb[:, k], atol=TOL)
    np.testing.assert_allclose(model.item_factors, Yb[:, :k], atol=TOL)
    np.testing.assert_allclose(model.item_biases, Yb[:, k], atol=TOL)
    assert model.global_mean == pytest.approx(mu)
    pred = mu + Xb[:, k][:, None] + Yb[:, k][None, :] + Xb[:, :k] @ Yb[:, :k].T
    err = np.sum(mask * (R - pred) ** 2) / mask.sum()
    assert model.loss_history[0] == pytest.approx(err, rel=1e-9)


@pytest.mark.parametrize("objective,kw", CASES + [("implicit", {"solver": "cg"}),
                                                   ("explicit", {"use_bias": True})])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_objective_never_increases(objective, kw, dtype):
    rng = np.random.default_rng(2)
    R, _ = naive.random_ratings(rng, 30, 20, density=0.2)
    kw = dict(kw)
    if kw.get("regularization", 0.1) == 0.0:
        kw["regularization"] = 1e-3
    model = FastALS(objective=objective, factors=4, iterations=12, dtype=dtype,
                    random_state=3, **{"regularization": 0.1, **kw}).fit(sp.csr_matrix(R))
    h = np.array(model.objective_history)
    assert h.shape == (12,)
    slack = 1e-9 if dtype == np.float64 else 1e-5
    if kw.get("solver") == "cg":
        slack = 1e-5  # CG steps are descent steps, but inexact
    assert np.all(np.diff(h) <= slack * h[:-1]), h


def test_same_seed_gives_identical_factors_across_runs_and_threads():
    rng = np.random.default_rng(3)
    R, _ = naive.random_ratings(rng, 300, 200, density=0.05)
    X = sp.csr_matrix(R)
    for objective in ("explicit", "implicit", "dense"):
        runs = [FastALS(objective=objective, factors=8, iterations=3, random_state=11,
                        num_threads=t).fit(X) for t in (1, 2, 2)]
        for other in runs[1:]:
            np.testing.assert_array_equal(runs[0].user_factors, other.user_factors)
            np.testing.assert_array_equal(runs[0].item_factors, other.item_factors)
            assert runs[0].loss_history == other.loss_history
    a = FastALS(factors=8, iterations=2, random_state=1).fit(X)
    b = FastALS(factors=8, iterations=2, random_state=2).fit(X)
    assert not np.array_equal(a.item_factors, b.item_factors)


def test_float32_and_float64_agree():
    rng = np.random.default_rng(4)
    R, _ = naive.random_ratings(rng, 40, 30, density=0.3)
    X = sp.csr_matrix(R)
    f32 = FastALS(factors=5, iterations=5, random_state=0, dtype=np.float32).fit(X)
    f64 = FastALS(factors=5, iterations=5, random_state=0, dtype=np.float64).fit(X)
    assert f32.user_factors.dtype == np.float32
    assert f64.user_factors.dtype == np.float64
    p32 = f32.user_factors.astype(float) @ f32.item_factors.T
    p64 = f64.user_factors @ f64.item_factors.T
    np.testing.assert_allclose(p32, p64, atol=1e-3)
    assert f32.loss_history[-1] == pytest.approx(f64.loss_history[-1], rel=1e-4)


def test_cg_approaches_cholesky():
    rng = np.random.default_rng(5)
    R, _ = naive.random_ratings(rng, 50, 40, density=0.2)
    X = sp.csr_matrix(R)
    for objective in ("implicit", "explicit"):
        exact = FastALS(objective=objective, factors=4, iterations=15,
                        random_state=0, dtype=np.float64).fit(X)
        cg = FastALS(objective=objective, factors=4, iterations=15, solver="cg",
                     cg_steps=4, random_state=0, dtype=np.float64).fit(X)
        assert cg.objective_history[-1] == pytest.approx(exact.objective_history[-1],
                                                         rel=2e-2)


def test_factors_are_c_contiguous_and_fit_returns_self():
    R, _ = naive.random_ratings(np.random.default_rng(6), 10, 8)
    model = FastALS(factors=3, iterations=2)
    assert model.fit(sp.coo_matrix(R)) is model
    for f in (model.user_factors, model.item_factors):
        assert f.flags.c_contiguous
    assert model.user_factors.shape == (10, 3)
    assert model.item_factors.shape == (8, 3)


def test_triplets_with_string_ids():
    users = np.array(["bob", "amy", "bob", "cat"])
    items = np.array([10, 20, 20, 30])
    model = FastALS(factors=2, iterations=3, random_state=0).fit(
        (users, items, [5.0, 3.0, 4.0, 1.0]))
    assert list(model.user_ids) == ["amy", "bob", "cat"]
    assert list(model.item_ids) == [10, 20, 30]
    assert model.user_factors.shape == (3, 2)


def test_empty_rows_get_zero_factors_explicit():
    R = sp.csr_matrix(np.array([[5.0, 0, 1], [0, 0, 0], [2, 3, 0]]))
    model = FastALS(factors=2, iterations=3, random_state=0).fit(R)
    assert np.all(model.user_factors[1] == 0)
    assert np.isfinite(model.user_factors).all()
    imp = FastALS(objective="implicit", factors=2, iterations=3, random_state=0).fit(R)
    assert np.isfinite(imp.user_factors).all()


@pytest.fixture(scope="module")
def ua_base_and_spectrum(ml100k):
    """ML-100k ``ua.base`` and the squared singular values of its 943 x 1682
    matrix, largest first: the eigenvalues of ``R R^T`` (943 x 943), a
    fraction of the time of an SVD of the matrix, computed once."""
    d = np.loadtxt(ml100k / "ua.base", dtype=np.int64)
    R = sp.csr_matrix((d[:, 2].astype(float), (d[:, 0] - 1, d[:, 1] - 1)))
    assert R.shape == (943, 1682)
    s2 = np.linalg.eigvalsh((R @ R.T).toarray())[::-1]
    return R, np.maximum(s2, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("k,expected,tol", [(2, 0.520611, 1e-4), (15, 0.409743, 1e-4),
                                            (100, 0.228736, 2e-4)])
def test_dense_objective_reaches_truncated_svd_bound(ua_base_and_spectrum, k, expected,
                                                     tol):
    R, s2 = ua_base_and_spectrum
    bound = np.sum(s2[k:]) / (943 * 1682)
    model = FastALS(objective="dense", factors=k, regularization=0.01,
                    iterations=100, random_state=0).fit(R)
    assert bound == pytest.approx(expected, abs=5e-5)  # the published numbers
    assert model.loss_history[-1] == pytest.approx(bound, abs=tol)
    assert model.loss_history[-1] >= bound - 1e-6  # nothing beats the SVD


def test_tol_stops_at_the_first_small_relative_change():
    rng = np.random.default_rng(3)
    R = sp.random(60, 40, density=0.2, random_state=rng, format="csr") * 5
    model = FastALS(factors=4, iterations=200, tol=1e-3, random_state=0).fit(R)
    obj = np.array(model.objective_history)
    change = np.abs(np.diff(obj)) / np.abs(obj[:-1])
    assert 2 <= obj.size < 200
    assert change[-1] <= 1e-3 and np.all(change[:-1] > 1e-3)
    # Without tol the same fit runs every epoch.
    full = FastALS(factors=4, iterations=obj.size + 3, random_state=0).fit(R)
    assert len(full.objective_history) == obj.size + 3
    assert full.objective_history[:obj.size] == model.objective_history
