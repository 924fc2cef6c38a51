"""Tasks of :mod:`fastals.distributed`: what runs on the Dask workers.

The blocks of the ratings (:class:`_RawBlock` as partitioned,
:class:`_Block` ready for the kernels), the half-step, Gram, loss and
guard tasks that run on them, and the tasks that map ids and partition a
Dask dataframe.  Plain functions of numpy arrays and the kernels: nothing
here imports Dask, and each task is unpickled by name on the workers.
"""

import numpy as np

from . import _dense_wr, _guard, kernels as K
from .kernels.chunks import even_bounds, n_chunks, threads
from ._input import _check_finite, _check_integral, combine_duplicates, encode_ids
from .exceptions import InputError, NumericalError

# ----------------------------------------------------------------- blocks
class _RawBlock:
    """Rows ``start:start + n_rows`` of one side, CSR with global column ids."""

    def __init__(self, start, indptr, cols, values):
        self.start = int(start)
        self.indptr = np.ascontiguousarray(indptr, np.int64)
        self.cols = np.ascontiguousarray(cols, np.int64)
        self.values = np.ascontiguousarray(values, np.float64)

    @property
    def n_rows(self):
        return self.indptr.size - 1


class _Block:
    """A prepared block: kernel-ready CSR over the touched columns only.

    ``indices`` are positions in ``touched`` (the sorted global ids of the
    other side's rows that the block's ratings reference), so the solver
    runs on the compact matrix ``F[touched]`` instead of all of ``F``.
    """


class _Spec:
    """What every task needs to know about the model (picklable, small)."""

    def __init__(self, model, k, dtype):
        params = {p: v for p, v in model.get_params().items() if p != "callback"}
        self.model = type(model)(**params)
        self.model.global_mean = 0.0
        self.k = k
        self.dtype = np.dtype(dtype)
        self.width = k + 1 if model.use_bias else k
        self.threads = int(model.num_threads)


def _threads(spec):
    """Numba threads for a task: ``num_threads``, else the worker's threads."""
    n = spec.threads
    if not n:
        try:
            from distributed import get_worker
            n = int(get_worker().state.nthreads)
        except Exception:  # not on a worker (tests calling tasks directly)
            n = 0
    return threads(n)


def _prepare(raw, spec):
    b = _Block()
    b.start, b.n_rows = raw.start, raw.n_rows
    b.indptr = raw.indptr
    if raw.cols.size:
        codes, b.touched = encode_ids(raw.cols, "columns")
    else:
        codes, b.touched = raw.cols, raw.cols
    b.touched = np.ascontiguousarray(b.touched, np.int64)
    b.indices = np.ascontiguousarray(codes, np.int32)
    b.counts = np.diff(b.indptr)
    m = spec.model
    b.conf, b.target = m._conf_target(raw.values, spec.dtype)
    b.solve_conf = m._row_conf(b.conf, b.counts)
    b.bounds = K.chunk_bounds(b.indptr, spec.k, n_chunks(b.n_rows))
    b.dtype = spec.dtype
    b.conf_sum = float(b.conf.sum(dtype=np.float64))
    # The loss of all-zero factors, the guard's scale (_guard.Watch).
    # As the single-machine guard: float64 by blocks, not np.dot (whose
    # OpenBLAS threads would spin on the worker's cores afterwards)
    b.zero_sum = _guard.dot64(b.conf, b.target, b.target)
    return b


def _stats(raw):
    v = raw.values
    if not v.size:
        return 0, 0.0, np.inf, -np.inf
    return int(v.size), float(v.sum()), float(v.min()), float(v.max())


def _need(block, lo, hi):
    """Positions, in the factor block of rows ``lo:hi``, that ``block`` touches."""
    t = block.touched
    a, b = np.searchsorted(t, [lo, hi])
    return np.ascontiguousarray(t[a:b] - lo)


def _copy(a):
    return np.array(a, copy=True)


def _take(F, need):
    """The rows ``need`` of a factor block ``F`` (``(factors, report)``)."""
    return F[0][need]


def _nbytes(a):
    return a.nbytes


def _block_of(block, name):
    return getattr(block, name)


def _sums(block):
    return block.conf_sum, block.zero_sum


def _sample(block, pos):
    """The guard's sampled entries at CSR positions ``pos`` of a user block:
    ``(users, items, target, conf)`` with global ids (see :func:`_guard.probe`)."""
    rows = np.searchsorted(block.indptr, pos, side="right") - 1 + block.start
    cols = block.touched[block.indices[pos]]
    return (rows, cols, block.target[pos].astype(np.float64),
            block.conf[pos].astype(np.float64))


# ------------------------------------------------------------- half-steps
def _solve(block, slices, G, F_prev, spec):
    """New factors of ``block``'s rows given the touched rows of the other side.

    ``slices`` are the touched rows, one array per factor block of the other
    side, in order; ``G`` is the other side's Gram matrix (implicit; dense
    with ``weighted_regularization``), the inverse ``(G + lam I)^-1``
    (dense), or None (explicit).  The kernel calls are those of
    :meth:`fastals.FastALS._half_step`.  A factor block is a pair
    ``(factors, report)``, ``report`` the solver's ``(counter name,
    count)`` as :meth:`fastals.FastALS._half_step` returns it.
    """
    m, dtype = spec.model, spec.dtype
    Y = np.concatenate(slices) if len(slices) != 1 else slices[0]
    if Y.shape[0] == 0:  # rows without ratings only: any design gives zeros
        Y = np.zeros((1, spec.width), dtype)
    Y = np.ascontiguousarray(Y)
    X = np.array(F_prev[0], dtype, copy=True, order="C")
    lam = dtype.type(m.regularization)
    D, offset = m._design(Y)
    report = (None, 0)
    with _threads(spec):
        if m.objective == "dense" and m.weighted_regularization:
            _dense_wr.half_step(block, D, G, X, float(m.regularization), even_bounds)
        elif m.objective == "dense":
            Z = K.right_multiply(D, G.astype(dtype), even_bounds(D.shape[0]))
            K.sparse_times_dense(block.indptr, block.indices, block.target, Z, X,
                                 block.bounds)
        else:
            w0 = m._w0()
            Gd = (G if w0 else np.zeros((D.shape[1],) * 2)).astype(dtype)
            args = (block.indptr, block.indices, block.solve_conf, block.target,
                    offset, D, Gd, lam, bool(m.weighted_regularization),
                    dtype.type(w0), X, block.bounds)
            report = K.solve_rows(args, "nnls" if m.nonnegative else m.solver,
                                  m.cg_steps) or report
    if not np.isfinite(X).all():
        raise NumericalError(
            "training diverged: a factor became NaN or infinite; raise "
            "regularization, lower alpha, or use dtype=float64")
    return X, report


def _gram(F, spec):
    with _threads(spec):
        return K.gram(F[0], even_bounds(F[0].shape[0]))


def _sum(*parts):
    total = parts[0].copy()
    for p in parts[1:]:  # fixed order
        total += p
    return total


def _dense_inverse(G, spec):
    A = G.copy()
    A[np.diag_indices_from(A)] += spec.model.regularization
    return K.spd_inverse(A)


def _compact(slices, spec):
    Y = np.concatenate(slices) if len(slices) != 1 else slices[0]
    if Y.shape[0] == 0:
        Y = np.zeros((1, spec.width), spec.dtype)
    return np.ascontiguousarray(Y)


def _item_terms(block, slices, F, sample, spec, loss):
    """An item block's share of the epoch's loss and guard numbers.

    ``F`` is the block's new factor block, ``slices`` the new user rows it
    touches, ``sample`` the guard's sampled entries in this block
    (``(users, local items, target, conf)``).  Returns ``(error,
    sampled error, regularization, largest squared row norm, largest
    |entry|, solver report)``; ``error`` (the per-entry loss terms) is NaN
    unless ``loss``.
    """
    m, dtype = spec.model, spec.dtype
    pair = F if isinstance(F, tuple) else (F, (None, 0))
    F = pair[0]
    Y = _compact(slices, spec)
    err = float("nan")
    if loss:
        D, offset = m._design(Y)
        w0 = float(dtype.type(m._w0()))
        solver = None if m.objective == "dense" or m.nonnegative else m.solver
        with _threads(spec):
            err = float(K.loss_terms(block.indptr, block.indices, block.conf,
                                     block.target, offset, F, D, w0, block.bounds,
                                     solver))
    users, items, t, c = sample
    pos = np.searchsorted(block.touched, users)
    probe = _guard.sample_error(m, Y[pos], F[items], t, c) if t.size else 0.0
    return (err, probe) + _user_terms(block, pair, spec)


def _user_terms(block, F, spec):
    """``(regularization, largest squared row norm, largest |entry|, solver
    report)`` of the factor block ``F`` of ``block``."""
    m = spec.model
    F, report = F if isinstance(F, tuple) else (F, (None, 0))
    norms = np.einsum("ij,ij->i", F, F, dtype=np.float64)
    top = float(norms.max()) if norms.size else 0.0
    big = float(np.abs(F).max()) if F.size else 0.0
    if m.weighted_regularization:
        norms = norms * block.counts ** float(m.regularization_exponent)
    return float(norms.sum()), top, big, report


# ------------------------------------------------------- dataframe input
def _normalize_ids(raw, what):
    """The id normalization of :func:`fastals._input.encode_ids`, plus a
    check that an object column does not mix strings and numbers."""
    if raw.dtype.kind == "O":
        import pandas as pd
        kind = pd.api.types.infer_dtype(raw, skipna=False)
        if kind not in ("string", "empty"):
            types = sorted({type(v).__name__ for v in raw[:100000]})
            raise InputError(f"{what} mixes id types ({', '.join(types)}); use "
                             "one type for every id (all integers or all strings)")
        return raw.astype(str)
    if raw.dtype.kind == "f":
        _check_integral(raw, what)
        return raw.astype(np.int64)
    if raw.dtype.kind == "b":
        return raw.astype(np.int64)
    if raw.dtype.kind not in "iuU":
        raise InputError(f"{what} must hold integers or strings, got dtype {raw.dtype}")
    return raw


def _read_partition(df, columns):
    ucol, icol, vcol = columns
    users = _normalize_ids(np.asarray(df[ucol].to_numpy()), f"column {ucol!r}")
    items = _normalize_ids(np.asarray(df[icol].to_numpy()), f"column {icol!r}")
    try:
        values = np.asarray(df[vcol].to_numpy(), dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"column {vcol!r} must be numeric") from None
    _check_finite(values, f"column {vcol!r}")
    return users, items, values


def _uniques(part, j):
    return np.unique(part[j])


def _merge_uniques(what, *parts):
    kinds = {p.dtype.kind for p in parts if p.size}
    if len(kinds & {"U"}) and len(kinds - {"U"}):
        raise InputError(f"{what} mixes id types across partitions (strings in "
                         "some, integers in others); use one type for every id")
    nonempty = [p for p in parts if p.size] or list(parts[:1])
    return np.unique(np.concatenate(nonempty))


def _encode(part, user_ids, item_ids):
    users, items, values = part
    return (np.searchsorted(user_ids, users), np.searchsorted(item_ids, items),
            values)


def _histogram(part, j, n, bins):
    return np.bincount(part[j] * bins // max(n, 1), minlength=bins)


def _split(part, j, bounds):
    """Split triplets by block of column ``j``, keeping the input order."""
    block = np.searchsorted(bounds, part[j], side="right") - 1
    order = np.argsort(block, kind="stable")
    cuts = np.searchsorted(block[order], np.arange(bounds.size))
    out = []
    for b in range(bounds.size - 1):
        sel = order[cuts[b]:cuts[b + 1]]
        out.append(tuple(a[sel] for a in part))
    return out


def _getitem(seq, i):
    return seq[i]


def _user_block(start, stop, n_items, policy, *pieces):
    """Concatenate one user block's pieces (in partition order) and combine
    duplicate pairs as :func:`fastals._input.to_csr` does."""
    rows = np.concatenate([p[0] for p in pieces])
    cols = np.concatenate([p[1] for p in pieces])
    vals = np.concatenate([p[2] for p in pieces])
    r, c, v = combine_duplicates(rows, cols, vals, n_items, policy)
    indptr = np.zeros(stop - start + 1, np.int64)
    np.cumsum(np.bincount(r - start, minlength=stop - start), out=indptr[1:])
    return _RawBlock(start, indptr, c, v)


def _transpose_pieces(raw, bounds):
    rows = np.repeat(np.arange(raw.start, raw.start + raw.n_rows), np.diff(raw.indptr))
    return _split((raw.cols, rows, raw.values), 0, bounds)


def _item_block(start, stop, n_users, *pieces):
    items = np.concatenate([p[0] for p in pieces])
    users = np.concatenate([p[1] for p in pieces])
    vals = np.concatenate([p[2] for p in pieces])
    order = np.argsort(items * np.int64(n_users) + users, kind="stable")
    indptr = np.zeros(stop - start + 1, np.int64)
    np.cumsum(np.bincount(items - start, minlength=stop - start), out=indptr[1:])
    return _RawBlock(start, indptr, users[order], vals[order])
