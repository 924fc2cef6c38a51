"""Non-negative ALS row solves (``FastALS(nonnegative=True)``).

Each row solves the same weighted least-squares problem as
:func:`fastals.kernels.rows.solve_cholesky`, restricted to ``x >= 0``::

    minimize 1/2 x^T A_u x - b_u^T x   subject to x >= 0

with ``A_u``, ``b_u`` the system of :func:`fastals.kernels.rows.solve_cholesky`
(rebuilt here in float64 so that this module does not depend on that
module's private helpers).
This is Spark's ``ALS(nonnegative=True)``, which also solves an NNLS problem
on the normal equations.  The solver is Lawson & Hanson's active-set method
written on the normal equations (Bro & de Jong 1997, "FNNLS"): exact, it
returns the same minimizer as ``scipy.optimize.nnls`` on the equivalent
least-squares problem, and ``A_u`` is positive definite whenever
``lam > 0``.  Computations are in float64 whatever the factor dtype.
"""

import numpy as np
from numba import njit, prange



@njit(cache=True)
def build_normal(u, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                 A, b):
    """Full symmetric ``A_u`` and ``b_u`` of row ``u`` in float64.

    ``A_u = w0 G + sum_i (c_ui - w0) y_i y_i^T + lam_u I`` and
    ``b_u = sum_i c_ui (t_ui - offset_i) y_i``, ``lam_u = lam * nnz_u`` with
    ``wr`` (ALS-WR).
    """
    k = Y.shape[1]
    start = indptr[u]
    end = indptr[u + 1]
    for i in range(k):
        for j in range(i + 1):
            A[i, j] = w0 * np.float64(G[i, j])
        b[i] = 0.0
    for p in range(start, end):
        it = indices[p]
        c = np.float64(conf[p])
        cw = c - w0
        ct = c * (np.float64(target[p]) - np.float64(offset[it]))
        y = Y[it]
        for i in range(k):
            yi = np.float64(y[i])
            b[i] += ct * yi
            if cw != 0.0:
                s = cw * yi
                for j in range(i + 1):
                    A[i, j] += s * y[j]
    reg = np.float64(lam)
    if wr:
        reg = reg * (end - start)
    for i in range(k):
        A[i, i] += reg
        for j in range(i):
            A[j, i] = A[i, j]


@njit(cache=True)
def _cholesky_solve(A, b, k):
    """Solve ``A x = b`` in place on the leading ``k x k`` block (lower part).

    Returns False if ``A`` is not numerically positive definite.
    """
    for j in range(k):
        s = A[j, j]
        for p in range(j):
            s -= A[j, p] * A[j, p]
        if not s > 0.0:
            return False
        d = np.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, k):
            s = A[i, j]
            for p in range(j):
                s -= A[i, p] * A[j, p]
            A[i, j] = s / d
    for i in range(k):
        s = b[i]
        for p in range(i):
            s -= A[i, p] * b[p]
        b[i] = s / A[i, i]
    for i in range(k - 1, -1, -1):
        s = b[i]
        for p in range(i + 1, k):
            s -= A[p, i] * b[p]
        b[i] = s / A[i, i]
    return True


@njit(cache=True)
def _robust_solve(A, A0, b, b0, k):
    """Cholesky of ``A0 + delta I`` with the smallest working ridge (A0 not PD)."""
    scale = 0.0
    for i in range(k):
        scale += abs(A0[i, i])
    scale = scale / max(k, 1) + 1.0
    delta = 1e-12
    for _ in range(40):
        for i in range(k):
            for j in range(i + 1):
                A[i, j] = A0[i, j]
            A[i, i] += delta * scale
            b[i] = b0[i]
        if _cholesky_solve(A, b, k):
            return
        delta *= 10.0
    for i in range(k):
        b[i] = 0.0


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
            for a in range(p):
                for c in range(a + 1):
                    Asub0[a, c] = A[idx[a], idx[c]]
                    Asub[a, c] = Asub0[a, c]
                s0[a] = b[idx[a]]
                s[a] = s0[a]
            if not _cholesky_solve(Asub, s, p):
                _robust_solve(Asub, Asub0, s, s0, p)
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
    for c in prange(n_chunks):
        A = np.empty((k, k), np.float64)
        b = np.empty(k, np.float64)
        x = np.empty(k, np.float64)
        Asub = np.empty((k, k), np.float64)
        Asub0 = np.empty((k, k), np.float64)
        s = np.empty(k, np.float64)
        s0 = np.empty(k, np.float64)
        idx = np.empty(k, np.int64)
        passive = np.empty(k, np.bool_)
        blocked = np.empty(k, np.bool_)
        for u in range(bounds[c], bounds[c + 1]):
            build_normal(u, indptr, indices, conf, target, offset, Y, G, lam,
                         wr, w0, A, b)
            if nnls_normal(A, b, k, x, Asub, Asub0, s, s0, idx, passive,
                           blocked, max_iter) < 0:
                capped[c] += 1
            for i in range(k):
                X[u, i] = x[i]
    total = 0
    for c in range(n_chunks):
        total += capped[c]
    return total
