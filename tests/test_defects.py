"""Regression tests of issue 17: eight defects found by a review against naive
references, plus the three suspected ones.  Each test failed on the code
before its fix (see the commit that fixes it).
"""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastals.model as model_module
import fastals.recommend as recommend_module
from fastals import FastALS, InputError, NumericalError
from fastals import evaluation
from fastals.recommend import RecommenderMixin

import naive
from model_state import assert_unchanged, snapshot


def _triplets(seed=0, m=20, n=15, density=0.3):
    rng = np.random.default_rng(seed)
    R, mask = naive.random_ratings(rng, m, n, density)
    u, i = np.nonzero(mask)
    return u.astype(np.int64), i.astype(np.int64), R[u, i], R, mask


def _fitted(**kw):
    u, i, v, _, _ = _triplets()
    kw.setdefault("factors", 3)
    kw.setdefault("iterations", 2)
    kw.setdefault("random_state", 0)
    return FastALS(**kw).fit((u + 100, i, v))


# ------------------------------------------------------------------ 1
class Boom(RuntimeError):
    pass


def _fail_on_call(monkeypatch, owner, name, after=0):
    """Replace ``owner.name`` by a wrapper raising Boom on call ``after + 1``."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise Boom(f"injected failure in {name}")
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, failing)
    return calls


def test_failed_partial_fit_with_a_bad_id_leaves_the_model_unchanged():
    model = _fitted()
    snap = snapshot(model)
    rows = sp.csr_matrix(np.ones((1, model.item_factors.shape[0])))
    with pytest.raises(InputError):
        model.partial_fit_users(["alice"], rows)
    assert_unchanged(model, snap)
    model.recommend_all(n=3)
    with pytest.raises(InputError):
        model.predict(model.user_factors.shape[0] + 100, 0)


PARTIAL_FIT_STEPS = [
    (RecommenderMixin, "_fold_rows"),
    (RecommenderMixin, "_index_of"),
    (RecommenderMixin, "_fold_in"),
    (recommend_module, "_replace_lines"),
    (RecommenderMixin, "_grown_ids"),
    (np, "concatenate"),
]


@pytest.mark.parametrize("side", ["user", "item"])
@pytest.mark.parametrize("owner,name", PARTIAL_FIT_STEPS)
@pytest.mark.parametrize("use_bias", [False, True])
def test_partial_fit_is_all_or_nothing(monkeypatch, side, owner, name, use_bias):
    model = _fitted(use_bias=use_bias)
    snap = snapshot(model)
    other = model.item_factors if side == "user" else model.user_factors
    rows = sp.csr_matrix(np.r_[np.ones((1, other.shape[0])),
                               np.zeros((1, other.shape[0]))])
    known = model.user_ids[0] if side == "user" else model.item_ids[0]
    new_ids = [known, 10_000]
    _fail_on_call(monkeypatch, owner, name)
    with pytest.raises(Boom):
        getattr(model, f"partial_fit_{side}s")(new_ids, rows)
    monkeypatch.undo()
    assert_unchanged(model, snap)
    # and the same call without the failure does change it
    getattr(model, f"partial_fit_{side}s")(new_ids, rows)
    assert model._n(side) == snap_len(snap, side) + 1


def snap_len(snap, side):
    return snap[f"{side}_factors"][2][0]


FIT_STEPS = [
    (model_module, "to_csr", 0),
    (FastALS, "_fit_csr", 0),
    (FastALS, "_half_step", 0),
    (FastALS, "_half_step", 1),
    (FastALS, "_half_step", 3),
    (FastALS, "_loss", 1),
    (FastALS, "_store", 1),
    (FastALS, "_remember_training", 0),
]


@pytest.mark.parametrize("owner,name,after", FIT_STEPS)
@pytest.mark.parametrize("fitted_before", [False, True])
def test_fit_is_all_or_nothing(monkeypatch, owner, name, after, fitted_before):
    u, i, v, _, _ = _triplets(1, 12, 9)
    model = FastALS(factors=2, iterations=3, random_state=1)
    if fitted_before:
        model.fit((u, i + 50, v))
    snap = snapshot(model)
    _fail_on_call(monkeypatch, owner, name, after)
    with pytest.raises(Boom):
        model.fit((u, i, v))
    assert_unchanged(model, snap)


def test_fit_stopped_by_a_raising_callback_is_rolled_back():
    u, i, v, _, _ = _triplets(1, 12, 9)
    model = FastALS(factors=2, iterations=3, random_state=1).fit((u, i, v))
    snap = snapshot(model)

    def callback(epoch, loss, seconds):
        if epoch == 2:
            raise KeyboardInterrupt
    model.set_params(callback=callback)
    snap = snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        model.fit((u + 1, i, v))
    assert_unchanged(model, snap)


def test_set_params_is_all_or_nothing():
    model = FastALS(factors=3)
    snap = snapshot(model)
    with pytest.raises(InputError, match="factor'"):
        model.set_params(factors=5, factor=4)
    assert_unchanged(model, snap)


def test_recalculate_never_changes_the_model():
    model = _fitted()
    snap = snapshot(model)
    model.recalculate_user({0: 3.0, 1: 4.0})
    model.recalculate_item(np.ones(model.user_factors.shape[0]))
    with pytest.raises(InputError):
        model.recalculate_user({999: 3.0})
    assert_unchanged(model, snap)


# ------------------------------------------------------------------ 2
TOP = 2 ** 63


@pytest.mark.parametrize("users", [
    np.array([TOP, TOP + 1, TOP + 7, TOP + 1], np.uint64),            # dense range
    np.array([TOP, 3, 2 ** 64 - 1, 3], np.uint64),                     # sparse range
])
def test_uint64_ids_round_trip(tmp_path, users):
    items = np.array([TOP + 5, 1, TOP + 5, 2], np.uint64)
    vals = np.array([5.0, 3.0, 4.0, 1.0])
    model = FastALS(factors=2, iterations=2, random_state=0, dtype=np.float64)
    model.fit((users, items, vals))
    assert model.user_ids.dtype == np.uint64
    assert model.user_ids.tolist() == sorted(set(users.tolist()))
    assert model.item_ids.tolist() == sorted(set(items.tolist()))
    u0 = int(users[0])
    p = model.predict(u0, TOP + 5)
    assert p == model.predict(np.uint64(u0), np.uint64(TOP + 5))
    ids, _ = model.recommend(u0, n=3, filter_already_liked_items=False)
    assert ids.dtype == np.uint64 and TOP + 5 in ids.tolist()
    with pytest.raises(InputError, match="unknown user id"):
        model.predict(TOP + 123456, TOP + 5)
    path = tmp_path / "m.npz"
    model.save(path)
    back = FastALS.load(path)
    assert back.user_ids.dtype == np.uint64 and back.item_ids.dtype == np.uint64
    np.testing.assert_array_equal(back.user_ids, model.user_ids)
    np.testing.assert_array_equal(back.item_ids, model.item_ids)
    assert back.predict(u0, TOP + 5) == p
    back.partial_fit_users([TOP + 99], np.ones((1, 3)))
    assert back.user_ids[-1] == TOP + 99 and back.user_ids.dtype == np.uint64
    with pytest.raises(InputError, match="fit"):
        back.partial_fit_users([-1], np.ones((1, 3)))


def test_int64_model_refuses_ids_it_cannot_hold():
    model = _fitted()
    snap = snapshot(model)
    with pytest.raises(InputError, match="fit"):
        model.partial_fit_users([TOP + 1], np.ones((1, 15)))
    assert_unchanged(model, snap)


# ------------------------------------------------------------------ 3
def test_dense_objective_honours_weighted_regularization():
    rng = np.random.default_rng(3)
    m, n, k, lam = 9, 7, 3, 0.1
    R, mask = naive.random_ratings(rng, m, n)
    R[4] = 0
    mask[4] = False  # a user without ratings: lam_u = 0, zero factor
    model = FastALS(objective="dense", factors=k, regularization=lam, iterations=1,
                    weighted_regularization=True, dtype=np.float64,
                    random_state=7).fit(sp.csr_matrix(R))
    init = np.random.default_rng(7)
    model._init_factors(m, k, np.float64, init)
    Y0 = model._init_factors(n, k, np.float64, init)
    W, T = naive.cell_weights(R, mask, "dense")
    nu, ni = mask.sum(1), mask.sum(0)
    X1 = naive.update_rows(W, T, Y0, lam, True, nu)
    Y1 = naive.update_rows(W.T, T.T, X1, lam, True, ni)
    np.testing.assert_allclose(model.user_factors, X1, atol=1e-10, rtol=0)
    np.testing.assert_allclose(model.item_factors, Y1, atol=1e-10, rtol=0)
    err, obj = naive.objective(W, T, X1, Y1, lam, (nu, ni))
    assert model.objective_history[0] == pytest.approx(obj / W.sum(), rel=1e-9)
    plain = FastALS(objective="dense", factors=k, regularization=lam, iterations=1,
                    dtype=np.float64, random_state=7).fit(sp.csr_matrix(R))
    assert not np.allclose(plain.item_factors, model.item_factors)
    # fold-in solves the same row system
    np.testing.assert_allclose(model.recalculate_user(sp.csr_matrix(R)),
                               naive.update_rows(W, T, model.item_factors, lam, True, nu),
                               atol=1e-10)


# ------------------------------------------------------------------ 4
def _ua_base(ml100k):
    d = np.loadtxt(ml100k / "ua.base", dtype=np.int64)
    return sp.csr_matrix((d[:, 2] * 1.0, (d[:, 0] - 1, d[:, 1] - 1)))


def test_float32_without_regularization_cg_divergence_is_caught(ml100k):
    R = _ua_base(ml100k)
    model = FastALS(factors=64, regularization=0.0, solver="cg", iterations=8,
                    random_state=0, use_bias=False, weighted_regularization=False)
    with pytest.raises(NumericalError, match="float64"):
        model.fit(R)
    assert not hasattr(model, "user_factors")  # and nothing half-trained is kept


def test_divergence_is_caught_without_the_training_loss(ml100k):
    R = _ua_base(ml100k)
    model = FastALS(factors=64, regularization=0.0, solver="cg", iterations=8,
                    random_state=0, calculate_training_loss=False, use_bias=False,
                    weighted_regularization=False)
    with pytest.raises(NumericalError, match="regularization"):
        model.fit(R)


def test_objective_rise_raises(monkeypatch):
    """A history that goes up by more than rounding allows is an error."""
    u, i, v, _, _ = _triplets(2)
    real = FastALS._loss
    calls = {"n": 0}

    def rising(self, *args):
        err, obj = real(self, *args)
        calls["n"] += 1
        return (err * 2, obj * 2) if calls["n"] == 3 else (err, obj)
    monkeypatch.setattr(FastALS, "_loss", rising)
    with pytest.raises(NumericalError, match="objective rose"):
        FastALS(factors=2, iterations=5, random_state=0).fit((u, i, v))


# ------------------------------------------------------------------ 5
@pytest.mark.parametrize("objective,kw", [
    ("explicit", {"weighted_regularization": True}),
    ("explicit", {"regularization": 0.0}),
    ("implicit", {"weighted_regularization": True}),
    ("explicit", {"use_bias": True, "weighted_regularization": True}),
])
def test_cg_gives_rows_without_ratings_a_zero_factor(objective, kw):
    _, _, _, R, _ = _triplets(4, 10, 8)
    R[3] = 0
    R[:, 5] = 0
    fits = {s: FastALS(objective=objective, factors=3, iterations=3, solver=s,
                       random_state=0, dtype=np.float64, **kw).fit(sp.csr_matrix(R))
            for s in ("cg", "cholesky")}
    for m in fits.values():
        assert not m.user_factors[3].any() and not m.item_factors[5].any()
        assert not m.user_biases[3].any()


# ------------------------------------------------------------------ 6
def test_similar_items_reuses_normalized_factors():
    rng = np.random.default_rng(0)
    n, k = 40_000, 16
    model = FastALS(factors=k)
    model.user_factors = rng.standard_normal((50, k)).astype(np.float32)
    model.item_factors = rng.standard_normal((n, k)).astype(np.float32)
    model.item_factors[7] = 0
    model.user_ids = model.item_ids = None
    first = model.similar_items(3, n=5)
    tracemalloc.start()
    again = model.similar_items(3, n=5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(first[0], again[0])
    assert peak < model.item_factors.nbytes / 8, peak
    # cosine against a direct computation
    F = model.item_factors.astype(np.float64)
    norms = np.linalg.norm(F, axis=1)
    cos = F @ F[3] / np.where(norms > 0, norms, 1) / norms[3]
    assert first[0].tolist() == np.argsort(-cos, kind="stable")[:5].tolist()


def test_similarity_cache_is_invalidated_by_every_factor_change():
    model = _fitted(dtype=np.float64)

    def fresh(side, q):
        F = getattr(model, f"{side}_factors").astype(np.float64)
        norms = np.linalg.norm(F, axis=1)
        N = F / np.where(norms > 0, norms, 1)[:, None]
        row = model._index_of(side, q)
        return np.argsort(-(N @ N[row]), kind="stable")[:4]

    def check():
        assert model.similar_items(0, n=4)[0].tolist() == fresh("item", 0).tolist()
        u0 = model.user_ids[0]
        got = model._index_of("user", model.similar_users(u0, n=4)[0])
        assert got.tolist() == fresh("user", u0).tolist()

    check()
    model.partial_fit_items([0], np.ones((1, model.user_factors.shape[0])))
    check()
    model.partial_fit_users([model.user_ids[0]], np.ones((1, model.item_factors.shape[0])))
    check()
    model.item_factors = model.item_factors[::-1].copy()
    check()
    u, i, v, _, _ = _triplets(9)
    model.fit((u + 100, i, v))
    check()


# ------------------------------------------------------------------ 7
def test_fold_in_from_a_sparse_matrix_follows_the_duplicates_policy():
    rows, cols, vals = [0, 0, 0], [1, 1, 2], [2.0, 4.0, 5.0]
    dup = sp.coo_matrix((vals, (rows, cols)), shape=(1, 15))
    for policy in ("sum", "mean", "last"):
        model = _fitted(duplicates=policy, dtype=np.float64)
        via_tuple = model.recalculate_user(([1, 1, 2], vals))
        np.testing.assert_array_equal(model.recalculate_user(dup), via_tuple)
    model = _fitted(duplicates="error")
    snap = snapshot(model)
    with pytest.raises(InputError, match="duplicate"):
        model.recalculate_user(dup)
    with pytest.raises(InputError, match="duplicate"):
        model.partial_fit_users([5000], dup)
    assert_unchanged(model, snap)


# ------------------------------------------------------------------ 8
def test_stored_zeros_are_never_relevant():
    test = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])),
                         shape=(1, 4))
    got = evaluation.metrics_from_recommendations(np.array([[0, 3]]), test)
    assert got["precision"] == 0.0 and got["recall"] == 0.0


def test_ranking_metrics_ignore_stored_zeros():
    model = _fitted()
    m, n = model.user_factors.shape[0], model.item_factors.shape[0]
    train = sp.csr_matrix((m, n))
    rec = model.recommend_all(n=1, filter_already_liked_items=False)[1]
    top = model._index_of("item", model.recommend_all(
        n=1, filter_already_liked_items=False)[0][:, 0])
    # test: every user's top item, stored as an explicit zero, and another
    rows = np.r_[np.arange(m), np.arange(m)]
    cols = np.r_[top, (top + 1) % n]
    data = np.r_[np.zeros(m), np.ones(m)]
    test = sp.coo_matrix((data, (rows, cols)), shape=(m, n)).tocsr()
    assert test.nnz == 2 * m
    got = evaluation.ranking_metrics_at_k(model, train, test, K=1, auc=False)
    assert rec.shape[0] == m
    assert got["precision"] == 0.0


# ------------------------------------------------------------ suspected
def test_nnls_iteration_cap_is_reported(monkeypatch):
    from fastals.kernels import nnls
    real = nnls.solve_nnls

    def capped(*args):
        real(*args)
        return 2
    monkeypatch.setattr(nnls, "solve_nnls", capped)
    u, i, v, _, _ = _triplets(5)
    with pytest.warns(RuntimeWarning, match="iteration cap"):
        model = FastALS(factors=2, iterations=2, nonnegative=True,
                        random_state=0).fit((u, i, v))
    assert model.solver_report["nnls_capped_rows"] == 8  # 2 per half-step


def test_ridge_fallbacks_are_counted_and_warned_only_when_unexpected():
    u, i, v, _, _ = _triplets(6, 12, 10, 0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = FastALS(factors=8, iterations=2, regularization=0.0,
                        dtype=np.float64, random_state=0).fit((u, i, v))
    assert model.solver_report["ridge_fallback_rows"] > 0


def test_unexpected_ridge_fallback_warns(monkeypatch):
    from fastals import kernels as K
    real = K.solve_cholesky

    def failing(*args):
        real(*args)
        return 1
    monkeypatch.setattr(K, "solve_cholesky", failing)
    u, i, v, _, _ = _triplets(6)
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        FastALS(factors=2, iterations=1, random_state=0).fit((u, i, v))


def test_recommend_user_items_is_never_ambiguous():
    """With as many requested users as model users, in another order, the
    rows of user_items could be either; that is refused, not guessed."""
    model = _fitted()
    m = model.user_factors.shape[0]
    train = model._user_items
    users = model.user_ids[::-1]
    for given in (train, train[::-1]):
        with pytest.raises(InputError, match="ambiguous"):
            model.recommend(users, n=3, user_items=given)
    # same users in model order: both readings agree, accepted
    a, _ = model.recommend(model.user_ids, n=3, user_items=train)
    np.testing.assert_array_equal(a, model.recommend_all(n=3)[0])
    assert a.shape[0] == m
    # fewer users: one row per requested user, or one per model user
    sub = model.user_ids[[4, 1]]
    ref, _ = model.recommend(sub, n=3)
    np.testing.assert_array_equal(model.recommend(sub, n=3, user_items=train)[0], ref)
    np.testing.assert_array_equal(
        model.recommend(sub, n=3, user_items=train[[4, 1]])[0], ref)


def test_float32_without_regularization_cholesky_never_rises_silently(ml100k):
    """Issue 17: Cholesky, float32, lambda = 0 let the objective rise.

    Now every fit either raises NumericalError or returns a history that
    rises by no more than the lambda = 0 band (RISE_RTOL_UNREGULARIZED of the
    scale), having warned about any rise beyond rounding.  (Which seeds
    diverge depends on the starting point; seed 1 did on the code of the
    issue.)
    """
    from fastals import _guard
    d = np.loadtxt(ml100k / "ua.base", dtype=np.int64)
    X = (d[:, 0], d[:, 1], d[:, 2] * 1.0)
    scale = np.mean(X[2] ** 2)
    plain = {"use_bias": False, "weighted_regularization": False}
    for seed in (1, 2):
        model = FastALS(factors=32, regularization=0.0, iterations=12,
                        random_state=seed, **plain)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X)
        except NumericalError as exc:
            assert "float64" in str(exc)
            continue
        h = np.array(model.objective_history)
        assert np.all(np.diff(h) <= _guard.RISE_RTOL_UNREGULARIZED * (h[:-1] + scale))
    ok = FastALS(factors=32, regularization=0.0, iterations=12, random_state=1,
                 dtype=np.float64, **plain).fit(X)
    h = np.array(ok.objective_history)
    assert np.all(np.diff(h) <= 1e-9 * (h[:-1] + scale))
