"""The :class:`FastALS` estimator."""

import os
import time

import numpy as np

from . import _dense, _dense_wr, _guard
from . import kernels as K
from . import persist
from ._version import __version__
from .kernels.chunks import even_bounds as _even_bounds, threads
from ._input import to_csr, transpose_csr
from ._side import _Side
from .data.tables import from_table, is_table
from .exceptions import InputError, NumericalError
from ._params import ParamsMixin, float_dtype
from .recommend import RecommenderMixin

OBJECTIVES = ("explicit", "implicit", "dense")
CONFIDENCES = ("linear", "alpha_r", "log")
SOLVERS = ("cholesky", "cg")


# Defaults of the explicit objective, for the hyperparameters left at None
# (chosen on a validation split of MovieLens-100k ua.base, checked on u1..u5:
# docs/accuracy.md, bench/choose_defaults.py).  The other objectives keep
# implicit's defaults: lambda 0.01, plain penalty, no biases.
EXPLICIT_EXPONENT = 0.5
EXPLICIT_FACTORS = 32
OTHER_FACTORS = 100
#: lambda of the penalty ``lambda * n ** e`` chosen for each exponent ``e``
#: (``e = 0``: the plain penalty); other exponents interpolate log-linearly.
EXPLICIT_LAMBDA = {0.0: 10.0, 0.5: 1.25, 1.0: 0.12}
OTHER_LAMBDA = 0.01


def _explicit_lambda(e):
    es = sorted(EXPLICIT_LAMBDA)
    e = min(max(float(e), es[0]), es[-1])
    if e in EXPLICIT_LAMBDA:
        return EXPLICIT_LAMBDA[e]
    for lo, hi in zip(es, es[1:]):
        if lo <= e <= hi:
            t = (e - lo) / (hi - lo)
            return float(np.exp((1 - t) * np.log(EXPLICIT_LAMBDA[lo])
                                + t * np.log(EXPLICIT_LAMBDA[hi])))
    return EXPLICIT_LAMBDA[es[0]]


class _Auto:
    """A hyperparameter whose default, None, is resolved by the objective.

    Reading the attribute gives the value in force (the one given, or the
    objective's default); :meth:`FastALS.get_params` gives what was given,
    so that a clone with another ``objective`` gets that objective's
    default.
    """

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = f"_{name}_param"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        raw = obj.__dict__.get(self.slot)
        return obj._auto_default(self.name) if raw is None else raw

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value


AUTO_PARAMS = ("factors", "regularization", "use_bias",
               "weighted_regularization", "regularization_exponent")


class FastALS(ParamsMixin, RecommenderMixin):
    """Matrix factorization by alternating least squares.

    Factorizes a users x items ratings matrix ``R`` as ``U V^T`` with Numba
    kernels that walk the sparse rows and solve one small ``k x k`` system per
    user and per item.

    The defaults give a good model without tuning.  Five hyperparameters
    default to None, which means "the objective's default": for
    ``"explicit"`` 32 factors, a global mean plus user and item biases and
    the penalty ``1.25 * sqrt(n)`` on a row with ``n`` ratings
    (``factors=32``, ``use_bias=True``,
    ``weighted_regularization=True``, ``regularization_exponent=0.5``,
    ``regularization=1.25``; chosen on validation data of MovieLens-100k,
    ``docs/accuracy.md``); for ``"implicit"`` and ``"dense"`` the defaults of
    the ``implicit`` library (100 factors, no biases, plain penalty
    ``lambda = 0.01``).
    Reading the attribute gives the value in force; :meth:`get_params`
    gives None for these, :meth:`resolved_params` the values in force.

    Parameters
    ----------
    factors : int or None, default None
        Number of latent factors ``k``.  None: 32 for the explicit
        objective, 100 (implicit's default) otherwise.
    regularization : float or None, default None
        L2 penalty ``lambda`` on the factors (and biases).  None: 0.01 for
        the implicit and dense objectives; for the explicit objective the
        value chosen for the penalty shape in force: 1.25 for
        ``lambda * sqrt(n)`` (the default), 0.12 for ALS-WR
        (``regularization_exponent=1``), 10 for the plain penalty
        (``weighted_regularization=False``), log-linear in between.
    alpha : float, default 1.0
        Confidence scaling of the implicit objective.
    iterations : int, default 15
        Number of ALS epochs (a user step and an item step each).
    objective : {"explicit", "implicit", "dense"}, default "explicit"
        ``"explicit"``: squared error on the observed ratings only.
        ``"implicit"``: Hu, Koren & Volinsky (2008) -- preference 1 on observed
        cells and 0 elsewhere, weighted by a confidence.
        ``"dense"``: every cell counts, missing cells have target 0 (the
        truncated-SVD problem; never densified).
    confidence : {"linear", "alpha_r", "log"}, default "linear"
        Implicit objective only. ``"linear"``: ``c = 1 + alpha r`` (the
        paper, Spark). ``"alpha_r"``: ``c = alpha r``, the convention of the
        ``implicit`` library, for one-to-one comparisons. ``"log"``:
        ``c = 1 + alpha log(1 + r / epsilon)``.
    epsilon : float, default 1.0
        Scale of the log confidence.
    unobserved_weight : float, default 1.0
        Weight ``w0`` of the missing cells in the implicit objective.
    weighted_regularization : bool or None, default None
        Scale ``lambda`` by each row's number of ratings ``n`` raised to
        ``regularization_exponent`` (ALS-WR, Zhou et al. 2008, for exponent
        1).  None: True for the explicit objective, False otherwise.  Every
        objective honours it (``dense`` solves its rows through an
        eigendecomposition of the shared Gram matrix).
    use_bias : bool or None, default None
        Explicit objective only: learn a global mean plus user and item
        biases inside ALS.  None: True for the explicit objective (unless
        ``nonnegative``), False otherwise.
    solver : {"cholesky", "cg"}, default "cholesky"
        Exact Cholesky solve, or ``cg_steps`` conjugate-gradient steps
        warm-started from the previous factors (Takacs et al. 2011).
    cg_steps : int, default 3
        Conjugate-gradient steps per row solve (``solver="cg"``).
    dtype : numpy dtype, default float32
        float32 or float64.
    random_state : int, numpy Generator or None, default 0
        Seed of the initial factors: the same data and parameters give the
        same model.  None draws a fresh seed each time.
    num_threads : int, default 0
        Numba threads used by the kernels; 0 means all cores.
    calculate_training_loss : bool, default True
        Record the training loss after each epoch in ``loss_history``.
    tol : float or None, default None
        Stop early when the relative decrease of the objective falls below
        ``tol``.
    callback : callable or None
        ``callback(epoch, loss, seconds)`` after each epoch (``loss`` is
        ``nan`` when not computed); returning ``True`` stops training.
    duplicates : {"auto", "last", "mean", "sum", "error"}, default "auto"
        Policy for repeated (user, item) pairs in the input.  ``"auto"``:
        ``"sum"`` for implicit feedback (the implicit objective, or data
        read without a rating column): interaction counts add up;
        ``"last"`` otherwise: a rating given twice counts once, the latest
        (by timestamp when the input has them, else by position).
    nonnegative : bool, default False
        Constrain all factors to be ``>= 0`` (as Spark's ``nonnegative``):
        each row solves its least-squares system by NNLS (active set, see
        :mod:`fastals.kernels.nnls`).  Explicit and implicit objectives only, without
        ``use_bias``; ``solver`` is ignored.
    regularization_exponent : float or None, default None
        With ``weighted_regularization``: a row with ``n`` ratings gets the
        penalty ``lambda * n ** regularization_exponent`` (1: ALS-WR; 0: the
        plain penalty).  None: 0.5 for the explicit objective when
        ``weighted_regularization`` is left at None too (the default
        penalty), 1 otherwise (``weighted_regularization=True`` alone means
        ALS-WR, as it always did).  Values other than 1 need the explicit objective
        (they are solved by weighting the row's squared errors by
        ``n ** (1 - exponent)``, an exact rescaling of the same row system).

    Attributes
    ----------
    user_factors, item_factors : ndarray
        C-contiguous ``(n_users, factors)`` and ``(n_items, factors)``.
    user_biases, item_biases, global_mean :
        With ``use_bias=True``; zeros otherwise.
    loss_history : list of float
        Training error after each epoch: the MSE over the observed ratings
        (``explicit``), over all cells (``dense``), or the confidence-weighted
        squared error over all cells divided by the total weight
        (``implicit``).
    objective_history : list of float
        The same plus the regularization term: the quantity ALS minimizes,
        which never rises by more than rounding allows (``NumericalError``
        otherwise; with ``regularization=0`` see :mod:`fastals._guard`).
    solver_report : dict
        Epochs, rows solved with the ridge fallback (``ridge_fallback_rows``)
        and NNLS rows cut at the iteration cap (``nnls_capped_rows``).
    user_ids, item_ids : ndarray or None
        Raw ids of the rows of the factor matrices (None: the row number).
    """

    factors = _Auto()
    regularization = _Auto()
    use_bias = _Auto()
    weighted_regularization = _Auto()
    regularization_exponent = _Auto()

    def __init__(self, factors=None, regularization=None, alpha=1.0,
                 iterations=15, objective="explicit", confidence="linear",
                 epsilon=1.0, unobserved_weight=1.0,
                 weighted_regularization=None, use_bias=None,
                 solver="cholesky", cg_steps=3, dtype=np.float32,
                 random_state=0, num_threads=0,
                 calculate_training_loss=True, tol=None, callback=None,
                 duplicates="auto", nonnegative=False,
                 regularization_exponent=None):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.objective = objective
        self.confidence = confidence
        self.epsilon = epsilon
        self.unobserved_weight = unobserved_weight
        self.weighted_regularization = weighted_regularization
        self.use_bias = use_bias
        self.solver = solver
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self.tol = tol
        self.callback = callback
        self.duplicates = duplicates
        self.nonnegative = nonnegative
        self.regularization_exponent = regularization_exponent

    # ------------------------------------------------------------------ params
    _PARAMS = ("factors", "regularization", "alpha", "iterations", "objective",
               "confidence", "epsilon", "unobserved_weight",
               "weighted_regularization", "use_bias", "solver", "cg_steps",
               "dtype", "random_state", "num_threads",
               "calculate_training_loss", "tol", "callback", "duplicates",
               "nonnegative", "regularization_exponent")

    def get_params(self, deep=True):
        """Hyperparameters as given (scikit-learn convention): None where a
        default that depends on the objective is in force."""
        return {p: self.__dict__.get(f"_{p}_param") if p in AUTO_PARAMS
                else getattr(self, p) for p in self._PARAMS}

    def resolved_params(self):
        """Hyperparameters in force: :meth:`get_params` with every None
        default replaced by the objective's value."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def _auto_default(self, name):
        """The default of ``name`` (one of ``AUTO_PARAMS``) for this objective."""
        explicit = self.objective == "explicit"
        if name == "factors":
            return EXPLICIT_FACTORS if explicit else OTHER_FACTORS
        if name == "use_bias":
            return explicit and not self.nonnegative
        if name == "weighted_regularization":
            return explicit
        if name == "regularization_exponent":
            # The sqrt(n) penalty is part of the default package only:
            # weighted_regularization=True given alone keeps its meaning
            # (ALS-WR, lambda * n).
            given = self.__dict__.get("_weighted_regularization_param")
            return EXPLICIT_EXPONENT if explicit and given is None else 1.0
        if not explicit:
            return OTHER_LAMBDA
        e = self.regularization_exponent if self.weighted_regularization else 0.0
        try:
            return _explicit_lambda(e)
        except (TypeError, ValueError):
            return EXPLICIT_LAMBDA[EXPLICIT_EXPONENT]   # bad exponent: _validated says so

    def __setstate__(self, state):
        # Pickles of fastals before the objective-dependent defaults hold
        # these hyperparameters under their own names.
        for p in AUTO_PARAMS:
            if p in state:
                state[f"_{p}_param"] = state.pop(p)
        self.__dict__.update(state)

    def _validated(self):
        """Check every hyperparameter before any work; return normalized ones."""
        def fail(msg):
            raise InputError(msg)

        k = self.factors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            fail(f"factors must be a positive integer, got {k!r}")
        it = self.iterations
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
            fail(f"iterations must be a non-negative integer, got {it!r}")
        for name in ("regularization", "alpha", "unobserved_weight", "epsilon"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) \
                    or not np.isfinite(v) or v < 0:
                fail(f"{name} must be a finite number >= 0, got {v!r}")
        if self.epsilon == 0:
            fail("epsilon must be > 0")
        if self.objective not in OBJECTIVES:
            fail(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.confidence not in CONFIDENCES:
            fail(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        if self.solver not in SOLVERS:
            fail(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.solver == "cg" and self.objective == "dense":
            fail("solver='cg' is not needed for the dense objective (its shared "
                 "system is solved exactly once per step); use 'cholesky'")
        cs = self.cg_steps
        if isinstance(cs, bool) or not isinstance(cs, (int, np.integer)) or cs < 1:
            fail(f"cg_steps must be a positive integer, got {cs!r}")
        dtype = float_dtype(self.dtype)
        e = self.regularization_exponent
        if isinstance(e, bool) or not isinstance(e, (int, float, np.number)) \
                or not np.isfinite(e) or e < 0:
            fail(f"regularization_exponent must be a finite number >= 0, got {e!r}")
        if e != 1 and self.objective != "explicit":
            fail("regularization_exponent != 1 needs objective='explicit'")
        if self.nonnegative and (self.objective not in ("explicit", "implicit")
                                 or self.use_bias):
            fail("nonnegative=True needs objective 'explicit' or 'implicit' "
                 "and use_bias=False")
        if self.use_bias and self.objective != "explicit":
            fail("use_bias=True needs objective='explicit'")
        nt = self.num_threads
        if isinstance(nt, bool) or not isinstance(nt, (int, np.integer)) or nt < 0:
            fail(f"num_threads must be an integer >= 0, got {nt!r}")
        if self.tol is not None and not (np.isfinite(self.tol) and self.tol >= 0):
            fail(f"tol must be None or a finite number >= 0, got {self.tol!r}")
        if self.callback is not None and not callable(self.callback):
            fail("callback must be callable")
        return int(k), dtype

    # ------------------------------------------------------------------- fit
    def fit(self, X, show_progress=False, columns=None, client=None,
            blocks=None):
        """Learn the factors of ``X``.

        Parameters
        ----------
        X : scipy.sparse matrix, ``(user_ids, item_ids, values)``, :class:`fastals.Ratings`, a DataFrame, or (with ``client``) a ``dask.dataframe.DataFrame``
            Ratings (explicit / dense) or interaction strengths (implicit).
            A sparse matrix is users x items and keeps its row and column
            numbers as ids.  Triplets may use any integer or string ids,
            which are mapped to contiguous indices and kept in
            ``user_ids`` / ``item_ids``.  A pandas or polars DataFrame or a
            pyarrow Table is read in long format, one row per rating, by
            column names (``user``/``userId``, ``item``/``movieId``,
            ``rating``, ``timestamp``, ...; see ``docs/data.md``).  A dense
            2-D array is refused rather than guessed at: pass
            ``scipy.sparse.csr_matrix(X)`` for a users x items matrix.
        show_progress : bool
            Show a progress bar on stderr (tqdm's when installed, else a
            plain one).
        columns : sequence of str, optional
            Tables only: ``(user, item[, rating[, timestamp]])`` column
            names (or positions), overriding the names found by default.
            A Dask dataframe's columns default to ``("user", "item",
            "rating")``.
        client : dask.distributed.Client, optional
            Train on this Dask cluster with the same kernels (blocked ALS,
            see :mod:`fastals.distributed`; extra ``fastals[dask]``).
        blocks : int, optional
            With ``client`` only: the number of blocks per side (default:
            the cluster's number of threads).

        Returns
        -------
        self

        Notes
        -----
        All or nothing: while training the attributes hold the last epoch
        (for ``callback``); if ``fit`` raises (``NumericalError``, an error
        or ``KeyboardInterrupt`` in the callback...) every attribute is
        restored, bitwise (training writes only arrays it created).
        """
        if client is not None:
            from .distributed import fit_on_cluster
            return fit_on_cluster(self, X, client, show_progress,
                                  columns=columns, blocks=blocks)
        if blocks is not None:
            raise InputError("blocks= only with client= (a Dask cluster)")
        k, dtype = self._validated()
        saved = dict(self.__dict__)
        try:
            if is_table(X):
                X = from_table(X, columns)
                columns = None
            csr, user_ids, item_ids = to_csr(
                X, self.duplicates, implicit=self.objective == "implicit",
                columns=columns)
            big = max(-csr.data.min(), csr.data.max())  # no |data| temporary
            if big > np.finfo(dtype).max:
                raise InputError(f"a value ({big:g}) does not fit in {dtype.name}; "
                                 "rescale the values or use dtype=float64")
            self.user_ids, self.item_ids = user_ids, item_ids
            self._fit_csr(csr, k, dtype, show_progress)
            self._remember_training(csr)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        return self

    def _conf_target(self, data, dtype):
        """Per-entry confidence and target of the objective, in ``dtype``.

        Computed in the factors' dtype so that no nnz-sized float64
        temporaries are made beyond the input itself.
        """
        target = data.astype(dtype)
        if self.use_bias:
            target -= dtype.type(self.global_mean)
        if self.objective != "implicit":
            return np.ones(data.size, dtype), target
        r = np.abs(target)
        if self.confidence == "linear":
            r *= dtype.type(self.alpha)
            r += 1
        elif self.confidence == "alpha_r":
            r *= dtype.type(self.alpha)
        else:
            r /= dtype.type(self.epsilon)
            np.log1p(r, out=r)
            r *= dtype.type(self.alpha)
            r += 1
        np.greater(target, 0, out=target)
        return r, target

    def _init_factors(self, n, k, dtype, rng):
        """Starting factors: uniform on ``[0, 0.01)``, as ``implicit`` starts.

        Drawn in float32 (then cast), users first, so that a float32 model
        with ``random_state=s`` starts from exactly the factors implicit's
        ``AlternatingLeastSquares(random_state=s)`` starts from, and float32
        and float64 models from the same point.  Small positive starts rank
        better than unit-norm random rows (the previous choice, as Spark's):
        see ``docs/objectives.md``, "Starting point".
        """
        return (rng.random((n, k), dtype=np.float32) * 0.01).astype(dtype, copy=False)

    def _fit_csr(self, csr, k, dtype, show_progress=False, initial=(None, None)):
        """Train on a canonical CSR; ``initial`` optionally gives the starting
        user and item factors (``(m, k)`` / ``(n, k)`` arrays, or None for a
        random start), as :mod:`fastals.compat.implicit` needs to continue
        training from the factors a model already holds."""
        m, n = csr.shape
        rng = np.random.default_rng(self.random_state)
        self.global_mean = float(csr.data.mean()) if self.use_bias else 0.0
        users = _Side(csr, k, dtype)
        with threads(self.num_threads):  # the transpose is parallel
            items = _Side(transpose_csr(csr), k, dtype)
        for side in (users, items):
            side.conf, side.target = self._conf_target(side.data, dtype)
            side.solve_conf = self._row_conf(side.conf, side.counts)
            del side.data  # the float64 values are not needed past this point
            if self._fused_dense():
                _dense.prepare(side, k)
        width = k + 1 if self.use_bias else k
        # Solved blocks: [factors, bias] per row when use_bias.
        X = self._init_factors(m, width, dtype, rng)
        Y = self._init_factors(n, width, dtype, rng)
        for F, start in zip((X, Y), initial):
            if start is not None:
                F[:, :k] = start
        if self.use_bias:
            X[:, k] = 0
            Y[:, k] = 0
        self.loss_history = []
        self.objective_history = []
        if self._fused_dense():  # whole epochs per kernel call
            return _dense.train(self, users, items, X, Y, k, dtype, show_progress,
                                threads)
        if self.solver == "cg" and not self.nonnegative:
            # set-up, not the first iteration's: the push form's entry
            # layouts of the longest rows (fastals.kernels.cg_push)
            users.cg_push(self._push_above(Y))
            items.cg_push(self._push_above(X))
        GY = self._gram(Y)
        t0 = time.perf_counter()
        epochs = range(self.iterations)
        bar = None
        if show_progress:
            from ._progress import progress_bar
            bar = progress_bar(self.iterations, unit="epoch")
        watch = _guard.Watch(self, users, self._norm(users))
        with threads(self.num_threads):
            for epoch in epochs:
                watch.count(self._half_step(users, Y, GY, X), epoch=True)
                GX = self._gram(X)
                watch.count(self._half_step(items, X, GX, Y))
                GY = self._gram(Y)
                loss = float("nan")
                watch.check_blowup(X, Y, epoch + 1)
                if self.calculate_training_loss or self.tol is not None:
                    loss, objective = self._loss(users, items, X, Y, GX, GY)
                    self.loss_history.append(loss)
                    self.objective_history.append(objective)
                    watch.check_monotone(dtype, epoch + 1)
                if self._epoch_end(epoch, loss, bar, t0, X, Y, k):
                    break
        return self._fit_end(bar, X, Y, k, watch, users, items)

    def _epoch_end(self, epoch, loss, bar, t0, X, Y, k):
        """After epoch ``epoch`` (from 0): store the factors, advance the
        progress bar, call the callback.  True when the fit stops here (the
        callback asked, or ``tol`` is met)."""
        self._store(X, Y, k)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.6f}")
        seconds = time.perf_counter() - t0
        stop = False
        if self.callback is not None:
            stop = bool(self.callback(epoch + 1, loss, seconds))
        return stop or self._converged()

    def _fit_end(self, bar, X, Y, k, watch, users, items):
        """Close the progress bar, store the factors and the solver report."""
        if bar is not None:
            bar.close()
        self._store(X, Y, k)
        self.solver_report = watch.counts
        _guard.warn_solver_counts(self, watch.counts, users, items)
        return self

    def _converged(self):
        """True when ``tol`` is set and the last epoch changed the
        objective by at most ``tol`` relative to the epoch before."""
        if self.tol is None or len(self.objective_history) < 2:
            return False
        prev, cur = self.objective_history[-2:]
        return abs(prev - cur) <= self.tol * abs(prev)

    def _store(self, X, Y, k):
        # New factor arrays (or X, Y written in place): derived caches go.
        self._recommend_cache = {}
        self.user_factors = np.ascontiguousarray(X[:, :k])
        self.item_factors = np.ascontiguousarray(Y[:, :k])
        if self.use_bias:
            self.user_biases = np.ascontiguousarray(X[:, k])
            self.item_biases = np.ascontiguousarray(Y[:, k])
        else:
            self.user_biases = np.zeros(X.shape[0], X.dtype)
            self.item_biases = np.zeros(Y.shape[0], Y.dtype)

    def _design(self, F):
        """The other side as seen by a solve: ``(design, offset)``.

        With biases the other side's bias column becomes a constant 1 (it
        multiplies the solved row's own bias) and its bias goes to the offset.
        """
        if not self.use_bias:
            return F, np.zeros(F.shape[0], F.dtype)
        D = F.copy()
        D[:, -1] = 1
        return D, np.ascontiguousarray(F[:, -1])

    def _w0(self):
        """Weight of the unobserved cells in the objective."""
        if self.objective == "explicit":
            return 0.0
        if self.objective == "dense":
            return 1.0
        return float(self.unobserved_weight)

    def _row_conf(self, conf, counts):
        """Entry weights of the row solves, given each row's entry count.

        ``regularization_exponent = e != 1`` (explicit objective, ``w0 = 0``):
        scaling row ``u``'s weights by ``s = n_u ** (1 - e)`` turns the
        kernel's ``A = s sum y y^T + lam n_u I``, ``b = s sum t y`` into the
        same solution as ``sum y y^T + lam n_u ** e I``, ``b = sum t y``.
        """
        e = float(getattr(self, "regularization_exponent", 1.0))
        if e == 1 or not self.weighted_regularization:
            return conf
        scale = np.maximum(counts, 1).astype(np.float64) ** (1.0 - e)
        if self.objective != "implicit":  # conf is all ones: no float64 temporaries
            return np.repeat(scale.astype(conf.dtype), counts)
        return (conf * np.repeat(scale, counts)).astype(conf.dtype)

    def _fused_dense(self):
        """The dense objective with the plain penalty (:mod:`fastals._dense`)."""
        return self.objective == "dense" and not self.weighted_regularization

    def _gram(self, F):
        """float64 Gram matrix of ``F``, or None where the objective needs
        none."""
        return K.gram(F, _even_bounds(F.shape[0])) if self._w0() else None

    #: Private: rows of more entries than this take the push form of the CG
    #: half-step (:func:`fastals.kernels.solve_cg_split`); None: the rows
    #: the gather form reads in place (:func:`fastals.kernels.push_above`),
    #: negative: none.  The environment variable ``FASTALS_CG_PUSH_ABOVE``
    #: overrides it (for tests and benchmarks).
    _cg_push_above = None

    def _push_above(self, D):
        v = os.environ.get("FASTALS_CG_PUSH_ABOVE") or self._cg_push_above
        if v is None:
            return K.push_above(D.shape[1], D.itemsize, D.shape[0])
        return int(v)

    def _half_step(self, side, Y, GY, X):
        """Overwrite ``X`` (rows of ``side``) given the other side ``Y``.

        ``GY`` is ``Y^T Y`` in float64 (None for the explicit objective).
        Returns ``(counter name, count)`` of the solver's exceptional rows
        (ridge fallbacks, NNLS rows that hit the iteration cap) or
        ``(None, 0)``.
        """
        dtype = side.dtype
        lam = dtype.type(self.regularization)
        D, offset = self._design(Y)
        result = (None, 0)
        if self.objective == "dense" and self.weighted_regularization:
            _dense_wr.half_step(side, D, GY, X, float(self.regularization),
                                _even_bounds)
        else:
            w0 = self._w0()
            G = (GY if w0 else np.zeros((D.shape[1],) * 2)).astype(dtype)
            args = (side.indptr, side.indices, side.solve_conf, side.target, offset,
                    D, G, lam, bool(self.weighted_regularization), dtype.type(w0),
                    X, side.bounds)
            push = None
            if self.solver == "cg" and not self.nonnegative:
                push = side.cg_push(self._push_above(D))
            if push is not None:
                K.solve_cg_split(*args, int(self.cg_steps), push)
            else:
                result = K.solve_rows(args, "nnls" if self.nonnegative else
                                      self.solver, self.cg_steps) or result
        if not np.isfinite(X).all():
            raise NumericalError(
                "training diverged: a factor became NaN or infinite; raise "
                "regularization, lower alpha, or use dtype=float64")
        return result

    def _loss(self, users, items, X, Y, GX, GY):
        """Training error and regularized objective, per unit of cell weight.

        Returns ``(error, objective)``: ``error`` is the weighted squared
        error (for ``dense`` the MSE over all ``n_users * n_items`` cells,
        for ``explicit`` the MSE over the observed ratings); ``objective``
        adds the regularization term and is what ALS never increases.
        """
        D, offset = self._design(Y)
        w0 = float(X.dtype.type(self._w0()))  # as the solves and the kernel see it
        solver = None if self.objective == "dense" or self.nonnegative else self.solver
        err = K.loss_terms(users.indptr, users.indices, users.conf,
                           users.target, offset, X, D, w0, users.bounds, solver)
        if w0:
            err += w0 * float(np.sum(GX * GY))
        lam = self.regularization
        if self.weighted_regularization:
            e = float(self.regularization_exponent)
            wu = users.counts ** e
            wi = items.counts ** e
        else:
            wu = wi = 1.0
        reg = lam * (float(np.sum(wu * np.einsum("ij,ij->i", X, X, dtype=np.float64)))
                     + float(np.sum(wi * np.einsum("ij,ij->i", Y, Y, dtype=np.float64))))
        norm = self._norm(users)
        return float(err / norm), float((err + reg) / norm)

    def _norm(self, users):
        """Total weight of the cells that count (the loss's denominator)."""
        m, n = users.n_rows, users.n_cols
        if self.objective == "explicit":
            norm = float(users.indptr[-1])
        elif self.objective == "dense":
            norm = float(m) * n
        else:
            norm = _guard.dot64(users.conf) + \
                self.unobserved_weight * (float(m) * n - users.indptr[-1])
        return max(norm, 1e-300)

    # ------------------------------------------------------------- persist
    def save(self, path):
        """Write the fitted model to ``path`` atomically (see :mod:`fastals.persist`)."""
        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; raises ``ModelFileError`` if damaged."""
        return load_model(path)


def save_model(model, path, include_training=True):
    """Write a fitted model to ``path`` atomically.

    Parameters
    ----------
    model : FastALS
        A fitted model.
    path : str or path
        Target file, written exactly there (no extension is added).
    include_training : bool, default True
        Also store the training interactions (12 bytes per rating), so that
        the loaded model filters already-liked items in ``recommend``.
    """
    model._require_fitted()
    uf = np.ascontiguousarray(model.user_factors)
    itf = np.ascontiguousarray(model.item_factors)
    dtype = uf.dtype
    arrays = {
        "user_factors": uf,
        "item_factors": itf.astype(dtype, copy=False),
        "user_biases": np.asarray(model.user_biases, dtype),
        "item_biases": np.asarray(model.item_biases, dtype),
        "global_mean": np.float64(getattr(model, "global_mean", 0.0)),
        "loss_history": np.asarray(getattr(model, "loss_history", []) or [], np.float64),
        "objective_history": np.asarray(getattr(model, "objective_history", []) or [],
                                        np.float64),
        "user_ids": getattr(model, "user_ids", None),
        "item_ids": getattr(model, "item_ids", None),
    }
    rng = getattr(model, "_rating_range", None)
    if rng is not None:
        arrays["rating_range"] = np.asarray(rng, np.float64)
    ui = getattr(model, "_user_items", None)
    if include_training and ui is not None and ui.shape == (uf.shape[0], itf.shape[0]):
        arrays["train_indptr"] = np.asarray(ui.indptr, np.int64)
        arrays["train_indices"] = np.asarray(ui.indices, np.int32)
        arrays["train_data"] = np.asarray(ui.data, np.float64)
    if hasattr(model, "_extra_arrays"):  # another estimator's own arrays
        arrays.update(model._extra_arrays())
    # The values in force, not None placeholders: a model file keeps the
    # hyperparameters it was trained with even if a later fastals changes
    # the objective-dependent defaults.
    params = model.resolved_params() if hasattr(model, "resolved_params") \
        else model.get_params()
    persist.save_arrays(path, params, arrays, __version__,
                        model_class=type(model).__name__)


def load_model(path):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or path

    Returns
    -------
    FastALS
        With the saved hyperparameters, factors, biases, id mappings and
        loss history (``callback`` is not saved and is None).

    Raises
    ------
    ModelFileError
        Missing, empty, truncated, corrupted or foreign file, or one written
        by a newer fastals.
    """
    params, state = persist.load_arrays(
        path, {name: cls._PARAMS for name, cls in MODEL_CLASSES.items()})
    try:
        model = MODEL_CLASSES[state["model_class"]](**params)
        model._validated()
    except Exception as exc:
        raise persist.bad_params(os.fspath(path), exc) from None
    for key in ("user_factors", "item_factors", "user_biases", "item_biases",
                "global_mean", "loss_history", "objective_history", "user_ids",
                "item_ids"):
        setattr(model, key, state[key])
    if state["train"] is not None:
        model._remember_training(state["train"])
    if state["rating_range"] is not None:
        model._rating_range = state["rating_range"]
    if hasattr(model, "_load_extra"):
        problem = model._load_extra(state["extra"])
        if problem:
            raise persist.damaged(os.fspath(path), problem)
    return model


#: Estimators whose files :func:`load_model` reads, by the class name saved
#: in the file; :mod:`fastals.bayes` adds ``BayesianALS``.
MODEL_CLASSES = {"FastALS": FastALS}
