"""Numba kernels: every compiled function of fastals, split by concern.

Nothing in this package validates input or touches files, and no module in
it imports fastals code from outside it: :mod:`fastals.model`,
:mod:`fastals.recommend` and :mod:`fastals.evaluation` prepare canonical
arrays and call these functions.

Modules
-------
* :mod:`.rows` -- weighted row system, Cholesky, ridge fallback, the n x n
  system of short rows,
  :func:`solve_cholesky`.
* :mod:`.cg` -- conjugate-gradient row solves, :func:`solve_cg`.
* :mod:`.cg_push` -- the CG half-step of the longest rows in the other
  side's row order, :func:`solve_cg_split`.
* :mod:`.nnls` -- non-negative row solves, :func:`solve_nnls`.
* :mod:`.loss` -- the per-entry loss of a chunk of rows (:func:`loss_terms`,
  defined here, runs it in the kernel of :mod:`.loss`, :mod:`.rows` or :mod:`.cg`).
* :mod:`.dense` -- Gram matrix, SPD inverse, right multiply, sparse x dense.
* :mod:`.dense_fit` -- the dense objective's fused half-step
  (:func:`dense_step`) and whole epochs in one call (:class:`DenseRun`).
* :mod:`.dense_tiles` -- its product ``X = W M`` in register tiles.
* :mod:`.gather` -- register-tiled sparse row times dense matrix, flags.
* :mod:`.sparse` -- the parallel CSR transpose of ``fit``'s set-up.
* :mod:`.topk` -- top-k scoring and AUC.
* :mod:`.chunks` -- row chunks of similar cost, serial cutoff.
* :mod:`.blas` -- BLAS/LAPACK bindings.
* :mod:`.openblas` -- OpenBLAS held at one thread while kernels run.
* :mod:`.llvm` -- fast-math flags, intrinsics, the C-callback machinery.
* :mod:`._cache` -- Numba's cache made stale by an edit of any kernel module.
* :mod:`.gibbs` -- Gibbs row draws and bookkeeping of :class:`fastals.BayesianALS`.
* :mod:`.lanes` -- eight rows per SIMD lane set: normals, tiny Cholesky and solves.
* :mod:`.tiles` -- the Gram update and Cholesky of a k x k row system in
  register tiles (k up to 128).

Conventions
-----------
* A sparse side is given as CSR arrays ``(indptr, indices, ...)`` with
  ``indptr`` int64 and ``indices`` int32; row ``u`` owns entries
  ``indptr[u]:indptr[u + 1]``.
* Every per-entry array (``conf``, ``target``) has the dtype of the factors.
* Work is split into ``chunks`` (row boundaries, balanced by estimated cost)
  and the parallel loop runs over chunks (the row solvers hand them out
  dynamically, see :func:`.llvm._take_next`), so scratch buffers are allocated
  once per chunk, never per row, and partial sums are reduced in a fixed
  order: results do not depend on the number of threads.
* The per-chunk row solvers and the loss are C callbacks that the parallel
  kernels reach through fixed symbol names (see :mod:`.llvm`): this keeps
  the first, cold compilation short.
* Numba's cache of every kernel goes stale when any module here changes
  (:mod:`._cache`), not only the one that defines it: kernels inline
  helpers from other modules.

The weighted row update solved for every row ``u`` is::

    A_u = w0 * G + sum_{i in u} (c_ui - w0) y_i y_i^T + lam_u I
    b_u = sum_{i in u} c_ui * t_ui * y_i
    x_u = A_u^{-1} b_u

with ``G = Y^T Y`` and ``t_ui = target - offset[i]``.  ``w0 = 0`` and
``c = 1`` is explicit-feedback ALS, ``w0 = 1, c = 1 + alpha r, t = 1`` is
Hu, Koren & Volinsky's implicit ALS, and the dense objective (every cell
counts, missing cells are 0) is ``w0 = 1, c = 1`` where the per-row term
vanishes and every row shares ``G + lam I`` (see :func:`dense_step`).
"""

import numpy as np

from . import _cache

_cache.install()  # before any kernel is decorated

from .blas import USE_BLAS
from .cg import _solve_cg, solve_cg
from .cg_push import PushLayout, push_above, solve_cg_split
from .chunks import _call, chunk_bounds
from .dense import gram, right_multiply, sparse_times_dense, spd_inverse
from .dense_fit import DenseRun, dense_bounds, dense_step
from .llvm import LOSS_MODE
from .loss import _loss_terms
from . import nnls
from .rows import _solve_cholesky, solve_cholesky

__all__ = ["DenseRun", "PushLayout", "USE_BLAS", "chunk_bounds", "dense_bounds", "dense_step", "gram",
           "loss_terms", "right_multiply",
           "solve_rows",
           "push_above", "solve_cg", "solve_cg_split", "solve_cholesky", "sparse_times_dense", "spd_inverse"]


def loss_terms(indptr, indices, conf, target, offset, X, Y, w0, bounds,
               solver=None):
    """Per-entry part of the weighted loss, summed in float64.

    Returns ``sum_{(u,i) observed} c (t - x_u.y_i)^2 - w0 (x_u.y_i)^2``.
    The unobserved cells contribute ``w0 * sum_all (x_u.y_i)^2``, which the
    caller adds as ``w0 * trace((X^T X)(Y^T Y))`` without densifying.  Dot
    products are taken in the factors' dtype, ``w0`` is rounded to it (as
    in the solves), and the sums are in float64.  ``solver`` ("cholesky" or
    "cg"): run in that solver's parallel kernel, which the fit has compiled
    already, instead of a kernel of its own.
    """
    dt = Y.dtype.type
    work = indptr[-1] * X.shape[1]
    if solver in ("cholesky", "cg"):
        args = (indptr, indices, conf, target, offset, Y, np.empty((0, 0), Y.dtype),
                dt(0), False, dt(w0), X, bounds)
        if solver == "cholesky":
            return _call(_solve_cholesky, work, args + (False, LOSS_MODE))
        return _call(_solve_cg, work, args + (False, LOSS_MODE))
    return _call(_loss_terms, work,
                 (indptr, indices, conf, target, offset, X, Y, dt(w0), bounds))


def solve_rows(args, solver="cholesky", cg_steps=3):
    """Solve the weighted row updates with one of the row solvers.

    ``args`` are the common arguments of :func:`solve_cholesky`,
    :func:`solve_cg` and :func:`~fastals.kernels.nnls.solve_nnls`;
    ``solver`` is ``"cholesky"``, ``"cg"`` or ``"nnls"``.  Returns
    ``(name, rows)``: the number of rows that needed the ridge fallback
    (Cholesky) or hit the iteration cap (NNLS), or ``None`` for CG.
    """
    if solver == "nnls":
        return ("nnls_capped_rows", nnls.solve_nnls(*args))
    if solver == "cg":
        solve_cg(*args, int(cg_steps))
        return None
    return ("ridge_fallback_rows", solve_cholesky(*args))
