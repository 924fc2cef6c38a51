"""Gibbs kernels for the implicit-feedback term of Bayesian matrix factorization.

Nothing here validates input: :mod:`fastals.bayes` prepares the arrays.

Model
-----
SVD++ (Koren 2008) in the Bayesian form of libFM's MCMC: which items a
user rated is information.  With ``N(u)`` the items user ``u`` rated in
the training data and ``s_u = |N(u)|^-1/2``::

    r_ui ~ N(mu + b_u + c_i + y_i . (x_u + h_u), 1 / alpha)
    h_u  = s_u sum_{j in N(u)} z_j,      z_j ~ N(m_Z, Lambda_Z^-1)

``[x_u, b_u] ~ N(m_U, Lambda_U^-1)`` as without the term.  The user rows
are drawn given ``Z`` (the targets shifted by ``y_i . h_u``, which
:func:`.gibbs.sample_rows` folds into its row systems), and the rows ``z_j`` given the *effective* user
rows ``p_u = [x_u + h_u, b_u]``: a change of variables ``(x, Z) -> (p,
Z)`` that leaves the posterior as it is, so each step is an exact draw
from a conditional of the same posterior (the two parametrizations
interleaved, as in Yu & Meng 2011, "To center or not to center").  Given
``p``, ``z_j`` only enters the users' priors::

    p_u - m_U - [h_u, 0] = [x_u, b_u] - m_U ~ N(0, Lambda_U^-1)

so with ``R_u = [x_u, b_u] - m_U`` under the current ``Z`` and ``L =
Lambda_U[:k, :]`` (the factor rows), the conditional of ``z_j`` given
everything else is Gaussian with::

    A_j = Lambda_Z + c_j Lambda_U[:k, :k],     c_j = sum_{u rated j} s_u^2
    b_j = Lambda_Z m_Z + L sum_{u rated j} s_u R_u + c_j Lambda_U[:k, :k] z_j
    z_j = A_j^-1 b_j + C_j^-T xi,              A_j = C_j C_j^T,  xi ~ N(0, I)

After the draw, ``R_u[:k] -= s_u (z_j' - z_j)`` for the users of ``j``:
the next ``z`` sees it.  The items are drawn one after the other in their
order (a Gibbs sweep over the blocks ``z_0, z_1, ...``): the work per
item is ``O(k^2 + k |users of j|)``, the whole step ``O(n k^3 + nnz k)``,
on one thread.  Each item draws its normals from its own counter-based
stream (as :mod:`.gibbs`), so the result does not depend on threads.
"""

import numpy as np
from numba import njit, prange

from .lanes import (GOLDEN, LANES, lane_normals, mix, v_axpy, v_axpy4, v_rowsum1,
                    v_rowsum2)
from .llvm import FASTMATH


@njit(cache=True, inline="always")
def _row_key(key, row):
    return mix(key ^ mix(np.uint64(row) + GOLDEN))


@njit(cache=True)
def _normals(rk, out, n):
    """``out[:n]``: the standard normals of stream ``rk`` (Box-Muller on
    the SplitMix64 words ``mix(rk + t GOLDEN)``, ``t = 1, 2, ...``)."""
    scale = 1.0 / 9007199254740992.0   # 2^-53
    for p in range((n + 1) // 2):
        h1 = mix(rk + np.uint64(2 * p + 1) * GOLDEN)
        h2 = mix(rk + np.uint64(2 * p + 2) * GOLDEN)
        u1 = (np.float64(h1 >> np.uint64(11)) + 1.0) * scale   # (0, 1]
        u2 = np.float64(h2 >> np.uint64(11)) * scale             # [0, 1)
        r = np.sqrt(-2.0 * np.log(u1))
        t = 2.0 * np.pi * u2
        out[2 * p] = r * np.cos(t)
        if 2 * p + 1 < n:
            out[2 * p + 1] = r * np.sin(t)


@njit(cache=True)
def item_normals(key, item, n):
    """The ``n`` standard normals that item ``item`` draws under ``key`` (for tests)."""
    out = np.empty(n)
    _normals(_row_key(np.uint64(key), item), out, n)
    return out


@njit(cache=True)
def user_scales(indptr):
    """``s_u = |N(u)|^-1/2`` (0 for a user with no ratings)."""
    m = indptr.size - 1
    s = np.zeros(m)
    for u in range(m):
        n = indptr[u + 1] - indptr[u]
        if n > 0:
            s[u] = 1.0 / np.sqrt(n)
    return s


@njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def implicit_sums(indptr, indices, scale, Zp, H):
    """``H[u] = scale[u] * sum_{j in indices[indptr[u]:indptr[u+1]]} Zp[j]``.

    ``Zp`` (the rows ``z_j`` zero-padded) and ``H`` have the same dtype and
    width, a multiple of ``LANES``; the sums are whole vectors in that
    dtype, in the row's order from zero, in registers
    (:func:`.lanes.v_rowsum2`: the sums of unit-weight :func:`.lanes.v_axpy4`
    calls, bit for bit; zeros for a user without entries).
    """
    m = indptr.size - 1
    wp = Zp.shape[1]
    for u in prange(m):
        lo, hi = indptr[u], indptr[u + 1]
        jb = 0
        while jb + 2 * LANES <= wp:     # two blocks per pass, in registers
            v_rowsum2(H, u * wp + jb, Zp, jb, indices, lo, hi)
            jb += 2 * LANES
        if jb < wp:
            v_rowsum1(H, u * wp + jb, Zp, jb, indices, lo, hi)
        s = Zp.dtype.type(scale[u])
        for f in range(wp):
            H[u, f] *= s


@njit(parallel=True, cache=True)
def add_implicit(X, H, sign, E):
    """``E = X + sign * H`` on the first ``k = H.shape[1]`` columns (``H``
    may be wider: its first ``X.shape[1] - 1`` columns are used), ``E = X``
    on the last (the bias)."""
    m, w = X.shape
    k = w - 1
    s = X.dtype.type(sign)
    for u in prange(m):
        for f in range(k):
            E[u, f] = X[u, f] + s * H[u, f]
        E[u, k] = X[u, k]


@njit(cache=True, inline="always")
def _add4(acc, r, indices, scale, e, kp):
    """``acc += sum_q scale[u_q] r[u_q]`` over the users ``u_q =
    indices[e:e + 4]`` (rows of ``kp`` numbers of the flat ``r``); returns
    ``sum_q scale[u_q]^2``, summed in pairs."""
    u0, u1, u2, u3 = indices[e], indices[e + 1], indices[e + 2], indices[e + 3]
    s0, s1, s2, s3 = scale[u0], scale[u1], scale[u2], scale[u3]
    c = (s0 * s0 + s1 * s1) + (s2 * s2 + s3 * s3)
    t0, t1, t2, t3 = (r.dtype.type(s0), r.dtype.type(s1), r.dtype.type(s2),
                      r.dtype.type(s3))
    for jb in range(0, kp, LANES):
        v_axpy4(acc, jb, r, u0 * kp + jb, u1 * kp + jb, u2 * kp + jb,
                u3 * kp + jb, t0, t1, t2, t3)
    return c


@njit(cache=True)
def sample_implicit(indptr, indices, scale, X, P, Pm, Pz, Pzm, key, Z, Zp, zeta,
                    r, noise):
    """One Gibbs pass over the implicit item rows ``Z`` given the effective
    user rows (see the module documentation).

    The conditionals are drawn in a basis that diagonalizes them all: with
    ``Pz = C C^T``, ``C^-1 Lambda_U[:k, :k] C^-T = Q diag(gamma) Q^T`` and
    ``T = C^-T Q``, ``T^T Pz T = I`` and ``T^T Lambda_U[:k, :k] T =
    diag(gamma)``, so in the coordinates ``zeta_j = T^-1 z_j`` the
    conditional precision of ``z_j`` is the diagonal ``I + c_j diag(gamma)``
    and the users' ``L R_u`` become ``r_u = T^T L R_u``, which the draw of
    ``z_j`` changes by ``-s_u gamma * (zeta_j' - zeta_j)``: ``O(k)`` per
    (item, user) pair and per item.

    Parameters
    ----------
    indptr, indices : int64, int32
        The items' CSR: item ``j`` was rated by users
        ``indices[indptr[j]:indptr[j+1]]``.
    scale : (m,) float64
        ``s_u`` (:func:`user_scales`).
    X : (m, w) float
        The user rows ``[x_u, b_u]`` under the current ``Z``.
    P, Pm : (w, w), (w,) float64
        The users' prior precision ``Lambda_U`` and ``Lambda_U m_U``.
    Pz, Pzm : (k, k), (k,) float64
        The prior precision of the rows of ``Z`` and ``Lambda_Z m_Z``.
    key : uint64
        Stream key of this step; item ``j`` draws from its own stream
        (:func:`item_normals`).
    Z : (n, k) float
        In and out: the implicit item rows.
    Zp : (n, kp) float
        Out: ``Z`` in its first ``k`` columns (the other columns are left
        alone: zero padding for :func:`implicit_sums`).
    zeta : (n, k) float64
        Scratch.
    r : (m, kp) float
        Scratch, ``kp >= k`` a multiple of ``LANES``, of the dtype in which
        the item-user sums are made (that of the factors: as the row
        systems of :mod:`.gibbs`).
    noise : float
        1 for a draw; 0 gives each item's conditional mean (for tests).

    Returns
    -------
    int
        0, or -1 (``Z`` unchanged) when ``Pz`` or ``Lambda_U[:k, :k]`` is not
        numerically positive definite.
    """
    m, w = X.shape
    n, k = Z.shape
    m0 = np.linalg.solve(P, Pm)
    Lkk = np.ascontiguousarray(P[:k, :k])
    for f in range(k):
        if not Pz[f, f] > 0.0:
            return -1
    C = np.linalg.cholesky(Pz)
    Ci = np.linalg.inv(C)
    Ms = Ci @ Lkk @ Ci.T
    gamma, Q = np.linalg.eigh(0.5 * (Ms + Ms.T))
    if not (np.all(np.isfinite(gamma)) and gamma.min() >= 0.0):
        return -1                      # Lambda_U[:k, :k] is not positive definite
    T = Ci.T @ Q                       # T^T Pz T = I, T^T Lkk T = diag(gamma)
    TtPz = T.T @ Pz                    # T^-1
    mz = T.T @ Pzm
    Lt = T.T @ np.ascontiguousarray(P[:k, :])     # (k, w): R_u -> r_u
    kp = r.shape[1]
    W1 = np.ascontiguousarray(TtPz.T)
    W2 = np.ascontiguousarray(Lt.T)
    W3 = np.ascontiguousarray(T.T)      # W3[h, f] = T[f, h]
    for j in range(n):
        for f in range(k):
            zeta[j, f] = 0.0
        for h in range(k):
            a = np.float64(Z[j, h])
            for f in range(k):
                zeta[j, f] += a * W1[h, f]
    rt = np.zeros(kp)
    for u in range(m):
        for f in range(k):
            rt[f] = 0.0
        for h in range(w):
            a = np.float64(X[u, h]) - m0[h]
            for f in range(k):
                rt[f] += a * W2[h, f]
        for f in range(kp):
            r[u, f] = rt[f]
    g = np.zeros(kp, r.dtype)
    g2 = np.zeros(kp, r.dtype)
    d = np.zeros(kp, r.dtype)
    rk = np.zeros(LANES, np.uint64)
    xi = np.empty((k + (k & 1), LANES))
    keys = np.empty(LANES * k + LANES, np.uint64)
    tmp = np.empty((2, LANES * k + LANES))
    for j in range(n):
        l = j % LANES
        if l == 0:                     # the normals of LANES items at a time
            for q in range(LANES):
                rk[q] = _row_key(key, j + q) if j + q < n else np.uint64(0)
            lane_normals(rk, xi, k, keys, tmp)
        c = 0.0
        for f in range(kp):
            g[f] = 0.0
        lo, hi = indptr[j], indptr[j + 1]
        e = lo
        while e + 8 <= hi:             # two chains of updates: g and g2
            c += _add4(g, r, indices, scale, e, kp)
            c += _add4(g2, r, indices, scale, e + 4, kp)
            e += 8
        while e + 4 <= hi:
            c += _add4(g, r, indices, scale, e, kp)
            e += 4
        while e < hi:
            u0 = indices[e]
            s0 = scale[u0]
            c += s0 * s0
            s0 = r.dtype.type(s0)
            for jb in range(0, kp, LANES):
                v_axpy(g, jb, r, u0 * kp + jb, s0)
            e += 1
        for f in range(kp):
            g[f] += g2[f]
            g2[f] = 0.0
        for f in range(k):
            prec = 1.0 + c * gamma[f]      # >= 1
            new = (mz[f] + np.float64(g[f]) + c * gamma[f] * zeta[j, f]) / prec \
                + noise * xi[f, l] / np.sqrt(prec)
            d[f] = gamma[f] * (new - zeta[j, f])
            zeta[j, f] = new
        for e in range(lo, hi):
            u0 = indices[e]
            c0 = r.dtype.type(-scale[u0])
            for jb in range(0, kp, LANES):
                v_axpy(r, u0 * kp + jb, d, jb, c0)
    zj = np.empty(k)
    for j in range(n):
        for f in range(k):
            zj[f] = 0.0
        for h in range(k):
            a = zeta[j, h]
            for f in range(k):
                zj[f] += a * W3[h, f]
        for f in range(k):
            Z[j, f] = zj[f]
            Zp[j, f] = zj[f]
    return 0
