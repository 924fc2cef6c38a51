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
The tasks that run on the workers are in :mod:`fastals._dask_tasks`; this
module drives them, restarts a fit that lost a worker (:data:`RETRIES`)
and connects to clusters (:class:`connect`).

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
import traceback
import warnings
import weakref

import numpy as np

from . import _dask_tasks as T, _guard
from ._input import resolve_duplicates, to_csr, transpose_csr
from .data.tables import from_table, is_table
from .exceptions import FastALSError, InputError, NumericalError

DEFAULT_COLUMNS = ("user", "item", "rating")

#: Restarts of a fit after lost workers before it gives up.
RETRIES = 2

#: Seconds a restart waits for the cluster to get its workers back (it goes
#: on with fewer, if at least one is there).
RESTART_WAIT = 30

#: Seconds between the checks for lost workers while a fit waits for tasks.
POLL = 1.0


class WorkerLost(FastALSError):
    """A worker holding blocks of the fit was lost."""

    def __init__(self, worker):
        super().__init__(f"Dask worker {worker} was lost mid-fit")
        self.worker = worker


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
        self._made = []  # weak references to every future of the fit

    def _track(self, futures):
        self._made.extend(weakref.ref(f) for f in futures)
        return futures

    def release(self):
        """Release every future of the fit still alive.  Dask frees a
        task's data on the workers only when no future of it is left; the
        futures of a fit can outlive it in reference cycles (tracebacks of
        the one-second waits keep their frames), and the workers then keep
        the fit's blocks until Python's cyclic collector runs (measured:
        worker memory 1.0 GB after one 20M fit, 2.3 GB after three)."""
        made, self._made = self._made, []
        for ref in made:
            f = ref()
            if f is not None:
                f.release()

    def submit(self, fn, *args, worker=None):
        """``client.submit``, pinned to ``worker`` when given.  Pinned
        strictly: with ``allow_other_workers`` Dask's work stealing moves
        tasks of a busy worker to the other one, and with them the blocks
        and factor rows they read (measured at 20M: 10 MB more per
        iteration, and slower).  A lost worker is handled by the restart
        (:func:`fit_on_cluster`), not by running its tasks elsewhere."""
        kw = {"pure": False}
        if worker is not None:
            kw.update(workers=[worker], allow_other_workers=False)
        return self._track([self.client.submit(fn, *args, **kw)])[0]

    def compute(self, collection):
        """``client.compute``, its futures tracked like :meth:`submit`'s."""
        return self._track(self.client.compute(collection))

    def place(self, data, workers):
        """Scatter ``data[j]`` to ``workers[j]`` (one call per worker);
        the futures, in order."""
        out = [None] * len(data)
        for w in dict.fromkeys(workers):
            idx = [j for j, x in enumerate(workers) if x == w]
            try:
                got = self._track(self.client.scatter(
                    [data[j] for j in idx], workers=[w], hash=False))
            except Exception as exc:
                raise self.failure(exc) from None
            for j, f in zip(idx, got):
                out[j] = f
        return out

    def gather(self, futures):
        """``client.gather`` that fails fast, naming the worker, when a
        worker is lost and with it blocks of the fit (:attr:`held`): Dask
        would otherwise replay the whole ALS lineage, or wait forever for
        scattered data that no longer exists."""
        flat = [f for f in _flatten(futures) if isinstance(f, self.dd.Future)]
        while True:
            try:
                self.dd.wait(flat, timeout=POLL)
                break
            except TimeoutError as exc:
                _forget(exc)
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
            return WorkerLost(self._lost_worker())
        if isinstance(exc, (OSError, TimeoutError)) or name == "CommClosedError":
            return FastALSError(f"lost the connection to the Dask scheduler "
                                f"({name}: {text})")
        return exc

    held = ()  # futures of the fit that must stay in memory (blocks, needs)

    def _check_held(self):
        if any(f.status != "finished" for f, _, _ in self.held):
            raise WorkerLost(self._lost_worker())

    def rejoin(self, lost):
        """After losing ``lost``: wait (up to :data:`RESTART_WAIT` s) for the
        cluster to get back to its number of workers, then use the workers
        it has."""
        try:
            self.client.wait_for_workers(len(self.workers), timeout=RESTART_WAIT)
        except Exception:  # a timeout: go on with the workers there are
            pass
        alive = sorted(self._alive())
        if not alive:
            raise FastALSError(f"Dask worker {lost} was lost mid-fit and no "
                               f"worker was left after {RESTART_WAIT} s")
        self.workers = alive

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


def _forget(exc):
    """Drop the frames that ``exc`` and the exceptions chained to it hold.
    Dask raises its timeout from a frame that holds the exception itself (a
    reference cycle), so the frames of the wait and of its callers, with
    their futures and arrays, would live until Python's cyclic collector
    runs."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


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
    bytes of factor rows shipped between workers per iteration, the
    seconds per iteration and the restarts after lost workers.

    Notes
    -----
    A worker lost mid-fit takes blocks of the ratings and factors with it.
    The fit then restarts from the first epoch (the same model: blocks and
    starting factors do not depend on the workers), up to :data:`RETRIES`
    times, rebuilding the blocks from the client's copy of the input or
    from the dataframe's graph; ``callback`` and the progress bar see each
    epoch once.  After that, or when no worker comes back within
    :data:`RESTART_WAIT` seconds, a :class:`~fastals.exceptions.FastALSError`
    names the lost worker.  Like :meth:`FastALS.fit`, all or nothing.
    """
    k, dtype = model._validated()
    cl = _Cluster(client)
    implicit = model.objective == "implicit"
    if blocks is None:
        blocks = max(cl.threads, len(cl.workers))
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) \
            or blocks < 1:
        raise InputError(f"blocks must be a positive integer, got {blocks!r}")
    spec = T._Spec(model, k, dtype)
    if _dask_dataframe(X):
        columns = tuple(columns) if columns is not None else DEFAULT_COLUMNS
        if len(columns) != 3:
            raise InputError("columns must name three columns: user, item, value")
        policy = resolve_duplicates(model.duplicates, implicit)

        def build():
            return _partition_dataframe(cl, X, columns, k, int(blocks), policy)
    else:
        if is_table(X):
            X = from_table(X, columns)
        elif columns is not None:
            raise InputError("columns= only applies to a DataFrame or pyarrow Table")
        local = to_csr(X, model.duplicates, implicit=implicit)

        def build():
            return _partition_local(cl, *local, k, int(blocks))
    saved = dict(model.__dict__)
    run = _Run(model, show_progress)
    try:
        while True:
            try:
                _train(model, cl, spec, build(), run)
                break
            except WorkerLost as exc:
                cl.held = ()
                if run.restarts >= RETRIES:
                    again = f" (after {run.restarts} restart(s))" if run.restarts else ""
                    raise FastALSError(
                        f"Dask worker {exc.worker} was lost mid-fit{again} with "
                        "blocks of the ratings it held; restart the fit "
                        "(docs/distributed.md)") from None
                run.restarts += 1
                warnings.warn(f"Dask worker {exc.worker} was lost mid-fit; "
                              f"restarting the fit from epoch 1 (restart "
                              f"{run.restarts} of at most {RETRIES})",
                              RuntimeWarning, stacklevel=3)
                cl.release()
                cl.rejoin(exc.worker)
    except BaseException:
        model.__dict__.clear()
        model.__dict__.update(saved)
        raise
    finally:
        cl.held = ()
        cl.release()
        run.close()
    return model


class _Run:
    """What a restart must not repeat: the callback and progress of the
    epochs already reported."""

    def __init__(self, model, show_progress):
        self.model, self.reported, self.restarts = model, 0, 0
        self.t0 = time.perf_counter()
        self.bar = None
        if show_progress:
            from ._progress import progress_bar
            self.bar = progress_bar(model.iterations, unit="epoch")

    def epoch(self, epoch, loss):
        """Report ``epoch`` (1-based) unless done before; True: stop."""
        if epoch <= self.reported:
            return False
        self.reported = epoch
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.6f}")
        cb = self.model.callback
        return bool(cb(epoch, loss, time.perf_counter() - self.t0)) if cb else False

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _train(model, cl, spec, parts, run):
    """One attempt at the fit, on the blocks ``parts`` (see :func:`_partition_local`)."""
    uraw, iraw, ub, ib, user_ids, item_ids, csr = parts
    k, dtype = spec.k, spec.dtype
    m, n = int(ub[-1]), int(ib[-1])
    stats = cl.gather([cl.submit(T._stats, r) for r in uraw])
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
    ublocks = [cl.submit(T._prepare, r, spec, worker=w) for r, w in zip(uraw, uw)]
    iblocks = [cl.submit(T._prepare, r, spec, worker=w) for r, w in zip(iraw, iw)]
    del uraw, iraw

    # Each block is told once which rows of each factor block it needs; the
    # list lives on the worker of that factor block.
    def needs(blocks_, wb, bounds, wf):
        out = []
        for blk, w in zip(blocks_, wb):
            row = []
            for c in range(bounds.size - 1):
                here = cl.submit(T._need, blk, int(bounds[c]), int(bounds[c + 1]),
                                 worker=w)
                row.append(cl.submit(T._copy, here, worker=wf[c]))
            out.append(row)
        return out

    need_u = needs(ublocks, uw, ib, iw)   # user block b <- item factor block c
    need_i = needs(iblocks, iw, ub, uw)   # item block c <- user factor block b
    # The divergence guard of one machine (_guard.Watch): the same sampled
    # entries (positions in the users' CSR), each checked on its item block.
    pos = _guard.sample_positions(nnz)
    starts = np.cumsum([0] + [s[0] for s in stats])
    cuts = np.searchsorted(pos, starts)
    sizes_u, sizes_i, sums, got = cl.gather([
        [[cl.submit(len, f) for f in row] for row in need_u],
        [[cl.submit(len, f) for f in row] for row in need_i],
        [cl.submit(T._sums, b) for b in ublocks],
        [cl.submit(T._sample, blk, pos[cuts[b]:cuts[b + 1]] - starts[b])
         for b, blk in enumerate(ublocks)]])
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

    su, si, st, sc = (np.concatenate([g[j] for g in got]) for j in range(4))
    base, t_max = float(np.sum(sc * (st * st + 1.0))), float(np.abs(st).max(initial=0))
    where = np.searchsorted(ib, si, side="right") - 1
    samples = [(su[where == c], si[where == c] - ib[c], st[where == c], sc[where == c])
               for c in range(len(iw))]

    rng = np.random.default_rng(model.random_state)
    X0 = model._init_factors(m, spec.width, dtype, rng)
    Y0 = model._init_factors(n, spec.width, dtype, rng)
    if model.use_bias:
        X0[:, k] = 0
        Y0[:, k] = 0
    none = (None, 0)  # a factor block is (factors, solver report)
    got = cl.place([(X0[ub[b]:ub[b + 1]], none) for b in range(len(uw))]
                   + [(Y0[ib[c]:ib[c + 1]], none) for c in range(len(iw))]
                   + samples, uw + iw + iw)
    Xf, Yf, samples = got[:len(uw)], got[len(uw):len(uw) + len(iw)], got[len(uw) + len(iw):]
    del X0, Y0, got

    w0 = model._w0()
    lam = model.regularization
    if model.objective == "explicit":
        norm = float(nnz)
    elif model.objective == "dense":
        norm = float(m) * n
    else:
        norm = sum(s[0] for s in sums) + model.unobserved_weight * (float(m) * n - nnz)
    norm = max(norm, 1e-300)
    zero_loss = sum(s[1] for s in sums) / norm
    shared = "inverse" if model.objective == "dense" and not \
        model.weighted_regularization else "gram"

    def gram(F, wf):
        return cl.submit(T._sum, *[cl.submit(T._gram, f, spec, worker=w)
                                   for f, w in zip(F, wf)]) if w0 else None

    def half(blocks_, wb, need, F_other, wf, G, F_prev):
        if shared == "inverse" and G is not None:
            G = cl.submit(T._dense_inverse, G, spec)
        slices = [[cl.submit(T._take, F_other[c], need[b][c], worker=wf[c])
                   for c in range(len(F_other))] for b in range(len(blocks_))]
        new = [cl.submit(T._solve, blk, slices[b], G, F_prev[b], spec, worker=wb[b])
               for b, blk in enumerate(blocks_)]
        return new, slices

    model.loss_history = []
    model.objective_history = []
    counts = {"epochs": 0, "ridge_fallback_rows": 0, "nnls_capped_rows": 0}
    want_loss = bool(model.calculate_training_loss or model.tol is not None)
    GY = gram(Yf, iw)
    epoch_seconds = []
    for epoch in range(model.iterations):
        te = time.perf_counter()
        Xf, _ = half(ublocks, uw, need_u, Yf, iw, GY, Xf)
        GX = gram(Xf, uw)
        Yf, xslices = half(iblocks, iw, need_i, Xf, uw, GX, Yf)
        GY = gram(Yf, iw)
        iterms = [cl.submit(T._item_terms, blk, xslices[c], Yf[c], samples[c], spec,
                            want_loss, worker=iw[c]) for c, blk in enumerate(iblocks)]
        uterms = [cl.submit(T._user_terms, blk, f, spec, worker=w)
                  for blk, f, w in zip(ublocks, Xf, uw)]
        got = cl.gather(iterms + uterms + ([GX, GY] if w0 and want_loss else []))
        del xslices
        it, ut = got[:len(iterms)], got[len(iterms):len(iterms) + len(uterms)]
        counts["epochs"] += 1
        for g in it + ut:
            if g[-1][0] is not None:
                counts[g[-1][0]] += int(g[-1][1])
        if su.size:
            _guard.judge_blowup(
                model, sum(g[1] for g in it), base, t_max,
                float(np.sqrt(max(g[1] for g in ut))),
                float(np.sqrt(max(g[3] for g in it))),
                lambda: max(g[-2] for g in it + ut), epoch + 1)
        loss = float("nan")
        if want_loss:
            err = sum(g[0] for g in it)
            reg = lam * (sum(g[2] for g in it) + sum(g[0] for g in ut))
            if w0:
                err += w0 * float(np.sum(got[-2] * got[-1]))
            loss = float(err / norm)
            model.loss_history.append(loss)
            model.objective_history.append(float((err + reg) / norm))
            _guard.check_monotone(model, dtype, epoch + 1, zero_loss)
        epoch_seconds.append(time.perf_counter() - te)
        stop = run.epoch(epoch + 1, loss)
        if stop or model._converged():
            break
    Xg, Yg = cl.gather([Xf, Yf])
    X = np.concatenate([f[0] for f in Xg]) if Xg else np.zeros((0, spec.width), dtype)
    Y = np.concatenate([f[0] for f in Yg]) if Yg else np.zeros((0, spec.width), dtype)
    del Xg, Yg
    cl.held = ()
    model._store(X, Y, k)
    if csr is not None:
        model._remember_training(csr)
    else:
        model._user_items = None
        model._rating_range = (lo, hi)
        model._recommend_cache = {}
    model.solver_report = counts
    _guard.warn_solver_counts(model, counts, _Counts(ublocks, cl), _Counts(iblocks, cl))
    model.cluster_stats_ = {
        "workers": len(cl.workers), "user_blocks": len(ub) - 1,
        "item_blocks": len(ib) - 1, "touched_rows": int(touched_rows),
        # Gram matrices (implicit, dense): at most one per factor block to
        # the summing task, the sum to every solve, two to the client.
        "bytes_per_iteration": int(shipped + ((2 * (len(ub) + len(ib) - 2) + 2)
                                              * k * k * 8 if w0 else 0)),
        "seconds_per_iteration": epoch_seconds,
        "restarts": run.restarts,
    }


class _Counts:
    """``side.counts`` for :func:`_guard.warn_solver_counts`, fetched only
    when it asks (ridge fallbacks with weighted regularization)."""

    def __init__(self, blocks, cl):
        self.blocks, self.cl = blocks, cl

    @property
    def counts(self):
        got = self.cl.gather([self.cl.submit(T._block_of, b, "counts")
                              for b in self.blocks])
        return np.concatenate(got) if got else np.zeros(0, np.int64)


def _partition_local(cl, csr, user_ids, item_ids, k, n_blocks):
    """Scatter the blocks of the client's canonical CSR (see ``to_csr``)."""
    csc = transpose_csr(csr)
    m, n = csr.shape
    ub = _block_bounds(np.diff(csr.indptr), m, k, n_blocks)
    ib = _block_bounds(np.diff(csc.indptr), n, k, n_blocks)
    W = cl.workers

    def raw(mat, bounds):
        out = []
        for b in range(bounds.size - 1):
            s, e = int(bounds[b]), int(bounds[b + 1])
            p0, p1 = int(mat.indptr[s]), int(mat.indptr[e])
            out.append(T._RawBlock(s, mat.indptr[s:e + 1] - p0, mat.indices[p0:p1],
                                   mat.data[p0:p1]))
        return out

    blocks = cl.place(raw(csr, ub) + raw(csc, ib),
                      [W[b % len(W)] for b in range(ub.size - 1)]
                      + [W[c % len(W)] for c in range(ib.size - 1)])
    del csc
    return (blocks[:ub.size - 1], blocks[ub.size - 1:], ub, ib, user_ids, item_ids, csr)


def _partition_dataframe(cl, X, columns, k, n_blocks, duplicates):
    """Map ids and partition the ratings on the cluster."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise InputError(f"the dataframe has no column(s) {', '.join(map(repr, missing))}"
                         f" (columns: {', '.join(map(str, X.columns))}); pass "
                         "columns=(user, item, value)")
    frames = cl.compute(X[list(columns)].to_delayed())
    parts = [cl.submit(T._read_partition, f, columns) for f in frames]
    del frames
    uu = cl.submit(T._merge_uniques, f"column {columns[0]!r}",
                   *[cl.submit(T._uniques, p, 0) for p in parts])
    iu = cl.submit(T._merge_uniques, f"column {columns[1]!r}",
                   *[cl.submit(T._uniques, p, 1) for p in parts])
    user_ids, item_ids = cl.gather([uu, iu])
    m, n = user_ids.size, item_ids.size
    if m == 0 or n == 0:
        raise InputError("no ratings: the dataframe is empty")
    codes = [cl.submit(T._encode, p, uu, iu) for p in parts]
    del parts
    bins_u, bins_i = min(m, 1 << 16), min(n, 1 << 16)
    hu = cl.submit(T._sum, *[cl.submit(T._histogram, c, 0, m, bins_u) for c in codes])
    hi = cl.submit(T._sum, *[cl.submit(T._histogram, c, 1, n, bins_i) for c in codes])
    hu, hi = cl.gather([hu, hi])
    ub = _block_bounds(hu, m, k, n_blocks)
    ib = _block_bounds(hi, n, k, n_blocks)
    W = cl.workers
    splits = [cl.submit(T._split, c, 0, ub) for c in codes]
    del codes
    uraw = []
    for b in range(ub.size - 1):
        pieces = [cl.submit(T._getitem, s, b) for s in splits]
        uraw.append(cl.submit(T._user_block, int(ub[b]), int(ub[b + 1]), n,
                              duplicates, *pieces, worker=W[b % len(W)]))
    del splits
    tsplits = [cl.submit(T._transpose_pieces, r, ib) for r in uraw]
    iraw = []
    for c in range(ib.size - 1):
        pieces = [cl.submit(T._getitem, s, c) for s in tsplits]
        iraw.append(cl.submit(T._item_block, int(ib[c]), int(ib[c + 1]), m,
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
