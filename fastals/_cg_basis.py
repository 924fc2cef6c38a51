"""Implicit CG fits with the factors kept in rotated bases between
half-steps (the fit loop of :class:`~fastals.model.FastALS` for
``solver="cg"``, ``objective="implicit"``, no biases, not nonnegative).

A CG half-step works in the eigenbasis ``C`` of the other side's Gram
matrix (:func:`~fastals.kernels.cg.solve_cg_held`): it rotates the solved
rows in (``X C``) and, in a plain half-step, back out (``X C^T``).  Here
the solved rows stay in ``C``, and the next half-step takes its basis from
the Gram matrix of the rows as held: with ``X`` holding ``X_0 Bx``,
``X^T X = Bx^T G_0 Bx = P' S P'^T`` gives the items' basis ``Bx P'`` and
their rotated copy of ``X`` is ``X P'``, so the product ``X C^T`` is saved
on both sides, every iteration but the last (one ``n x k x k`` GEMM per
side).  The factors are returned to the original basis wherever they can
be seen: in the last iteration (rotated out as before), at an early stop,
for the loss, the divergence checks, and lazily for ``user_factors`` /
``item_factors`` read during a fit (from a callback: :class:`Factors`).
"""

import numpy as np

from . import _guard
from .exceptions import NumericalError
from .kernels import cg as _kcg

#: The ``__dict__`` entry of a model that holds the pending un-rotation of
#: its factors (a callable), set after each epoch of a fit in rotated bases.
PENDING = "_pending_factors"


def applies(model):
    """True where the fit loop of :func:`train` is used."""
    return (model.solver == "cg" and model.objective == "implicit"
            and bool(model._w0()) and not model.use_bias and not model.nonnegative)


def settle(obj):
    """Un-rotate ``obj``'s factors now if an epoch left them pending."""
    pending = obj.__dict__.pop(PENDING, None)
    if pending is not None:
        pending()


class Factors:
    """``user_factors`` / ``item_factors`` of :class:`~fastals.model.FastALS`:
    a plain instance attribute (kept in the instance ``__dict__``), except
    that during a fit in rotated bases the original factors of the last
    epoch are computed when first read (a callback that reads them gets
    the same factors as a fit without the shortcut, to rounding)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        settle(obj)
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(
                f"{type(obj).__name__!r} object has no attribute {self.name!r}"
            ) from None

    def __set__(self, obj, value):
        settle(obj)
        obj.__dict__[self.name] = value


def original(F, B):
    """The factors ``F`` held in basis ``B`` (None: the original) in the
    original basis: ``F B^T`` (a new array), or ``F`` itself."""
    return F if B is None else _kcg.rotate_rows(F, B.T.astype(F.dtype))


def train(model, users, items, X, Y, GY, k, bar, t0, watch):
    """The epochs of a fit (after :meth:`FastALS._fit_csr`'s set-up), with
    ``X`` and ``Y`` kept in their half-steps' eigenbases until the last
    epoch (``GY``: the Gram matrix of ``Y``); returns what ``_fit_end``
    returns."""
    held = [None, None]  # bases of X and Y (k x k float64; None: original)
    bufs = [None, None]  # rotated copies of X and Y, reused
    offsets = [np.zeros(F.shape[0], F.dtype) for F in (X, Y)]
    last = model.iterations - 1
    for epoch in range(model.iterations):
        out = epoch == last
        GX = _half_step(model, users, Y, GY, X, held, bufs, offsets, 0, out)
        watch.count((None, 0), epoch=True)
        GY = _half_step(model, items, X, GX, Y, held, bufs, offsets, 1, out)
        watch.check_blowup(X, Y, epoch + 1, tuple(held))
        loss = float("nan")
        if model.calculate_training_loss or model.tol is not None:
            loss, objective = _loss(model, users, items, X, Y, GX, GY, held)
            model.loss_history.append(loss)
            model.objective_history.append(objective)
            watch.check_monotone(X.dtype, epoch + 1)
        if model._epoch_end(epoch, loss, bar, t0, X, Y, k,
                            lambda X, Y, k: _store(model, X, Y, k, held)):
            break
    model.__dict__.pop(PENDING, None)
    X = original(X, held[0])
    Y = original(Y, held[1])
    return model._fit_end(bar, X, Y, k, watch, users, items)


def _half_step(model, side, Y, GY, X, held, bufs, offsets, i, out):
    """Solve the rows of ``side`` (``X``, held in ``held[i]``) against ``Y``
    (held in ``held[1 - i]``, Gram matrix ``GY`` as held); the new basis of
    ``X`` goes to ``held[i]``.  Returns the Gram matrix of ``X`` as held,
    whose diagonal is the divergence check (NaN or infinite in a row of
    ``X`` shows there: no separate pass over ``X``)."""
    dtype = side.dtype
    j = 1 - i
    if bufs[j] is None:
        bufs[j] = np.empty_like(Y)
    held[i] = _kcg.solve_cg_held(
        side.indptr, side.indices, side.solve_conf, side.target, offsets[j], Y,
        GY.astype(dtype), dtype.type(model.regularization),
        bool(model.weighted_regularization), dtype.type(model._w0()), X,
        side.bounds, int(model.cg_steps), (held[i], held[j]), out, bufs[j])
    G = model._gram(X)
    if not np.isfinite(np.diagonal(G)).all():
        raise NumericalError(
            "training diverged: a factor became NaN or infinite; raise "
            "regularization, lower alpha, or use dtype=float64")
    return G


def _loss(model, users, items, X, Y, GX, GY, held):
    """:meth:`FastALS._loss` of the factors as held: ``Y`` rotated into the
    basis of ``X`` (``T = By^T Bx``, ``Y T`` and ``T^T G_Y T``); the error and
    the penalty do not depend on the common basis."""
    bx, by = held
    if bx is None and by is None:
        return model._loss(users, items, X, Y, GX, GY)
    k = X.shape[1]
    T = (np.eye(k) if by is None else by).T @ (np.eye(k) if bx is None else bx)
    return model._loss(users, items, X, _kcg.rotate_rows(Y, T.astype(Y.dtype)),
                       GX, T.T @ GY @ T)


def _store(model, X, Y, k, held):
    """``model._store`` of the factors as held, with their un-rotation
    left pending (:class:`Factors`) until something reads them; valid until
    the next epoch changes ``X`` and ``Y`` (no user code runs before the
    next ``_store``)."""
    model.__dict__.pop(PENDING, None)
    model._store(X, Y, k)
    bx, by = held
    if bx is None and by is None:
        return

    def pending():
        model.__dict__["user_factors"] = original(X, bx)
        model.__dict__["item_factors"] = original(Y, by)
    model.__dict__[PENDING] = pending
