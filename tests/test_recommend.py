import numba
import numpy as np
import pytest
import scipy.sparse as sp

import naive

# The plain model the references below describe (the explicit objective's
# defaults add biases and a sqrt(n)-weighted penalty).
PLAIN = dict(use_bias=False, weighted_regularization=False)
import naive_metrics as NM
from fastals import FastALS, InputError, NotFittedError


def _ratings(seed=0, m=25, n=20):
    rng = np.random.default_rng(seed)
    R, mask = naive.random_ratings(rng, m, n, density=0.3)
    return R, mask


@pytest.fixture(scope="module")
def fitted():
    R, mask = _ratings()
    model = FastALS(factors=5, iterations=4, regularization=0.1, dtype=np.float64,
                    random_state=0, **PLAIN).fit(sp.csr_matrix(R))
    return model, R, mask


def test_not_fitted():
    with pytest.raises(NotFittedError):
        FastALS().recommend(0)


def test_recommend_matches_sort(fitted):
    model, R, mask = fitted
    S = model.user_factors @ model.item_factors.T
    for u in range(R.shape[0]):
        ids, scores = model.recommend(u, n=7)
        want = NM.topk_by_sort(list(S[u]), 7, np.flatnonzero(mask[u]))
        assert ids.tolist() == want
        np.testing.assert_allclose(scores, S[u, want], rtol=1e-12)
        ids, _ = model.recommend(u, n=7, filter_already_liked_items=False)
        assert ids.tolist() == NM.topk_by_sort(list(S[u]), 7)


def test_batch_equals_single_and_recommend_all(fitted):
    model, R, _ = fitted
    users = [3, 0, 7, 3]
    ids, scores = model.recommend(users, n=5)
    assert ids.shape == scores.shape == (4, 5)
    for row, u in enumerate(users):
        i1, s1 = model.recommend(u, n=5)
        assert ids[row].tolist() == i1.tolist()
        np.testing.assert_array_equal(scores[row], s1)
    all_ids, _ = model.recommend_all(n=5)
    assert all_ids.shape == (R.shape[0], 5)
    assert all_ids[3].tolist() == ids[0].tolist()


def test_ties_go_to_lower_index_and_threads_do_not_matter():
    R, _ = _ratings(1, m=40, n=30)
    model = FastALS(factors=3, iterations=2, random_state=0, **PLAIN).fit(sp.csr_matrix(R))
    model.item_factors = np.round(model.item_factors, 1)     # many exact ties
    model.item_factors[::3] = model.item_factors[1]
    S = model.user_factors @ model.item_factors.T
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = model.recommend(np.arange(40), n=12, filter_already_liked_items=False)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = model.recommend(np.arange(40), n=12, filter_already_liked_items=False)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a[0], b[0])
    for u in range(40):
        assert a[0][u].tolist() == NM.topk_by_sort(list(S[u].astype(np.float32)), 12)


def test_candidates_user_items_and_padding(fitted):
    model, R, mask = fitted
    S = model.user_factors @ model.item_factors.T
    cand = [19, 2, 5, 11, 0]
    ids, _ = model.recommend(4, n=3, items=cand, filter_already_liked_items=False)
    assert ids.tolist() == sorted(cand, key=lambda j: (-S[4, j], j))[:3]
    liked = sp.csr_matrix(([1.0, 1.0], ([0, 0], [ids[0], ids[1]])), shape=(1, R.shape[1]))
    ids2, _ = model.recommend(4, n=3, items=cand, user_items=liked)
    assert ids2.tolist() == sorted(set(cand) - set(ids[:2].tolist()),
                                   key=lambda j: (-S[4, j], j))[:3]
    # asking for more than available: single trims, batch pads with -1 / -inf
    ids, scores = model.recommend(4, n=50)
    assert ids.size == R.shape[1] - mask[4].sum()
    bids, bscores = model.recommend([4, 5], n=50)
    assert bids.shape == (2, R.shape[1])
    assert (bids[0, ids.size:] == -1).all() and np.isneginf(bscores[0, ids.size:]).all()
    with pytest.raises(InputError):
        model.recommend(4, n=0)
    with pytest.raises(InputError, match="rows"):
        model.recommend([1, 2], user_items=sp.csr_matrix((3, R.shape[1])))


def test_raw_string_ids_and_unknown():
    users = np.array(["ann", "bob", "cy", "ann", "bob", "dee", "cy", "dee"])
    items = np.array(["x", "y", "z", "w", "x", "y", "w", "z"])
    model = FastALS(factors=2, iterations=3, objective="implicit",
                    random_state=0).fit((users, items, np.ones(8)))
    ids, scores = model.recommend("ann", n=2)
    assert set(ids.tolist()) <= {"y", "z"}
    assert model.recommend(["ann", "cy"], n=2)[0].dtype.kind == "U"
    with pytest.raises(InputError, match="'zed'"):
        model.recommend("zed")
    with pytest.raises(InputError, match="'q'"):
        model.recommend("ann", items=["x", "q"])
    with pytest.raises(InputError, match="'nope'"):
        model.similar_items("nope")
    with pytest.raises(InputError, match="7"):
        model.predict("ann", 7)


def test_similar_items_and_users_cosine(fitted):
    model, _, _ = fitted
    for F, fn in ((model.item_factors, model.similar_items),
                  (model.user_factors, model.similar_users)):
        Nf = F / np.linalg.norm(F, axis=1, keepdims=True)
        C = Nf @ Nf.T
        ids, scores = fn(2, n=4)
        assert ids.tolist() == NM.topk_by_sort(list(C[2]), 4)
        assert ids[0] == 2 and scores[0] == pytest.approx(1.0)
        np.testing.assert_allclose(scores, C[2, ids], rtol=1e-10)
        bids, _ = fn([2, 3], n=4)
        assert bids[0].tolist() == ids.tolist()


def test_predict_with_biases_and_clipping():
    R, mask = _ratings(2)
    model = FastALS(factors=3, iterations=5, use_bias=True, regularization=0.05,
                    dtype=np.float64, random_state=0).fit(sp.csr_matrix(R))
    u, i = np.nonzero(mask)
    raw = (np.einsum("ij,ij->i", model.user_factors[u], model.item_factors[i])
           + model.user_biases[u] + model.item_biases[i] + model.global_mean)
    np.testing.assert_allclose(model.predict(u, i), np.clip(raw, 1, 5))
    assert isinstance(model.predict(0, 1), float)
    model.user_factors = model.user_factors * 10       # force out-of-range raw scores
    p = model.predict(np.repeat(np.arange(R.shape[0]), R.shape[1]),
                      np.tile(np.arange(R.shape[1]), R.shape[0]))
    assert p.min() >= 1 and p.max() <= 5
    unknown = model.predict([10 ** 6], [0], unknown="default")
    assert unknown[0] == pytest.approx(np.clip(model.global_mean + model.item_biases[0], 1, 5))
    # recommend ranks by predicted rating: biases included
    ids, scores = model.recommend(0, n=3, filter_already_liked_items=False)
    full = (model.user_factors[0] @ model.item_factors.T + model.item_biases
            + model.user_biases[0] + model.global_mean)
    assert ids.tolist() == NM.topk_by_sort(list(full), 3)


def _naive_fold_in(model, rows, objective, bias=False, wr=False, e=1.0):
    """Solve each row against the item factors with the naive references."""
    Y = model.item_factors.astype(np.float64)
    out = []
    for r in rows:
        mask = r != 0
        lam = model.regularization * (mask.sum() ** (e - 1) if wr else 1)
        if objective == "implicit":
            W, T = naive.cell_weights(r[None], mask[None], "implicit", alpha=model.alpha)
            out.append(naive.update_rows(W, T, Y, lam, weighted=wr)[0])
        elif bias:
            D = np.hstack([Y, np.ones((Y.shape[0], 1))])
            T = np.where(mask, r - model.global_mean - model.item_biases, 0)
            lam_u = lam * mask.sum() if wr else lam
            A = D[mask].T @ D[mask] + lam_u * np.eye(D.shape[1])
            out.append(np.linalg.solve(A, D.T @ T))
        else:
            out.append(naive.update_rows(mask[None].astype(float), r[None], Y, lam,
                                         weighted=wr)[0])
    return np.array(out)


@pytest.mark.parametrize("kw", [dict(objective="explicit"),
                                dict(objective="explicit", weighted_regularization=True),
                                dict(objective="explicit", use_bias=True),
                                dict(objective="explicit", use_bias=True,
                                     weighted_regularization=True,
                                     regularization_exponent=0.5),
                                dict(objective="implicit", alpha=2.0)])
def test_recalculate_user_solves_the_training_row_system(kw):
    R, mask = _ratings(3)
    kw = {**PLAIN, "regularization_exponent": 1.0, **kw}
    model = FastALS(factors=4, iterations=3, regularization=0.2, dtype=np.float64,
                    random_state=0, **kw).fit(sp.csr_matrix(R))
    rng = np.random.default_rng(0)
    new = np.where(rng.random((2, R.shape[1])) < 0.4, rng.integers(1, 6, (2, R.shape[1])), 0.0)
    want = _naive_fold_in(model, new, kw["objective"], kw.get("use_bias", False),
                          kw.get("weighted_regularization", False),
                          kw.get("regularization_exponent", 1.0))
    k = model.factors
    got = model.recalculate_user(sp.csr_matrix(new), return_bias=True)
    np.testing.assert_allclose(got[0], want[:, :k], rtol=1e-8, atol=1e-10)
    if kw.get("use_bias"):
        np.testing.assert_allclose(got[1], want[:, k], rtol=1e-8, atol=1e-10)
    # the other input forms give the same answer
    np.testing.assert_allclose(model.recalculate_user(new[0]), want[0, :k], rtol=1e-8, atol=1e-10)
    nz = np.flatnonzero(new[0])
    np.testing.assert_allclose(model.recalculate_user((nz, new[0, nz])), want[0, :k],
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.recalculate_user(dict(zip(nz, new[0, nz]))),
                               want[0, :k], rtol=1e-8, atol=1e-10)
    # an existing user's row gives one more exact user step: item step is then
    # reproduced by recalculate_item from the new users
    X = model.recalculate_user(sp.csr_matrix(R))
    assert X.shape == model.user_factors.shape
    with pytest.raises(InputError, match="999"):
        model.recalculate_user(([999], [1.0]))


def test_recalculate_item_mirrors_user():
    R, _ = _ratings(4)
    model = FastALS(factors=3, iterations=3, regularization=0.3, dtype=np.float64,
                    random_state=0, **PLAIN).fit(sp.csr_matrix(R))
    T = FastALS(factors=3, iterations=3, regularization=0.3, dtype=np.float64,
                random_state=0, **PLAIN).fit(sp.csr_matrix(R.T))
    # the transposed model's "user" step is this model's "item" step
    T.user_factors, T.item_factors = model.item_factors, model.user_factors
    col = R[:, 2]
    np.testing.assert_allclose(model.recalculate_item(col), T.recalculate_user(col), rtol=1e-10)


def test_partial_fit_users_and_items():
    users = np.array([10, 10, 20, 20, 30, 30, 30, 40])
    items = np.array([1, 2, 2, 3, 1, 3, 4, 4])
    vals = np.array([5, 3, 4, 2, 1, 5, 4, 3], float)
    model = FastALS(factors=2, iterations=3, regularization=0.1, dtype=np.float64,
                    random_state=0, **PLAIN).fit((users, items, vals))
    item_f = model.item_factors.copy()
    rows = sp.csr_matrix(np.array([[0, 0, 5, 1], [4, 0, 0, 2]], float))   # items 1..4
    want = model.recalculate_user(rows)
    model.partial_fit_users([20, 99], rows)
    assert model.user_ids.tolist() == [10, 20, 30, 40, 99]
    np.testing.assert_allclose(model.user_factors[[1, 4]], want)
    np.testing.assert_array_equal(model.item_factors, item_f)
    assert model.predict(99, 1) == pytest.approx(float(want[1] @ item_f[0]))
    # stored interactions replaced / appended: recommend filters them
    assert set(model.recommend(99, n=4)[0].tolist()) == {2, 3}
    assert set(model.recommend(20, n=4)[0].tolist()) == {1, 2}
    # items: new item 7 liked by user 10 only
    col = sp.csr_matrix(np.array([[3, 0, 0, 0, 0]], float))
    model.partial_fit_items([7], col)
    assert model.item_ids.tolist() == [1, 2, 3, 4, 7]
    assert 7 not in model.recommend(10, n=5)[0].tolist()
    assert 7 in model.recommend(30, n=5)[0].tolist()
    np.testing.assert_allclose(model.item_factors[4], model.recalculate_item(col.toarray()[0]))
    with pytest.raises(InputError, match="duplicates"):
        model.partial_fit_users([1, 1], sp.csr_matrix((2, 5)))
    with pytest.raises(InputError, match="rows"):
        model.partial_fit_users([1, 2], sp.csr_matrix((1, 5)))


def test_partial_fit_with_string_ids_and_identity_ids():
    model = FastALS(factors=2, iterations=2, random_state=0).fit(
        (["a", "b", "b"], ["x", "x", "y"], [1.0, 2.0, 3.0]))
    model.partial_fit_users(["zz"], np.array([[0.0, 4.0]]))
    assert model.user_ids.tolist() == ["a", "b", "zz"]
    assert model.recommend("zz", n=1, filter_already_liked_items=False)[0].size == 1
    m2 = FastALS(factors=2, iterations=2, random_state=0).fit(sp.csr_matrix(np.eye(3)))
    m2.partial_fit_users([3], np.array([[1.0, 0, 0]]))
    assert m2.user_ids.tolist() == [0, 1, 2, 3] and m2.user_factors.shape[0] == 4
    with pytest.raises(InputError):
        m2.partial_fit_users(["s"], np.array([[1.0, 0, 0]]))


@pytest.mark.parametrize("e", [0.0, 0.5, 1.0])
def test_regularization_exponent_training_step_is_exact(e):
    R, mask = _ratings(5)
    lam = 0.3
    model = FastALS(factors=3, iterations=4, regularization=lam, weighted_regularization=True,
                    regularization_exponent=e, dtype=np.float64, use_bias=False,
                    random_state=0).fit(sp.csr_matrix(R))
    U = model.user_factors
    for i in range(R.shape[1]):      # last half-step: items given users
        m = mask[:, i]
        A = U[m].T @ U[m] + lam * m.sum() ** e * np.eye(3)
        np.testing.assert_allclose(model.item_factors[i], np.linalg.solve(A, U[m].T @ R[m, i]),
                                   rtol=1e-8, atol=1e-10)
    hist = model.objective_history
    assert all(b <= a * (1 + 1e-9) for a, b in zip(hist, hist[1:]))
    with pytest.raises(InputError, match="regularization_exponent"):
        FastALS(objective="implicit", regularization_exponent=0.5).fit(sp.csr_matrix(R))
