"""Kernel-ready arrays for one orientation of the ratings matrix (the
rows solved by one half-step of :class:`fastals.FastALS`)."""

import functools

import numpy as np

from . import kernels as K
from ._input import kernel_arrays
from .kernels.chunks import n_chunks as _n_chunks


class _Side:
    """Kernel-ready arrays for one orientation of the ratings matrix."""

    def __init__(self, csr, k, dtype):
        self.n_rows, self.n_cols = csr.shape
        self.indptr, self.indices = kernel_arrays(csr)
        self.data = csr.data
        self.counts = np.diff(self.indptr)
        self.k = k
        self.dtype = dtype

    def cg_push(self, above):
        """``(layout, conf, target)`` of the rows of more than ``above``
        entries for the push form of the CG half-step
        (:func:`fastals.kernels.solve_cg_split`), None where there is none
        (or ``above < 0``); made once per ``above``.  The per-entry values
        are the side's own (``solve_conf``, ``target``) in the layout's
        order."""
        cache = self.__dict__.setdefault("_push", {})
        if above not in cache:
            sel = np.flatnonzero(self.counts > above) if above >= 0 else []
            if len(sel) == 0:
                cache[above] = None
            else:
                layout = K.PushLayout(self.indptr, self.indices, sel)
                cache[above] = (layout, layout.take(self.solve_conf),
                                layout.take(self.target))
        return cache[above]

    @functools.cached_property
    def bounds(self):
        """Row chunks of the row solvers, made on first use (the fused dense
        objective has chunks of its own and needs none)."""
        return K.chunk_bounds(self.indptr, self.k, _n_chunks(self.n_rows))
