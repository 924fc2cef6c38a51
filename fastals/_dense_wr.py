"""Dense objective with ``weighted_regularization``: an exact half-step.

Every row solves ``(G + lam_u I) x_u = Y^T r_u`` with the shared
``G = Y^T Y`` and its own penalty ``lam_u = lam * n_u`` (``n_u`` its number
of ratings).  With ``G = Q diag(s) Q^T`` (eigendecomposition, once per
half-step) that is ``x_u = Q diag(1 / (s + lam_u)) Q^T Y^T r_u``: the
sparse product ``R (Y Q)``, a per-row scaling of its ``k`` columns, and one
``k x k`` product -- exact, and no users x items array.  A zero
``s_j + lam_u`` (a row without ratings, ``G`` singular) gets 0: the
least-norm solution, as the ridge fallback of the other objectives.
Checked against a per-row ``np.linalg.solve`` in ``tests/test_defects.py``.
"""

import numpy as np

from . import kernels as K


def half_step(side, Y, GY, X, lam, even_bounds):
    """Overwrite ``X`` (the rows of ``side``) given the other side ``Y``.

    ``GY`` is ``Y^T Y`` in float64, ``lam`` the regularization,
    ``even_bounds(n)`` the chunk bounds of a row-parallel product.
    """
    dtype = side.dtype
    s, Q = np.linalg.eigh(GY)
    Z = K.right_multiply(Y, Q.astype(dtype), even_bounds(Y.shape[0]))
    K.sparse_times_dense(side.indptr, side.indices, side.target, Z, X,
                         side.bounds)
    lam_u = lam * side.counts.astype(np.float64)
    block = max(1, (1 << 16) // X.shape[1])
    for r in range(0, X.shape[0], block):  # blocks: no m x k float64 array
        den = lam_u[r:r + block, None] + s[None, :]
        inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)
        X[r:r + block] *= inv.astype(dtype)
    X[:] = K.right_multiply(X, np.ascontiguousarray(Q.T, dtype),
                            even_bounds(X.shape[0]))
