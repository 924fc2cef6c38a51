"""Dense objective with the plain penalty: whole epochs in compiled calls.

Every row solves ``(G + lam I) x_u = Y^T r_u`` with the shared
``G = Y^T Y``.  :class:`fastals.kernels.DenseRun` runs the half-steps of
many epochs as one task queue: per half-step the ``k x k`` inverse
``M = (G + lam I)^{-1}``, then ``X = (R Y) M`` block by block, forming
``X^T X`` (the next half-step's ``G``) and ``sum_u x_u . (r_u Y)`` in the
same pass.  After the item step that sum is ``sum_obs r_ui x_u . y_i``, so
the loss over all cells, ``|R|^2 - 2 sum_obs r x.y + tr((X^T X)(Y^T Y))``,
costs ``O(k^2)``.
"""

import time

import numpy as np

from . import kernels as K
from .exceptions import NumericalError


def prepare(side, k):
    """Give ``side`` the chunks of the fused step."""
    side.dense_bounds = K.dense_bounds(side.indptr, k)


def sumsq(side):
    """``|R|^2`` in float64 (one side's: the loss needs the users')."""
    # Not np.dot: numpy's OpenBLAS runs a dot of over 10,000 entries on all
    # its threads, which then spin on the cores the kernels need next
    return float(np.einsum("i,i->", side.target, side.target, dtype=np.float64))


def gram(side, F):
    """``F^T F`` in float64 (the fit's first Gram matrix; later ones are
    formed inside the epochs' kernel)."""
    return K.dense_step(side.indptr, side.indices, side.target, F, None, F,
                        side.dense_bounds)[0]


#: Multiply-adds of one kernel call of a fit that runs several epochs per
#: call (about a quarter of a second on two cores): between calls Python
#: can take a KeyboardInterrupt.  ML-100k at k=100 is 11 epochs per call.
CALL_WORK = 5 * 10 ** 8


def _diverged():
    return NumericalError(
        "training diverged: a factor became NaN or infinite; raise "
        "regularization, lower alpha, or use dtype=float64")


def _per_epoch(model, show_progress):
    """Whether anything of an epoch is observable before the next one: a
    callback, a progress bar, ``tol`` (stops between epochs) or the
    sampled check of ``regularization=0`` (reads the factors)."""
    return (model.callback is not None or bool(show_progress)
            or model.tol is not None or not model.regularization > 0)


def train(model, users, items, X, Y, k, dtype, show_progress, threads):
    """The epochs of :meth:`FastALS.fit` for the dense objective with the
    plain penalty: :class:`fastals.kernels.DenseRun`, many epochs per call
    (up to :data:`CALL_WORK` multiply-adds) where nothing of an epoch is
    observable before the next one (see :func:`_per_epoch`), else one call
    per epoch.  Histories, checks,
    callback and progress bar as the generic loop of ``_fit_csr``; the loss
    of either comes from the same per-epoch terms, so both give the same
    values."""
    from . import _guard
    lam = float(model.regularization)
    iters = int(model.iterations)
    with threads(1):  # small: no parallel region to wake
        GY = gram(items, Y)
    norm = model._norm(users)
    total = sumsq(users)
    # every weight is 1: the loss of all-zero factors is |R|^2 / norm
    watch = _guard.Watch(model, users, norm, zero_loss=total / norm)
    per_epoch = _per_epoch(model, show_progress)
    # multiply-adds of an epoch: Gram matrices and products with M, gathers
    work = (X.shape[0] + Y.shape[0]) * k * k + 2 * int(users.indptr[-1]) * k
    batch = 1 if per_epoch else int(min(max(iters, 1), max(CALL_WORK // max(work, 1), 1)))
    run = K.DenseRun((users.indptr, users.indices, users.target, users.dense_bounds),
                     (items.indptr, items.indices, items.target, items.dense_bounds),
                     X, Y, GY, lam, batch)
    record = model.calculate_training_loss or model.tol is not None

    def epoch_done(epoch, term):
        cross, s, tx, ty = (float(v) for v in term)
        err = total - 2.0 * cross + s
        reg = lam * (tx + ty)
        loss, objective = float(err / norm), float((err + reg) / norm)
        watch.count((None, 0), epoch=True)
        if lam > 0:
            watch.check_error(loss, epoch + 1)
        else:
            watch.check_blowup(X, Y, epoch + 1)
        if record:
            model.loss_history.append(loss)
            model.objective_history.append(objective)
            watch.check_monotone(dtype, epoch + 1)
        return loss

    t0 = time.perf_counter()
    bar = None
    if show_progress:
        from ._progress import progress_bar
        bar = progress_bar(iters, unit="epoch")
    with threads(model.num_threads):
        if not per_epoch:
            first = 0
            while first < iters:  # calls of at most CALL_WORK: Ctrl-C between them
                n = min(batch, iters - first)
                terms, stop = run.run(n)
                done = n if not stop else (stop - 1) // 2
                for e in range(done):
                    epoch_done(first + e, terms[e])
                if stop:
                    raise _diverged()
                first += n
        else:
            for epoch in range(iters):
                terms, stop = run.run(1)
                if stop:
                    raise _diverged()
                loss = epoch_done(epoch, terms[0])
                if not record and lam <= 0:
                    loss = float("nan")
                if model._epoch_end(epoch, loss, bar, t0, X, Y, k):
                    break
    return model._fit_end(bar, X, Y, k, watch, users, items)
