"""Gibbs-sampling kernels for Bayesian matrix factorization.

Nothing here validates input: :mod:`fastals.bayes` prepares the arrays.

Random numbers
--------------
Every row draws from its own counter-based stream, so a sample does not
depend on which thread draws it or in what order: the ``j``-th 64-bit word
of row ``u`` in a sweep is ``mix(row_key(key, u) + (j + 1) * GOLDEN)``, with
``mix`` the SplitMix64 finalizer (Steele, Lea & Flood 2014) and ``key``
derived from ``(seed, sweep, side)`` by :func:`stream_key`.  Two words give
two uniforms in (0, 1) and, by Box-Muller, two standard normals.

Row update
----------
For row ``u`` with entries ``(i, r_ui)``, the other side's design rows
``d_i`` and offsets ``o_i``, noise precision ``alpha`` and a Gaussian prior
with precision ``P`` and mean ``m0``, the conditional posterior of the row
is Gaussian with::

    A_u = alpha * sum_i d_i d_i^T + P          (precision)
    b_u = alpha * sum_i (r_ui - o_i) d_i + P m0
    mean = A_u^{-1} b_u

A draw is ``mean + U^{-1} z``, ``A_u = U^T U`` (Cholesky, ``U`` upper,
factored and solved by the ALS row solver's :func:`.rows._factor_upper`
and :func:`.rows._solve_upper`),
``z ~ N(0, I)``: its covariance is ``U^{-1} U^{-T} = A_u^{-1}``.  This is the
explicit ALS row system (``lam I`` replaced by the prior precision) plus
noise; Salakhutdinov & Mnih (2008), "Bayesian probabilistic matrix
factorization using Markov chain Monte Carlo".
"""

import numpy as np
from numba import njit, prange

from .llvm import FASTMATH
from .rows import _factor_upper, _solve_upper  # the ALS row solve's Cholesky

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_PI = 2.0 * np.pi


@njit(cache=True, inline="always")
def _mix(z):
    """SplitMix64 finalizer: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def stream_key(seed, sweep, side):
    """Key of one half-sweep's streams from ``(seed, sweep, side)``."""
    k = _mix(np.uint64(seed) + _GOLDEN)
    k = _mix(k ^ _mix(np.uint64(sweep) * np.uint64(4) + np.uint64(side)))
    return k


@njit(cache=True, inline="always")
def _row_key(key, row):
    return _mix(key ^ _mix(np.uint64(row) + _GOLDEN))


@njit(cache=True, inline="always")
def _uniform(rk, j):
    """The ``j``-th uniform in (0, 1) of the stream ``rk`` (53 random bits)."""
    h = _mix(rk + (np.uint64(j) + np.uint64(1)) * _GOLDEN)
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _normals(rk, z):
    """Fill ``z`` with standard normals from the row stream ``rk`` (Box-Muller)."""
    n = z.size
    for p in range((n + 1) // 2):
        u1 = _uniform(rk, 2 * p)
        u2 = _uniform(rk, 2 * p + 1)
        r = np.sqrt(-2.0 * np.log(u1))
        z[2 * p] = r * np.cos(_TWO_PI * u2)
        if 2 * p + 1 < n:
            z[2 * p + 1] = r * np.sin(_TWO_PI * u2)


@njit(cache=True)
def row_normals(key, row, n):
    """The ``n`` standard normals that row ``row`` draws under ``key`` (for tests)."""
    z = np.empty(n, np.float64)
    _normals(_row_key(key, row), z)
    return z


@njit(cache=True, fastmath=FASTMATH)
def _sample_row(A, b, z, w, x):
    """``x = A^{-1} b + U^{-1} z`` for ``A = U^T U`` already factored.

    ``b`` is overwritten by the mean ``A^{-1} b``, ``z`` by ``U^{-1} z``.
    """
    _solve_upper(A, b, w)
    for i in range(w - 1, -1, -1):  # U s = z, by row dot products
        sz = z[i]
        for l in range(i + 1, w):
            sz -= A[i, l] * z[l]
        z[i] = sz / A[i, i]
    for i in range(w):
        x[i] = b[i] + z[i]


@njit(cache=True, fastmath=FASTMATH)
def _gram_row(start, end, indices, target, offset, D, S, s, w):
    """``S = sum d_i d_i^T`` and ``s = sum (t - o_i) d_i`` over entries
    ``start:end``, four entries per pass, in the dtype of ``D``.

    Rows ``0:w`` of ``S`` are filled, every column of ``D`` (zero padding
    included: whole SIMD vectors, no remainder loop)."""
    wp = D.shape[1]
    for i in range(w):
        Si = S[i]
        for j in range(wp):
            Si[j] = 0
        s[i] = 0
    e = start
    while e + 4 <= end:
        i0 = indices[e]
        i1 = indices[e + 1]
        i2 = indices[e + 2]
        i3 = indices[e + 3]
        d0 = D[i0]
        d1 = D[i1]
        d2 = D[i2]
        d3 = D[i3]
        t0 = target[e] - offset[i0]
        t1 = target[e + 1] - offset[i1]
        t2 = target[e + 2] - offset[i2]
        t3 = target[e + 3] - offset[i3]
        for i in range(w):
            a0 = d0[i]
            a1 = d1[i]
            a2 = d2[i]
            a3 = d3[i]
            s[i] += (t0 * a0 + t1 * a1) + (t2 * a2 + t3 * a3)
            Si = S[i]
            for j in range(wp):
                Si[j] += (a0 * d0[j] + a1 * d1[j]) + (a2 * d2[j] + a3 * d3[j])
        e += 4
    while e < end:
        it = indices[e]
        d = D[it]
        t = target[e] - offset[it]
        for i in range(w):
            a = d[i]
            s[i] += t * a
            Si = S[i]
            for j in range(wp):
                Si[j] += a * d[j]
        e += 1


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def sample_rows(indptr, indices, target, offset, D, alpha, P, Pm, key, X,
                means, bounds, pred_sum, n_kept, keep, stats):
    """Draw every row of ``X`` from its conditional posterior (see module doc).

    Parameters
    ----------
    indptr, indices : int64, int32
        CSR of this side (row ``u`` rated columns ``indices[indptr[u]:indptr[u+1]]``).
    target : (nnz,) float
        Ratings.
    offset : (n_cols,) float
        Part of the prediction not multiplied by the row: ``o_i``.
    D : (n_cols, wp) float
        Design rows of the other side, ``wp >= w`` (columns past ``w`` are
        zero padding, for whole SIMD vectors).
    alpha : float
        Noise precision.
    P : (w, w) float64
        Prior precision (symmetric positive definite); ``Pm``: ``P @ m0``.
    key : uint64
        Stream key of this half-sweep (:func:`stream_key`).
    X : (n_rows, w)
        Output: the draws.
    means : (n_rows, w) or (0, w)
        Output, unless empty: the conditional means ``A_u^{-1} b_u``.
    bounds : int64
        Chunk boundaries; one scratch set per chunk.
    pred_sum, n_kept, keep, stats :
        Unless ``stats`` is empty, the residuals of the new rows are summed
        as by :func:`residual_pass` (same arguments) while the row's entries
        are still in cache.

    Returns
    -------
    int
        Number of rows whose precision was not numerically positive
        definite (those rows are set to NaN).
    """
    w = X.shape[1]
    n_chunks = bounds.size - 1
    failed = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        S = np.empty((w, D.shape[1]), D.dtype)
        s = np.empty(w, D.dtype)
        A = np.empty((w, w), np.float64)
        b = np.empty(w, np.float64)
        z = np.empty(w, np.float64)
        x = np.empty(w, np.float64)
        for u in range(bounds[c], bounds[c + 1]):
            _gram_row(indptr[u], indptr[u + 1], indices, target, offset, D, S, s, w)
            for i in range(w):
                b[i] = alpha * s[i] + Pm[i]
                for j in range(i, w):
                    A[i, j] = alpha * S[i, j] + P[i, j]
            _normals(_row_key(key, u), z)
            xu = X[u]
            if _factor_upper(A, w, 1.0):
                _sample_row(A, b, z, w, x)
                for i in range(w):
                    xu[i] = x[i]
                if means.shape[0]:
                    mu_ = means[u]
                    for i in range(w):
                        mu_[i] = b[i]
                if stats.shape[0]:
                    _row_residuals(u, indptr, indices, target, offset, xu, D,
                                   pred_sum, n_kept, keep, stats)
            else:
                failed[c] += 1
                for i in range(w):
                    xu[i] = np.nan
    return failed.sum()


@njit(cache=True, fastmath=FASTMATH)
def _row_residuals(u, indptr, indices, target, offset, x, D, pred_sum, n_kept,
                   keep, out):
    """Residual sums of row ``u`` (row vector ``x``), see :func:`residual_pass`."""
    w = x.size
    s = 0.0
    s2 = 0.0
    q2 = 0.0
    for e in range(indptr[u], indptr[u + 1]):
        it = indices[e]
        d = D[it]
        p = np.float64(offset[it])
        for j in range(w):
            p += np.float64(x[j]) * np.float64(d[j])
        r = target[e] - p
        s += r
        s2 += r * r
        if keep:
            pred_sum[e] += p
        if n_kept > 0:
            q = target[e] - pred_sum[e] / n_kept
            q2 += q * q
    out[u, 0] = s
    out[u, 1] = s2
    out[u, 2] = q2


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def residual_pass(indptr, indices, target, offset, X, D, pred_sum, n_kept,
                  keep, out):
    """Per-row sums over the ratings of the current sample's residuals.

    The prediction of entry ``e = (u, i)`` is ``p = o_i + X[u] . D[i]`` and
    its residual ``r = target[e] - p``.  Writes ``out[u] = (sum r, sum r^2,
    sum q^2)`` with ``q`` the residual of the running posterior mean
    ``pred_sum[e] / n_kept`` (after adding ``p`` to ``pred_sum`` when
    ``keep``; 0 when ``n_kept`` is 0).
    """
    n = indptr.size - 1
    for u in prange(n):
        _row_residuals(u, indptr, indices, target, offset, X[u], D, pred_sum,
                       n_kept, keep, out)


# ---------------------------------------------------------------------------
# Per-sweep bookkeeping, in place (no allocation per sweep)
# ---------------------------------------------------------------------------


@njit(cache=True)
def row_moments(F, s, G):
    """``s = sum_r F[r]`` and ``G = sum_r F[r] F[r]^T`` in float64, serially
    (the same sums for any number of threads); the hyperparameters' data."""
    n, w = F.shape
    for i in range(w):
        s[i] = 0.0
        for j in range(w):
            G[i, j] = 0.0
    for r in range(n):
        f = F[r]
        for i in range(w):
            a = np.float64(f[i])
            s[i] += a
            Gi = G[i]
            for j in range(i, w):
                Gi[j] += a * np.float64(f[j])
    for i in range(w):
        for j in range(i):
            G[i, j] = G[j, i]


@njit(cache=True)
def design(F, mu, D, offset):
    """The other side as seen by a row draw, in place: ``D[:, :w-1] = F[:, :-1]``,
    ``D[:, w-1] = 1`` (columns past ``w`` keep their zeros) and
    ``offset = F[:, -1] + mu``."""
    n, w = F.shape
    one = D.dtype.type(1)
    m = F.dtype.type(mu)
    for r in range(n):
        f = F[r]
        d = D[r]
        for j in range(w - 1):
            d[j] = f[j]
        d[w - 1] = one
        offset[r] = f[w - 1] + m
    return


@njit(cache=True)
def keep_sample(kept, M, U, D, offset, mu, Us, Ur, Vs, ub, ub_mean, ib):
    """Store one kept sample in the preallocated wide arrays: the users'
    conditional means ``M`` and draws ``U`` (factors in columns
    ``kept*k:(kept+1)*k``, biases in column ``kept``), the item rows ``D``
    they were drawn against and the item biases ``offset - mu``."""
    m, w = U.shape
    k = w - 1
    c = kept * k
    for r in range(m):
        mr = M[r]
        ur = U[r]
        us = Us[r]
        uq = Ur[r]
        for j in range(k):
            us[c + j] = mr[j]
            uq[c + j] = ur[j]
        ub[r, kept] = ur[k]
        ub_mean[r] += mr[k]
    mf = offset.dtype.type(mu)
    for r in range(D.shape[0]):
        d = D[r]
        vs = Vs[r]
        for j in range(k):
            vs[c + j] = d[j]
        ib[r, kept] = offset[r] - mf


@njit(cache=True)
def normal_wishart(N, s, G, beta0, chi, zl, zm, P, Pm):
    """Draw ``(Lambda, Lambda m)`` from the Normal-Wishart posterior, given
    the random numbers: ``P = Lambda``, ``Pm = Lambda m``.

    Prior ``Lambda ~ W(I, w)``, ``m | Lambda ~ N(0, (beta0 Lambda)^-1)``; data:
    ``N`` rows with sum ``s`` and sum of outer products ``G``
    (:func:`row_moments`).  ``Lambda = L A A^T L^T`` (Bartlett) with ``L L^T``
    the posterior scale ``(I + C^T C + beta0 N / (beta0 + N) xbar xbar^T)^-1``,
    ``A`` lower triangular with diagonal ``sqrt(chi)`` (``chi_j ~
    chi^2(w + N - j)``) and strict lower part ``zl`` (row by row, the order
    of ``np.tril_indices``); ``m = N xbar / beta + Lc^-T zm / sqrt(beta)``,
    ``beta = beta0 + N``, ``Lambda = Lc Lc^T``.
    """
    w = s.size
    xbar = s / N
    beta = beta0 + N
    c = beta0 * N / beta - N   # C^T C = G - N xbar xbar^T
    Winv = np.empty((w, w))
    for i in range(w):
        for j in range(w):
            Winv[i, j] = G[i, j] + c * xbar[i] * xbar[j]
        Winv[i, i] += 1.0
    W = np.linalg.inv(Winv)
    L = np.linalg.cholesky(0.5 * (W + W.T))
    A = np.zeros((w, w))
    p = 0
    for i in range(w):
        A[i, i] = np.sqrt(chi[i])
        for j in range(i):
            A[i, j] = zl[p]
            p += 1
    LA = L @ A
    Lam = LA @ LA.T
    Lc = np.linalg.cholesky(Lam)
    m = N * xbar / beta + np.linalg.solve(Lc.T, zm) / np.sqrt(beta)
    P[:, :] = Lam
    Pm[:] = Lam @ m
