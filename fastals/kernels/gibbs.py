"""Gibbs-sampling kernels for Bayesian matrix factorization.

Nothing here validates input: :mod:`fastals.bayes` prepares the arrays.

Random numbers
--------------
Every row draws from its own counter-based stream, so a sample does not
depend on which thread draws it or in what order: the ``j``-th 64-bit word
of row ``u`` in a sweep is ``mix(row_key(key, u) + (j + 1) * GOLDEN)``, with
``mix`` the SplitMix64 finalizer (Steele, Lea & Flood 2014) and ``key``
derived from ``(seed, sweep, side)`` by :func:`stream_key`.  Two words give
two uniforms in (0, 1] and, by Box-Muller, two standard normals
(:mod:`.lanes`).

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
``LANES`` rows factored and solved side by side by :mod:`.lanes`),
``z ~ N(0, I)``: its covariance is ``U^{-1} U^{-T} = A_u^{-1}``.  This is the
explicit ALS row system (``lam I`` replaced by the prior precision) plus
noise; Salakhutdinov & Mnih (2008), "Bayesian probabilistic matrix
factorization using Markov chain Monte Carlo".
"""

import numpy as np
from numba import njit, prange

from .lanes import (GOLDEN, LANES, lane_factor, lane_normals, lane_sample, mix,
                    v_axpy4, v_dots8, v_gram8, v_gram16, v_resid8)
from .llvm import FASTMATH


def aligned_zeros(shape, dtype, align=64):
    """``np.zeros(shape, dtype)`` starting on an ``align``-byte boundary (a
    cache line): the row draws read whole 64-byte design rows (16 float32
    columns), which an allocator's 16-byte alignment would split over two
    lines."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    buf = np.zeros(n * dtype.itemsize + align, np.uint8)
    start = -buf.ctypes.data % align
    return buf[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


@njit(cache=True)
def stream_key(seed, sweep, side):
    """Key of one half-sweep's streams from ``(seed, sweep, side)``."""
    k = mix(np.uint64(seed) + GOLDEN)
    k = mix(k ^ mix(np.uint64(sweep) * np.uint64(4) + np.uint64(side)))
    return k


@njit(cache=True, inline="always")
def _row_key(key, row):
    return mix(key ^ mix(np.uint64(row) + GOLDEN))


@njit(cache=True)
def row_normals(key, row, n):
    """The ``n`` standard normals that row ``row`` draws under ``key`` (for tests)."""
    rk = np.zeros(LANES, np.uint64)
    rk[0] = _row_key(key, row)
    Z = np.empty((n + (n & 1), LANES))
    lane_normals(rk, Z, n, np.empty(LANES * n, np.uint64), np.empty((2, LANES * n)))
    return Z[:n, 0].copy()


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _gram_row(start, end, indices, target, offset, D, S, s, w):
    """``S = sum d_i d_i^T`` (upper triangle, by ``LANES``-wide blocks) and
    ``s = sum (t - o_i) d_i`` over entries ``start:end``, in the dtype of
    ``D``.

    ``D`` is ``(n_cols, wp)`` with ``wp`` a multiple of ``LANES`` (columns
    past ``w`` are zero), ``S`` is ``(w, wp)`` and ``s`` ``(wp,)``.  Row
    ``i`` of ``S`` is filled from the block holding column ``i`` onwards:
    per group of ``LANES`` rows and column block, one pass over the
    entries with the sums in registers (:func:`.lanes.v_gram8`); ``s``
    four entries per pass, a last pass of fewer than four repeating its
    first entry with weight zero.
    """
    wp = D.shape[1]
    zero = D.dtype.type(0)
    for ci in range(0, w, LANES):
        for jb in range(ci, wp, LANES):
            v_gram8(S, ci * wp + jb, wp, D, indices, start, end, ci,
                    min(LANES, w - ci), jb)
    for j in range(wp):
        s[j] = zero
    for e in range(start, end, 4):
        n = min(4, end - e)
        i0 = indices[e]
        i1 = indices[e + 1] if n > 1 else i0
        i2 = indices[e + 2] if n > 2 else i0
        i3 = indices[e + 3] if n > 3 else i0
        t0 = target[e] - offset[i0]
        t1 = target[e + 1] - offset[i1] if n > 1 else zero
        t2 = target[e + 2] - offset[i2] if n > 2 else zero
        t3 = target[e + 3] - offset[i3] if n > 3 else zero
        for jb in range(0, wp, LANES):
            v_axpy4(s, jb, D, i0 * wp + jb, i1 * wp + jb, i2 * wp + jb,
                    i3 * wp + jb, t0, t1, t2, t3)


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _shift(S, H, u, w, hs):
    """``hs = S_u H[u]`` in float64 from the upper triangle of ``S``: per
    row, the products in column order, one fused multiply-add each, summed
    in a register (contraction only: the order stays as written)."""
    for i in range(w):
        acc = 0.0
        for j in range(i):
            acc += np.float64(S[j, i]) * np.float64(H[u, j])
        for j in range(i, w):
            acc += np.float64(S[i, j]) * np.float64(H[u, j])
        hs[i] = acc


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def sample_rows(indptr, indices, target, offset, D, alpha, P, Pm, H, key, X,
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
        Design rows of the other side, ``wp >= w`` a multiple of ``LANES``
        (columns past ``w`` are zero padding, for whole SIMD vectors).
    alpha : float
        Noise precision.
    P : (w, w) float64
        Prior precision (symmetric positive definite); ``Pm``: ``P @ m0``.
    H : (n_rows, wp) or (0, wp), dtype of ``D``
        Unless empty, per-row shifts of the targets: row ``u`` sees the
        targets ``r_ui - d_i . H[u]``, by ``b_u = alpha (s_u - S_u H[u]) +
        P m0`` from the same ``S_u = sum d_i d_i^T`` and ``s_u = sum (r_ui -
        o_i) d_i`` (exact algebra, without a pass over the entries: the
        implicit-feedback term's ``y_i . h_u``, :mod:`.gibbs_implicit`).
        Columns past ``w`` are not read.
    key : uint64
        Stream key of this half-sweep (:func:`stream_key`).
    X : (n_rows, w)
        Output: the draws.
    means : (n_rows, w) or (0, w)
        Output, unless empty: the conditional means ``A_u^{-1} b_u``.
    bounds : int64
        Chunk boundaries; one scratch set per chunk.  Within a chunk,
        ``LANES`` rows at a time are factored and solved side by side
        (:mod:`.lanes`); boundaries on multiples of ``LANES`` put row ``u``
        in lane ``u % LANES`` whatever the chunks.
    pred_sum, n_kept, keep, stats :
        Unless ``stats`` is empty, the residuals of the new rows are summed
        as by :func:`residual_pass` (same arguments) while the row's entries
        are still in cache.

    Returns
    -------
    int
        Number of rows whose precision was not numerically positive
        definite (those rows are set to NaN) or whose draw is not finite.
    """
    w = X.shape[1]
    wp = D.shape[1]
    shifted = H.shape[0] > 0
    # 16 design columns with a spare one: the right-hand side rides in it
    # (v_gram16, the same sums in fewer passes)
    aug = wp == 16 and w < 16
    n_chunks = bounds.size - 1
    failed = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        S8 = np.empty((LANES, wp, wp), D.dtype)   # each lane's sums
        s = np.empty(wp, D.dtype)
        xp = np.zeros(wp, D.dtype)
        dots = np.empty(LANES, D.dtype)
        acc = np.empty(4 * LANES)
        ao = _aligned(acc)
        hs = np.zeros(w)
        A = np.empty((w, w, LANES))
        b = np.empty((w, LANES))
        Z = np.empty((w + (w & 1), LANES))
        dinv = np.empty((w, LANES))
        bad = np.empty(LANES)
        rk = np.empty(LANES, np.uint64)
        keys = np.empty(LANES * w, np.uint64)
        T = np.empty((2, LANES * w))
        hi = bounds[c + 1]
        for u0 in range(bounds[c], hi, LANES):
            nb = min(LANES, hi - u0)
            for l in range(nb):
                u = u0 + l
                S = S8[l]
                if aug:
                    v_gram16(S, D, indices, target, offset, indptr[u], indptr[u + 1])
                    for i in range(w):
                        s[i] = S[i, 15]
                else:
                    _gram_row(indptr[u], indptr[u + 1], indices, target, offset,
                              D, S, s, w)
                if shifted:                # hs = S_u H[u], S_u symmetric
                    _shift(S, H, u, w, hs)
                for i in range(w):
                    b[i, l] = alpha * (np.float64(s[i]) - hs[i]) + Pm[i]
                rk[l] = _row_key(key, u)
            # the precisions of all lanes at once, lane-contiguous stores
            # (idle lanes' sums are garbage, replaced below)
            for i in range(w):
                for j in range(i, w):
                    pij = P[i, j]
                    for l in range(LANES):
                        A[i, j, l] = alpha * np.float64(S8[l, i, j]) + pij
            for l in range(LANES):
                bad[l] = 0.0
                if l >= nb:                # an idle lane solves the identity
                    for i in range(w):
                        b[i, l] = 0.0
                        for j in range(i, w):
                            A[i, j, l] = 0.0
                        A[i, i, l] = 1.0
                    rk[l] = 0
            lane_normals(rk, Z, w, keys, T)
            lane_factor(A, w, dinv, bad)
            lane_sample(A, dinv, b, Z, w)
            for l in range(nb):
                u = u0 + l
                if bad[l] == 0.0:
                    finite = True
                    for i in range(w):
                        v = b[i, l] + Z[i, l]
                        X[u, i] = v
                        finite &= np.isfinite(v)
                    if not finite:
                        failed[c] += 1
                    if means.shape[0]:
                        for i in range(w):
                            means[u, i] = b[i, l]
                    if stats.shape[0]:
                        for i in range(w):
                            xp[i] = X[u, i]
                        _row_residuals(u, indptr, indices, target, offset, xp, D,
                                       pred_sum, n_kept, keep, stats, dots, acc, ao)
                else:
                    failed[c] += 1
                    for i in range(w):
                        X[u, i] = np.nan
    return failed.sum()


@njit(cache=True, inline="always")
def _aligned(a):
    """The first index of the float64 array ``a`` on a 64-byte boundary
    (scratch whose vectors are stored and loaded again: a vector across two
    cache lines is not forwarded from a store to a load)."""
    return (LANES - (a.ctypes.data // 8) % LANES) % LANES


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _row_residuals(u, indptr, indices, target, offset, xp, D, pred_sum, n_kept,
                   keep, out, dots, acc, ao):
    """Residual sums of row ``u`` (row vector ``xp``, zero-padded to the
    width of ``D``, dot products in that dtype), see :func:`residual_pass`.

    The dot products of ``LANES`` entries at a time are made side by side
    (:func:`.lanes.v_dots8`, into the scratch ``dots`` of ``LANES``
    elements); a last group of fewer entries repeats its first one.  The
    sums of whole groups are made in ``LANES`` lanes (:func:`.lanes.v_resid8`,
    into the float64 scratch ``acc[ao:ao + 3 LANES]``, :func:`_aligned`), those of the last
    group in a scalar, added to the lanes' total at the end (in a fixed
    order: the same sums for any thread count).
    """
    wp = D.shape[1]
    s = 0.0
    s2 = 0.0
    q2 = 0.0
    inv = 1.0 / n_kept if n_kept > 0 else 0.0
    zero = D.dtype.type(0)
    for q in range(3 * LANES):
        acc[ao + q] = 0.0
    lo, hi = indptr[u], indptr[u + 1]
    for e0 in range(lo, hi, LANES):
        n = min(LANES, hi - e0)
        f = indices[e0] * wp
        o0 = f
        o1 = indices[e0 + 1] * wp if n > 1 else f
        o2 = indices[e0 + 2] * wp if n > 2 else f
        o3 = indices[e0 + 3] * wp if n > 3 else f
        o4 = indices[e0 + 4] * wp if n > 4 else f
        o5 = indices[e0 + 5] * wp if n > 5 else f
        o6 = indices[e0 + 6] * wp if n > 6 else f
        o7 = indices[e0 + 7] * wp if n > 7 else f
        for q in range(LANES):
            dots[q] = zero
        for jb in range(0, wp, LANES):
            v_dots8(dots, xp, jb, D, o0 + jb, o1 + jb, o2 + jb, o3 + jb, o4 + jb,
                    o5 + jb, o6 + jb, o7 + jb)
        if n == LANES:
            v_resid8(acc, ao, dots, target, offset, indices, e0, pred_sum, inv, keep,
                     n_kept > 0)
            continue
        for q in range(n):
            e = e0 + q
            p = np.float64(offset[indices[e]]) + np.float64(dots[q])
            t = np.float64(target[e])
            r = t - p
            s += r
            s2 += r * r
            if keep:
                pred_sum[e] += p
            if n_kept > 0:
                d = t - pred_sum[e] * inv
                q2 += d * d
    for q in range(LANES):
        s += acc[ao + q]
        s2 += acc[ao + LANES + q]
        q2 += acc[ao + 2 * LANES + q]
    out[u, 0] = s
    out[u, 1] = s2
    out[u, 2] = q2


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
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
    w = X.shape[1]
    for c in prange((n + 63) // 64):     # 64 rows per scratch row vector
        xp = np.zeros(D.shape[1], D.dtype)
        dots = np.empty(LANES, D.dtype)
        acc = np.empty(4 * LANES)
        ao = _aligned(acc)
        for u in range(c * 64, min(n, (c + 1) * 64)):
            for i in range(w):
                xp[i] = X[u, i]
            _row_residuals(u, indptr, indices, target, offset, xp, D, pred_sum,
                           n_kept, keep, out, dots, acc, ao)


# ---------------------------------------------------------------------------
# Per-sweep bookkeeping, in place (no allocation per sweep)
# ---------------------------------------------------------------------------


@njit(cache=True)
def row_moments(F, s, G):
    """``s = sum_r F[r]`` and ``G = sum_r F[r] F[r]^T`` in float64, serially
    (the same sums for any number of threads); the hyperparameters' data."""
    n, w = F.shape
    x = np.empty(w)
    Gl = np.zeros((w, w))          # local: no aliasing with F, whole rows
    for i in range(w):
        s[i] = 0.0
    for r in range(n):             # 2-D indexing: a row view costs a refcount
        for i in range(w):
            x[i] = np.float64(F[r, i])
        for i in range(w):
            a = x[i]
            s[i] += a
            for j in range(w):     # the whole square (a_i a_j = a_j a_i exactly)
                Gl[i, j] += a * x[j]
    for i in range(w):
        for j in range(w):
            G[i, j] = Gl[i, j]


@njit(cache=True)
def design(F, mu, D, offset):
    """The other side as seen by a row draw, in place: ``D[:, :w-1] = F[:, :-1]``,
    ``D[:, w-1] = 1`` (columns past ``w`` keep their zeros) and
    ``offset = F[:, -1] + mu``."""
    n, w = F.shape
    one = D.dtype.type(1)
    m = F.dtype.type(mu)
    for r in range(n):
        for j in range(w - 1):
            D[r, j] = F[r, j]
        D[r, w - 1] = one
        offset[r] = F[r, w - 1] + m
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
        for j in range(k):
            Us[r, c + j] = M[r, j]
            Ur[r, c + j] = U[r, j]
        ub[r, kept] = U[r, k]
        ub_mean[r] += M[r, k]
    mf = offset.dtype.type(mu)
    for r in range(D.shape[0]):
        for j in range(k):
            Vs[r, c + j] = D[r, j]
        ib[r, kept] = offset[r] - mf


@njit(cache=True)
def normal_wishart(N, s, G, beta0, inv_scale, chi, zl, zm, P, Pm):
    """Draw ``(Lambda, Lambda m)`` from the Normal-Wishart posterior, given
    the random numbers: ``P = Lambda``, ``Pm = Lambda m``.

    Prior ``Lambda ~ W(I / inv_scale, w + dof)`` (``dof`` only enters the
    chi-squares' degrees of freedom, drawn by the caller),
    ``m | Lambda ~ N(0, (beta0 Lambda)^-1)``; data:
    ``N`` rows with sum ``s`` and sum of outer products ``G``
    (:func:`row_moments`).  ``Lambda = L A A^T L^T`` (Bartlett) with ``L L^T``
    the posterior scale ``(inv_scale I + C^T C + beta0 N / (beta0 + N) xbar
    xbar^T)^-1``,
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
        Winv[i, i] += inv_scale
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


@njit(cache=True)
def normal_gamma(N, s, G, rate0, beta0, g, z, P, Pm):
    """Draw ``(diag(lambda), lambda * m)`` from the per-coordinate
    Normal-Gamma posterior, given the random numbers: prior ``lambda_f ~
    Gamma(a0, rate0)``, ``m_f | lambda_f ~ N(0, 1 / (beta0 lambda_f))``;
    ``g_f ~ Gamma(a0 + N / 2, 1)`` (drawn by the caller) and ``z_f ~ N(0,
    1)``; data as for :func:`normal_wishart`."""
    w = s.size
    beta = beta0 + N
    for f in range(w):
        xbar = s[f] / N
        ss = max(G[f, f] - N * xbar * xbar, 0.0)
        lam = g[f] * (1.0 / (rate0 + 0.5 * ss + 0.5 * beta0 * N * xbar * xbar / beta))
        m = s[f] / beta + z[f] / np.sqrt(beta * lam)
        for j in range(w):
            P[f, j] = 0.0
        P[f, f] = lam
        Pm[f] = lam * m


@njit(cache=True)
def mean_noise(stats, nnz, mu, alpha, z, g, mean_precision, noise_rate):
    """Draw ``mu`` then ``alpha`` given the residuals of the current sample;
    returns ``(mu, alpha)``.

    ``stats[:, 0]`` and ``stats[:, 1]`` hold per-row sums of the residuals
    ``e = r - prediction`` and of ``e^2`` under the current ``mu`` (summed
    serially, in row order).  Prior ``mu ~ N(0, 1 / mean_precision)``,
    ``alpha ~ Gamma(a0, noise_rate)``; ``z ~ N(0, 1)`` and ``g ~ Gamma(a0 +
    nnz / 2, 1)`` are drawn by the caller.
    """
    s1 = 0.0
    s2 = 0.0
    for r in range(stats.shape[0]):
        s1 += stats[r, 0]
        s2 += stats[r, 1]
    prec = alpha * nnz + mean_precision
    new = alpha * (s1 + nnz * mu) / prec + z / np.sqrt(prec)
    d = new - mu
    sse = max(s2 - 2.0 * d * s1 + nnz * d * d, 0.0)
    return new, g * (1.0 / (noise_rate + 0.5 * sse))


@njit(cache=True)
def half_sweep(indptr, indices, target, bounds, F, mu, D, offset, X, alpha,
               wishart, hyper, rand, s, G, P, Pm, H, key, means, pred_sum, n_kept,
               keep, stats):
    """One half of a Gibbs sweep, in one call: the prior of the rows ``X``
    from their moments (:func:`normal_wishart` or :func:`normal_gamma`),
    the other side's design ``D, offset`` from its rows ``F`` and ``mu``
    (:func:`design`), then every row of ``X`` (:func:`sample_rows`, whose count of failed rows it returns).

    ``hyper``: ``(beta0, inv_scale)`` of the Normal-Wishart or ``(rate0,
    beta0)`` of the Normal-Gamma prior; ``rand``: its random numbers,
    ``chi`` (``w``) then ``zl`` and ``zm``, or ``g`` (``w``) then ``z``
    (``w``).  ``s, G, P, Pm``: scratch of ``(w,)`` and ``(w, w)`` float64.
    ``H``: the targets' per-row shifts, or empty (see :func:`sample_rows`).
    """
    n, w = X.shape
    row_moments(X, s, G)
    if wishart:
        nl = w * (w - 1) // 2
        normal_wishart(float(n), s, G, hyper[0], hyper[1], rand[:w],
                       rand[w:w + nl], rand[w + nl:w + nl + w], P, Pm)
    else:
        normal_gamma(float(n), s, G, hyper[0], hyper[1], rand[:w], rand[w:2 * w],
                     P, Pm)
    design(F, mu, D, offset)
    return sample_rows(indptr, indices, target, offset, D, alpha, P, Pm, H, key,
                       X, means, bounds, pred_sum, n_kept, keep, stats)

@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def pair_dots(U, V, u, i, out):
    """``out[p] = U[u[p]] . V[i[p]]`` in float64, 0 where ``u[p]`` or
    ``i[p]`` is negative (an unknown id): the posterior-mean part of a
    prediction from the wide sample matrices, without gathering them."""
    n = u.size
    k = U.shape[1]
    for c in prange((n + 255) // 256):
        for p in range(c * 256, min(n, (c + 1) * 256)):
            a = u[p]
            b = i[p]
            s = 0.0
            if a >= 0 and b >= 0:
                for j in range(k):
                    s += np.float64(U[a, j]) * np.float64(V[b, j])
            out[p] = s
