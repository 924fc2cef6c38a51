"""The public behaviour of ``implicit.als.AlternatingLeastSquares`` (0.7), as a mixin.

Written from implicit's documentation (docstrings of ``fit``, ``recommend``,
``similar_items``, ``similar_users``, ``recalculate_user``/``_item``,
``partial_fit_users``/``_items``, ``explain``, ``save``/``load``) and its
observable behaviour, never from its code.  A test class sets
``model_class`` and inherits every test::

    class TestMine(RecommenderContract):
        model_class = MyAlternatingLeastSquares

``tests/test_compat_implicit.py`` runs it on
:class:`fastals.compat.implicit.AlternatingLeastSquares` (default test run,
implicit not needed); ``bench/contract_vs_implicit.py`` runs the very same
tests on implicit's own class, which shows the contract describes implicit.

Expectations come from naive numpy references: scores ``x_u . y_i``,
cosine similarities, and the exact row solve of implicit's objective
(confidence ``alpha r`` on observed entries, 1 elsewhere, preference 1 where
``r > 0``), via :mod:`naive`.  Tolerances: float32 factors, so scores and
solved factors agree to ``rtol=2e-3, atol=2e-4`` (a row solve in float32
of a system with condition number ~1e3).
"""

import inspect
import io
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import naive

RTOL, ATOL = 2e-3, 2e-4
N_USERS, N_ITEMS, K = 40, 30, 6
PARAMS = dict(factors=K, regularization=0.1, alpha=2.0, iterations=6,
              random_state=0)


def _interactions(seed=0):
    """Small users x items CSR of counts 1..5; every user and item has one."""
    rng = np.random.default_rng(seed)
    mask = rng.random((N_USERS, N_ITEMS)) < 0.2
    mask[np.arange(N_USERS), rng.integers(0, N_ITEMS, N_USERS)] = True
    mask[rng.integers(0, N_USERS, N_ITEMS), np.arange(N_ITEMS)] = True
    values = rng.integers(1, 6, (N_USERS, N_ITEMS)).astype(np.float32)
    return sp.csr_matrix(np.where(mask, values, 0), dtype=np.float32)


def _naive_rows(R, Y, lam, alpha):
    """Exact solve of implicit's objective for every row of the dense ``R``."""
    W, P = naive.cell_weights(R, R != 0, "implicit", alpha=alpha,
                              confidence="alpha_r")
    return naive.update_rows(W, P, Y.astype(np.float64), lam)


def _valid(scores):
    """Places that hold a real candidate (implicit pads with -FLT_MAX)."""
    return scores > -np.finfo(np.float32).max / 2


class RecommenderContract:
    """Tests that any implicit-compatible ALS class passes (set ``model_class``)."""

    model_class = None

    # ------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def user_items(cls):
        return _interactions()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, user_items):
        model = cls.model_class(**PARAMS)
        model.fit(user_items, show_progress=False)
        return model

    def make(self, **kw):
        return self.model_class(**{**PARAMS, **kw})

    # ------------------------------------------------------------ constructor
    def test_constructor_defaults(self):
        sig = inspect.signature(self.model_class)
        expect = dict(factors=100, regularization=0.01, alpha=1.0, use_native=True,
                      use_cg=True, iterations=15, calculate_training_loss=False,
                      num_threads=0, random_state=None)
        for name, value in expect.items():
            assert sig.parameters[name].default == value, name
        assert np.dtype(sig.parameters["dtype"].default) == np.float32
        model = self.model_class()
        assert model.user_factors is None and model.item_factors is None

    # ------------------------------------------------------------ fit
    def test_fit_factor_shapes(self, fitted):
        for F, n in ((fitted.user_factors, N_USERS), (fitted.item_factors, N_ITEMS)):
            assert isinstance(F, np.ndarray)
            assert F.shape == (n, K) and F.dtype == np.float32
            assert np.isfinite(F).all()

    def test_fit_same_seed_same_factors(self, user_items, fitted):
        again = self.make()
        again.fit(user_items, show_progress=False)
        np.testing.assert_array_equal(again.user_factors, fitted.user_factors)
        np.testing.assert_array_equal(again.item_factors, fitted.item_factors)

    def test_fit_converts_other_sparse_formats_with_a_warning(self, user_items):
        model = self.make(iterations=1)
        with pytest.warns(Warning):
            model.fit(user_items.tocoo(), show_progress=False)
        assert model.user_factors.shape == (N_USERS, K)

    def test_fit_callback(self, user_items):
        calls = []
        model = self.make(iterations=3)
        model.fit(user_items, show_progress=False,
                  callback=lambda *args: calls.append(args))
        assert [c[0] for c in calls] == [0, 1, 2]
        assert all(c[1] >= 0 and c[2] is None for c in calls)

    def test_fit_callback_gets_loss(self, user_items):
        losses = []
        model = self.make(iterations=4, calculate_training_loss=True, use_cg=False)
        model.fit(user_items, show_progress=False,
                  callback=lambda it, elapsed, loss: losses.append(loss))
        assert len(losses) == 4 and np.all(np.isfinite(losses))
        # exact ALS never increases its objective
        assert all(b <= a * (1 + 1e-5) for a, b in zip(losses, losses[1:]))
        # the loss is the regularized objective per unit of cell weight
        X = model.user_factors.astype(np.float64)
        Y = model.item_factors.astype(np.float64)
        R = user_items.toarray()
        W, P = naive.cell_weights(R, R != 0, "implicit", alpha=PARAMS["alpha"],
                                  confidence="alpha_r")
        lam = PARAMS["regularization"]
        objective = np.sum(W * (P - X @ Y.T) ** 2) + lam * (np.sum(X ** 2) + np.sum(Y ** 2))
        assert losses[-1] == pytest.approx(objective / W.sum(), rel=1e-4)

    def test_fit_continues_from_factors_already_set(self, user_items, fitted):
        ends = []
        for seed in (1, 2):
            model = self.make(iterations=1, random_state=seed)
            model.user_factors = fitted.user_factors.copy()
            model.item_factors = fitted.item_factors.copy()
            model.fit(user_items, show_progress=False)
            ends.append(model.item_factors)
        np.testing.assert_array_equal(ends[0], ends[1])

    # ------------------------------------------------------------ recommend
    def _naive_top(self, model, u, N, liked, pool=None, banned=()):
        scores = model.item_factors.astype(np.float64) @ model.user_factors[u]
        pool = np.arange(N_ITEMS) if pool is None else np.asarray(pool)
        keep = [i for i in pool if i not in set(liked) and i not in set(banned)]
        order = sorted(keep, key=lambda i: -scores[i])[:N]
        return np.array(order), scores[order]

    def test_recommend_one_user(self, fitted, user_items):
        u = 3
        ids, scores = fitted.recommend(u, user_items[u], N=5)
        assert ids.shape == (5,) and scores.shape == (5,)
        assert np.issubdtype(ids.dtype, np.integer)
        ref_ids, ref_scores = self._naive_top(fitted, u, 5, user_items[u].indices)
        np.testing.assert_allclose(scores, ref_scores, rtol=RTOL, atol=ATOL)
        assert set(ids) == set(ref_ids)
        assert not set(ids) & set(user_items[u].indices)
        assert np.all(np.diff(scores) <= 0)

    def test_recommend_batch_matches_one_by_one(self, fitted, user_items):
        users = np.array([5, 0, 17, 5])
        ids, scores = fitted.recommend(users, user_items[users], N=4)
        assert ids.shape == (4, 4) and scores.shape == (4, 4)
        for row, u in enumerate(users):
            one_ids, one_scores = fitted.recommend(u, user_items[u], N=4)
            np.testing.assert_array_equal(ids[row], one_ids)
            np.testing.assert_allclose(scores[row], one_scores, rtol=1e-5, atol=1e-6)

    def test_recommend_without_filtering_needs_no_user_items(self, fitted):
        ids, scores = fitted.recommend(2, None, N=N_ITEMS,
                                       filter_already_liked_items=False)
        ref_ids, ref_scores = self._naive_top(fitted, 2, N_ITEMS, [])
        np.testing.assert_allclose(scores, ref_scores, rtol=RTOL, atol=ATOL)
        assert sorted(ids) == list(range(N_ITEMS))

    def test_recommend_item_subset(self, fitted, user_items):
        u = 7
        liked = set(user_items[u].indices)
        pool = [i for i in range(N_ITEMS) if i not in liked][:6][::-1]
        ids, scores = fitted.recommend(u, user_items[u], N=10, items=pool)
        assert ids.shape == (6,)                      # N is cut to len(items)
        ref_ids, ref_scores = self._naive_top(fitted, u, 10, liked, pool)
        np.testing.assert_array_equal(np.sort(ids), np.sort(ref_ids))
        np.testing.assert_allclose(scores, ref_scores, rtol=RTOL, atol=ATOL)

    def test_recommend_item_subset_batch(self, fitted, user_items):
        users = np.array([1, 2])
        pool = [4, 9, 0, 22]
        ids, scores = fitted.recommend(users, user_items[users], N=3, items=pool)
        assert ids.shape == (2, 3)
        for row, u in enumerate(users):
            valid = _valid(scores[row])
            assert set(ids[row][valid]) <= set(pool) - set(user_items[u].indices)

    def test_recommend_filter_items(self, fitted, user_items):
        banned = [0, 1, 2, 3, 4, 5]
        users = np.arange(6)
        ids, scores = fitted.recommend(users, user_items[users], N=3,
                                       filter_items=banned)
        for row, u in enumerate(users):
            ref_ids, ref_scores = self._naive_top(fitted, u, 3,
                                                  user_items[u].indices, None, banned)
            np.testing.assert_allclose(scores[row], ref_scores, rtol=RTOL, atol=ATOL)
            assert not set(ids[row]) & set(banned)

    def test_recommend_pads_when_candidates_run_out(self, fitted, user_items):
        u = 0
        n_liked = user_items[u].nnz
        ids, scores = fitted.recommend(u, user_items[u], N=N_ITEMS)
        assert ids.shape == (N_ITEMS,)
        assert _valid(scores).sum() == N_ITEMS - n_liked
        assert not _valid(scores[N_ITEMS - n_liked:]).any()

    def test_recommend_recalculate_user(self, fitted, user_items):
        u = 11
        x = fitted.recalculate_user(u, user_items[u])
        ids, scores = fitted.recommend(u, user_items[u], N=5, recalculate_user=True)
        ref = fitted.item_factors.astype(np.float64) @ x
        np.testing.assert_allclose(scores, ref[ids], rtol=RTOL, atol=ATOL)
        others = np.setdiff1d(np.arange(N_ITEMS),
                              np.concatenate([ids, user_items[u].indices]))
        assert ref[others].max() <= scores.min() + ATOL

    def test_recommend_errors(self, fitted, user_items):
        with pytest.raises(ValueError):                       # not CSR
            fitted.recommend(0, user_items[0].tocoo())
        with pytest.raises(ValueError):
            fitted.recommend(0, user_items[0].toarray())
        with pytest.raises(ValueError):                       # one row per user
            fitted.recommend(0, user_items[:2])
        with pytest.raises(ValueError):
            fitted.recommend(np.arange(3), user_items[:2])
        with pytest.raises(ValueError):                       # items + filter_items
            fitted.recommend(0, user_items[0], items=[1, 2], filter_items=[3])
        with pytest.raises(IndexError):                       # unknown item
            fitted.recommend(0, user_items[0], items=[1, N_ITEMS])
        with pytest.raises(IndexError):                       # unknown user
            fitted.recommend(N_USERS, user_items[0])

    # ------------------------------------------------------------ fold-in
    def test_recalculate_user_solves_the_row_exactly(self, fitted, user_items):
        rows = np.array([4, 9])
        ref = _naive_rows(user_items[rows].toarray(), fitted.item_factors,
                          PARAMS["regularization"], PARAMS["alpha"])
        one = fitted.recalculate_user(4, user_items[4])
        both = fitted.recalculate_user(rows, user_items[rows])
        assert one.shape == (K,) and both.shape == (2, K)
        np.testing.assert_allclose(one, ref[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(both, ref, rtol=RTOL, atol=ATOL)

    def test_recalculate_item_solves_the_row_exactly(self, fitted, user_items):
        item_users = user_items.T.tocsr()
        ref = _naive_rows(item_users[[3]].toarray(), fitted.user_factors,
                          PARAMS["regularization"], PARAMS["alpha"])
        got = fitted.recalculate_item(3, item_users[3])
        assert got.shape == (K,)
        np.testing.assert_allclose(got, ref[0], rtol=RTOL, atol=ATOL)

    def test_recalculate_user_row_count_must_match(self, fitted, user_items):
        with pytest.raises(ValueError):
            fitted.recalculate_user([0, 1, 2], user_items[:2])

    def test_partial_fit_users(self, user_items):
        model = self.make()
        model.fit(user_items, show_progress=False)
        new_id = N_USERS + 2
        rows = sp.vstack([user_items[5], user_items[8]]).tocsr()
        expect = model.recalculate_user([3, new_id], rows)
        untouched = model.user_factors[0].copy()
        model.partial_fit_users([3, new_id], rows)
        assert model.user_factors.shape == (N_USERS + 3, K)
        np.testing.assert_allclose(model.user_factors[[3, new_id]], expect,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(model.user_factors[N_USERS:new_id], 0)
        np.testing.assert_array_equal(model.user_factors[0], untouched)
        ids, _ = model.recommend(new_id, user_items[8], N=3)
        assert not set(ids) & set(user_items[8].indices)

    def test_partial_fit_items(self, user_items):
        model = self.make()
        model.fit(user_items, show_progress=False)
        item_users = user_items.T.tocsr()
        expect = model.recalculate_item([N_ITEMS], item_users[[2]])
        model.partial_fit_items([N_ITEMS], item_users[[2]])
        assert model.item_factors.shape == (N_ITEMS + 1, K)
        np.testing.assert_allclose(model.item_factors[N_ITEMS], expect[0],
                                   rtol=1e-5, atol=1e-6)
        ids, scores = model.similar_items(N_ITEMS, N=2)
        assert ids[0] in (N_ITEMS, 2)   # the new item and its twin come first
        np.testing.assert_allclose(scores[:2], 1.0, rtol=1e-4)

    def test_partial_fit_row_count_must_match(self, fitted, user_items):
        with pytest.raises(ValueError):
            fitted.partial_fit_users([1, 2], user_items[:1])

    # ------------------------------------------------------------ similarity
    @staticmethod
    def _cosines(F, q):
        F = F.astype(np.float64)
        norms = np.linalg.norm(F, axis=1)
        return F @ F[q] / (norms * norms[q])

    def test_similar_items(self, fitted):
        ids, scores = fitted.similar_items(6, N=5)
        assert ids.shape == (5,) and ids[0] == 6
        ref = self._cosines(fitted.item_factors, 6)
        np.testing.assert_allclose(scores, np.sort(ref)[::-1][:5], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(scores, ref[ids], rtol=RTOL, atol=ATOL)

    def test_similar_items_batch_subset_filter(self, fitted):
        queries = np.array([6, 1, 6])
        ids, scores = fitted.similar_items(queries, N=4)
        assert ids.shape == (3, 4) and scores.shape == (3, 4)
        for row, q in enumerate(queries):
            one_ids, one_scores = fitted.similar_items(q, N=4)
            np.testing.assert_array_equal(ids[row], one_ids)
        pool = [10, 3, 6, 27]
        ids, scores = fitted.similar_items(6, N=3, items=pool)
        assert set(ids) <= set(pool) and ids[0] == 6
        ids, scores = fitted.similar_items(6, N=3, filter_items=[6])
        assert 6 not in ids
        with pytest.raises(IndexError):
            fitted.similar_items(6, N=3, items=[0, N_ITEMS])
        with pytest.raises(IndexError):
            fitted.similar_items(N_ITEMS)

    def test_similar_items_recalculated(self, fitted, user_items):
        item_users = user_items.T.tocsr()
        x = fitted.recalculate_item(5, item_users[5])
        ids, scores = fitted.similar_items(5, N=3, recalculate_item=True,
                                           item_users=item_users[5])
        F = fitted.item_factors.astype(np.float64)
        ref = F @ x / (np.linalg.norm(F, axis=1) * np.linalg.norm(x))
        np.testing.assert_allclose(scores, np.sort(ref)[::-1][:3], rtol=RTOL, atol=ATOL)

    def test_similar_users(self, fitted):
        ids, scores = fitted.similar_users(9, N=4)
        assert ids.shape == (4,) and ids[0] == 9
        ref = self._cosines(fitted.user_factors, 9)
        np.testing.assert_allclose(scores, ref[ids], rtol=RTOL, atol=ATOL)
        ids, scores = fitted.similar_users(np.array([9, 2]), N=4)
        assert ids.shape == (2, 4) and ids[1, 0] == 2
        ids, _ = fitted.similar_users(9, N=2, users=[30, 9, 4])
        assert set(ids) <= {30, 9, 4} and ids[0] == 9

    # ------------------------------------------------------------ explain
    def test_explain(self, fitted, user_items):
        u, item = 12, 4
        total, top, weights = fitted.explain(u, user_items, item, N=3)
        x = fitted.recalculate_user(u, user_items[u])
        np.testing.assert_allclose(total, x @ fitted.item_factors[item],
                                   rtol=RTOL, atol=ATOL)
        assert len(top) == min(3, user_items[u].nnz)
        scores = [s for _, s in top]
        assert scores == sorted(scores, reverse=True)
        assert {i for i, _ in top} <= set(user_items[u].indices)
        total_all, top_all, _ = fitted.explain(u, user_items, item, N=N_ITEMS)
        np.testing.assert_allclose(sum(s for _, s in top_all), total_all, rtol=1e-6)
        again = fitted.explain(u, user_items, item, user_weights=weights, N=3)
        np.testing.assert_allclose(again[0], total, rtol=1e-9)
        assert [i for i, _ in again[1]] == [i for i, _ in top]

    # ------------------------------------------------------------ persist
    def _same(self, a, b):
        np.testing.assert_array_equal(a.user_factors, b.user_factors)
        np.testing.assert_array_equal(a.item_factors, b.item_factors)
        for name in ("factors", "regularization", "alpha", "iterations", "use_cg"):
            assert getattr(a, name) == getattr(b, name), name
        assert np.dtype(a.dtype) == np.dtype(b.dtype)

    def test_save_load_path(self, fitted, user_items, tmp_path):
        fitted.save(str(tmp_path / "model"))
        assert (tmp_path / "model.npz").is_file()     # numpy.savez adds .npz
        loaded = self.model_class.load(str(tmp_path / "model"))
        self._same(fitted, loaded)
        np.testing.assert_array_equal(loaded.recommend(1, user_items[1])[0],
                                      fitted.recommend(1, user_items[1])[0])

    def test_save_load_file_object(self, fitted):
        buf = io.BytesIO()
        fitted.save(buf)
        buf.seek(0)
        self._same(fitted, self.model_class.load(buf))

    def test_load_reads_implicit_npz_layout(self, fitted, tmp_path):
        # The layout implicit 0.7 writes: numpy.savez of these scalar and
        # array entries (dtype as its name).
        np.savez(tmp_path / "m.npz", user_factors=fitted.user_factors,
                 item_factors=fitted.item_factors, regularization=0.1, factors=K,
                 num_threads=0, iterations=6, use_native=True, use_cg=True,
                 cg_steps=3, calculate_training_loss=False, dtype="float32",
                 random_state=0, alpha=2.0)
        loaded = self.model_class.load(str(tmp_path / "m.npz"))
        self._same(fitted, loaded)
        assert loaded.random_state == 0 and loaded.cg_steps == 3

    def test_pickle(self, fitted, user_items):
        again = pickle.loads(pickle.dumps(fitted))
        self._same(fitted, again)
        users = np.arange(5)
        np.testing.assert_array_equal(again.recommend(users, user_items[users])[0],
                                      fitted.recommend(users, user_items[users])[0])

    def test_float64(self, user_items):
        model = self.make(dtype=np.float64, iterations=2)
        model.fit(user_items, show_progress=False)
        assert model.user_factors.dtype == np.float64
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids, scores = model.recommend(0, user_items[0], N=3)
        assert ids.shape == (3,)
