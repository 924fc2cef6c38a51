"""Recommendation, similarity, prediction and fold-in for fitted models.

:class:`RecommenderMixin` is a base class of :class:`fastals.FastALS`.  Its
methods take and return *raw* ids (the ids given to ``fit``: any integers
or strings; the row / column numbers when ``fit`` got a sparse matrix) and
raise :class:`~fastals.exceptions.InputError` naming any id the model does
not know.

Fitting stores the training interactions (``_user_items``, the canonical
users x items CSR) and the rating range (``_rating_range``), used to filter
already-liked items and to clip predictions.
"""

import numpy as np
import scipy.sparse as sp

from . import _splice
from . import kernels as K
from .kernels import topk as _topk
from ._input import (combine_duplicates, id_array, kernel_arrays, matrix_to_csr,
                     resolve_duplicates)
from .exceptions import FastALSError, InputError, NotFittedError

SIDES = ("user", "item")


class RecommenderMixin:
    """Top-N recommendation, similar items/users, prediction and fold-in.

    Method names follow the ``implicit`` library (``recommend``,
    ``similar_items``, ``recalculate_user``, ``partial_fit_users``) and
    Surprise / LensKit (``predict``).
    """

    # ------------------------------------------------------------ training
    def _remember_training(self, csr):
        """Keep what recommendation needs from the training data (called by ``fit``)."""
        self._user_items = csr
        if csr.nnz:
            self._rating_range = (float(csr.data.min()), float(csr.data.max()))
        else:
            self._rating_range = None
        self._recommend_cache = {}

    def _require_fitted(self):
        if not hasattr(self, "user_factors"):
            raise NotFittedError(
                "this FastALS model is not fitted yet; call fit() first")

    # ------------------------------------------------------------ id maps
    def _ids(self, side):
        return self.user_ids if side == "user" else self.item_ids

    def _n(self, side):
        return (self.user_factors if side == "user" else self.item_factors).shape[0]

    def _raw_of(self, side, index):
        """Raw ids of row numbers (``index`` may hold ``-1`` padding)."""
        ids = self._ids(side)
        index = np.asarray(index)
        if ids is None:
            return index.astype(np.int64, copy=True)
        out = ids[np.maximum(index, 0)]
        pad = index < 0
        if pad.any():
            out = out.copy()
            out[pad] = _pad_id(ids.dtype)
        return out

    def _index_of(self, side, raw, missing="raise"):
        """Row numbers of raw ids (any shape).

        ``missing="raise"`` raises :class:`InputError` naming the first
        unknown id; ``missing="ignore"`` returns ``-1`` for unknown ids.
        """
        self._require_fitted()
        q = id_array(raw)
        shape = q.shape
        q = q.ravel()
        n = self._n(side)
        ids = self._ids(side)
        if ids is None:
            known = np.zeros(q.size, bool)
            idx = np.full(q.size, -1, np.int64)
            if q.dtype.kind in "iu":
                qi = q.astype(np.int64)
                known = (qi >= 0) & (qi < n)
                idx[known] = qi[known]
            elif q.dtype.kind == "f":
                ok = np.isfinite(q) & (q == np.round(q))
                qi = np.where(ok, q, -1).astype(np.int64)
                known = ok & (qi >= 0) & (qi < n)
                idx[known] = qi[known]
            elif q.dtype.kind == "O":
                for p, v in enumerate(q):
                    if isinstance(v, (int, np.integer)) and not isinstance(v, bool) \
                            and 0 <= v < n:
                        idx[p] = int(v)
                        known[p] = True
        else:
            order, sorted_ids = self._id_order(side, ids)
            qc, convertible = _convert_like(q, ids)
            idx = np.full(q.size, -1, np.int64)
            known = np.zeros(q.size, bool)
            if qc is not None and sorted_ids.size:
                pos = np.searchsorted(sorted_ids, qc[convertible])
                pos = np.minimum(pos, sorted_ids.size - 1)
                hit = sorted_ids[pos] == qc[convertible]
                sub = np.flatnonzero(convertible)[hit]
                idx[sub] = order[pos[hit]]
                known[sub] = True
        if missing == "raise" and not known.all():
            bad = q[np.flatnonzero(~known)[0]]
            raise InputError(f"unknown {side} id {_show(bad)}: not seen in "
                             f"training (the model has {n} {side}s)")
        return idx.reshape(shape)

    def _pair_indices(self, users, items, unknown):
        """Flat row indices of broadcast ``(users, items)`` pairs (-1 for an
        unknown id unless ``unknown == "raise"``) and their common shape."""
        miss = "raise" if unknown == "raise" else "ignore"
        u = self._index_of("user", users, miss)
        i = self._index_of("item", items, miss)
        u, i = np.broadcast_arrays(u, i)
        return u.ravel(), i.ravel(), u.shape

    def _id_order(self, side, ids):
        cache = self.__dict__.setdefault("_recommend_cache", {})
        hit = cache.get(("order", side))
        if hit is not None and hit[0] is ids and hit[1] == ids.size:
            return hit[2], hit[3]
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        cache[("order", side)] = (ids, ids.size, order, sorted_ids)
        return order, sorted_ids

    # ------------------------------------------------------------ scoring
    def _scoring_factors(self):
        """``(P, Q)`` with ``P[u] . Q[i]`` the model's score of ``(u, i)``.

        With biases: ``P = [x_u, 1, b_u + mu]``, ``Q = [y_i, b_i, 1]``, so the
        score is the predicted rating (before clipping).
        """
        if not getattr(self, "use_bias", False) \
                or not hasattr(self, "user_biases"):
            return self.user_factors, self.item_factors
        cache = self.__dict__.setdefault("_recommend_cache", {})
        key = (self.user_factors, self.item_factors, self.user_biases,
               self.item_biases, self.global_mean)
        hit = cache.get("scoring")
        if hit is not None and all(a is b for a, b in zip(hit[0][:4], key[:4])) \
                and hit[0][4] == key[4]:
            return hit[1]
        U, V = self.user_factors, self.item_factors
        dt = U.dtype
        P = np.empty((U.shape[0], U.shape[1] + 2), dt)
        P[:, :-2] = U
        P[:, -2] = 1
        P[:, -1] = self.user_biases + self.global_mean
        Q = np.empty((V.shape[0], V.shape[1] + 2), dt)
        Q[:, :-2] = V
        Q[:, -2] = self.item_biases
        Q[:, -1] = 1
        cache["scoring"] = (key, (P, Q))
        return P, Q

    def _liked_rows(self, rows, user_items, n_rows_out):
        """CSR (indptr int64, sorted indices int32) of items to exclude per output row."""
        n_items = self._n("item")
        if user_items is None:
            stored = getattr(self, "_user_items", None)
            if stored is None:
                raise FastALSError(
                    "this model holds no training interactions (it was not "
                    "fitted in this session); pass user_items= or "
                    "filter_already_liked_items=False")
            liked = stored[rows]
        else:
            liked = _as_csr(user_items, "user_items")
            if liked.shape[1] != n_items:
                raise InputError(f"user_items has {liked.shape[1]} columns; the "
                                 f"model has {n_items} items")
            n_users = self._n("user")
            if liked.shape[0] == n_rows_out == n_users \
                    and not np.array_equal(rows, np.arange(n_users)):
                # One row per requested user, or one per model user?  Both
                # fit, and they differ: refuse rather than guess.
                raise InputError(
                    f"user_items has {n_users} rows, both the number of requested "
                    "users and of model users, and the users are not in model "
                    "order: ambiguous. Request the users in model order (as "
                    "recommend_all does) or pass fewer users per call")
            if liked.shape[0] == n_rows_out:
                pass
            elif liked.shape[0] == n_users:
                liked = liked[rows]
            else:
                raise InputError(
                    f"user_items has {liked.shape[0]} rows: expected one per "
                    f"requested user ({n_rows_out}) or one per model user "
                    f"({self._n('user')})")
            liked = liked.tocsr()
            liked.sort_indices()
        return kernel_arrays(liked)

    # ------------------------------------------------------------ public
    def recommend(self, users, n=10, filter_already_liked_items=True,
                  items=None, user_items=None):
        """Top-``n`` items for one user or a batch of users.

        Items are ranked by the model's score: ``x_u . y_i`` (plus the biases
        and global mean with ``use_bias``, i.e. the predicted rating, not
        clipped).  Ties go to the item with the lower row number.

        Parameters
        ----------
        users : raw user id or 1-D array-like of raw user ids
        n : int, default 10
        filter_already_liked_items : bool, default True
            Never return items the user interacted with: the user's row of
            ``user_items``, or of the training data when it is None.
        items : array-like of raw item ids, optional
            Rank only these candidate items.
        user_items : scipy.sparse matrix, optional
            Interactions to filter, columns in model item order (see
            ``item_ids``); one row per requested user, or one per model user.
            When both counts are equal the users must be in model order
            (otherwise the rows could be read either way:
            :class:`InputError`).

        Returns
        -------
        ids, scores
            For one user: 1-D arrays of at most ``n`` raw item ids and their
            scores, best first.  For a batch: 2-D arrays of shape
            ``(len(users), min(n, n_candidates))``; where a user has fewer
            candidates left after filtering, the row ends with id ``-1``
            (``""`` for string ids, ``2**64 - 1`` for uint64 ids) and score
            ``-inf``.
        """
        self._require_fitted()
        n = _positive_int(n, "n")
        single = np.ndim(users) == 0
        rows = self._index_of("user", np.atleast_1d(id_array(users))).ravel()
        P, Q = self._scoring_factors()
        pos_of_item = None
        cand = None
        V = Q
        if items is not None:
            cand = np.unique(self._index_of("item", np.atleast_1d(id_array(items))))
            V = np.ascontiguousarray(Q[cand])
            pos_of_item = np.full(Q.shape[0], -1, np.int64)
            pos_of_item[cand] = np.arange(cand.size)
        n_eff = min(n, V.shape[0])
        excl_indptr = excl_indices = None
        if filter_already_liked_items:
            excl_indptr, excl_indices = self._liked_rows(rows, user_items, rows.size)
        pos, scores = _topk.topk(P, rows.astype(np.int64), V, n_eff, excl_indptr,
                                 excl_indices, pos_of_item)
        index = pos if cand is None else np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        ids = self._raw_of("item", index)
        if single:
            found = int(np.count_nonzero(index[0] >= 0))
            return ids[0, :found], scores[0, :found]
        return ids, scores

    def recommend_all(self, n=10, filter_already_liked_items=True, items=None,
                      user_items=None):
        """:meth:`recommend` for every user, in the order of ``user_ids``.

        Returns
        -------
        ids, scores : 2-D arrays ``(n_users, min(n, n_candidates))``
        """
        self._require_fitted()
        users = self._raw_of("user", np.arange(self._n("user")))
        return self.recommend(users, n, filter_already_liked_items, items,
                              user_items)

    def similar_items(self, item, n=10, items=None):
        """Items most similar to ``item`` by cosine of the item factors.

        The query item itself is included (similarity 1), as in ``implicit``.
        Candidate items with all-zero factors (no ratings) have similarity 0;
        a query item with all-zero factors raises ``InputError``.

        Parameters
        ----------
        item : raw item id, or 1-D array-like of them (batch)
        n : int, default 10
        items : array-like of raw item ids, optional
            Candidate items.

        Returns
        -------
        ids, scores : 1-D for one item, 2-D ``(len(item), n)`` for a batch.
        """
        return self._similar("item", item, n, items)

    def similar_users(self, user, n=10, users=None):
        """Users most similar to ``user`` by cosine of the user factors.

        See :meth:`similar_items`.
        """
        return self._similar("user", user, n, users)

    def _normalized(self, side):
        """Unit-norm rows of ``{side}_factors`` (zero rows stay zero), cached.

        Made once per factor array: the cache holds the array it was made
        from and is dropped whenever that attribute is assigned another
        array (every fit epoch, partial fit and load assigns new arrays).
        Writing into a factor array in place is not detected: assign a new
        array instead.
        """
        F = self.user_factors if side == "user" else self.item_factors
        cache = self.__dict__.setdefault("_recommend_cache", {})
        hit = cache.get(("normalized", side))
        if hit is not None and hit[0] is F and hit[1] == (F.shape, F.dtype):
            return hit[2]
        cache.pop(("normalized", side), None)  # free the old copy first
        N = np.empty(F.shape, F.dtype)
        block = max(1, (1 << 16) // max(F.shape[1], 1))
        for r in range(0, F.shape[0], block):  # float64 one block at a time
            part = F[r:r + block].astype(np.float64)
            norms = np.linalg.norm(part, axis=1)
            part /= np.where(norms > 0, norms, 1)[:, None]
            N[r:r + block] = part
        cache[("normalized", side)] = (F, (F.shape, F.dtype), N)
        return N

    def _similar(self, side, query, n, candidates):
        self._require_fitted()
        n = _positive_int(n, "n")
        single = np.ndim(query) == 0
        rows = self._index_of(side, np.atleast_1d(id_array(query))).ravel()
        N = self._normalized(side)
        empty = rows[~N[rows].any(axis=1)]
        if empty.size:
            raise InputError(
                f"{side} {np.asarray(self._raw_of(side, empty[:1])).tolist()[0]!r} "
                "has no ratings in "
                "training (its factors are zero), so nothing is similar to it")
        cand = None
        V = N
        if candidates is not None:
            cand = np.unique(self._index_of(side, np.atleast_1d(id_array(candidates))))
            V = np.ascontiguousarray(N[cand])
        pos, scores = _topk.topk(N, rows.astype(np.int64), V, min(n, V.shape[0]))
        index = pos if cand is None else np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        ids = self._raw_of(side, index)
        if single:
            return ids[0], scores[0]
        return ids, scores

    def predict(self, users, items, unknown="raise"):
        """Predicted scores of ``(user, item)`` pairs.

        ``x_u . y_i`` plus, with ``use_bias``, ``mu + b_u + b_i``.  For the
        rating objectives (``explicit``, ``dense``) predictions are clipped
        to the range of the training values ``[min, max]`` (e.g. [1, 5] on
        MovieLens), which never increases the error on ratings of that range.

        Parameters
        ----------
        users, items : raw ids, scalars or array-likes broadcast together
        unknown : {"raise", "default"}, default "raise"
            ``"default"``: an unknown user or item gets zero factors and zero
            bias, so the prediction falls back to the known parts (the
            global mean plus the known bias, as in Surprise).

        Returns
        -------
        float or ndarray of float64
        """
        self._require_fitted()
        if unknown not in ("raise", "default"):
            raise InputError(f"unknown must be 'raise' or 'default', got {unknown!r}")
        u, i, shape = self._pair_indices(users, items, unknown)
        ku, ki = u >= 0, i >= 0
        pred = self._pair_dots(u, i)
        if getattr(self, "use_bias", False) and hasattr(self, "user_biases"):
            pred += self.global_mean
            pred += np.where(ku, self.user_biases[np.maximum(u, 0)], 0.0)
            pred += np.where(ki, self.item_biases[np.maximum(i, 0)], 0.0)
        rng = getattr(self, "_rating_range", None)
        if rng is not None and self.objective in ("explicit", "dense"):
            np.clip(pred, rng[0], rng[1], out=pred)
        pred = pred.reshape(shape)
        return float(pred) if pred.ndim == 0 else pred

    def _pair_dots(self, u, i):
        """``user_factors[u] . item_factors[i]`` in float64 per pair, 0 where
        ``u`` or ``i`` is -1 (unknown)."""
        U = self.user_factors[np.maximum(u, 0)].astype(np.float64)
        V = self.item_factors[np.maximum(i, 0)].astype(np.float64)
        return np.einsum("ij,ij->i", U, V) * ((u >= 0) & (i >= 0))

    # ------------------------------------------------------------ fold-in
    def recalculate_user(self, user_items, return_bias=False):
        """Factors of a new user from their interactions, items held fixed.

        Solves exactly the per-row system of a training user step (same
        objective, confidence, regularization, biases, non-negativity).

        Parameters
        ----------
        user_items : one of
            * scipy.sparse matrix with ``n_items`` columns in model item order
              (one row per user; several rows give several users);
            * 1-D array of length ``n_items`` (zeros mean "no interaction");
            * dict ``{raw item id: value}``;
            * tuple ``(raw item ids, values)``.
        return_bias : bool, default False
            Also return the user bias (``use_bias`` models).

        Returns
        -------
        factors : ndarray ``(factors,)`` for one row, ``(n_rows, factors)``
            for a sparse matrix with several rows
        bias : float or ndarray, only with ``return_bias``
        """
        return self._recalculate("user", user_items, return_bias)

    def recalculate_item(self, item_users, return_bias=False):
        """Factors of a new item from its interactions, users held fixed.

        The mirror of :meth:`recalculate_user`: ``item_users`` has
        ``n_users`` columns in model user order (``user_ids``), or is a dict
        / ``(raw user ids, values)`` tuple.
        """
        return self._recalculate("item", item_users, return_bias)

    def _recalculate(self, side, rows, return_bias):
        self._require_fitted()
        csr, single = self._fold_rows(side, rows)
        X = self._fold_in(side, csr)
        k = self.user_factors.shape[1]
        f = X[:, :k]
        b = X[:, k] if X.shape[1] > k else np.zeros(X.shape[0], X.dtype)
        if single:
            f, b = f[0], float(b[0])
        return (f, b) if return_bias else f

    def partial_fit_users(self, user_ids, user_items):
        """Add new users or refit existing ones, item factors held fixed.

        Parameters
        ----------
        user_ids : 1-D array-like of raw user ids (distinct)
            Ids the model knows are updated; new ids are appended to
            ``user_ids`` (and the factor matrices) in the given order.
        user_items : scipy.sparse matrix or 2-D array ``(len(user_ids), n_items)``
            The users' complete interactions, columns in model item order;
            they replace the stored rows used to filter recommendations.

        Returns
        -------
        self
        """
        return self._partial_fit("user", user_ids, user_items)

    def partial_fit_items(self, item_ids, item_users):
        """Add new items or refit existing ones, user factors held fixed.

        ``item_users`` is ``(len(item_ids), n_users)``, columns in model user
        order.  See :meth:`partial_fit_users`.
        """
        return self._partial_fit("item", item_ids, item_users)

    # ------------------------------------------------------------ internals
    def _fold_rows(self, side, rows):
        """Canonical CSR (float64, sorted, no zeros unless given) of fold-in rows."""
        other = "item" if side == "user" else "user"
        n_other = self._n(other)
        single = True
        if isinstance(rows, dict):
            rows = (list(rows.keys()), list(rows.values()))
        if isinstance(rows, tuple):
            if len(rows) != 2:
                raise InputError(f"expected ({other} ids, values), got a tuple "
                                 f"of {len(rows)}")
            cols = self._index_of(other, id_array(rows[0]).ravel()) \
                if len(rows[0]) else np.zeros(0, np.int64)
            vals = np.asarray(rows[1], dtype=np.float64).ravel()
            if vals.size != cols.size:
                raise InputError(f"{cols.size} {other} ids but {vals.size} values")
            _check_finite(vals)
            r, c, v = combine_duplicates(np.zeros(cols.size, np.int64), cols, vals,
                                         n_other, resolve_duplicates(
                                             self.duplicates,
                                             self.objective == "implicit"))
            csr = sp.csr_matrix((v, c.astype(np.int32), np.array([0, v.size], np.int64)),
                                shape=(1, n_other))
        else:
            if sp.issparse(rows):
                single = rows.shape[0] == 1
            else:
                arr = np.asarray(rows, dtype=np.float64)
                if arr.ndim == 1:
                    arr = arr[None, :]
                elif arr.ndim == 2:
                    single = arr.shape[0] == 1
                else:
                    raise InputError(f"expected a 1-D or 2-D array, got {arr.ndim}-D")
                rows = arr
            if rows.ndim != 2:
                raise InputError(f"expected a 2-D matrix, got {rows.ndim}-D")
            if rows.shape[1] != n_other:
                raise InputError(f"rows have {rows.shape[1]} columns; the model has "
                                 f"{n_other} {other}s (columns follow {other}_ids)")
            # The same path, and duplicates policy, as fit's matrix input.
            if not sp.issparse(rows):
                rows = sp.csr_matrix(rows)  # dense: zeros mean no interaction
            csr = matrix_to_csr(rows, resolve_duplicates(
                self.duplicates, self.objective == "implicit"), allow_empty=True)
        return csr, single

    def _fold_in(self, side, csr):
        """Solve the training row system of ``side`` for every row of ``csr``.

        Returns the solved blocks ``(n_rows, factors [+ 1 bias])``.
        """
        k = self.user_factors.shape[1]
        dtype = self.user_factors.dtype
        use_bias = getattr(self, "use_bias", False)
        if side == "user":
            F, fb = self.item_factors, self.item_biases if use_bias else None
        else:
            F, fb = self.user_factors, self.user_biases if use_bias else None
        if use_bias:
            Y = np.empty((F.shape[0], k + 1), dtype)
            Y[:, :k] = F
            Y[:, k] = fb
        else:
            Y = np.ascontiguousarray(F)
        conf, target = self._conf_target(csr.data, dtype)
        indptr, indices = kernel_arrays(csr)
        D, offset = self._design(Y)
        w0 = self._w0()
        G = self._gram(Y) if w0 else None
        G = (G if G is not None else np.zeros((D.shape[1],) * 2)).astype(dtype)
        wr = bool(self.weighted_regularization)
        conf = self._row_conf(conf, np.diff(indptr))
        X = np.zeros((csr.shape[0], D.shape[1]), dtype)
        bounds = K.chunk_bounds(indptr, D.shape[1], max(1, min(csr.shape[0], 64)))
        args = (indptr, indices, conf, target, np.ascontiguousarray(offset, dtype),
                np.ascontiguousarray(D, dtype), G, dtype.type(self.regularization),
                wr, dtype.type(w0), X, bounds)
        if self.__dict__.get("nonnegative", False):
            from .kernels import nnls as _nnls
            _nnls.solve_nnls(*args)
        else:
            K.solve_cholesky(*args)
        return X

    def _partial_fit(self, side, raw_ids, rows):
        """Fold in rows of ``side`` and swap them in, all or nothing.

        Everything is checked and every new array built first; the model is
        then changed by one ``__dict__.update`` of new objects (no array of
        the model is written in place), so a failure at any step leaves
        every attribute as it was.
        """
        self._require_fitted()
        raw = id_array(raw_ids)
        if raw.ndim != 1:
            raise InputError(f"{side}_ids must be one-dimensional, got shape {raw.shape}")
        if raw.size == 0:
            return self
        if isinstance(rows, (dict, tuple)):
            _not_matrix(side)
        # 1. validate (nothing is written to the model)
        csr, _ = self._fold_rows(side, rows)
        if csr.shape[0] != raw.size:
            raise InputError(f"{raw.size} {side} ids but {csr.shape[0]} rows")
        if np.unique(raw).size != raw.size:
            raise InputError(f"{side}_ids contain duplicates")
        idx = self._index_of(side, raw, missing="ignore")
        new = idx < 0
        n_old = self._n(side)
        n_new = int(new.sum())
        updates = {}
        if n_new:
            updates[f"{side}_ids"] = self._grown_ids(side, raw[new], n_old)
        # 2. build the new arrays
        X = self._fold_in(side, csr)
        k = self.user_factors.shape[1]
        use_bias = getattr(self, "use_bias", False)
        target = idx.copy()
        target[new] = n_old + np.arange(n_new)
        fname, bname = f"{side}_factors", f"{side}_biases"
        F = getattr(self, fname)
        Fn = np.concatenate([F, np.zeros((n_new, k), F.dtype)])
        Fn[target] = X[:, :k]
        updates[fname] = np.ascontiguousarray(Fn)
        B = getattr(self, bname, None)
        if B is not None:
            Bn = np.concatenate([B, np.zeros(n_new, B.dtype)])
            Bn[target] = X[:, k] if use_bias else 0
            updates[bname] = Bn
        stored = getattr(self, "_user_items", None)
        if stored is not None:
            updates["_user_items"] = _replace_lines(stored, side, target, csr,
                                                    n_old + n_new)
        updates["_recommend_cache"] = {}
        # 3. swap in
        self.__dict__.update(updates)
        return self

    def _grown_ids(self, side, added, n_old):
        """``{side}_ids`` with the new raw ids ``added`` appended (a new array).

        Raises :class:`InputError` when the model's ids cannot hold them.
        """
        ids = self._ids(side)
        if ids is None:
            if added.dtype.kind not in "iu":
                raise InputError(
                    f"this model uses row numbers as {side} ids; new ids "
                    f"must be integers, got {_show(added[0])}")
            ids = np.arange(n_old, dtype=np.int64)
        if ids.dtype.kind in "US":
            return np.concatenate([ids, added.astype(str)])
        if added.dtype.kind not in "iu":
            raise InputError(f"{side} ids of this model are integers; got "
                             f"{_show(added[0])}")
        cast, ok = _int_like(added, ids.dtype)
        if not ok.all():
            raise InputError(
                f"{side} id {_show(added[np.flatnonzero(~ok)[0]])} does not fit "
                f"this model's {ids.dtype.name} {side} ids; fit the model with ids "
                f"of a type that holds every id (e.g. uint64 for ids >= 2**63)")
        return np.concatenate([ids, cast])


# ---------------------------------------------------------------- helpers
def _replace_lines(ui, side, target, csr, n_lines):
    """``ui`` with rows (side user) / columns (side item) ``target`` set to ``csr``."""
    if side == "user":
        return _splice.replace_rows(ui, target, csr, n_lines)
    return _splice.replace_columns(ui, target, csr, n_lines)


def _not_matrix(side):
    other = "items" if side == "user" else "users"
    raise InputError(f"partial_fit_{side}s needs a sparse matrix or 2-D array "
                     f"with one row per id (columns: {other})")


def _as_csr(X, what):
    if sp.issparse(X):
        csr = sp.csr_matrix(X, dtype=np.float64)
    else:
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2:
            raise InputError(f"{what} must be a sparse matrix or 2-D array")
        csr = sp.csr_matrix(arr)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _check_finite(values):
    if not np.all(np.isfinite(values)):
        raise InputError("values contain NaN or infinite entries")


def _convert_like(q, ids):
    """``q`` in the dtype of ``ids`` and a mask of convertible entries.

    Integer ids (int64 or uint64) are compared exactly: a query that the
    ids' dtype cannot hold (a negative id for uint64 ids, one >= 2**63 for
    int64 ids) is simply unknown, never wrapped around.
    """
    kind = ids.dtype.kind
    if kind in "US":
        if q.dtype.kind in "US":
            return q, np.ones(q.size, bool)
        return q.astype(str), np.ones(q.size, bool)
    if q.dtype.kind in "iu":
        return _int_like(q, ids.dtype)
    if q.dtype.kind == "f":
        info = np.iinfo(ids.dtype)
        ok = np.isfinite(q) & (q == np.round(q)) & (q >= float(info.min)) \
            & (q < float(info.max) + 1.0)
        out = np.zeros(q.size, ids.dtype)
        out[ok] = q[ok].astype(ids.dtype)
        return out, ok
    if q.dtype.kind == "O":
        info = np.iinfo(ids.dtype)
        ok = np.array([isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       and info.min <= int(v) <= info.max for v in q], bool)
        out = np.zeros(q.size, ids.dtype)
        if ok.any():
            out[ok] = np.array([int(v) for v in q[ok]], ids.dtype)
        return out, ok
    return None, np.zeros(q.size, bool)


def _int_like(q, dtype):
    """Integer array ``q`` cast to integer ``dtype`` where it fits, and where."""
    dtype = np.dtype(dtype)
    if q.dtype.kind == "u" and dtype.kind == "i":
        ok = q <= np.iinfo(dtype).max
    elif q.dtype.kind == "i" and dtype.kind == "u":
        ok = q >= 0
    else:
        ok = np.ones(q.size, bool)
        if q.dtype.itemsize > dtype.itemsize:
            info = np.iinfo(dtype)
            ok = (q >= info.min) & (q <= info.max)
    if ok.all():
        return q.astype(dtype), ok
    out = np.zeros(q.size, dtype)
    out[ok] = q[ok].astype(dtype)
    return out, ok


def _pad_id(dtype):
    """Padding id of top-n rows: ``""``, ``-1``, or ``2**64 - 1`` (the bit
    pattern of -1) for unsigned ids."""
    if dtype.kind in "US":
        return ""
    return np.iinfo(dtype).max if dtype.kind == "u" else -1


def _show(v):
    return repr(v.item() if isinstance(v, np.generic) else v)


def _positive_int(n, what):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{what} must be a positive integer, got {n!r}")
    return int(n)
