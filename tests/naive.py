"""Deliberately simple reference implementations, written to be obviously right.

Everything here uses dense numpy arrays and one ``np.linalg.solve`` per row;
it is only meant for tiny matrices.  Tests compare the Numba kernels with it.
"""

import numpy as np


def cell_weights(R, mask, objective, alpha=1.0, confidence="linear",
                 epsilon=1.0, unobserved_weight=1.0):
    """Dense (weight, target) matrices of the objective on every cell."""
    if objective == "explicit":
        return mask.astype(float), np.where(mask, R, 0.0)
    if objective == "dense":
        return np.ones_like(R, dtype=float), np.where(mask, R, 0.0)
    r = np.abs(R)
    if confidence == "linear":
        c = 1 + alpha * r
    elif confidence == "alpha_r":
        c = alpha * r
    else:
        c = 1 + alpha * np.log1p(r / epsilon)
    W = np.where(mask, c, unobserved_weight)
    P = np.where(mask & (R > 0), 1.0, 0.0)
    return W, P


def update_rows(W, T, Y, lam, weighted=False, counts=None):
    """argmin_x sum_i W[u,i] (T[u,i] - x.y_i)^2 + lam_u |x|^2 for every row u.

    ``lam_u = lam``, or with ``weighted`` ``lam * n_u``: ``n_u`` is
    ``counts[u]`` when given (the row's number of ratings, for objectives
    that weight missing cells too), else the row's number of non-zero weights.
    """
    k = Y.shape[1]
    X = np.zeros((W.shape[0], k))
    for u in range(W.shape[0]):
        n_u = counts[u] if counts is not None else np.count_nonzero(W[u] != 0)
        lam_u = lam * n_u if weighted else lam
        A = Y.T @ np.diag(W[u]) @ Y + lam_u * np.eye(k)
        b = Y.T @ (W[u] * T[u])
        X[u] = np.linalg.solve(A, b)
    return X


def update_rows_bias(W, T, Y, c_other, lam):
    """Rows of [x, b] for prediction x.y + b + c_other (explicit with biases)."""
    D = np.hstack([Y, np.ones((Y.shape[0], 1))])
    return update_rows(W, T - c_other[None, :], D, lam)


def objective(W, T, X, Y, lam, weighted_counts=None):
    """Weighted squared error plus L2 penalty (the quantity ALS minimizes)."""
    err = np.sum(W * (T - X @ Y.T) ** 2)
    if weighted_counts is None:
        reg = lam * (np.sum(X ** 2) + np.sum(Y ** 2))
    else:
        nu, ni = weighted_counts
        reg = lam * (np.sum(nu * np.sum(X ** 2, 1)) + np.sum(ni * np.sum(Y ** 2, 1)))
    return err, err + reg


def random_ratings(rng, m, n, density=0.3, low=1, high=5):
    """Tiny random ratings with a guaranteed entry in every row and column."""
    mask = rng.random((m, n)) < density
    mask[np.arange(m), rng.integers(0, n, m)] = True
    mask[rng.integers(0, m, n), np.arange(n)] = True
    R = np.where(mask, rng.integers(low, high + 1, (m, n)).astype(float), 0.0)
    return R, mask


def cg_rows(W, T, Y, X0, lam, steps, weighted=False, counts=None):
    """``steps`` conjugate-gradient iterations per row on the system of
    :func:`update_rows`, started from ``X0`` (textbook CG, one row at a time,
    ``A`` and ``b`` formed densely).

    A row stops early once ``r.r < 1e-20`` or ``d.A d <= 0``; a row with
    ``counts[u] == 0`` (no ratings: ``b = 0``) gets its exact solution 0.
    """
    k = Y.shape[1]
    X = np.array(X0, dtype=float)
    for u in range(W.shape[0]):
        n_u = counts[u] if counts is not None else np.count_nonzero(W[u] != 0)
        if counts is not None and n_u == 0:
            X[u] = 0
            continue
        lam_u = lam * n_u if weighted else lam
        A = (Y.T * W[u]) @ Y + lam_u * np.eye(k)
        b = Y.T @ (W[u] * T[u])
        x = X[u]
        r = b - A @ x
        d = r.copy()
        rs = r @ r
        for _ in range(steps):
            if rs < 1e-20:
                break
            Ad = A @ d
            dAd = d @ Ad
            if not dAd > 0:
                break
            a = rs / dAd
            x = x + a * d
            r = r - a * Ad
            rs_new = r @ r
            d = r + (rs_new / rs) * d
            rs = rs_new
        X[u] = x
    return X
