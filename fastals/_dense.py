"""Dense objective with the plain penalty: the half-step in one pass and
the loss without a pass of its own.

Every row solves ``(G + lam I) x_u = Y^T r_u`` with the shared
``G = Y^T Y``: ``M = (G + lam I)^{-1}`` is formed once per half-step (a
``k x k`` inverse, inside the kernel) and :func:`fastals.kernels.dense_step` computes
``X = (R Y) M`` block by block, forming ``X^T X`` (the next half-step's
``G``) and ``sum_u x_u . (r_u Y)`` in the same pass.  After the item step
that sum is ``sum_obs r_ui x_u . y_i``, so the loss over all cells,
``|R|^2 - 2 sum_obs r x.y + tr((X^T X)(Y^T Y))``, costs ``O(k^2)``.
"""

import numpy as np

from . import kernels as K
from .exceptions import NumericalError


def prepare(side, k):
    """Give ``side`` the chunks of the fused step, ``|R|^2`` (float64) and
    no fresh results."""
    side.dense_bounds = K.dense_bounds(side.indptr, k)
    side.sumsq = float(np.dot(side.target, side.target.astype(np.float64)))
    side.fresh = None


def gram(side, F):
    """``F^T F`` in float64: the one the last half-step of ``side`` formed
    (then forgotten), or a new one."""
    if side.fresh is not None:
        G, side.cross = side.fresh
        side.fresh = None
        return G
    return K.dense_step(side.indptr, side.indices, side.target, F, None, F,
                        side.dense_bounds)[0]


def half_step(side, Y, GY, X, lam):
    """Overwrite ``X`` (the rows of ``side``) given the other side ``Y``
    and ``GY = Y^T Y`` (float64): one kernel call, the inverse of
    ``GY + lam I`` included."""
    side.fresh = K.dense_step(side.indptr, side.indices, side.target, Y, None, X,
                              side.dense_bounds, G=GY, lam=lam)
    # A non-finite entry of X makes its Gram diagonal non-finite: no pass
    # over X needed.
    if not np.isfinite(side.fresh[0].diagonal()).all():
        raise NumericalError(
            "training diverged: a factor became NaN or infinite; raise "
            "regularization, lower alpha, or use dtype=float64")


def loss(sumsq, items, GX, GY, lam):
    """``(error, penalty)`` sums after an epoch: the squared error over all
    cells and ``lam (|X|^2 + |Y|^2)``.  ``sumsq`` is ``|R|^2``; the item step
    left the cross term in ``items.cross``."""
    err = sumsq - 2.0 * items.cross + float(np.sum(GX * GY))
    return err, lam * (float(np.trace(GX)) + float(np.trace(GY)))
