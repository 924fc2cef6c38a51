import numpy as np
import pytest
import scipy.sparse as sp

import naive_metrics as N
from fastals import FastALS, InputError
from fastals import evaluation as E


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(3)
    m, n = 30, 25
    R = (rng.random((m, n)) < 0.3) * rng.integers(1, 6, (m, n))
    R[np.arange(m), rng.integers(0, n, m)] = 3
    return sp.csr_matrix(R.astype(float))


def test_rmse_mae_match_naive():
    rng = np.random.default_rng(0)
    t, p = rng.random(50) * 5, rng.random(50) * 5
    assert E.rmse(t, p) == pytest.approx(N.rmse(t, p))
    assert E.mae(t, p) == pytest.approx(N.mae(t, p))
    with pytest.raises(InputError):
        E.rmse([1, 2], [1])


@pytest.mark.parametrize("seed", range(5))
def test_metrics_from_recommendations_match_naive(seed):
    rng = np.random.default_rng(seed)
    m, n, k = 12, 20, 5
    test = sp.random(m, n, density=0.2, random_state=seed, format="csr")
    rec = np.array([rng.permutation(n)[:k] for _ in range(m)])
    rec[0, -2:] = -1                      # padding never counts
    got = E.metrics_from_recommendations(rec, test)
    rows = [set(test[u].indices) for u in range(m)]
    users = [u for u in range(m) if rows[u]]
    lists = [[i for i in rec[u] if i >= 0] for u in range(m)]
    assert got["users"] == len(users)
    assert got["precision"] == pytest.approx(np.mean([N.precision(lists[u], rows[u], k) for u in users]))
    assert got["recall"] == pytest.approx(np.mean([N.recall(lists[u], rows[u], k) for u in users]))
    assert got["map"] == pytest.approx(np.mean([N.average_precision(lists[u], rows[u], k) for u in users]))
    assert got["ndcg"] == pytest.approx(np.mean([N.ndcg(lists[u], rows[u], k) for u in users]))


def test_perfect_and_empty_rankings():
    test = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]], float))
    perfect = np.array([[0, 1, 2], [3, 0, 1]])
    got = E.metrics_from_recommendations(perfect, test)
    assert got["map"] == pytest.approx(1.0) and got["ndcg"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(1.0)
    assert got["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    none = np.array([[2, 3, -1], [0, 1, 2]])
    got = E.metrics_from_recommendations(none, test)
    assert got["precision"] == got["map"] == got["ndcg"] == 0.0


@pytest.mark.parametrize("objective,K", [("implicit", 5), ("explicit", 3), ("implicit", 40)])
def test_ranking_metrics_at_k_match_naive(tiny, objective, K):
    rng = np.random.default_rng(1)
    mask = rng.random(tiny.nnz) < 0.3
    coo = tiny.tocoo()
    train = sp.csr_matrix((coo.data[~mask], (coo.row[~mask], coo.col[~mask])), shape=tiny.shape)
    test = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=tiny.shape)
    test = test + sp.csr_matrix(([1.0], ([0], [train[0].indices[0]])), shape=tiny.shape)  # overlap
    model = FastALS(factors=4, iterations=3, objective=objective, dtype=np.float64,
                    random_state=0, use_bias=False).fit(train)
    got = E.ranking_metrics_at_k(model, train, test, K=K)
    S = model.user_factors @ model.item_factors.T
    tr_rows = [list(train[u].indices) for u in range(tiny.shape[0])]
    te_rows = [list(test[u].indices) for u in range(tiny.shape[0])]
    want = N.ranking(S, tr_rows, te_rows, K)
    for key in ("precision", "recall", "map", "ndcg", "auc"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_auc_of_constant_scores_is_one_half():
    model = FastALS(factors=2, iterations=1, objective="implicit", random_state=0)
    X = sp.csr_matrix(np.eye(4))
    model.fit(X)
    model.user_factors[:] = 0
    test = sp.csr_matrix(np.roll(np.eye(4), 1, axis=1))
    assert E.AUC(model, X, test) == pytest.approx(0.5)


def test_random_split_partitions():
    tr, te = E.random_split(101, test_size=0.2, random_state=0)
    assert te.size == 20 and tr.size == 81
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(101))
    tr2, te2 = E.random_split(101, test_size=0.2, random_state=0)
    assert np.array_equal(te, te2)
    with pytest.raises(InputError):
        E.random_split(10, test_size=1.5)


@pytest.mark.parametrize("k", [1, 3])
def test_leave_k_out_matches_contract(k):
    rng = np.random.default_rng(k)
    users = rng.choice(np.array(["a", "b", "c", "d", "e"]), 60)
    users[:1] = "solo"
    tr, te = E.leave_k_out_split(users, k=k, random_state=2)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(60))
    assert N.leave_k_out_ok(users, te, k)
    assert "solo" not in set(users[te])


def test_temporal_split_matches_naive():
    rng = np.random.default_rng(5)
    users = rng.integers(0, 6, 80)
    ts = rng.integers(0, 10, 80)       # many equal timestamps
    for k in (1, 2, 4):
        tr, te = E.temporal_split(users, ts, k=k)
        assert te.tolist() == N.temporal_expected(list(users), list(ts), k)
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(80))


def test_kfold_tests_every_rating_once():
    folds = E.kfold_split(23, n_splits=4, random_state=0)
    tested = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tested), np.arange(23))
    for tr, te in folds:
        assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == 23
    with pytest.raises(InputError):
        E.kfold_split(5, n_splits=1)


def _triplets(seed=0, m=40, n=30, nnz=500):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, m, nnz)
    i = rng.integers(0, n, nnz)
    r = np.clip(np.round((u % 5) / 2 + (i % 3) + rng.normal(0, 0.5, nnz)), 1, 5)
    return u, i, r


def test_evaluate_ratings_and_unknown_ids():
    u, i, r = _triplets()
    model = FastALS(factors=3, iterations=4, use_bias=True, random_state=0).fit((u, i, r))
    got = E.evaluate_ratings(model, u, i, r)
    assert got["rmse"] == pytest.approx(N.rmse(r, model.predict(u, i)))
    assert got["n_unknown"] == 0
    got = E.evaluate_ratings(model, np.array([999, u[0]]), np.array([i[0], 999]), [3.0, 4.0])
    assert got["n_unknown"] == 2
    with pytest.raises(InputError, match="999"):
        E.evaluate_ratings(model, [999], [i[0]], [3.0], unknown="raise")


def test_cross_validate_and_search():
    data = _triplets(1)
    base = FastALS(factors=2, iterations=3, use_bias=True, random_state=0)
    cv = E.cross_validate(base, data, n_splits=3, metrics=("rmse", "ndcg"), random_state=0)
    assert len(cv["rmse"]) == len(cv["ndcg"]) == 3
    assert all(np.isfinite(cv["rmse"]))
    assert base.factors == 2                     # the template is not modified
    tr, va = E.random_split(len(data[0]), 0.2, random_state=0)
    train, valid = E.subset(data, tr), E.subset(data, va)
    best, results = E.grid_search(base, {"regularization": [0.01, 1.0, 100.0],
                                         "factors": [2, 3]}, train, valid)
    assert len(results) == 6
    scores = {tuple(sorted(p.items())): s for p, s in results}
    assert scores[tuple(sorted(best.items()))] == min(scores.values())
    best2, results2 = E.random_search(base, {"regularization": [0.1, 10.0],
                                             "factors": lambda rng: int(rng.integers(1, 4))},
                                      train, valid, n_iter=3, metric="ndcg", random_state=0)
    assert len(results2) == 3
    assert max(s for _, s in results2) == dict((tuple(sorted(p.items())), s)
                                               for p, s in results2)[tuple(sorted(best2.items()))]
