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
are drawn given ``Z`` (the targets shifted by ``y_i . h_u``,
:func:`shift_targets`), and the rows ``z_j`` given the *effective* user
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

from .lanes import GOLDEN, mix


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


@njit(parallel=True, cache=True)
def implicit_sums(indptr, indices, scale, Z, H):
    """``H[u] = scale[u] * sum_{j in indices[indptr[u]:indptr[u+1]]} Z[j]``,
    summed in float64 in the row's order (``H`` may be float32)."""
    m = indptr.size - 1
    k = Z.shape[1]
    for c in prange((m + 63) // 64):
        acc = np.empty(k)
        for u in range(c * 64, min(m, (c + 1) * 64)):
            for f in range(k):
                acc[f] = 0.0
            for e in range(indptr[u], indptr[u + 1]):
                j = indices[e]
                for f in range(k):
                    acc[f] += Z[j, f]
            for f in range(k):
                H[u, f] = scale[u] * acc[f]


@njit(parallel=True, cache=True)
def shift_targets(indptr, indices, target, D, H, out):
    """``out[e] = target[e] - D[i, :k] . H[u]`` for entry ``e = (u, i)`` of
    the users' CSR (``k = H.shape[1]``, dot product in float64): the
    ratings as seen by ``[x_u, b_u]`` once ``y_i . h_u`` is known."""
    m = indptr.size - 1
    k = H.shape[1]
    for u in prange(m):
        for e in range(indptr[u], indptr[u + 1]):
            i = indices[e]
            d = 0.0
            for f in range(k):
                d += np.float64(D[i, f]) * np.float64(H[u, f])
            out[e] = target[e] - d


@njit(parallel=True, cache=True)
def add_implicit(X, H, E):
    """``E = X`` with ``H`` added to its first ``H.shape[1]`` columns."""
    m, w = X.shape
    k = H.shape[1]
    for u in prange(m):
        for f in range(k):
            E[u, f] = X[u, f] + H[u, f]
        for f in range(k, w):
            E[u, f] = X[u, f]


@njit(cache=True)
def sample_implicit(indptr, indices, scale, X, P, Pm, Pz, Pzm, key, Z, R):
    """One Gibbs pass over the implicit item rows ``Z`` given the effective
    user rows (see the module documentation), then ``X`` updated to match.

    Parameters
    ----------
    indptr, indices : int64, int32
        The items' CSR: item ``j`` was rated by users
        ``indices[indptr[j]:indptr[j+1]]``.
    scale : (m,) float64
        ``s_u`` (:func:`user_scales`).
    X : (m, w) float
        In: the user rows ``[x_u, b_u]`` under the current ``Z``.  Out:
        those under the new ``Z`` (the effective rows ``[x_u + h_u, b_u]``
        do not change).
    P, Pm : (w, w), (w,) float64
        The users' prior precision ``Lambda_U`` and ``Lambda_U m_U``.
    Pz, Pzm : (k, k), (k,) float64
        The prior precision of the rows of ``Z`` and ``Lambda_Z m_Z``.
    key : uint64
        Stream key of this step; item ``j`` draws from ``_row_key(key, j)``.
    Z : (n, k) float
        In and out: the implicit item rows.
    R : (m, w) float64
        Scratch.

    Returns
    -------
    int
        Number of items whose conditional precision was not numerically
        positive definite (their ``z_j`` is left unchanged).
    """
    m, w = X.shape
    n, k = Z.shape
    m0 = np.linalg.solve(P, Pm)
    for u in range(m):
        for f in range(w):
            R[u, f] = np.float64(X[u, f]) - m0[f]
    g = np.empty(w)
    A = np.empty((k, k))
    b = np.empty(k)
    zo = np.empty(k)
    xi = np.empty(k + 1)
    failed = 0
    for j in range(n):
        c = 0.0
        for f in range(w):
            g[f] = 0.0
        for e in range(indptr[j], indptr[j + 1]):
            u = indices[e]
            s = scale[u]
            c += s * s
            for f in range(w):
                g[f] += s * R[u, f]
        for f in range(k):
            zo[f] = Z[j, f]
        for f in range(k):
            t = Pzm[f]
            for h in range(w):
                t += P[f, h] * g[h]
            for h in range(k):
                t += c * P[f, h] * zo[h]
                A[f, h] = Pz[f, h] + c * P[f, h]
            b[f] = t
        # Cholesky A = C C^T in the lower triangle of A
        ok = True
        for f in range(k):
            d = A[f, f]
            for h in range(f):
                d -= A[f, h] * A[f, h]
            if not d > 0.0:
                ok = False
                break
            d = np.sqrt(d)
            A[f, f] = d
            for r in range(f + 1, k):
                t = A[r, f]
                for h in range(f):
                    t -= A[r, h] * A[f, h]
                A[r, f] = t / d
        if not ok:
            failed += 1
            continue
        # mean: C y = b, then C^T mean = y + xi (the draw, in one solve)
        for f in range(k):
            t = b[f]
            for h in range(f):
                t -= A[f, h] * b[h]
            b[f] = t / A[f, f]
        _normals(_row_key(key, j), xi, k)
        for f in range(k):
            b[f] += xi[f]
        for f in range(k - 1, -1, -1):
            t = b[f]
            for h in range(f + 1, k):
                t -= A[h, f] * b[h]
            b[f] = t / A[f, f]
        for f in range(k):
            Z[j, f] = b[f]
        for f in range(k):          # the change, as stored in Z's dtype
            b[f] = np.float64(Z[j, f]) - zo[f]
        for e in range(indptr[j], indptr[j + 1]):
            u = indices[e]
            s = scale[u]
            for f in range(k):
                R[u, f] -= s * b[f]
    for u in range(m):
        for f in range(w):
            X[u, f] = R[u, f] + m0[f]
    return failed
