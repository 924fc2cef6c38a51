"""Non-negative ALS row solves (``FastALS(nonnegative=True)``).

Each row solves the same weighted least-squares problem as
:func:`fastals.kernels.rows.solve_cholesky`, restricted to ``x >= 0``::

    minimize 1/2 x^T A_u x - b_u^T x   subject to x >= 0

with ``A_u``, ``b_u`` the system of :func:`fastals.kernels.rows.solve_cholesky`,
built by the same :func:`fastals.kernels.rows._build_row`, here in float64.
This is Spark's ``ALS(nonnegative=True)``, which also solves an NNLS problem
on the normal equations.  The solver is Lawson & Hanson's active-set method
written on the normal equations (Bro & de Jong 1997, "FNNLS"): exact, it
returns the same minimizer as ``scipy.optimize.nnls`` on the equivalent
least-squares problem, and ``A_u`` is positive definite whenever
``lam > 0``.  Its passive-set systems are solved by the shared Cholesky
(:func:`fastals.kernels.factor._cholesky_upper`, ridge fallback
:func:`fastals.kernels.factor._ridge_solve`).  Computations are in float64
whatever the factor dtype.
"""

import numpy as np
from numba import njit, prange

from .factor import _cholesky_upper, _ridge_solve
from .rows import _build_row

#: First ridge of the fallback for a passive-set system that is not
#: numerically positive definite (``lam = 0``), times (mean diagonal + 1):
#: much smaller than the row solver's, since the active-set method needs
#: that subproblem's minimizer, not only a finite answer.
PASSIVE_RIDGE = 1e-12
#: Attempts of that fallback (ridges up to 1e27) plus one.
PASSIVE_RIDGE_TRIES = 41


@njit(cache=True)
def _passive_solve(A, b, idx, p, Asub, Asub0, s, s0):
    """``s[:p]`` <- the solution of ``A[P, P] s = b[P]``, ``P = idx[:p]``.

    ``Asub``/``Asub0`` (``k x k``) hold the ``p x p`` system, contiguous,
    in their first ``p * p`` entries: the shared Cholesky reads a row-major
    upper triangle of exactly ``p`` columns.
    """
    k = Asub.shape[0]
    M = Asub.reshape(k * k)[:p * p].reshape((p, p))
    M0 = Asub0.reshape(k * k)[:p * p].reshape((p, p))
    sp = s[:p]
    sp0 = s0[:p]
    for a in range(p):
        Aa = A[idx[a]]
        for c in range(a, p):
            M0[a, c] = Aa[idx[c]]
            M[a, c] = M0[a, c]
        sp0[a] = b[idx[a]]
        sp[a] = sp0[a]
    if not _cholesky_upper(M, sp, p, 1.0):
        _ridge_solve(M, M0, sp, sp0, p, 1.0, PASSIVE_RIDGE, PASSIVE_RIDGE_TRIES)


@njit(cache=True)
def nnls_normal(A, b, k, x, Asub, Asub0, s, s0, idx, passive, blocked, max_iter):
    """Solve ``min 1/2 x'Ax - b'x, x >= 0`` for a symmetric PSD ``A`` (full).

    ``x`` receives the solution; the other arrays are scratch of size ``k``
    (``k x k`` for the matrices).  Returns the number of iterations, or
    ``-1`` if ``max_iter`` was reached (``x`` is then feasible but may not
    be optimal).
    """
    scale = 0.0
    for i in range(k):
        x[i] = 0.0
        passive[i] = False
        blocked[i] = False
        if abs(b[i]) > scale:
            scale = abs(b[i])
    tol = 1e-12 * scale
    it = 0
    while True:
        # Most violated KKT condition: largest gradient w = b - A x outside P.
        jmax = -1
        wmax = tol
        for j in range(k):
            if passive[j] or blocked[j]:
                continue
            w = b[j]
            for l in range(k):
                w -= A[j, l] * x[l]
            if w > wmax:
                wmax = w
                jmax = j
        if jmax < 0:
            return it
        passive[jmax] = True
        first = True
        while True:
            it += 1
            p = 0
            for j in range(k):
                if passive[j]:
                    idx[p] = j
                    p += 1
            _passive_solve(A, b, idx, p, Asub, Asub0, s, s0)
            feasible = True
            for a in range(p):
                if not s[a] > 0.0:
                    feasible = False
            if feasible:
                for a in range(p):
                    x[idx[a]] = s[a]
                for j in range(k):
                    blocked[j] = False
                break
            if first and p > 0:
                # Rounding made the entering variable non-positive at once:
                # take it out and never pick it again until x changes.
                only_new = True
                for a in range(p):
                    if not s[a] > 0.0 and idx[a] != jmax:
                        only_new = False
                if only_new:
                    passive[jmax] = False
                    blocked[jmax] = True
                    break
            first = False
            if it >= max_iter:
                return -1
            # Step from x towards s until the first passive variable hits 0.
            alpha = 1.0
            amin = -1
            for a in range(p):
                if not s[a] > 0.0:
                    xi = x[idx[a]]
                    den = xi - s[a]
                    t = xi / den if den > 0.0 else 0.0
                    if t < alpha:
                        alpha = t
                        amin = a
            for a in range(p):
                i = idx[a]
                x[i] += alpha * (s[a] - x[i])
            for a in range(p):
                i = idx[a]
                if a == amin or not x[i] > 0.0:
                    x[i] = 0.0
                    passive[i] = False
        if it >= max_iter:
            return -1


@njit(parallel=True, cache=True)
def solve_nnls(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
               bounds):
    """Non-negative ALS half-step: overwrite every row of ``X``.

    Same arguments and per-row system as
    :func:`fastals.kernels.rows.solve_cholesky`.  Returns the number of rows
    whose active-set iterations hit the cap (``3 k + 30``).
    """
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    capped = np.zeros(n_chunks, np.int64)
    max_iter = 3 * k + 30
    cap = max(64, 32768 // k)  # gathered rows per SYRK: 256 KiB
    w0_64 = np.float64(w0)
    for c in prange(n_chunks):
        A = np.empty((k, k), np.float64)
        b = np.empty(k, np.float64)
        B = np.empty((cap, k), np.float64)
        iw = np.empty(8, np.int32)
        fw = np.ones(4, np.float64)
        cw = np.empty(4, np.uint8)
        x = np.empty(k, np.float64)
        Asub = np.empty((k, k), np.float64)
        Asub0 = np.empty((k, k), np.float64)
        s = np.empty(k, np.float64)
        s0 = np.empty(k, np.float64)
        idx = np.empty(k, np.int64)
        passive = np.empty(k, np.bool_)
        blocked = np.empty(k, np.bool_)
        for u in range(bounds[c], bounds[c + 1]):
            # float64 system (one = 1.0), loops instead of BLAS SYRK
            _build_row(u, indptr, indices, conf, target, offset, Y, G, lam,
                       wr, w0_64, A, b, B, iw, fw, cw, False, 1.0, None)
            for i in range(k):  # nnls_normal reads the full matrix
                Ai = A[i]
                for j in range(i):
                    Ai[j] = A[j, i]
            if nnls_normal(A, b, k, x, Asub, Asub0, s, s0, idx, passive,
                           blocked, max_iter) < 0:
                capped[c] += 1
            for i in range(k):
                X[u, i] = x[i]
    total = 0
    for c in range(n_chunks):
        total += capped[c]
    return total
