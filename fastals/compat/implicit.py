"""``implicit.als.AlternatingLeastSquares`` (implicit 0.7) on fastals' kernels.

Code written for implicit runs unchanged after changing one import::

    # from implicit.als import AlternatingLeastSquares
    from fastals.compat.implicit import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=64, regularization=0.05, alpha=2.0)
    model.fit(user_items)                                  # users x items CSR
    ids, scores = model.recommend(userid, user_items[userid], N=10)
    ids, scores = model.recommend(userids, user_items[userids])   # batch

The model trains :class:`fastals.FastALS` with ``objective="implicit"``,
``confidence="alpha_r"`` (confidence ``alpha * r``, preference 1 where
``r > 0``, implicit's convention), unobserved weight 1, the same
regularization, and ``solver="cg"`` with 3 conjugate-gradient steps when
``use_cg`` (``"cholesky"`` otherwise).  Everything else follows implicit's
public behaviour: ids are row and column numbers of ``user_items``;
``recommend`` and ``similar_*`` return ``int32`` ids and scores of shape
``(N,)`` for one query and ``(n_queries, N)`` for an array of queries;
places with no candidate left are padded as implicit pads them (excluded
items with score ``-FLT_MAX``, then id 0 with score 0 where ``N`` exceeds
the number of items); an item id outside the model raises ``IndexError``;
``user_items`` that is not CSR raises ``ValueError`` in ``recommend``;
``save``/``load`` read and write implicit's ``.npz`` files.

Differences, all documented in ``docs/migrating.md``: the random starting
factors differ from implicit's (same seed, different numbers), so factors
match implicit's only up to training noise; among the padding entries of a
short result the excluded ids come in ascending order; ``use_gpu`` and
``use_native`` are accepted and ignored (fastals runs on the CPU, always
natively).
"""

import os
import tempfile
import time
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..kernels import topk as _topk
from .._input import to_csr
from ..model import FastALS

__all__ = ["AlternatingLeastSquares", "ParameterWarning"]

#: Score implicit gives to places of a result that hold no candidate.
PAD_SCORE = -np.finfo(np.float32).max


class ParameterWarning(Warning):
    """An argument was converted (e.g. a non-CSR matrix to CSR), as implicit warns."""


def _is_csr(X):
    return sp.issparse(X) and X.format == "csr"


def _check_csr(X, what="user_items"):
    """``X`` as CSR; warns (as implicit does) when a conversion was needed."""
    if _is_csr(X):
        return X
    start = time.perf_counter()
    out = X.tocsr() if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
    warnings.warn(f"Method expects CSR input for {what}, and was passed "
                  f"{type(X).__name__} instead. Converting to CSR took "
                  f"{time.perf_counter() - start:.3g} seconds", ParameterWarning,
                  stacklevel=3)
    return out


def _count(ids):
    return 1 if np.isscalar(ids) else len(ids)


def _rng(random_state):
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31))
    return random_state


class AlternatingLeastSquares:
    """Implicit-feedback ALS with implicit's API (see the module docstring).

    Parameters
    ----------
    factors : int, default 100
        Number of latent factors.
    regularization : float, default 0.01
        L2 penalty on every factor row (not scaled by the row's count).
    alpha : float, default 1.0
        Confidence of an entry ``r`` is ``alpha * r``.
    dtype : numpy dtype, default float32
        float32 or float64 (float16 is implicit's GPU-only type).
    use_native : bool, default True
        Accepted for compatibility; fastals always runs its compiled kernels.
    use_cg : bool, default True
        3 conjugate-gradient steps per row and half-step, warm-started from
        the previous factors; False solves each row exactly (Cholesky).
    use_gpu : bool, default False
        Accepted for compatibility; fastals runs on the CPU (a warning says
        so when True).
    iterations : int, default 15
        ALS epochs.
    calculate_training_loss : bool, default False
        Compute the loss after each epoch (passed to ``callback``).
    num_threads : int, default 0
        Threads for fitting and batch recommendation; 0 means all cores.
    random_state : int, numpy Generator, RandomState or None
        Seed of the initial factors.

    Attributes
    ----------
    user_factors, item_factors : ndarray or None
        ``(n_users, factors)`` and ``(n_items, factors)``; None before ``fit``.
    cg_steps : int
        CG steps per row (3, as implicit).
    """

    def __init__(self, factors=100, regularization=0.01, alpha=1.0,
                 dtype=np.float32, use_native=True, use_cg=True, use_gpu=False,
                 iterations=15, calculate_training_loss=False, num_threads=0,
                 random_state=None):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.dtype = np.dtype(dtype)
        self.use_native = use_native
        self.use_cg = use_cg
        self.use_gpu = use_gpu
        self.iterations = iterations
        self.calculate_training_loss = calculate_training_loss
        self.num_threads = num_threads
        self.random_state = random_state
        self.cg_steps = 3
        self.fit_callback = None
        self.user_factors = None
        self.item_factors = None
        self._invalidate()

    # ------------------------------------------------------------ engine
    def _engine(self, attach=True, **extra):
        """A :class:`FastALS` with this model's objective (and, with
        ``attach``, its current factors, for fold-in)."""
        model = FastALS(
            factors=int(self.factors), regularization=float(self.regularization),
            alpha=float(self.alpha), iterations=int(self.iterations),
            objective="implicit", confidence="alpha_r", unobserved_weight=1.0,
            solver="cg" if self.use_cg else "cholesky",
            cg_steps=int(self.cg_steps), dtype=self.dtype,
            random_state=_rng(self.random_state), num_threads=int(self.num_threads),
            calculate_training_loss=bool(self.calculate_training_loss), **extra)
        if attach and self.user_factors is not None and self.item_factors is not None:
            model.user_factors = self.user_factors
            model.item_factors = self.item_factors
            model.user_ids = model.item_ids = None
        return model

    def _invalidate(self, users=True, items=True):
        if users:
            self._user_norms = None
            self._XtX = None
        if items:
            self._item_norms = None
            self._YtY = None

    def _require_fitted(self):
        if self.user_factors is None or self.item_factors is None:
            raise ValueError("the model is not fitted yet: call fit(user_items) first")

    # ------------------------------------------------------------ fit
    def fit(self, user_items, show_progress=True, callback=None):
        """Factorize ``user_items`` (users x items CSR of confidences).

        Positive values are liked items with confidence ``alpha * value``;
        negative values mark disliked items (preference 0, confidence
        ``alpha * |value|``); missing entries have preference 0 and
        confidence 1.  Training continues from ``user_factors`` /
        ``item_factors`` where they are already set (as implicit does).

        Parameters
        ----------
        user_items : scipy.sparse.csr_matrix
            Other sparse formats are converted with a :class:`ParameterWarning`.
        show_progress : bool, default True
            Progress bar (needs ``tqdm``; silently none without it).
        callback : callable, optional
            ``callback(iteration, elapsed_seconds, loss)`` after each epoch:
            ``iteration`` counts from 0, ``elapsed_seconds`` is that epoch's
            time, ``loss`` is None unless ``calculate_training_loss``.
        """
        Cui = _check_csr(user_items)
        if self.use_gpu:
            warnings.warn("fastals has no GPU solver: fitting on the CPU",
                          RuntimeWarning, stacklevel=2)
        callback = callback or self.fit_callback
        n_users, n_items = Cui.shape
        initial = []
        for name, n in (("user_factors", n_users), ("item_factors", n_items)):
            F = getattr(self, name)
            if F is not None and F.shape != (n, self.factors):
                raise ValueError(
                    f"{name} has shape {F.shape} but user_items needs "
                    f"({n}, {self.factors}); set model.{name} = None to start "
                    "from random factors")
            initial.append(F)
        last = [0.0]

        def relay(epoch, loss, seconds):
            # implicit's loss is the regularized objective per unit of cell
            # weight: fastals' objective_history (loss_history lacks the
            # penalty).
            if callback is not None:
                hist = engine.objective_history
                callback(epoch - 1, seconds - last[0],
                         hist[-1] if hist and not np.isnan(loss) else None)
            last[0] = seconds

        engine = self._engine(attach=False, callback=relay)
        k, dtype = engine._validated()
        csr, _, _ = to_csr(Cui)
        engine._fit_csr(csr, k, dtype, show_progress, tuple(initial))
        self.user_factors = engine.user_factors
        self.item_factors = engine.item_factors
        self.loss_history = engine.objective_history
        self._invalidate()
        return self

    # ------------------------------------------------------------ fold-in
    def _fold(self, ids, rows, side):
        """Factors of ``rows`` (CSR over the other side) solved exactly."""
        self._require_fitted()
        what = "user_items" if side == "user" else "item_users"
        rows = _check_csr(rows, what)
        count = _count(ids)
        if rows.shape[0] != count:
            raise ValueError(f"{what} should have one row for every id in "
                             f"{side}id ({count}), got {rows.shape[0]} rows")
        other = self.item_factors if side == "user" else self.user_factors
        csr = sp.csr_matrix(rows, dtype=np.float64, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        if csr.nnz and int(csr.indices.max()) >= other.shape[0]:
            raise IndexError(f"{what} holds column {int(csr.indices.max())} but "
                             f"the model has {other.shape[0]} "
                             f"{'items' if side == 'user' else 'users'}")
        csr = sp.csr_matrix((csr.data, csr.indices, csr.indptr),
                            shape=(csr.shape[0], other.shape[0]))
        csr.sort_indices()
        X = self._engine()._fold_in(side, csr)[:, :self.factors]
        X = np.ascontiguousarray(X, dtype=self.dtype)
        return X[0] if np.isscalar(ids) else X

    def recalculate_user(self, userid, user_items):
        """Factors of ``userid`` (one id or an array) from ``user_items``.

        ``user_items`` has one row per requested user.  The row system of a
        training user step is solved exactly (item factors held fixed);
        nothing is stored.  Returns ``(factors,)`` for one id, ``(len(userid),
        factors)`` for an array.
        """
        return self._fold(userid, user_items, "user")

    def recalculate_item(self, itemid, item_users):
        """Factors of ``itemid`` from ``item_users`` (items x users), not stored."""
        return self._fold(itemid, item_users, "item")

    def _partial(self, ids, rows, side):
        ids_arr = np.asarray(ids, dtype=np.int64).ravel()
        what = "user_items" if side == "user" else "item_users"
        if len(ids) != rows.shape[0]:
            raise ValueError(f"{what} must contain 1 row for every id in {side}ids")
        if ids_arr.size == 0:
            return
        if ids_arr.min() < 0:
            raise IndexError(f"{side}ids must be >= 0, got {int(ids_arr.min())}")
        X = self._fold(ids_arr, rows, side)
        name = f"{side}_factors"
        F = getattr(self, name)
        top = int(ids_arr.max())
        if top >= F.shape[0]:
            F = np.concatenate([F, np.zeros((top + 1 - F.shape[0], F.shape[1]), F.dtype)])
        else:
            F = F.copy()
        F[ids_arr] = X
        setattr(self, name, F)
        self._invalidate(users=side == "user", items=side == "item")

    def partial_fit_users(self, userids, user_items):
        """Recompute (or add) the factors of ``userids`` from ``user_items``.

        Item factors are held fixed.  Ids beyond the current number of users
        grow ``user_factors``; rows in between get zero factors.
        """
        self._partial(userids, user_items, "user")

    def partial_fit_items(self, itemids, item_users):
        """Recompute (or add) the factors of ``itemids`` from ``item_users``."""
        self._partial(itemids, item_users, "item")

    # ------------------------------------------------------------ ranking
    def _ranked(self, Q, F, N, pool, filtered, liked=None):
        """Top ``N`` of ``Q @ F[pool].T`` per row, padded as implicit pads.

        ``pool``: sorted item numbers ranked (None: all); ``filtered``: item
        numbers never returned; ``liked``: CSR of item numbers excluded per
        row.  Returns int32 ids and scores ``(len(Q), N)``.
        """
        n_all = F.shape[0]
        base = np.arange(n_all) if pool is None else pool
        cand = base
        if filtered is not None and len(filtered):
            cand = base[~np.isin(base, np.asarray(filtered))]
        m = Q.shape[0]
        Q = np.ascontiguousarray(Q, dtype=F.dtype)
        out_ids = np.zeros((m, N), np.int32)
        out_scores = np.zeros((m, N), F.dtype)
        n_top = min(N, cand.size)
        if n_top:
            V = F if cand.size == n_all else np.ascontiguousarray(F[cand])
            pos_of_item = None
            if cand.size != n_all:
                pos_of_item = np.full(n_all, -1, np.int64)
                pos_of_item[cand] = np.arange(cand.size)
            indptr = indices = None
            if liked is not None:
                indptr = np.ascontiguousarray(liked.indptr, np.int64)
                indices = np.ascontiguousarray(liked.indices, np.int32)
            pos, scores = _topk.topk(Q, np.arange(m, dtype=np.int64), V, n_top,
                                     indptr, indices, pos_of_item)
            ok = pos >= 0
            out_ids[:, :n_top] = np.where(ok, cand[np.maximum(pos, 0)], 0)
            out_scores[:, :n_top] = np.where(ok, scores, 0)
        else:
            ok = np.zeros((m, 0), bool)
        # Places implicit fills with excluded items at -FLT_MAX: up to the
        # size of the ranked pool; beyond it, id 0 and score 0.
        width = min(N, base.size)
        found = ok.sum(axis=1)
        for r in np.flatnonzero(found < width):   # only rows short of candidates
            f = int(found[r])
            rest = np.setdiff1d(base, out_ids[r, :f], assume_unique=True)
            out_ids[r, f:width] = rest[:width - f]
            out_scores[r, f:width] = PAD_SCORE
        return out_ids, out_scores

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top ``N`` items for one user or an array of users.

        Parameters
        ----------
        userid : int or array-like of int
        user_items : scipy.sparse.csr_matrix
            One row per requested user (``user_items[userid]``): the items
            to filter and, with ``recalculate_user``, the interactions the
            user's factors are computed from.  May be None when neither is
            asked for.
        N : int, default 10
        filter_already_liked_items : bool, default True
        filter_items : array-like of int, optional
            Items never returned, for every user.
        recalculate_user : bool, default False
            Compute the users' factors from ``user_items`` (fold-in).
        items : array-like of int, optional
            Rank only these items (then ``N`` is at most ``len(items)``);
            cannot be combined with ``filter_items``.

        Returns
        -------
        ids, scores
            ``int32`` ids and scores, best first: shape ``(N,)`` for one
            user, ``(len(userid), N)`` for an array.
        """
        self._require_fitted()
        if filter_already_liked_items or recalculate_user:
            if not _is_csr(user_items):
                raise ValueError("user_items needs to be a CSR sparse matrix")
            if user_items.shape[0] != _count(userid):
                raise ValueError("user_items must contain 1 row for every user "
                                 "in userids")
        if recalculate_user:
            U = self.recalculate_user(userid, user_items)
        else:
            U = self.user_factors[userid]
        U = np.atleast_2d(U)
        n_items = self.item_factors.shape[0]
        pool = None
        if items is not None:
            if filter_items is not None and len(filter_items):
                raise ValueError("Can't set both items and filter_items in "
                                 "recommend call")
            pool = np.unique(np.asarray(items, dtype=np.int64))
            if pool.size and (pool[0] < 0 or pool[-1] >= n_items):
                raise IndexError("Some itemids in the items parameter are not "
                                 "in the model")
            N = min(N, len(items))
        liked = None
        if filter_already_liked_items:
            liked = user_items
            keep = liked.indices < n_items   # columns beyond the model: ignored
            if not keep.all():
                liked = sp.csr_matrix((keep.astype(np.int8), liked.indices,
                                       liked.indptr), shape=liked.shape)
                liked.eliminate_zeros()
        ids, scores = self._ranked(U, self.item_factors, int(N), pool,
                                   filter_items, liked)
        if np.isscalar(userid):
            return ids[0], scores[0]
        return ids, scores

    def recommend_all(self, user_items, N=10, recalculate_user=False,
                      filter_already_liked_items=True, filter_items=None,
                      users_items_offset=0):
        """Deprecated in implicit: ``recommend`` with every user id; returns ids."""
        warnings.warn("recommend_all is deprecated. Use recommend with an array "
                      "of userids instead", DeprecationWarning, stacklevel=2)
        user_items = _check_csr(user_items)
        userids = np.arange(user_items.shape[0]) + users_items_offset
        if users_items_offset:
            pad = sp.csr_matrix((users_items_offset, user_items.shape[1]))
            user_items = sp.vstack([pad, user_items]).tocsr()[userids]
        ids, _ = self.recommend(userids, user_items, N=N,
                                filter_already_liked_items=filter_already_liked_items,
                                filter_items=filter_items,
                                recalculate_user=recalculate_user)
        return ids

    def rank_items(self, userid, user_items, selected_items, recalculate_user=False):
        """Deprecated in implicit: ``recommend(..., items=selected_items)``."""
        warnings.warn("rank_items is deprecated. Use recommend with the 'items' "
                      "parameter instead", DeprecationWarning, stacklevel=2)
        return self.recommend(userid, user_items, recalculate_user=recalculate_user,
                              items=selected_items, filter_already_liked_items=False)

    # ------------------------------------------------------------ similarity
    @staticmethod
    def _norms(F):
        norms = np.linalg.norm(F, axis=-1)
        norms[norms == 0] = 1e-10
        return norms

    @property
    def user_norms(self):
        """Euclidean norms of the user factors (0 replaced by 1e-10)."""
        if self._user_norms is None or self._user_norms.shape[0] != self.user_factors.shape[0]:
            self._user_norms = self._norms(self.user_factors)
        return self._user_norms

    @property
    def item_norms(self):
        """Euclidean norms of the item factors (0 replaced by 1e-10)."""
        if self._item_norms is None or self._item_norms.shape[0] != self.item_factors.shape[0]:
            self._item_norms = self._norms(self.item_factors)
        return self._item_norms

    @property
    def YtY(self):
        """``item_factors.T @ item_factors``."""
        if self._YtY is None:
            self._YtY = self.item_factors.T.dot(self.item_factors)
        return self._YtY

    @property
    def XtX(self):
        """``user_factors.T @ user_factors``."""
        if self._XtX is None:
            self._XtX = self.user_factors.T.dot(self.user_factors)
        return self._XtX

    def _similar(self, query, norm, F, norms, N, filtered, subset):
        cand = None
        if subset is not None:
            subset = np.asarray(subset, dtype=np.int64)
            if subset.size and (subset.min() < 0 or subset.max() >= F.shape[0]):
                raise IndexError("Some ids in the candidate list are not in the model")
        Fn = np.ascontiguousarray(F / norms[:, None], dtype=F.dtype)
        Qn = np.atleast_2d(query) / np.atleast_1d(norm)[:, None]
        if subset is not None:
            # implicit keeps the order (and repeats) of a candidate list.
            Fs = np.ascontiguousarray(Fn[subset])
            ids, scores = self._ranked(Qn, Fs, int(N), cand, filtered)
            ids = subset[ids].astype(np.int32)
        else:
            ids, scores = self._ranked(Qn, Fn, int(N), cand, filtered)
        if np.isscalar(norm) or np.ndim(norm) == 0:
            return ids[0], scores[0]
        return ids, scores

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None,
                      filter_items=None, items=None):
        """Items most similar to ``itemid`` (one id or an array) by cosine.

        The query item itself is included (similarity 1).  ``items`` restricts
        the candidates (not with ``filter_items``); ``recalculate_item``
        computes the query's factors from ``item_users``.  Returns ``int32``
        ids and scores, ``(N,)`` or ``(len(itemid), N)``.
        """
        self._require_fitted()
        if items is not None and filter_items is not None and len(filter_items):
            raise ValueError("Can't set both items and filter_items in "
                             "similar_items call")
        if recalculate_item:
            factor = self.recalculate_item(itemid, item_users)
            norm = np.linalg.norm(factor, axis=-1)
            norm = np.where(norm == 0, 1e-10, norm)
        else:
            factor = self.item_factors[itemid]
            norm = self.item_norms[itemid]
        return self._similar(factor, norm, self.item_factors, self.item_norms, N,
                             filter_items, items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Users most similar to ``userid`` (one id or an array) by cosine."""
        self._require_fitted()
        if users is not None and filter_users is not None and len(filter_users):
            raise ValueError("Can't set both users and filter_users in "
                             "similar_users call")
        return self._similar(self.user_factors[userid], self.user_norms[userid],
                             self.user_factors, self.user_norms, N, filter_users,
                             users)

    # ------------------------------------------------------------ explain
    def explain(self, userid, user_items, itemid, user_weights=None, N=10):
        """Why ``itemid`` scores as it does for ``userid`` (Hu et al. 2008, sec. 5).

        The score ``x_u . y_i`` of a user solved exactly from their items is
        a sum of one term per liked item ``j``: ``c_uj y_i^T W_u y_j`` with
        ``W_u = (Y^T C_u Y + lambda I)^-1``.

        Parameters
        ----------
        userid : int
            Row of ``user_items`` that holds the user's interactions.
        user_items : scipy.sparse.csr_matrix
            Users x items (the row ``userid`` is used).
        itemid : int
        user_weights : tuple, optional
            The Cholesky factor returned by an earlier call for this user.
        N : int, default 10

        Returns
        -------
        total_score : float
        top_contributions : list of ``(itemid, score)``, largest first
        user_weights : tuple, the Cholesky factor (pass it back to reuse it)
        """
        self._require_fitted()
        user_items = _check_csr(user_items)
        if not 0 <= userid < user_items.shape[0]:
            raise IndexError(f"userid {userid} is out of range for user_items with "
                             f"{user_items.shape[0]} rows")
        Y = self.item_factors
        lo, hi = user_items.indptr[userid], user_items.indptr[userid + 1]
        cols = np.asarray(user_items.indices[lo:hi], np.int64)
        conf = self.alpha * np.asarray(user_items.data[lo:hi], np.float64)
        Yu = Y[cols].astype(np.float64)
        if user_weights is None:
            A = self.YtY.astype(np.float64) + self.regularization * np.eye(Y.shape[1])
            A += Yu.T @ ((np.abs(conf) - 1)[:, None] * Yu)
            user_weights = scipy.linalg.cho_factor(A)
        weighted = scipy.linalg.cho_solve(user_weights, Y[itemid].astype(np.float64))
        scores = (Yu @ weighted) * conf
        keep = conf >= 0
        cols, scores = cols[keep], scores[keep]
        total = float(scores.sum())
        order = np.lexsort((-cols, -scores))[:N]
        top = [(int(cols[o]), float(scores[o])) for o in order]
        return total, top, user_weights

    # ------------------------------------------------------------ persist
    _SAVED = ("user_factors", "item_factors", "regularization", "factors",
              "num_threads", "iterations", "use_native", "use_cg", "cg_steps",
              "calculate_training_loss", "dtype", "random_state", "alpha")

    def save(self, fileobj_or_path):
        """Write the model in implicit's ``.npz`` format (``numpy.savez``).

        A path gets the suffix ``.npz`` if it has none (as ``numpy.savez``
        does) and is written atomically: to a temporary file in the same
        folder, then renamed.  ``random_state`` is saved only when it is an
        integer (implicit saves any non-None value, which numpy can only
        store as a pickle).
        """
        args = {}
        for key in self._SAVED:
            value = getattr(self, key)
            if key == "dtype":
                value = np.dtype(value).name
            if key == "random_state" and not isinstance(value, (int, np.integer)):
                value = None
            if value is not None:
                args[key] = value
        if not isinstance(fileobj_or_path, (str, os.PathLike)):
            np.savez(fileobj_or_path, **args)
            return
        path = os.fspath(fileobj_or_path)
        if not path.endswith(".npz"):
            path += ".npz"
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **args)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, fileobj_or_path):
        """Read a model written by :meth:`save` or by implicit's ``save``."""
        if isinstance(fileobj_or_path, (str, os.PathLike)):
            fileobj_or_path = os.fspath(fileobj_or_path)
            if not fileobj_or_path.endswith(".npz"):
                fileobj_or_path += ".npz"
        with np.load(fileobj_or_path, allow_pickle=False) as data:
            model = cls()
            for key, value in data.items():
                if key == "dtype":
                    value = np.dtype(str(value))
                elif value.shape == ():
                    value = value.item()
                setattr(model, key, value)
        model._invalidate()
        return model

    def __repr__(self):
        return (f"AlternatingLeastSquares(factors={self.factors}, "
                f"regularization={self.regularization}, alpha={self.alpha}, "
                f"iterations={self.iterations}, use_cg={self.use_cg}) [fastals]")
