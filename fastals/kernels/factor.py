"""Small dense building blocks of the exact row solves: Cholesky of a
row-major upper triangle, triangular solves and the ridge fallback (typed
scalars, forceinline: inlined into every caller's callback).
"""

import numpy as np
from numba import njit

from .llvm import FASTMATH

#: Factorizations tried per row before it is set to zero: the exact system,
#: then ridges of 1e-6 ... 1e21 times (mean diagonal + 1).
RIDGE_TRIES = 30


# ---------------------------------------------------------------------------
# Small dense building blocks (row-major upper triangle, typed scalars)
# ---------------------------------------------------------------------------
# Loops are written over slices from index 0: Numba's negative-index
# wraparound on ``A[i, j]`` with ``j`` starting at ``i`` stops LLVM from
# vectorizing them.  Scalars that enter inner loops are of the array dtype
# (``one`` is passed in) so float32 never silently widens to float64.


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _cholesky_upper(A, b, k, one):
    """Solve ``A x = b`` in place; ``A``'s row-major upper triangle is read.

    ``A`` is overwritten by its factor ``U`` (``A = U^T U``).  Returns False
    if ``A`` is not numerically positive definite (``A`` and ``b`` are then
    undefined).
    """
    if not _factor_upper(A, k, one):
        return False
    _solve_upper(A, b, k)
    return True


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _factor_panel(A, j, jb, one):
    """Rows ``j:j+jb`` of a right-looking Cholesky of the row-major upper
    triangle, unblocked: each row's tail scaled by its pivot, then
    subtracted from the panel's later rows (the trailing rows' update is
    the caller's).  False where a pivot is not positive."""
    for r in range(j, j + jb):
        d = A[r, r]
        if not d > 0:
            return False
        d = np.sqrt(d)
        A[r, r] = d
        inv = one / d
        ur = A[r, r + 1:]
        for l in range(ur.size):
            ur[l] *= inv
        for s in range(r + 1, j + jb):
            f = A[r, s]
            As = A[s, s:]
            us = A[r, s:]
            for l in range(As.size):
                As[l] -= f * us[l]
    return True


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _factor_upper(A, k, one):
    """Right-looking Cholesky ``A = U^T U`` of the row-major upper triangle,
    in panels of 4 rows: the panel is factored unblocked, then every
    trailing row gets one rank-4 update of its contiguous upper part."""
    j = 0
    while j < k:
        jb = min(4, k - j)
        if not _factor_panel(A, j, jb, one):
            return False
        if jb == 4:
            for i in range(j + 4, k):
                f0 = A[j, i]
                f1 = A[j + 1, i]
                f2 = A[j + 2, i]
                f3 = A[j + 3, i]
                Ai = A[i, i:]
                v0 = A[j, i:]
                v1 = A[j + 1, i:]
                v2 = A[j + 2, i:]
                v3 = A[j + 3, i:]
                for l in range(Ai.size):
                    Ai[l] -= (f0 * v0[l] + f1 * v1[l]) + (f2 * v2[l] + f3 * v3[l])
        else:
            for q in range(jb):
                r = j + q
                for i in range(j + jb, k):
                    f = A[r, i]
                    Ai = A[i, i:]
                    v = A[r, i:]
                    for l in range(Ai.size):
                        Ai[l] -= f * v[l]
        j += jb
    return True


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _solve_upper(A, b, k):
    """``b <- (U^T U)^{-1} b``: ``U^T z = b`` by column sweeps, then
    ``U x = z`` by row dot products (``b`` holds exactly ``k`` entries)."""
    _tri_solve(A, b, k, True, True)


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _tri_solve(A, b, k, forward, backward):
    """``b <- U^{-T} b`` by column sweeps where ``forward``, then
    ``b <- U^{-1} b`` by row dot products where ``backward`` (``U``: upper
    triangle of ``A``; one function for both: less to compile)."""
    if forward:
        for i in range(k):
            zi = b[i] / A[i, i]
            b[i] = zi
            bs = b[i + 1:]
            ui = A[i, i + 1:]
            for l in range(bs.size):
                bs[l] -= zi * ui[l]
    if backward:
        for i in range(k - 1, -1, -1):
            ui = A[i, i + 1:]
            bs = b[i + 1:]
            s = b[i]
            for l in range(bs.size):
                s -= ui[l] * bs[l]
            b[i] = s / A[i, i]


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _ridge_solve(A, A0, b, b0, k, one, delta, tries):
    """Fallback for a system that is not numerically positive definite.

    ``A0``/``b0`` hold the system (upper triangle of ``A0`` read).  A ridge
    ``delta * (mean diagonal + 1)``, ``delta`` growing tenfold per attempt,
    is added until the factorization succeeds; the result is then a
    (slightly) regularized least-squares solution instead of NaN.  After
    ``tries - 1`` failed attempts ``b`` is set to zero.  Returns the number
    of attempts.
    """
    scale = 0.0
    for i in range(k):
        scale += abs(A0[i, i])
    scale = scale / k + 1.0
    for attempt in range(1, tries):
        for i in range(k):
            for j in range(i, k):
                A[i, j] = A0[i, j]
            A[i, i] += delta * scale
            b[i] = b0[i]
        if _cholesky_upper(A, b, k, one):
            return attempt
        delta *= 10.0
    for i in range(k):
        b[i] = 0
    return tries
