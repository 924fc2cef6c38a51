"""Evaluation: rating errors, ranking metrics, splits, cross-validation, search.

Everything is vectorized with numpy (per-user work is grouped by sorting, not
looped in Python); top-k scoring and AUC run in the Numba kernels of
:mod:`fastals.kernels.topk`.

Ratings data are passed as ``(users, items, values)`` triplets of 1-D arrays
with raw ids (extra arrays, e.g. timestamps, may follow and are carried
through by :func:`subset`).  Splits return index arrays ``(train_idx,
test_idx)`` into those arrays.

Ranking metrics (binary relevance; ``recommended`` lists exclude each
user's training items; averages over the users with at least one test item):

* ``precision@k`` = hits in the top k / k
* ``recall@k`` = hits in the top k / number of test items
* ``AP@k`` = sum over ranks i <= k of precision@i * rel_i, divided by
  ``min(k, number of test items)``; ``MAP@k`` is its mean
* ``NDCG@k`` = sum_i rel_i / log2(i + 1), divided by the same sum for the
  ideal ranking (``min(k, number of test items)`` hits first)
* ``AUC`` = probability that a test item scores above an item in neither
  the training nor the test row of the user (ties count one half), over all
  items, not only the top k
"""

import itertools
import time

import numpy as np
import scipy.sparse as sp

from .kernels import topk as _topk
from .exceptions import InputError

__all__ = [
    "rmse", "mae", "precision_at_k", "recall_at_k",
    "mean_average_precision_at_k", "ndcg_at_k", "AUC", "ranking_metrics_at_k",
    "metrics_from_recommendations", "evaluate_ratings", "evaluate_ranking",
    "random_split", "leave_k_out_split", "temporal_split", "kfold_split",
    "subset", "user_items_matrix", "cross_validate", "grid_search",
    "random_search",
]

RANKING_METRICS = ("precision", "recall", "map", "ndcg", "auc")
LOWER_IS_BETTER = ("rmse", "mae")


# --------------------------------------------------------------- rating errors
def rmse(y_true, y_pred):
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true, y_pred):
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def _pair(y_true, y_pred):
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.size != p.size:
        raise InputError(f"y_true has {t.size} values, y_pred {p.size}")
    if t.size == 0:
        raise InputError("no values to compare")
    return t, p


def evaluate_ratings(model, users, items, ratings, unknown="default"):
    """RMSE and MAE of ``model.predict`` on raw-id triplets.

    ``unknown="default"`` predicts unknown users / items from the known
    parts (global mean and biases), like Surprise; ``"raise"`` refuses them.

    Returns
    -------
    dict with ``rmse``, ``mae``, ``n`` (ratings) and ``n_unknown`` (ratings
    with an id unseen in training).
    """
    users = np.asarray(users)
    items = np.asarray(items)
    pred = model.predict(users, items, unknown=unknown)
    ku = model._index_of("user", users, "ignore") >= 0
    ki = model._index_of("item", items, "ignore") >= 0
    return {"rmse": rmse(ratings, pred), "mae": mae(ratings, pred),
            "n": int(np.size(ratings)), "n_unknown": int(np.sum(~(ku & ki)))}


# --------------------------------------------------------------- ranking
def metrics_from_recommendations(recommended, test_user_items, K=None):
    """Ranking metrics of given top-k lists.

    Parameters
    ----------
    recommended : int array ``(n_users, k)``
        Item numbers, best first, ``-1`` for padding; row ``u`` belongs to
        row ``u`` of ``test_user_items``.
    test_user_items : sparse ``(n_users, n_items)``
        Relevant (held-out) items; any non-zero counts as relevant.
    K : int, optional
        Cut-off (default: the number of columns of ``recommended``).

    Returns
    -------
    dict of means over the users with at least one test item:
    ``precision``, ``recall``, ``map``, ``ndcg``, plus ``users`` (how many).
    """
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise InputError("recommended must be a 2-D array")
    K = rec.shape[1] if K is None else int(K)
    if K < 1:
        raise InputError(f"K must be a positive integer, got {K}")
    rec = rec[:, :K]
    test = _binary_csr(test_user_items)
    if test.shape[0] != rec.shape[0]:
        raise InputError(f"recommended has {rec.shape[0]} rows, test_user_items "
                         f"{test.shape[0]}")
    hits = _hits(rec, test)
    n_rel = np.diff(test.indptr)
    return _summarize(hits, n_rel, K)


def _binary_csr(X):
    if not sp.issparse(X):
        raise InputError("expected a scipy.sparse users x items matrix")
    csr = sp.csr_matrix(X, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    # A stored zero means "no interaction": drop it before marking the rest.
    csr.eliminate_zeros()
    csr.data[:] = 1.0
    csr.sort_indices()
    return csr


def _hits(rec, test):
    """Boolean ``(n_users, k)``: whether each recommended item is in the test row."""
    n_items = max(test.shape[1], 1)
    rows = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr))
    test_keys = rows * n_items + test.indices      # sorted (canonical CSR)
    keys = np.arange(rec.shape[0], dtype=np.int64)[:, None] * n_items + rec
    pos = np.searchsorted(test_keys, keys)
    pos = np.minimum(pos, max(test_keys.size - 1, 0))
    found = test_keys[pos] == keys if test_keys.size else np.zeros(keys.shape, bool)
    return found & (rec >= 0)


def _summarize(hits, n_rel, K):
    users = n_rel > 0
    h = hits[users].astype(np.float64)
    if h.shape[1] < K:
        h = np.hstack([h, np.zeros((h.shape[0], K - h.shape[1]))])
    nr = n_rel[users].astype(np.float64)
    if h.shape[0] == 0:
        return {"precision": float("nan"), "recall": float("nan"),
                "map": float("nan"), "ndcg": float("nan"), "users": 0}
    n_hits = h.sum(1)
    ranks = np.arange(1, K + 1, dtype=np.float64)
    ap = (np.cumsum(h, 1) / ranks * h).sum(1) / np.minimum(K, nr)
    disc = 1.0 / np.log2(ranks + 1.0)
    ideal = np.cumsum(disc)[np.minimum(K, nr).astype(np.int64) - 1]
    return {"precision": float(np.mean(n_hits / K)),
            "recall": float(np.mean(n_hits / nr)),
            "map": float(np.mean(ap)),
            "ndcg": float(np.mean((h * disc).sum(1) / ideal)),
            "users": int(h.shape[0])}


def ranking_metrics_at_k(model, train_user_items, test_user_items, K=10,
                         auc=True):
    """precision@K, recall@K, MAP@K, NDCG@K and AUC of a fitted model.

    As in the ``implicit`` library: both matrices are users x items in the
    model's row / column order (``user_ids`` / ``item_ids``); each user's
    training items are never recommended, and test items that are also in
    the user's training row are not counted as relevant.  Users without a
    test item are skipped.

    Returns
    -------
    dict with ``precision``, ``recall``, ``map``, ``ndcg``, ``auc`` (NaN
    when ``auc=False``) and ``users`` (users evaluated).
    """
    K = int(K)
    if K < 1:
        raise InputError(f"K must be a positive integer, got {K}")
    model._require_fitted()
    n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
    train = _binary_csr(train_user_items)
    test = _binary_csr(test_user_items)
    for name, X in (("train_user_items", train), ("test_user_items", test)):
        if X.shape != (n_users, n_items):
            raise InputError(f"{name} has shape {X.shape}; the model has "
                             f"{n_users} users x {n_items} items")
    test = test - test.multiply(train)
    test.eliminate_zeros()
    test.sort_indices()
    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    P, Q = model._scoring_factors()
    tr = train[users]
    te = test[users]
    tr_ptr = tr.indptr.astype(np.int64)
    tr_idx = tr.indices.astype(np.int32)
    k_eff = min(K, n_items)
    rec, _ = _topk.topk(P, users, Q, k_eff, tr_ptr, tr_idx)
    out = _summarize(_hits(rec, te), np.diff(te.indptr), K)
    out["auc"] = float("nan")
    if auc and users.size:
        per_user = _topk.auc(np.ascontiguousarray(P[users]), Q, tr_ptr, tr_idx,
                             te.indptr.astype(np.int64), te.indices.astype(np.int32))
        out["auc"] = float(np.nanmean(per_user)) if np.isfinite(per_user).any() \
            else float("nan")
    return out


def precision_at_k(model, train_user_items, test_user_items, K=10):
    """Mean precision@K (see :func:`ranking_metrics_at_k`)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K,
                                auc=False)["precision"]


def recall_at_k(model, train_user_items, test_user_items, K=10):
    """Mean recall@K (see :func:`ranking_metrics_at_k`)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K,
                                auc=False)["recall"]


def mean_average_precision_at_k(model, train_user_items, test_user_items, K=10):
    """MAP@K (see :func:`ranking_metrics_at_k`)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K,
                                auc=False)["map"]


def ndcg_at_k(model, train_user_items, test_user_items, K=10):
    """Mean NDCG@K (see :func:`ranking_metrics_at_k`)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K,
                                auc=False)["ndcg"]


def AUC(model, train_user_items, test_user_items):
    """Mean per-user ROC AUC over all items (see :func:`ranking_metrics_at_k`)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, 1)["auc"]


def user_items_matrix(model, users, items, values=None):
    """Users x items CSR in the model's id order from raw-id pairs.

    Pairs with an id the model does not know are dropped.  Values default
    to 1.
    """
    u = model._index_of("user", np.asarray(users), "ignore").ravel()
    i = model._index_of("item", np.asarray(items), "ignore").ravel()
    v = np.ones(u.size) if values is None else np.asarray(values, np.float64).ravel()
    keep = (u >= 0) & (i >= 0)
    shape = (model.user_factors.shape[0], model.item_factors.shape[0])
    X = sp.csr_matrix((v[keep], (u[keep], i[keep])), shape=shape)
    X.sum_duplicates()
    X.sort_indices()
    return X


def evaluate_ranking(model, train, test, K=10, auc=True):
    """:func:`ranking_metrics_at_k` on raw-id data.

    ``train`` / ``test`` are ``(users, items[, values ...])`` triplets; pairs
    with ids unknown to the model are ignored.
    """
    tr = user_items_matrix(model, train[0], train[1])
    te = user_items_matrix(model, test[0], test[1])
    return ranking_metrics_at_k(model, tr, te, K, auc=auc)


# --------------------------------------------------------------- splits
def _rng(random_state):
    return np.random.default_rng(random_state)


def random_split(n_ratings, test_size=0.2, random_state=None):
    """Hold out a random ``test_size`` fraction of the ratings.

    Returns
    -------
    train_idx, test_idx : sorted int64 index arrays
    """
    n = _count(n_ratings)
    if not 0 < test_size < 1:
        raise InputError(f"test_size must be in (0, 1), got {test_size!r}")
    perm = _rng(random_state).permutation(n)
    n_test = int(round(test_size * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _count(n):
    if not np.isscalar(n):
        n = len(n)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InputError(f"need a positive number of ratings, got {n!r}")
    return int(n)


def _user_codes(users):
    """Dense codes ``0..n_users-1`` of a non-empty 1-D array of user ids."""
    users = np.asarray(users)
    if users.ndim != 1 or users.size == 0:
        raise InputError("users must be a non-empty 1-D array")
    return np.unique(users, return_inverse=True)[1].ravel()


def _per_user_tail(users, sort_key, k):
    """Mask of the last ``min(k, n_u - 1)`` entries of each user by ``sort_key``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    codes = _user_codes(users)
    n = codes.size
    order = np.lexsort((np.arange(n), sort_key, codes))
    counts = np.bincount(codes)
    ends = np.cumsum(counts)
    from_end = np.empty(n, np.int64)
    from_end[order] = ends[codes[order]] - 1 - np.arange(n)
    hold = np.minimum(k, counts - 1)
    return from_end < hold[codes]


def leave_k_out_split(users, k=1, random_state=None):
    """Per user, hold out ``k`` random ratings (LensKit's ``partition_users``).

    A user keeps at least one training rating: users with ``n <= k`` ratings
    hold out ``n - 1``.

    Returns
    -------
    train_idx, test_idx : sorted int64 index arrays
    """
    users = np.asarray(users)
    key = _rng(random_state).random(users.size)
    test = _per_user_tail(users, key, k)
    return np.flatnonzero(~test), np.flatnonzero(test)


def user_fraction_split(users, test_size=0.2, random_state=None):
    """Per user, hold out a random ``test_size`` fraction of the ratings.

    Each user holds out ``round(test_size * n_u)`` ratings, but always keeps
    at least one for training (a user with one rating holds out none).

    Returns
    -------
    train_idx, test_idx : sorted int64 index arrays
    """
    if not 0 < test_size < 1:
        raise InputError(f"test_size must be in (0, 1), got {test_size!r}")
    codes = _user_codes(users)
    n = codes.size
    key = _rng(random_state).random(n)
    order = np.lexsort((key, codes))
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - starts[codes[order]]
    hold = np.minimum(np.rint(test_size * counts).astype(np.int64), counts - 1)
    test = rank < hold[codes]
    return np.flatnonzero(~test), np.flatnonzero(test)


def temporal_split(users, timestamps, k=1):
    """Per user, hold out the ``k`` latest ratings by timestamp.

    Equal timestamps are ordered by position (later in the arrays = later).
    A user keeps at least one training rating.

    Returns
    -------
    train_idx, test_idx : sorted int64 index arrays
    """
    users = np.asarray(users)
    ts = np.asarray(timestamps)
    if ts.shape != users.shape:
        raise InputError(f"users and timestamps differ in shape: {users.shape}, "
                         f"{ts.shape}")
    test = _per_user_tail(users, ts, k)
    return np.flatnonzero(~test), np.flatnonzero(test)


def kfold_split(n_ratings, n_splits=5, random_state=None):
    """K-fold partition of the ratings (each rating is tested exactly once).

    Returns
    -------
    list of ``(train_idx, test_idx)`` pairs of sorted int64 index arrays
    """
    n = _count(n_ratings)
    if isinstance(n_splits, bool) or int(n_splits) != n_splits or not 2 <= n_splits <= n:
        raise InputError(f"n_splits must be an integer in [2, {n}], got {n_splits!r}")
    fold = np.empty(n, np.int64)
    fold[_rng(random_state).permutation(n)] = np.arange(n) % n_splits
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f))
            for f in range(int(n_splits))]


def subset(data, idx):
    """``tuple(a[idx] for a in data)``: select ratings of a triplet (or more)."""
    return tuple(np.asarray(a)[idx] for a in data)


# --------------------------------------------------------------- model selection
def _score(model, train, test, metric, K):
    if metric in LOWER_IS_BETTER:
        return evaluate_ratings(model, test[0], test[1], test[2])[metric]
    if metric in RANKING_METRICS:
        return evaluate_ranking(model, train, test, K, auc=metric == "auc")[metric]
    raise InputError(f"metric must be one of {LOWER_IS_BETTER + RANKING_METRICS}, "
                     f"got {metric!r}")


def cross_validate(model, data, n_splits=5, metrics=("rmse", "mae"), K=10,
                   random_state=None):
    """K-fold cross-validation of a (cloned) model on raw-id ratings.

    Parameters
    ----------
    model : FastALS
        Its hyperparameters are used; it is not modified.
    data : tuple ``(users, items, values)``
    metrics : names among ``rmse, mae, precision, recall, map, ndcg, auc``

    Returns
    -------
    dict: metric name -> list of per-fold values, plus ``fit_time``.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    out = {m: [] for m in metrics}
    out["fit_time"] = []
    for tr_idx, te_idx in kfold_split(len(data[0]), n_splits, random_state):
        train, test = subset(data, tr_idx), subset(data, te_idx)
        est = _clone(model)
        t0 = time.perf_counter()
        est.fit(train[:3])
        out["fit_time"].append(time.perf_counter() - t0)
        for m in metrics:
            out[m].append(_score(est, train, test, m, K))
    return out


def _clone(model, **params):
    est = type(model)(**model.get_params())
    est.set_params(**params)
    return est


def grid_search(model, param_grid, train, validation, metric="rmse", K=10):
    """Fit one model per combination of ``param_grid`` and score it on ``validation``.

    Parameters
    ----------
    model : FastALS, the base hyperparameters (not modified)
    param_grid : dict name -> list of values (e.g. ``factors``,
        ``regularization``, ``alpha``), or a list of such dicts (their
        grids are tried one after the other, as in scikit-learn)
    train, validation : raw-id ``(users, items, values)`` triplets
    metric : ``rmse``/``mae`` (minimized) or a ranking metric (maximized)

    Returns
    -------
    best_params : dict
    results : list of ``(params, score)`` in the order tried
    """
    grids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    combos = []
    for grid in grids:
        names = list(grid)
        combos += [dict(zip(names, vals))
                   for vals in itertools.product(*(list(grid[n]) for n in names))]
    return _search(model, combos, train, validation, metric, K)


def random_search(model, param_distributions, train, validation, n_iter=10,
                  metric="rmse", K=10, random_state=None):
    """Like :func:`grid_search` on ``n_iter`` random draws.

    Each value of ``param_distributions`` is a list (drawn uniformly), an
    object with ``rvs(random_state=...)`` (scipy.stats), or a callable
    ``f(rng)``.
    """
    rng = _rng(random_state)
    combos = []
    for _ in range(int(n_iter)):
        p = {}
        for name, dist in param_distributions.items():
            if hasattr(dist, "rvs"):
                v = dist.rvs(random_state=rng)
            elif callable(dist):
                v = dist(rng)
            else:
                seq = list(dist)
                v = seq[int(rng.integers(len(seq)))]
            p[name] = v.item() if isinstance(v, np.generic) else v
        combos.append(p)
    return _search(model, combos, train, validation, metric, K)


def _search(model, combos, train, validation, metric, K):
    if not combos:
        raise InputError("nothing to search: empty parameter grid")
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    results = []
    for params in combos:
        est = _clone(model, **params)
        est.fit(tuple(train[:3]))
        results.append((params, _score(est, train, validation, metric, K)))
    finite = [(sign * s, i) for i, (_, s) in enumerate(results) if np.isfinite(s)]
    if not finite:
        raise InputError("every candidate scored NaN")
    best = min(finite)[1]
    return dict(results[best][0]), results
