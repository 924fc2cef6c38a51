"""FastALS on a Dask cluster: blocked ALS with the single-machine row solvers.

The design is Spark MLlib's blocked ALS.  The ratings are partitioned once
into *user blocks* (contiguous ranges of user rows, each with all the
ratings of its users) and *item blocks* (the same for items); blocks stay on
the workers.  Each block learns once which rows of the other side's factors
it touches (its ``touched`` list) and re-numbers its column indices into
that list, so that a half-step ships every block exactly the factor rows
it needs -- one slice from every factor block of the other side -- plus the
``k x k`` Gram matrix where the objective needs it.  The block is then
solved by the same kernel calls as :meth:`fastals.FastALS._half_step`, on
its own CSR rows and the compact matrix of touched rows.  Factor blocks
stay on the worker that solved them; only the final factors come back to
the client, which then holds an ordinary fitted :class:`fastals.FastALS`.

Nothing here imports Dask at ``import fastals`` time; :func:`fit_on_cluster`
imports ``dask.distributed`` when called (extra ``fastals[dask]``).

Bytes moved per iteration (see ``docs/distributed.md``)::

    sum_b |touched_b| * w * s   (user half-step)  +  sum_c |touched_c| * w * s
    (item half-step)  +  at most (2 (B_u + B_i) + 2) k^2 * 8 (Gram matrices,
    implicit and dense only)

with ``w`` the solved width (``k``, or ``k + 1`` with biases), ``s`` the
factors' item size and ``B_u``, ``B_i`` the numbers of blocks; slices
between blocks on the same worker do not cross the network.
"""

import contextlib
import os
import time

import numpy as np

from . import kernels as K
from .kernels.chunks import even_bounds, n_chunks, threads
from ._input import _check_finite, combine_duplicates, encode_ids, \
    resolve_duplicates, to_csr, transpose_csr
from .data.tables import from_table, is_table
from .exceptions import FastALSError, InputError, NumericalError

DEFAULT_COLUMNS = ("user", "item", "rating")


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
    b.conf_sum = float(b.conf.sum(dtype=np.float64))
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
    return F[need]


def _nbytes(a):
    return a.nbytes


def _block_of(block, name):
    return getattr(block, name)


# ------------------------------------------------------------- half-steps
def _solve(block, slices, G, F_prev, spec):
    """New factors of ``block``'s rows given the touched rows of the other side.

    ``slices`` are the touched rows, one array per factor block of the other
    side, in order; ``G`` is the other side's Gram matrix (implicit), the
    inverse ``(G + lam I)^-1`` (dense), or None (explicit).  The kernel
    calls are those of :meth:`fastals.FastALS._half_step`.
    """
    m, dtype = spec.model, spec.dtype
    Y = np.concatenate(slices) if len(slices) != 1 else slices[0]
    if Y.shape[0] == 0:  # rows without ratings only: any design gives zeros
        Y = np.zeros((1, spec.width), dtype)
    Y = np.ascontiguousarray(Y)
    X = np.array(F_prev, dtype, copy=True, order="C")
    lam = dtype.type(m.regularization)
    D, offset = m._design(Y)
    with _threads(spec):
        if m.objective == "dense":
            Z = K.right_multiply(D, G.astype(dtype), even_bounds(D.shape[0]))
            K.sparse_times_dense(block.indptr, block.indices, block.target, Z, X,
                                 block.bounds)
        else:
            w0 = m._w0()
            Gd = (G if w0 else np.zeros((D.shape[1],) * 2)).astype(dtype)
            args = (block.indptr, block.indices, block.solve_conf, block.target,
                    offset, D, Gd, lam, bool(m.weighted_regularization),
                    dtype.type(w0), X, block.bounds)
            K.solve_rows(args, "nnls" if m.nonnegative else m.solver, m.cg_steps)
    if not np.isfinite(X).all():
        raise NumericalError(
            "training diverged: a factor became NaN or infinite; raise "
            "regularization, lower alpha, or use dtype=float64")
    return X


def _gram(F, spec):
    with _threads(spec):
        return K.gram(F, even_bounds(F.shape[0]))


def _sum(*parts):
    total = parts[0].copy()
    for p in parts[1:]:  # fixed order
        total += p
    return total


def _dense_inverse(G, spec):
    A = G.copy()
    A[np.diag_indices_from(A)] += spec.model.regularization
    return K.spd_inverse(A)


def _loss(block, slices, F, spec):
    """Per-entry loss terms of ``block`` (rows ``F``, columns the slices)."""
    m, dtype = spec.model, spec.dtype
    Y = np.concatenate(slices) if len(slices) != 1 else slices[0]
    if Y.shape[0] == 0:
        Y = np.zeros((1, spec.width), dtype)
    D, offset = m._design(np.ascontiguousarray(Y))
    w0 = float(dtype.type(m._w0()))
    solver = None if m.objective == "dense" or m.nonnegative else m.solver
    with _threads(spec):
        return float(K.loss_terms(block.indptr, block.indices, block.conf,
                                  block.target, offset, F, D, w0, block.bounds,
                                  solver))


def _reg(block, F, spec):
    m = spec.model
    norms = np.einsum("ij,ij->i", F, F, dtype=np.float64)
    if m.weighted_regularization:
        norms = norms * block.counts ** float(m.regularization_exponent)
    return float(norms.sum())


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
        _check_finite(raw, what)
        if not np.all(raw == np.round(raw)):
            pos = int(np.flatnonzero(raw != np.round(raw))[0])
            raise InputError(f"{what} must be integers or strings; "
                             f"position {pos} holds {raw[pos]!r}")
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


# ----------------------------------------------------------------- driver
def _block_bounds(row_nnz, n_rows, k, n_blocks):
    """Contiguous row ranges of similar solve cost (``nnz k + rows k^2``).

    ``row_nnz`` may be a coarse histogram (bin ``j`` covers rows
    ``j n / bins .. (j + 1) n / bins``); boundaries fall on bin edges.
    """
    bins = row_nnz.size
    edges = (np.arange(bins + 1) * n_rows) // max(bins, 1) if bins != n_rows \
        else np.arange(n_rows + 1)
    cost = row_nnz.astype(np.float64) * k + np.diff(edges) * float(k) * k
    cum = np.concatenate([[0.0], np.cumsum(cost)])
    n_blocks = int(max(1, min(n_blocks, n_rows)))
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_blocks) / n_blocks)
    bounds = np.unique(np.concatenate([[0], edges[cuts], [n_rows]]))
    return bounds.astype(np.int64)


class _Cluster:
    """Submits tasks and turns cluster failures into one-line errors."""

    def __init__(self, client):
        import distributed
        self.dd = distributed
        self.client = client
        if client.status not in ("running", "connecting"):
            raise FastALSError(f"the Dask client is {client.status}; "
                               "connect a new Client")
        try:
            info = client.scheduler_info()
        except Exception as exc:
            raise FastALSError(f"cannot reach the Dask scheduler: {exc}") from None
        self.workers = sorted(info["workers"])
        if not self.workers:
            raise FastALSError("the Dask cluster has no workers")
        self.threads = sum(int(w.get("nthreads", 1)) for w in info["workers"].values())

    def submit(self, fn, *args, worker=None):
        kw = {"pure": False}
        if worker is not None:
            kw.update(workers=[worker], allow_other_workers=True)
        return self.client.submit(fn, *args, **kw)

    def gather(self, futures):
        """``client.gather`` that fails fast, naming the worker, when a
        worker is lost and with it blocks of the fit (:attr:`held`): Dask
        would otherwise replay the whole ALS lineage, or wait forever for
        scattered data that no longer exists."""
        flat = [f for f in _flatten(futures) if isinstance(f, self.dd.Future)]
        while True:
            try:
                self.dd.wait(flat, timeout=1)
                break
            except TimeoutError:
                pass
            except FastALSError:
                raise
            except Exception as exc:
                raise self.failure(exc) from None
            self._check_held()
        self._check_held()
        try:
            return self.client.gather(futures)
        except FastALSError:
            raise
        except Exception as exc:
            raise self.failure(exc) from None

    def failure(self, exc):
        dd = self.dd
        name = type(exc).__name__
        if isinstance(exc, (InputError, NumericalError)):
            return exc
        killed = getattr(dd, "KilledWorker", None) or getattr(
            getattr(dd, "scheduler", None), "KilledWorker", ())
        if isinstance(exc, killed):
            return FastALSError(f"a Dask worker was lost mid-fit and the task "
                                f"could not be retried: {exc}")
        text = " ".join(str(exc).split())
        if len(text) > 160:
            text = text[:157] + "..."
        if "lost" in text.lower() or "Cancelled" in name:
            return FastALSError(
                f"Dask worker {self._lost_worker()} was lost mid-fit and its data could not be "
                f"recomputed ({name}: {text or 'cancelled'}); restart the fit")
        if isinstance(exc, (OSError, TimeoutError)) or name == "CommClosedError":
            return FastALSError(f"lost the connection to the Dask scheduler "
                                f"({name}: {text})")
        return exc

    held = ()  # futures of the fit that must stay in memory (blocks, needs)

    def _check_held(self):
        if any(f.status != "finished" for f, _, _ in self.held):
            raise FastALSError(
                f"Dask worker {self._lost_worker()} was lost mid-fit with blocks "
                "of the ratings it held; restart the fit (docs/distributed.md)")

    def _lost_worker(self):
        """The worker(s) whose blocks no worker holds any more."""
        try:
            own = [(f, w) for f, w, is_block in self.held if is_block]
            holders = self.client.who_has([f for f, _ in own])
            gone = {w for f, w in own if not holders.get(f.key)}
        except Exception:
            gone = set()
        gone = gone or (set(self.workers) - set(self._alive()))
        return ", ".join(sorted(gone)) or "(unknown)"

    def _alive(self):
        try:
            return list(self.client.nthreads())  # asks the scheduler, not a cache
        except Exception:
            return []


def _flatten(x):
    if isinstance(x, (list, tuple)):
        for y in x:
            yield from _flatten(y)
    else:
        yield x


def _dask_dataframe(X):
    try:
        import dask.dataframe as dd
    except ImportError:
        return False
    return isinstance(X, dd.DataFrame)


def fit_on_cluster(model, X, client, show_progress=False, columns=None,
                   blocks=None):
    """Train ``model`` on a Dask cluster (:meth:`fastals.FastALS.fit` with
    ``client=``).

    Parameters
    ----------
    model : FastALS
    X : dask.dataframe.DataFrame or anything :meth:`FastALS.fit` accepts
        A Dask dataframe is read on the cluster (ids mapped and ratings
        partitioned there); other input is canonicalized here and its
        blocks scattered to the workers.
    client : dask.distributed.Client
    columns : sequence of str, optional
        User, item and value column names of a Dask dataframe (default
        ``("user", "item", "rating")``), or of a pandas/polars/pyarrow table
        as in :meth:`FastALS.fit`.
    blocks : int, optional
        Blocks per side (default: the cluster's total number of threads).

    Returns
    -------
    model, fitted; ``model.cluster_stats_`` records the blocks, the number of
    bytes of factor rows shipped between workers per iteration and the
    seconds per iteration.
    """
    k, dtype = model._validated()
    if model.objective == "dense" and model.weighted_regularization:
        # One machine solves it exactly (_dense_wr); the cluster's shared
        # (G + lam I)^-1 would ignore the per-row penalty.
        raise InputError("the dense objective with weighted_regularization "
                         "is not available on a cluster yet; train it without "
                         "client= or set weighted_regularization=False")
    cl = _Cluster(client)
    implicit = model.objective == "implicit"
    if blocks is None:
        blocks = max(cl.threads, len(cl.workers))
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) \
            or blocks < 1:
        raise InputError(f"blocks must be a positive integer, got {blocks!r}")
    spec = _Spec(model, k, dtype)
    if _dask_dataframe(X):
        columns = tuple(columns) if columns is not None else DEFAULT_COLUMNS
        if len(columns) != 3:
            raise InputError("columns must name three columns: user, item, value")
        uraw, iraw, ub, ib, user_ids, item_ids, csr = _partition_dataframe(
            cl, X, columns, k, int(blocks),
            resolve_duplicates(model.duplicates, implicit))
    else:
        if is_table(X):
            X = from_table(X, columns)
        elif columns is not None:
            raise InputError("columns= only applies to a DataFrame or pyarrow Table")
        uraw, iraw, ub, ib, user_ids, item_ids, csr = _partition_local(
            cl, X, k, int(blocks), model.duplicates, implicit)
    m, n = int(ub[-1]), int(ib[-1])
    stats = cl.gather([cl.submit(_stats, r) for r in uraw])
    nnz = sum(s[0] for s in stats)
    if nnz == 0:
        raise InputError("no ratings: the input is empty")
    lo, hi = min(s[2] for s in stats), max(s[3] for s in stats)
    big = max(abs(lo), abs(hi))
    if big > np.finfo(dtype).max:
        raise InputError(f"a value ({big:g}) does not fit in {dtype.name}; "
                         "rescale the values or use dtype=float64")
    model.user_ids, model.item_ids = user_ids, item_ids
    model.global_mean = sum(s[1] for s in stats) / nnz if model.use_bias else 0.0
    spec.model.global_mean = model.global_mean
    uw = [cl.workers[b % len(cl.workers)] for b in range(len(ub) - 1)]
    iw = [cl.workers[c % len(cl.workers)] for c in range(len(ib) - 1)]
    ublocks = [cl.submit(_prepare, r, spec, worker=w) for r, w in zip(uraw, uw)]
    iblocks = [cl.submit(_prepare, r, spec, worker=w) for r, w in zip(iraw, iw)]
    del uraw, iraw

    # Each block is told once which rows of each factor block it needs; the
    # list lives on the worker of that factor block.
    def needs(blocks_, wb, bounds, wf):
        out = []
        for blk, w in zip(blocks_, wb):
            row = []
            for c in range(bounds.size - 1):
                here = cl.submit(_need, blk, int(bounds[c]), int(bounds[c + 1]),
                                 worker=w)
                row.append(cl.submit(_copy, here, worker=wf[c]))
            out.append(row)
        return out

    need_u = needs(ublocks, uw, ib, iw)   # user block b <- item factor block c
    need_i = needs(iblocks, iw, ub, uw)   # item block c <- user factor block b
    sizes_u = cl.gather([[cl.submit(len, f) for f in row] for row in need_u])
    sizes_i = cl.gather([[cl.submit(len, f) for f in row] for row in need_i])
    # From now on these stay in memory; one that does not was lost.
    cl.held = [(f, w, True) for f, w in zip(ublocks + iblocks, uw + iw)] + [
        (f, w, False) for need, wf in ((need_u, iw), (need_i, uw))
        for row in need for f, w in zip(row, wf)]
    item_bytes = spec.width * dtype.itemsize
    shipped = sum(s * item_bytes for b, row in enumerate(sizes_u)
                  for c, s in enumerate(row) if uw[b] != iw[c])
    shipped += sum(s * item_bytes for c, row in enumerate(sizes_i)
                   for b, s in enumerate(row) if iw[c] != uw[b])
    touched_rows = sum(map(sum, sizes_u)) + sum(map(sum, sizes_i))

    rng = np.random.default_rng(model.random_state)
    X0 = model._init_factors(m, spec.width, dtype, rng)
    Y0 = model._init_factors(n, spec.width, dtype, rng)
    if model.use_bias:
        X0[:, k] = 0
        Y0[:, k] = 0
    Xf = [client.scatter(X0[ub[b]:ub[b + 1]], workers=[w])
          for b, w in enumerate(uw)]
    Yf = [client.scatter(Y0[ib[c]:ib[c + 1]], workers=[w])
          for c, w in enumerate(iw)]
    del X0, Y0

    w0 = model._w0()
    if model.objective == "implicit":
        conf_sum = sum(cl.gather([cl.submit(_block_of, b, "conf_sum")
                                  for b in ublocks]))
    def half(blocks_, wb, need, F_other, wf, G, F_prev):
        if model.objective == "dense":
            G = cl.submit(_dense_inverse, G, spec)
        slices = [[cl.submit(_take, F_other[c], need[b][c], worker=wf[c])
                   for c in range(len(F_other))] for b in range(len(blocks_))]
        new = [cl.submit(_solve, blk, slices[b], G, F_prev[b], spec, worker=wb[b])
               for b, blk in enumerate(blocks_)]
        return new, slices

    model.loss_history = []
    model.objective_history = []
    GY = cl.submit(_sum, *[cl.submit(_gram, f, spec, worker=w)
                           for f, w in zip(Yf, iw)]) if w0 else None
    bar = None
    if show_progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=model.iterations, unit="epoch")
        except ImportError:
            bar = None
    lam = model.regularization
    if model.objective == "explicit":
        norm = float(nnz)
    elif model.objective == "dense":
        norm = float(m) * n
    else:
        norm = conf_sum + model.unobserved_weight * (float(m) * n - nnz)
    norm = max(norm, 1e-300)
    t0 = time.perf_counter()
    epoch_seconds = []
    for epoch in range(model.iterations):
        te = time.perf_counter()
        Xf, _ = half(ublocks, uw, need_u, Yf, iw, GY, Xf)
        GX = cl.submit(_sum, *[cl.submit(_gram, f, spec, worker=w)
                               for f, w in zip(Xf, uw)]) if w0 else None
        Yf, xslices = half(iblocks, iw, need_i, Xf, uw, GX, Yf)
        GY = cl.submit(_sum, *[cl.submit(_gram, f, spec, worker=w)
                               for f, w in zip(Yf, iw)]) if w0 else None
        loss = float("nan")
        if model.calculate_training_loss or model.tol is not None:
            errs = [cl.submit(_loss, blk, xslices[c], Yf[c], spec, worker=iw[c])
                    for c, blk in enumerate(iblocks)]
            regs = [cl.submit(_reg, blk, f, spec, worker=w)
                    for blk, f, w in zip(ublocks, Xf, uw)]
            regs += [cl.submit(_reg, blk, f, spec, worker=w)
                     for blk, f, w in zip(iblocks, Yf, iw)]
            got = cl.gather(errs + regs + ([GX, GY] if w0 else []))
            err = sum(got[:len(errs)])
            reg = lam * sum(got[len(errs):len(errs) + len(regs)])
            if w0:
                err += w0 * float(np.sum(got[-2] * got[-1]))
            loss = float(err / norm)
            model.loss_history.append(loss)
            model.objective_history.append(float((err + reg) / norm))
        else:
            cl.gather([cl.submit(_nbytes, f) for f in Yf + Xf])
        del xslices
        epoch_seconds.append(time.perf_counter() - te)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.6f}")
        stop = False
        if model.callback is not None:
            stop = bool(model.callback(epoch + 1, loss, time.perf_counter() - t0))
        if model.tol is not None and len(model.objective_history) > 1:
            prev, cur = model.objective_history[-2:]
            if abs(prev - cur) <= model.tol * abs(prev):
                stop = True
        if stop:
            break
    if bar is not None:
        bar.close()
    X = np.concatenate(cl.gather(Xf)) if Xf else np.zeros((0, spec.width), dtype)
    Y = np.concatenate(cl.gather(Yf)) if Yf else np.zeros((0, spec.width), dtype)
    model._store(X, Y, k)
    if csr is not None:
        model._remember_training(csr)
    else:
        model._user_items = None
        model._rating_range = (lo, hi)
        model._recommend_cache = {}
    model.cluster_stats_ = {
        "workers": len(cl.workers), "user_blocks": len(ub) - 1,
        "item_blocks": len(ib) - 1, "touched_rows": int(touched_rows),
        # Gram matrices (implicit, dense): at most one per factor block to
        # the summing task, the sum to every solve, two to the client.
        "bytes_per_iteration": int(shipped + ((2 * (len(ub) + len(ib) - 2) + 2)
                                              * k * k * 8 if w0 else 0)),
        "seconds_per_iteration": epoch_seconds,
    }
    return model


def _partition_local(cl, X, k, n_blocks, duplicates, implicit):
    """Canonicalize on the client as ``fit`` does, scatter the blocks."""
    csr, user_ids, item_ids = to_csr(X, duplicates, implicit=implicit)
    csc = transpose_csr(csr)
    m, n = csr.shape
    ub = _block_bounds(np.diff(csr.indptr), m, k, n_blocks)
    ib = _block_bounds(np.diff(csc.indptr), n, k, n_blocks)
    W = cl.workers

    def scatter(mat, bounds):
        out = []
        for b in range(bounds.size - 1):
            s, e = int(bounds[b]), int(bounds[b + 1])
            p0, p1 = int(mat.indptr[s]), int(mat.indptr[e])
            raw = _RawBlock(s, mat.indptr[s:e + 1] - p0, mat.indices[p0:p1],
                            mat.data[p0:p1])
            out.append(cl.client.scatter(raw, workers=[W[b % len(W)]]))
        return out

    return (scatter(csr, ub), scatter(csc, ib), ub, ib, user_ids, item_ids, csr)


def _partition_dataframe(cl, X, columns, k, n_blocks, duplicates):
    """Map ids and partition the ratings on the cluster."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise InputError(f"the dataframe has no column(s) {', '.join(map(repr, missing))}"
                         f" (columns: {', '.join(map(str, X.columns))}); pass "
                         "columns=(user, item, value)")
    frames = cl.client.compute(X[list(columns)].to_delayed())
    parts = [cl.submit(_read_partition, f, columns) for f in frames]
    del frames
    uu = cl.submit(_merge_uniques, f"column {columns[0]!r}",
                   *[cl.submit(_uniques, p, 0) for p in parts])
    iu = cl.submit(_merge_uniques, f"column {columns[1]!r}",
                   *[cl.submit(_uniques, p, 1) for p in parts])
    user_ids, item_ids = cl.gather([uu, iu])
    m, n = user_ids.size, item_ids.size
    if m == 0 or n == 0:
        raise InputError("no ratings: the dataframe is empty")
    codes = [cl.submit(_encode, p, uu, iu) for p in parts]
    del parts
    bins_u, bins_i = min(m, 1 << 16), min(n, 1 << 16)
    hu = cl.submit(_sum, *[cl.submit(_histogram, c, 0, m, bins_u) for c in codes])
    hi = cl.submit(_sum, *[cl.submit(_histogram, c, 1, n, bins_i) for c in codes])
    hu, hi = cl.gather([hu, hi])
    ub = _block_bounds(hu, m, k, n_blocks)
    ib = _block_bounds(hi, n, k, n_blocks)
    W = cl.workers
    splits = [cl.submit(_split, c, 0, ub) for c in codes]
    del codes
    uraw = []
    for b in range(ub.size - 1):
        pieces = [cl.submit(_getitem, s, b) for s in splits]
        uraw.append(cl.submit(_user_block, int(ub[b]), int(ub[b + 1]), n,
                              duplicates, *pieces, worker=W[b % len(W)]))
    del splits
    tsplits = [cl.submit(_transpose_pieces, r, ib) for r in uraw]
    iraw = []
    for c in range(ib.size - 1):
        pieces = [cl.submit(_getitem, s, c) for s in tsplits]
        iraw.append(cl.submit(_item_block, int(ib[c]), int(ib[c + 1]), m,
                              *pieces, worker=W[c % len(W)]))
    return uraw, iraw, ub, ib, user_ids, item_ids, None


# ------------------------------------------------------------- connecting
@contextlib.contextmanager
def kept_environ():
    """Restore ``os.environ`` on exit: wrap a LocalCluster's whole life in
    it.  distributed's nanny sets ``OMP_NUM_THREADS=1`` (and more) in the
    process that (re)starts the workers, so its later subprocesses would
    run single-threaded; :class:`connect` restores it for ``local:N``."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class connect:
    """Context manager: a ``dask.distributed.Client`` for ``address``.

    ``address`` is a scheduler address (``tcp://host:8786``) or ``local:N``
    for a :class:`~distributed.LocalCluster` of ``N`` single-threaded worker
    processes on the loopback interface, started here and closed on exit.
    A scheduler that does not answer within ``timeout`` seconds is an error
    naming the address.
    """

    def __init__(self, address, timeout=5):
        self.address = str(address)
        self.timeout = timeout
        self.cluster = self.client = None

    def __enter__(self):
        try:
            import logging
            from distributed import Client, LocalCluster
        except ImportError:
            raise FastALSError("training on a Dask cluster needs dask.distributed: "
                               "pip install 'fastals[dask]'") from None
        if self.address.startswith("local:"):
            n = self.address[len("local:"):]
            if not n.isdigit() or int(n) < 1:
                raise InputError(f"--dask {self.address}: expected local:N with N "
                                 "a positive number of worker processes")
            self._environ = dict(os.environ)  # restored on exit, see kept_environ
            self.cluster = LocalCluster(
                n_workers=int(n), threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None,
                silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            return self.client
        try:
            self.client = Client(self.address, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise FastALSError(
                f"cannot reach the Dask scheduler at {self.address} within "
                f"{self.timeout:g} s ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]})") from None
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            os.environ.clear()
            os.environ.update(self._environ)
        return False
