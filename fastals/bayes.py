"""The :class:`BayesianALS` estimator: Gibbs sampling for matrix factorization.

The model (Salakhutdinov & Mnih 2008, "Bayesian probabilistic matrix
factorization using Markov chain Monte Carlo", with biases as in Rendle's
libFM MCMC)::

    r_ui ~ N(mu + b_u + c_i + x_u . y_i, 1 / alpha)

Each user's row ``[x_u, b_u]`` has a Gaussian prior whose mean and precision
are themselves drawn from a hyperprior, and so do the items' rows ``[y_i,
c_i]``; ``alpha`` has a Gamma prior and ``mu`` a wide Gaussian one.  All of
them are sampled, so nothing is tuned.  Hyperpriors (``prior``):

* ``"wishart"`` (default): Normal-Wishart on the whole row ``[x, b]``, as
  BPMF: ``Lambda ~ W(I, w)``, ``m ~ N(0, (2 Lambda)^-1)``, ``w = factors + 1``.
* ``"gamma"``: one Normal-Gamma per coordinate, as libFM and myFM:
  ``lambda_f ~ Gamma(1, 1)``, ``m_f ~ N(0, 1 / lambda_f)``.

A sweep draws ``mu`` and ``alpha``, the users' hyperparameters, every user
row, (with ``implicit_feedback``, the default: the hyperparameters of the
implicit item rows ``z_j`` and every ``z_j``, :mod:`fastals._bayes_implicit`)
the items' hyperparameters and every item row.  The row draws are the
explicit ALS row systems plus noise (:mod:`fastals.kernels.gibbs`).

Predictions are posterior means: the average over the kept sweeps (after
``burn_in``) of each sample's prediction.  The kept samples are stored
side by side as one wide factor matrix per side, the users' scaled by
``1 / n_kept``, so one dot product is the average, and the same top-k
kernels as :class:`~fastals.FastALS` serve ``recommend``.  The user side
of each kept sample is Rao-Blackwellized: the users' conditional posterior
means given the item rows of that sweep (exact expectations instead of
draws: the same average, with less Monte Carlo noise; Gelfand & Smith
1990).  The users' draws are kept as well, for the predictive spread.
"""

import time

import numpy as np

from ._input import kernel_arrays, to_csr, transpose_csr
from .exceptions import FastALSError, InputError, NumericalError
from .kernels import gibbs
from .kernels.chunks import chunk_bounds
from ._bayes_implicit import ImplicitTerm
from ._params import ParamsMixin, float_dtype
from .model import MODEL_CLASSES, load_model, save_model, threads
from .recommend import RecommenderMixin

PRIORS = ("wishart", "gamma")

# Hyperprior constants (BPMF / libFM defaults, in units of the ratings).
_NOISE_SHAPE = 1.0       # alpha ~ Gamma(shape, rate)
_NOISE_RATE = 1.0
_MEAN_PRECISION = 1e-2   # mu ~ N(0, 1 / _MEAN_PRECISION)
_BETA0 = 2.0             # Normal-Wishart: m ~ N(0, (BETA0 Lambda)^-1)
_WISHART_SCALE = 1.0     # Lambda ~ W(_WISHART_SCALE I, w + _WISHART_DOF)
_WISHART_DOF = 0
_GAMMA_SHAPE = 1.0       # Normal-Gamma: lambda ~ Gamma(shape, rate)
_GAMMA_RATE = 1.0
_GAMMA_BETA0 = 1.0       # m ~ N(0, 1 / (GAMMA_BETA0 lambda))


class BayesianALS(ParamsMixin, RecommenderMixin):
    """Bayesian matrix factorization with biases, by Gibbs sampling.

    Parameters
    ----------
    factors : int, default 12
        Number of latent factors ``k``.
    iterations : int, default 100
        Gibbs sweeps (each draws every user row and every item row once);
        100 as in libFM and myFM.  More sweeps give a slightly better
        posterior mean (200: about 0.001 lower RMSE on MovieLens-100k) in
        proportionally more time.
    burn_in : int, default 5
        Sweeps discarded before samples are kept; ``iterations - burn_in``
        samples are averaged.
    prior : {"wishart", "gamma"}, default "wishart"
        Hyperprior of the rows' prior (see the module documentation).
    init_std : float, default 0.1
        Standard deviation of the initial factors.
    dtype : numpy dtype, default float32
        Of the factors; the row systems are factored in float64.
    random_state : int, numpy Generator or None
        Seed.  The result depends on it only, not on ``num_threads``.
    num_threads : int, default 0
        Numba threads; 0 means all cores.
    calculate_training_loss : bool, default True
        Record the training RMSE after each sweep in ``loss_history``.
    callback : callable or None
        ``callback(sweep, rmse, seconds)`` after each sweep; returning
        ``True`` stops sampling (the samples kept so far are used).
    duplicates : {"sum", "mean", "last", "error"}, default "sum"
        Policy for repeated (user, item) pairs in the input.
    implicit_feedback : bool, default True
        Also model which items each user rated (SVD++ style): the user
        factors get ``|N(u)|^-1/2 sum_{j in N(u)} z_j`` added, with one
        vector ``z_j`` per item under the same kind of hyperprior (see
        :mod:`fastals.kernels.gibbs_implicit`).  ``N(u)`` is the user's
        training items.  ``user_factors`` then hold the effective user
        factors.  Chosen on validation splits of MovieLens-100k (about
        0.003 lower RMSE, for 30-60 % more time per sweep).

    Attributes
    ----------
    user_factors : ndarray ``(n_users, factors * n_kept)``
        Per kept sweep, the users' conditional mean factors given that
        sweep's item rows (with ``implicit_feedback``: plus that sweep's
        ``h_u``), side by side and divided by ``n_kept``:
        ``user_factors[u] . item_factors[i]`` is the posterior mean of
        ``x_u . y_i``.
    item_factors : ndarray ``(n_items, factors * n_kept)``
        The item factor samples side by side (those the users were drawn
        against).
    user_biases, item_biases, global_mean :
        Posterior means of ``b_u``, ``c_i`` and ``mu``.
    user_factor_samples : ndarray ``(n_users, factors * n_kept)``
        The users' factor draws (not scaled), for ``return_std``.
    user_bias_samples, item_bias_samples : ndarray ``(n, n_kept)``
        Bias draws.
    global_mean_samples, noise_precision_samples : ndarray ``(n_kept,)``
    n_kept : int
        Number of samples averaged.
    loss_history : list of float
        Training RMSE after each sweep: of the current sample during
        burn-in, then of the posterior mean of the samples kept so far.
    noise_history : list of float
        The sampled noise standard deviation ``alpha^-1/2`` of each sweep.
    user_ids, item_ids : ndarray or None
        Raw ids of the rows (None: the row number).

    Notes
    -----
    Memory: the kept samples take ``(2 n_users + n_items) * factors *
    n_kept`` numbers; for large data lower ``iterations - burn_in``.

    ``recommend``, ``similar_items`` and ``predict`` work as for
    :class:`~fastals.FastALS` (``similar_items`` compares the concatenated
    samples by cosine); the fold-in methods (``recalculate_user``,
    ``partial_fit_users``, ...) are not available.
    """

    def __init__(self, factors=12, iterations=100, burn_in=5, prior="wishart",
                 init_std=0.1, dtype=np.float32, random_state=None,
                 num_threads=0, calculate_training_loss=True, callback=None,
                 duplicates="sum", implicit_feedback=True):
        self.factors = factors
        self.iterations = iterations
        self.burn_in = burn_in
        self.prior = prior
        self.init_std = init_std
        self.dtype = dtype
        self.random_state = random_state
        self.num_threads = num_threads
        self.calculate_training_loss = calculate_training_loss
        self.callback = callback
        self.duplicates = duplicates
        self.implicit_feedback = implicit_feedback
        # Read by RecommenderMixin: scores include the biases, and
        # predictions are clipped to the training range.
        self.use_bias = True
        self.objective = "explicit"

    _PARAMS = ("factors", "iterations", "burn_in", "prior", "init_std", "dtype",
               "random_state", "num_threads", "calculate_training_loss",
               "callback", "duplicates", "implicit_feedback")

    def _require_fitted(self):
        if not hasattr(self, "user_factors"):
            raise FastALSError(
                "this BayesianALS model is not fitted yet; call fit() first")

    def _validated(self):
        """Check every hyperparameter before any work; return ``(k, dtype)``."""
        def fail(msg):
            raise InputError(msg)

        def integer(v):
            return not isinstance(v, bool) and isinstance(v, (int, np.integer))

        k = self.factors
        if not integer(k) or k <= 0:
            fail(f"factors must be a positive integer, got {k!r}")
        if not integer(self.iterations) or self.iterations < 1:
            fail(f"iterations must be a positive integer, got {self.iterations!r}")
        if not integer(self.burn_in) or self.burn_in < 0:
            fail(f"burn_in must be a non-negative integer, got {self.burn_in!r}")
        if self.burn_in >= self.iterations:
            fail(f"burn_in ({self.burn_in}) must be smaller than iterations "
                 f"({self.iterations}): no sample would be kept")
        if self.prior not in PRIORS:
            fail(f"prior must be one of {PRIORS}, got {self.prior!r}")
        s = self.init_std
        if isinstance(s, bool) or not isinstance(s, (int, float, np.number)) \
                or not np.isfinite(s) or s < 0:
            fail(f"init_std must be a finite number >= 0, got {s!r}")
        dtype = float_dtype(self.dtype)
        nt = self.num_threads
        if not integer(nt) or nt < 0:
            fail(f"num_threads must be an integer >= 0, got {nt!r}")
        rs = self.random_state
        if rs is not None and not isinstance(rs, np.random.Generator) \
                and not (integer(rs) and rs >= 0):
            fail("random_state must be None, a non-negative integer or a "
                 f"numpy Generator, got {rs!r}")
        if not isinstance(self.implicit_feedback, (bool, np.bool_)):
            fail("implicit_feedback must be True or False, got "
                 f"{self.implicit_feedback!r}")
        if self.callback is not None and not callable(self.callback):
            fail("callback must be callable")
        return int(k), dtype

    def _seed(self):
        rs = self.random_state
        if rs is None:
            return int(np.random.SeedSequence().entropy) & (2**63 - 1)
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**63))
        return int(rs)

    # ------------------------------------------------------------------- fit
    def fit(self, X, show_progress=False):
        """Sample the posterior of the model given the ratings ``X``.

        Parameters
        ----------
        X : scipy.sparse matrix (users x items), ``(user_ids, item_ids, values)`` or :class:`fastals.Ratings`
            Ratings, with ids as for :meth:`fastals.FastALS.fit`.
        show_progress : bool
            Show a progress bar (needs ``tqdm``).

        Returns
        -------
        self
        """
        k, dtype = self._validated()
        csr, self.user_ids, self.item_ids = to_csr(X, self.duplicates)
        big = np.abs(csr.data).max()
        if big > np.finfo(dtype).max:
            raise InputError(f"a value ({big:g}) does not fit in {dtype.name}; "
                             "rescale the values or use dtype=float64")
        self._sample(csr, k, dtype, show_progress)
        self._remember_training(csr)
        return self

    def _sample(self, csr, k, dtype, show_progress):
        seed = self._seed()
        w = k + 1
        users = _Side(csr, w, dtype)
        items = _Side(transpose_csr(csr), w, dtype)
        m, n = users.n_rows, items.n_rows
        nnz = csr.nnz
        rng = np.random.default_rng([seed, 2**32])
        U = np.zeros((m, w), dtype)
        V = np.zeros((n, w), dtype)
        U[:, :k] = self.init_std * rng.standard_normal((m, k))
        V[:, :k] = self.init_std * rng.standard_normal((n, k))
        mu = float(csr.data.mean())
        alpha = 1.0

        kept_max = self.iterations - self.burn_in
        Us = np.empty((m, k * kept_max), dtype)   # users' conditional means
        Ur = np.empty((m, k * kept_max), dtype)   # users' draws
        Vs = np.empty((n, k * kept_max), dtype)
        ub = np.empty((m, kept_max), dtype)       # users' bias draws
        ub_mean = np.zeros(m)                     # sum of their conditional means
        ib = np.empty((n, kept_max), dtype)
        mus = np.empty(kept_max)
        alphas = np.empty(kept_max)
        # per rating, the sum of the kept samples' predictions (in the items'
        # CSR order; only for the training log): in the factors' dtype, half
        # the memory traffic of float64 in float32, where it moves the logged
        # RMSE by about 1e-9
        pred_sum = np.zeros(nnz, dtype)
        stats = np.empty((n, 3))       # per item: residual sums, see gibbs
        M = np.empty((m, w), dtype)
        no_means = np.empty((0, w), dtype)
        # the users' half-sweep keeps no statistics; its arguments have the
        # items' types (pred_sum in the factors' dtype), so both half-sweeps
        # share one compiled kernel
        no_stats = (np.empty(0, dtype), 0, False, np.empty((0, 3)))
        # the design of each side, rewritten in place every sweep
        wp = -(-w // gibbs.LANES) * gibbs.LANES   # padded: see gibbs.sample_rows
        # on cache lines: a 16-column float32 row is one line
        Du, ou = gibbs.aligned_zeros((m, wp), dtype), np.empty(m, dtype)
        Dv, ov = gibbs.aligned_zeros((n, wp), dtype), np.empty(n, dtype)
        no_shift = np.zeros((0, wp), dtype)     # targets not shifted
        # scratch of the hyperparameter draws: moments, prior, random numbers
        scratch = (np.empty(w), np.empty((w, w)), np.empty((w, w)), np.empty(w))
        prior = _Prior(self.prior, w)
        ru, rv = np.empty(prior.n_random), np.empty(prior.n_random)
        # implicit feedback: U holds [x_u, b_u], E the effective rows
        # [x_u + h_u, b_u] that the items see (see _bayes_implicit)
        imp = ImplicitTerm(users, items, k, wp, dtype) if self.implicit_feedback \
            else None
        E = np.empty_like(U) if imp else U
        self.loss_history = []
        self.noise_history = []
        kept = 0
        bar = _progress(show_progress, self.iterations)
        t0 = time.perf_counter()
        with threads(self.num_threads):
            gibbs.design(U, mu, Du, ou)
            gibbs.residual_pass(items.indptr, items.indices, items.target, ou,
                                V, Du, pred_sum, 0, False, stats)
            for sweep in range(self.iterations):
                # the random numbers of the hyperparameters, in the order of
                # the draws: mu, alpha, the users' prior, the items' prior
                hr = np.random.default_rng([seed, sweep])
                z_mu = hr.standard_normal()
                g_alpha = hr.standard_gamma(_NOISE_SHAPE + 0.5 * nnz)
                prior.randoms(hr, m, ru)
                prior.randoms(hr, n, rv)
                mu, alpha = gibbs.mean_noise(stats, nnz, mu, alpha, z_mu, g_alpha,
                                             _MEAN_PRECISION, _NOISE_RATE)
                if imp:
                    imp.prepare(U, E)
                failed = gibbs.half_sweep(
                    users.indptr, users.indices, users.target, users.bounds, V, mu,
                    Dv, ov, U, alpha, prior.wishart, prior.hyper, ru, *scratch,
                    imp.H if imp else no_shift, _key(seed, sweep, 0), M, *no_stats)
                if imp:
                    imp.effective(U, M, E)
                keep = sweep >= self.burn_in
                if keep:
                    # Rao-Blackwellized: the users' conditional means given
                    # the item rows they were drawn against (Dv, ov).
                    gibbs.keep_sample(kept, M, E, Dv, ov, mu, Us, Ur, Vs, ub,
                                      ub_mean, ib)
                    mus[kept] = mu
                    alphas[kept] = alpha
                    kept += 1
                # the implicit rows, drawn under the users' prior of this sweep
                # (scratch[2:]: its precision and precision times mean)
                if imp and not imp.sample(U, scratch[2], scratch[3], self._hyper,
                                          hr, seed, sweep):
                    raise NumericalError(
                        "sampling diverged: an implicit item row's posterior "
                        "precision is not positive definite; try dtype=float64")
                # the items' draw also sums the residuals of the new sample
                failed += gibbs.half_sweep(
                    items.indptr, items.indices, items.target, items.bounds, E, mu,
                    Du, ou, V, alpha, prior.wishart, prior.hyper, rv, *scratch,
                    no_shift, _key(seed, sweep, 1), no_means, pred_sum, kept, keep,
                    stats)
                if failed:  # counts non-finite draws too
                    raise NumericalError(
                        "sampling diverged: a row's posterior precision is not "
                        "positive definite or a factor is not finite; try "
                        "dtype=float64")
                col = 2 if kept else 1
                rmse = float(np.sqrt(stats[:, col].sum() / nnz))
                if self.calculate_training_loss:
                    self.loss_history.append(rmse)
                self.noise_history.append(float(alpha ** -0.5))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(rmse=f"{rmse:.4f}")
                stop = False
                if self.callback is not None:
                    stop = bool(self.callback(sweep + 1, rmse,
                                              time.perf_counter() - t0))
                if stop:
                    break
        if bar is not None:
            bar.close()
        if not kept:  # stopped during burn-in: keep the last sample
            Us[:, :k], Ur[:, :k], Vs[:, :k] = E[:, :k], E[:, :k], V[:, :k]
            ub[:, 0], ib[:, 0], mus[0], alphas[0] = E[:, k], V[:, k], mu, alpha
            ub_mean[:] = E[:, k]
            kept = 1
        self._set_samples(Us[:, :k * kept], Ur[:, :k * kept], Vs[:, :k * kept],
                          ub_mean / kept, ub[:, :kept],
                          ib[:, :kept], mus[:kept], alphas[:kept])

    def _hyper(self, F, rng, moments):
        """Draw the prior ``(precision P, P @ mean)`` of the rows ``F`` with
        random numbers from ``rng`` (``moments``: scratch for their sums); the
        implicit rows' hyperparameters (see :mod:`fastals._bayes_implicit`)."""
        gibbs.row_moments(F, *moments)
        return _prior_draw(self.prior, F.shape[0], *moments, rng)

    def _set_samples(self, Us, Ur, Vs, user_biases, ub, ib, mus, alphas):
        """Store the kept samples and the posterior means built from them."""
        kept = mus.size
        Us = np.ascontiguousarray(Us)
        Us /= Us.dtype.type(kept)
        dt = Us.dtype
        self.user_factors = Us
        self.item_factors = np.ascontiguousarray(Vs)
        self.user_factor_samples = np.ascontiguousarray(Ur)
        self.user_bias_samples = np.ascontiguousarray(ub)
        self.item_bias_samples = np.ascontiguousarray(ib)
        self.global_mean_samples = np.asarray(mus, np.float64)
        self.noise_precision_samples = np.asarray(alphas, np.float64)
        self.n_kept = kept
        self.user_biases = np.asarray(user_biases, dt)
        self.item_biases = ib.mean(axis=1, dtype=np.float64).astype(dt)
        self.global_mean = float(self.global_mean_samples.mean())
        self.__dict__.setdefault("_recommend_cache", {}).clear()

    # ------------------------------------------------------------- predict
    def predict(self, users, items, unknown="raise", return_std=False):
        """Posterior mean rating of ``(user, item)`` pairs, and its spread.

        Parameters
        ----------
        users, items : raw ids, scalars or array-likes broadcast together
        unknown : {"raise", "default"}, default "raise"
            ``"default"``: an unknown user or item gets zero factors and zero
            bias, so the prediction falls back to the known parts.
        return_std : bool, default False
            Also return the standard deviation of the posterior predictive
            distribution of the rating: the spread of the kept samples'
            predictions (from the draws) and the sampled noise,
            ``sqrt(var_s(p_s) + mean_s(1 / alpha_s))`` (not clipped).

        Returns
        -------
        mean : float or ndarray of float64
            Clipped to the range of the training ratings, as ``FastALS``.
        std : float or ndarray of float64
            With ``return_std``.
        """
        mean = super().predict(users, items, unknown)
        if not return_std:
            return mean
        u, i, shape = self._pair_indices(users, items, unknown)
        S = self.n_kept
        k = self.user_factors.shape[1] // S
        var = np.empty(u.size)
        noise = float(np.mean(1.0 / self.noise_precision_samples))
        step = max(1, (1 << 22) // max(1, S * k))
        for a in range(0, u.size, step):
            uu, ii = u[a:a + step], i[a:a + step]
            ku, ki = uu >= 0, ii >= 0
            X = self.user_factor_samples[np.maximum(uu, 0)].reshape(-1, S, k)
            Y = self.item_factors[np.maximum(ii, 0)].reshape(-1, S, k)
            p = np.einsum("psk,psk->ps", X, Y, dtype=np.float64)
            p *= (ku & ki)[:, None]
            p += np.where(ku[:, None], self.user_bias_samples[np.maximum(uu, 0)], 0)
            p += np.where(ki[:, None], self.item_bias_samples[np.maximum(ii, 0)], 0)
            p += self.global_mean_samples[None, :]
            var[a:a + step] = p.var(axis=1)
        std = np.sqrt(var + noise).reshape(shape)
        return mean, (float(std) if std.ndim == 0 else std)

    def _pair_dots(self, u, i):
        """The posterior mean of ``x_u . y_i`` per pair, by a kernel (the
        mixin's gather would copy ``factors * n_kept`` numbers per pair)."""
        out = np.empty(u.size)
        with threads(self.num_threads):
            gibbs.pair_dots(self.user_factors, self.item_factors,
                            np.ascontiguousarray(u, np.int64),
                            np.ascontiguousarray(i, np.int64), out)
        return out

    def _fold_in(self, side, csr):
        raise FastALSError(
            "BayesianALS does not fold in new users or items (recalculate_*, "
            "partial_fit_*); fit the model again with the new ratings")

    # ------------------------------------------------------------- persist
    def save(self, path):
        """Write the fitted model to ``path`` atomically (see :mod:`fastals.persist`)."""
        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; raises ``ModelFileError`` if damaged."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise InputError(f"{path} holds a {type(model).__name__}, not a "
                             f"{cls.__name__}; use fastals.load_model")
        return model

    _SAMPLE_ARRAYS = ("user_factor_samples", "user_bias_samples", "item_bias_samples",
                      "global_mean_samples", "noise_precision_samples")

    def _extra_arrays(self):
        """Arrays saved beside the common ones (see :mod:`fastals.persist`)."""
        return {key: getattr(self, key) for key in self._SAMPLE_ARRAYS}

    def _load_extra(self, arrays):
        """Check and set the arrays of :meth:`_extra_arrays`; returns an error
        message, or None when they are consistent."""
        missing = [key for key in self._SAMPLE_ARRAYS if key not in arrays]
        if missing:
            return f"missing {', '.join(missing)}"
        mus = arrays["global_mean_samples"]
        kept = mus.shape[0] if mus.ndim == 1 else 0
        m, width = self.user_factors.shape
        n = self.item_factors.shape[0]
        dt = self.user_factors.dtype
        if kept < 1 or width != self.factors * kept:
            return (f"factor arrays have {width} columns, expected factors "
                    f"({self.factors}) times the kept samples ({kept})")
        want = {"user_factor_samples": ((m, width), dt),
                "user_bias_samples": ((m, kept), dt),
                "item_bias_samples": ((n, kept), dt),
                "global_mean_samples": ((kept,), np.float64),
                "noise_precision_samples": ((kept,), np.float64)}
        for key, (shape, dtype) in want.items():
            a = arrays[key]
            if a.shape != shape or a.dtype != dtype or not np.isfinite(a).all():
                return f"{key} is {a.dtype}{a.shape}, expected finite {np.dtype(dtype)}{shape}"
        if not (arrays["noise_precision_samples"] > 0).all():
            return "noise_precision_samples must be > 0"
        for key in self._SAMPLE_ARRAYS:
            setattr(self, key, np.ascontiguousarray(arrays[key]))
        self.n_kept = kept
        return None


MODEL_CLASSES["BayesianALS"] = BayesianALS  # fastals.load_model reads its files


class _Side:
    """Kernel-ready arrays for one orientation of the ratings matrix."""

    def __init__(self, csr, w, dtype):
        self.n_rows = csr.shape[0]
        self.indptr, self.indices = kernel_arrays(csr)
        self.target = csr.data.astype(dtype)
        self.bounds = _lane_bounds(self.indptr, w)


def _lane_bounds(indptr, w):
    """Chunks of similar cost for :func:`gibbs.sample_rows`, with boundaries
    on multiples of ``gibbs.LANES`` (rows are drawn ``LANES`` at a time) and
    about ``8 * LANES`` rows each, at most 256 (fixed by the data, not the
    thread count: each row's draw does not depend on the chunks anyway)."""
    n = indptr.size - 1
    n_chunks = max(1, min(256, n // (8 * gibbs.LANES)))
    b = chunk_bounds(indptr, w, n_chunks)
    b = np.minimum(-(-b // gibbs.LANES) * gibbs.LANES, n)
    return np.unique(b)


def _key(seed, sweep, which):
    """Stream key of one half-sweep (:func:`gibbs.stream_key`)."""
    return np.uint64(gibbs.stream_key(seed, sweep, which))


class _Prior:
    """The rows' hyperprior: its constants for :func:`gibbs.half_sweep` and
    the random numbers it draws from a numpy Generator (read from the module
    constants at each fit, so that a script may change them)."""

    def __init__(self, name, w):
        self.w = w
        self.wishart = name == "wishart"
        if self.wishart:
            self.hyper = np.array([_BETA0, 1.0 / _WISHART_SCALE])
            self.n_random = w + w * (w - 1) // 2 + w
            self.dof = w + _WISHART_DOF - np.arange(w)
        else:
            self.hyper = np.array([_GAMMA_RATE, _GAMMA_BETA0])
            self.n_random = 2 * w

    def randoms(self, rng, N, out):
        """Fill ``out`` with the random numbers of one draw for ``N`` rows:
        Bartlett's chi-squares ``chi^2(w + dof + N - j)`` then the normals of
        ``A``'s strict lower part and of the mean (Normal-Wishart), or
        ``w`` standard gammas of shape ``a0 + N / 2`` then ``w`` normals
        (Normal-Gamma)."""
        w = self.w
        if self.wishart:
            out[:w] = rng.chisquare(self.dof + N)
        else:
            out[:w] = rng.standard_gamma(_GAMMA_SHAPE + 0.5 * N, w)
        rng.standard_normal(out=out[w:])


def _sample_mean_noise(stats, nnz, mu, alpha, rng):
    """Draw ``mu`` then ``alpha`` given the residuals of the current sample
    (:func:`gibbs.mean_noise`, with its random numbers from ``rng``).

    ``stats[:, 0]`` and ``stats[:, 1]`` hold per-row sums of the residuals
    ``e = r - prediction`` and of ``e^2`` under the current ``mu``.
    """
    z = rng.standard_normal()
    g = rng.standard_gamma(_NOISE_SHAPE + 0.5 * nnz)
    return gibbs.mean_noise(np.ascontiguousarray(stats, np.float64), nnz, mu, alpha,
                            z, g, _MEAN_PRECISION, _NOISE_RATE)


def _moments(F):
    F = np.ascontiguousarray(F)
    w = F.shape[1]
    s, G = np.empty(w), np.empty((w, w))
    gibbs.row_moments(F, s, G)
    return F.shape[0], s, G


def _prior_draw(name, N, s, G, rng):
    w = s.size
    prior = _Prior(name, w)
    rand = np.empty(prior.n_random)
    prior.randoms(rng, N, rand)
    P, Pm = np.empty((w, w)), np.empty(w)
    if prior.wishart:
        nl = w * (w - 1) // 2
        gibbs.normal_wishart(float(N), s, G, prior.hyper[0], prior.hyper[1],
                             rand[:w], rand[w:w + nl], rand[w + nl:], P, Pm)
    else:
        gibbs.normal_gamma(float(N), s, G, prior.hyper[0], prior.hyper[1],
                           rand[:w], rand[w:], P, Pm)
    return P, Pm


def _normal_wishart(F, rng):
    """Draw ``(Lambda, Lambda m)`` from the Normal-Wishart posterior of rows ``F``.

    Prior: ``Lambda ~ W(I, w)``, ``m | Lambda ~ N(0, (beta0 Lambda)^-1)``.
    """
    return _normal_wishart_moments(*_moments(F), rng)


def _normal_wishart_moments(N, s, G, rng):
    """:func:`_normal_wishart` of ``N`` rows whose sum is ``s`` and sum of
    outer products ``G`` (:func:`gibbs.row_moments`): the random numbers
    from ``rng`` (:meth:`_Prior.randoms`), the algebra in
    :func:`gibbs.normal_wishart`, as a fit draws them."""
    return _prior_draw("wishart", N, s, G, rng)


def _normal_gamma(F, rng):
    """Per coordinate: ``lambda_f ~ Gamma``, ``m_f | lambda_f ~ Normal`` posteriors."""
    return _normal_gamma_moments(*_moments(F), rng)


def _normal_gamma_moments(N, s, G, rng):
    """:func:`_normal_gamma` from the moments (see :func:`_normal_wishart_moments`)."""
    return _prior_draw("gamma", N, s, G, rng)


def _progress(show, total):
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="sweep")
