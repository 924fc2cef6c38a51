"""The dense objective's half-steps in one parallel region: one half-step
(:func:`dense_step`) or whole epochs (:class:`DenseRun`).

Every row of a half-step shares ``M = (G + lam I)^{-1}`` (all cells
count), so a half-step is: the inverse, the gathers ``W = R Y`` of every
chunk of rows, and per chunk ``X = W M``, its partial Gram matrix
``X^T X`` (both in register tiles, :mod:`.dense_tiles`) and ``sum x . w``
(the loss's cross term after the item step); then the partial sums reduced in chunk order.  One compiled
callback (C ABI, compiled once per dtype and variant: BLAS/LAPACK, or the
portable loops for ``k < 16`` or without BLAS) runs these as tasks from one
queue, numbered over the whole program (``n_halves`` half-steps
alternating between the sides, users first), and a task waits, by
release/acquire counters, only for tasks numbered before it: every thread
that enters takes tasks until the queue is empty, so any number of threads
(one, from Python through ctypes) runs the same tasks on the same data and
the results do not depend on it.  Per half-step ``h`` the tasks are:

* the join of ``h - 1`` (its Gram matrix reduced in chunk order, its
  cross term; after an item step the loss terms of the epoch; a non-finite
  diagonal stops the program) and the inverse for ``h``, on one thread
  while the others gather;
* the gathers of every chunk (they wait for all solves of ``h - 1``);
* the solves of every chunk (each waits for the inverse and its gather);

and a last join after the last half-step.  A whole fit without per-epoch
observers is one parallel region (``DenseRun.run(iterations)``).
"""

import ctypes
import threading

import numba
import numpy as np
import scipy.linalg.cython_lapack as _cython_lapack
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from numba.np.arrayobj import np_cfarray as _np_cfarray

from .blas import (BLAS_MIN_FACTORS, USE_BLAS, _blas_threads_local, _external,
                   _potrf, _syrk_loops)
from .chunks import SERIAL_BELOW
from .dense import _spd_inverse
from .dense_tiles import _gemm_tiled, _gram_tiled
from .factor import RIDGE_TRIES
from .gather import _atomic_add, _atomic_store, _gather_row, _wait_at_least
from .llvm import FASTMATH, _take_next
from .openblas import single_threaded

#: Rows per block of a chunk: ``X = W M`` and the block's ``X^T X``
#: (summed in the factors' dtype per block, then float64).
DENSE_BLOCK = 128

#: Rows per chunk (at most 32 chunks; each holds a ``k x k`` float64
#: partial Gram matrix).  Each chunk's Gram matrix is summed in the factors'
#: dtype: 128 rows doubled its float32 rounding.
DENSE_CHUNK_ROWS = 64

# ``flags`` bits
_SOLVE = 1      # X = (R Y) M (else only the Gram matrix of X)
_HAVE_M = 2     # M is given (else M = (G + lam I)^{-1}); one half-step only
_LAPACK = 4     # the loops variant: invert by LAPACK all the same

# slots of ``sync``: the queue, M ready for half h (h + 1), solves done
# (cumulative), stop (h + 1 of the half-step whose Gram matrix is not
# finite), the callers so far (each takes its own k x k scratch of ``T``),
# then chunk c gathered for half h (h + 1) at _GATHERED + c
_QUEUE = 0
_READY = 1
_DONE = 2
_STOP = 3
_CALLERS = 4
_GATHERED = 5

# ``ints``: n_ca, n_cb, m, n, k, n_halves, flags, cap (rows of W), nmax
# (largest chunk count), callers (k x k scratches in ``T``: at least the
# threads that enter); ``ptrs``: the addresses below (``SCR``: the BLAS
# calls' small scratch, :data:`SCRATCH_BYTES` per caller)
_N_INTS = 10
(_P_BOUNDS, _P_INDPTR_A, _P_INDPTR_B, _P_INDICES_A, _P_INDICES_B, _P_DATA_A,
 _P_DATA_B, _P_X, _P_Y, _P_M, _P_W, _P_WORK, _P_SYNC, _P_T, _P_SCR) = range(15)
_N_PTRS = 15

#: Bytes of BLAS scratch per caller: ``iw`` (8 int32) at 0, ``fw`` (4 values
#: of the factors' dtype) at 32, ``cw`` (4 uint8) at 64.
SCRATCH_BYTES = 128

_dpotri = _external("dpotri", 5, _cython_lapack)


def packed_size(k):
    """Entries of a packed upper triangle of ``k x k`` (row ``i`` holds
    columns ``i..k-1`` from :func:`packed_row` ``(i, k)`` on)."""
    return k * (k + 1) // 2


@njit(inline="always")
def packed_row(i, k):
    """Offset of row ``i`` (its diagonal entry) in a packed upper triangle."""
    return i * k - i * (i - 1) // 2


def work_layout(k, nmax, n_epochs):
    """Offsets in the float64 workspace: ``GX``, ``GY`` (k x k each), the
    inverse's scratch, ``nmax`` partial Gram matrices (packed upper
    triangles, :func:`packed_size`: half the bytes to write and reduce),
    their cross terms, the last cross term per side (2), the loss terms (4
    per epoch: cross, ``sum GX * GY``, ``tr GX``, ``tr GY``); and its size."""
    kk = k * k
    parts = 3 * kk
    cross = parts + nmax * packed_size(k)
    ctot = cross + nmax
    terms = ctot + 2
    return dict(GX=0, GY=kk, S=2 * kk, parts=parts, cross=cross, ctot=ctot,
                terms=terms, size=terms + 4 * max(n_epochs, 1))


@intrinsic
def _view(typingctx, addr, dtype, shape):
    """``carray`` of ``dtype``'s values at ``addr`` (an integer address or a
    typed pointer) with ``shape`` (an integer or a tuple of them), C order,
    built in place: unlike ``numba.carray`` (an overload, a function of its
    own) it needs no NRT, so that the callback is compiled without it.
    ``np_cfarray`` is Numba's lowering of ``carray`` (an internal name:
    present with this call signature from 0.57.1, the oldest Numba allowed,
    to 0.68.1, both tested)."""
    if not isinstance(dtype, types.NumberClass):
        return None
    if isinstance(shape, types.Integer):
        ndim = 1
    elif isinstance(shape, types.BaseTuple) and all(
            isinstance(t, types.Integer) for t in shape):
        ndim = len(shape)
    else:
        return None
    if not (isinstance(addr, types.Integer) or
            (isinstance(addr, types.CPointer) and addr.dtype == dtype.dtype)):
        return None
    ptr = types.CPointer(dtype.dtype)
    arr = types.Array(dtype.dtype, ndim, "C")
    sig = arr(addr, dtype, shape)

    def codegen(context, builder, signature, args):
        p = args[0]
        if isinstance(signature.args[0], types.Integer):
            p = builder.inttoptr(p, context.get_value_type(ptr))
        return _np_cfarray(context, builder, arr(ptr, signature.args[2]), [p, args[2]])
    return sig, codegen


@intrinsic
def _call_run(typingctx, fn, ptrs, ints, lam):
    """Call the C function at address ``fn`` as
    ``double f(int64 *ptrs, int64 *ints, double lam)`` (the callback)."""
    sig = types.float64(types.int64, types.int64, types.int64, types.float64)

    def codegen(context, builder, signature, args):
        i64p = ir.IntType(64).as_pointer()
        fnty = ir.FunctionType(ir.DoubleType(), [i64p, i64p, ir.DoubleType()])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], i64p),
                                builder.inttoptr(args[2], i64p), args[3]])
    return sig, codegen


@njit(cache=True, inline="always")
def _lapack_inverse(G, lam, M, A, iw, cw):
    """``M = (G + lam I)^{-1}`` by LAPACK (``dpotrf``, ``dpotri``; float64
    in the scratch ``A``, then ``M``'s dtype), with the ridge fallback of
    :func:`.dense.spd_inverse` where ``G + lam I`` is not positive definite:
    ``delta (mean |diagonal| + 1)``, ``delta`` from 1e-6 growing tenfold,
    up to ``RIDGE_TRIES - 1`` times; then NaN.  ``iw`` (int32, 8) and
    ``cw`` (uint8, 4): scratch."""
    k = G.shape[0]
    scale = 0.0
    for i in range(k):
        scale += abs(G[i, i] + lam)
    scale = scale / max(k, 1) + 1.0
    shift = 0.0
    delta = 1e-6
    info = 1
    for attempt in range(RIDGE_TRIES):
        for i in range(k):
            Ai = A[i]
            Gi = G[i]
            for j in range(k):
                Ai[j] = Gi[j]
            Ai[i] += lam + shift
        info = _potrf(A, iw, cw)
        if info == 0:
            break
        shift = delta * scale
        delta *= 10.0
    if info == 0:
        # row-major upper = column-major lower ('L', as _potrf left in cw[0])
        iw[0] = k
        iw[1] = k
        iw[2] = 0
        ip = iw.ctypes.data
        _dpotri(cw.ctypes.data, ip, A.ctypes.data, ip + iw.itemsize,
                ip + 2 * iw.itemsize)
        info = iw[2]
    for i in range(k):
        for j in range(i, k):
            v = A[i, j] if info == 0 else np.nan
            M[i, j] = v
            M[j, i] = v


@njit(cache=True, inline="always")
def _reduce(parts, cross, out):
    """``out = sum_c parts[c]`` (packed upper triangles; ``out`` full,
    mirrored) and the sum of ``cross``, in chunk order: the same for any
    number of threads.  Each chunk's triangle is one contiguous stream
    (a row-by-row walk over ``k x k`` partials ran at a fifth of the
    speed, mostly waiting on memory)."""
    n_chunks = parts.shape[0]
    k = out.shape[0]
    for i in range(k):
        Oi = out[i]
        for j in range(i, k):
            Oi[j] = 0.0
    for c in range(n_chunks):
        Pc = parts[c]
        for i in range(k):
            Oi = out[i, i:]
            Pi = Pc[packed_row(i, k):]
            for j in range(Oi.size):
                Oi[j] += Pi[j]
    for i in range(k):
        for j in range(i + 1, k):
            out[j, i] = out[i, j]
    total = 0.0
    for c in range(n_chunks):
        total += cross[c]
    return total


@njit(cache=True, inline="always")
def _clear(T):
    k = T.shape[0]
    for i in range(k):
        Ti = T[i]
        for j in range(k):
            Ti[j] = 0


@njit(cache=True, inline="always")
def _clear1(P):
    for q in range(P.size):
        P[q] = 0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cross(X, u, b, W):
    """``sum_r x_{u+r} . w_r`` over the block's ``b`` rows (each dot in the
    factors' dtype, summed in float64)."""
    k = X.shape[1]
    cross = 0.0
    for r in range(b):
        x = X[u + r]
        w = W[u + r]
        s = x[0] * w[0]
        for i in range(1, k):
            s += x[i] * w[i]
        cross += s
    return cross


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _block_end(X, u, b, W, T, P, solve, first):
    """``P += T[upper]`` (``P`` float64, packed upper; ``first``: ``P =
    T[upper]``, the same values without clearing ``P`` first) and, with
    ``solve``, the block's :func:`_cross`."""
    k = X.shape[1]
    for i in range(k):
        Ti = T[i, i:]
        Pi = P[packed_row(i, k):packed_row(i, k) + Ti.size]
        if first:
            for j in range(Pi.size):
                Pi[j] = Ti[j]
        else:
            for j in range(Pi.size):
                Pi[j] += Ti[j]
    return _cross(X, u, b, W) if solve else 0.0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _chunk_tiled(r0, r1, M, X, W, P, solve):
    """Rows ``r0:r1`` (``W[rows] = R[rows] Y`` gathered), block by block,
    in register tiles (:mod:`.dense_tiles`; BLAS GEMM and SYRK per block
    packed ``M`` and the block again in every call): with ``solve``,
    ``X[rows] = W[rows] M`` and the sum of ``x_r . w_r`` (returned; over
    the item step it is ``sum_obs r x.y``, the loss's cross term); always
    ``P = X[r0:r1]^T X[r0:r1]`` (upper; each block's sums in the factors'
    dtype, then float64)."""
    if r1 <= r0:
        _clear1(P)
    cross = 0.0
    u = r0
    while u < r1:
        b = min(DENSE_BLOCK, r1 - u)
        if solve:
            _gemm_tiled(X, W, M, u, b)
            cross += _cross(X, u, b, W)
        _gram_tiled(P, X, u, b, u != r0)
        u += b
    return cross


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _chunk_loops(r0, r1, M, X, W, T, P, solve, fw):
    """:func:`_chunk_tiled` with the portable loops (``fw``: scratch)."""
    k = X.shape[1]
    fw[0] = 1
    one = fw[0]
    if r1 <= r0:
        _clear1(P)
    cross = 0.0
    u = r0
    while u < r1:
        b = min(DENSE_BLOCK, r1 - u)
        _clear(T)
        if solve:
            for r in range(b):
                x = X[u + r]
                w = W[u + r]
                for j in range(k):
                    x[j] = 0
                for a in range(k):
                    wa = w[a]
                    Ma = M[a]
                    for j in range(k):
                        x[j] += wa * Ma[j]
        _syrk_loops(one, X, u, b, T)
        cross += _block_end(X, u, b, W, T, P, solve, u == r0)
        u += b
    return cross


@njit(inline="always")
def _n_tasks(n_ca, n_cb, n_halves):
    per = 2 + 2 * n_ca + 2 * n_cb
    return (n_halves // 2) * per + (1 + 2 * n_ca if n_halves % 2 else 0) + 1


@njit(inline="always")
def _task(t, n_ca, n_cb, n_halves):
    """Task ``t`` as ``(h, kind, c)``: kind 0 the join of ``h - 1`` and
    inverse for ``h`` (``h == n_halves``: the last join), 1 the gather of
    chunk ``c``, 2 its solve."""
    per_a = 1 + 2 * n_ca
    per = per_a + 1 + 2 * n_cb
    e = t // per
    r = t - e * per
    h = 2 * e
    nc = n_ca
    if r >= per_a:
        h += 1
        r -= per_a
        nc = n_cb
    if h >= n_halves or r == 0:
        return min(h, n_halves), 0, 0
    if r <= nc:
        return h, 1, r - 1
    return h, 2, r - 1 - nc


@njit(inline="always")
def _solved_before(h, n_ca, n_cb):
    """Chunk solves of the half-steps before ``h``."""
    return (h // 2) * (n_ca + n_cb) + (n_ca if h % 2 else 0)


def _make_run(blas, DT):
    """The callback's Python source for one variant: ``blas`` (BLAS and
    LAPACK, else the portable loops) and factors of dtype ``DT``.  Both are
    closure constants, so that each variant compiles only its own code
    (and is cached under its own key)."""

    def run(P_p, I_p, lam):
        P = _view(P_p, np.int64, _N_PTRS)
        ints = _view(I_p, np.int64, _N_INTS)
        n_ca = ints[0]
        n_cb = ints[1]
        m = ints[2]
        n = ints[3]
        k = ints[4]
        n_halves = ints[5]
        flags = ints[6]
        cap = ints[7]
        nmax = ints[8]
        callers = ints[9]
        bounds = _view(P[_P_BOUNDS], np.int64, n_ca + n_cb + 2)
        indptr_a = _view(P[_P_INDPTR_A], np.int64, m + 1)
        indptr_b = _view(P[_P_INDPTR_B], np.int64, n + 1)
        indices_a = _view(P[_P_INDICES_A], np.int32, indptr_a[m])
        indices_b = _view(P[_P_INDICES_B], np.int32, indptr_b[n])
        data_a = _view(P[_P_DATA_A], DT, indptr_a[m])
        data_b = _view(P[_P_DATA_B], DT, indptr_b[n])
        X = _view(P[_P_X], DT, (m, k))
        Y = _view(P[_P_Y], DT, (n, k))
        M = _view(P[_P_M], DT, (k, k))
        W = _view(P[_P_W], DT, (cap, k))
        sync = _view(P[_P_SYNC], np.int64, _GATHERED + nmax)
        kk = k * k
        o_parts = 3 * kk
        o_cross = o_parts + nmax * (k * (k + 1) // 2)
        o_ctot = o_cross + nmax
        o_terms = o_ctot + 2
        n_epochs = max((n_halves + 1) // 2, 1)
        wp = P[_P_WORK]
        GX = _view(wp, np.float64, (k, k))
        GY = _view(wp + 8 * kk, np.float64, (k, k))
        S = _view(wp + 16 * kk, np.float64, (k, k))
        parts = _view(wp + 8 * o_parts, np.float64, (nmax, k * (k + 1) // 2))
        cross = _view(wp + 8 * o_cross, np.float64, nmax)
        ctot = _view(wp + 8 * o_ctot, np.float64, 2)
        terms = _view(wp + 8 * o_terms, np.float64, (n_epochs, 4))
        solve = (flags & _SOLVE) != 0
        # this caller's k x k scratch (no allocation here: an array made
        # in the callback cost 0.7 s of its compile)
        slot = _take_next(sync[_CALLERS:])
        if slot >= callers:
            return -1.0  # more callers than scratches: leave the tasks to the others
        T = _view(P[_P_T] + slot * kk * M.itemsize, DT, (k, k))
        scr = P[_P_SCR] + slot * SCRATCH_BYTES
        iw = _view(scr, np.int32, 8)
        fw = _view(scr + 32, DT, 4)
        cw = _view(scr + 64, np.uint8, 4)
        prev = _blas_threads_local(1)
        n_tasks = _n_tasks(n_ca, n_cb, n_halves)
        t = _take_next(sync)
        while t < n_tasks:
            h, kind, c = _task(t, n_ca, n_cb, n_halves)
            before = _solved_before(h, n_ca, n_cb)
            if kind == 0:
                if h > 0:
                    _wait_at_least(sync, _DONE, before)
                    hp = h - 1
                    ncp = n_ca if hp % 2 == 0 else n_cb
                    if sync[_STOP] == 0:
                        Gs = GX if hp % 2 == 0 else GY
                        tot = _reduce(parts[:ncp], cross[:ncp], Gs)
                        ctot[hp % 2] = tot
                        ok = True
                        for i in range(k):
                            if not np.isfinite(Gs[i, i]):
                                ok = False
                        if not ok:
                            _atomic_store(sync, _STOP, hp + 1)
                        elif hp % 2 == 1:
                            e = hp // 2
                            sxy = 0.0
                            tx = 0.0
                            ty = 0.0
                            for i in range(k):
                                tx += GX[i, i]
                                ty += GY[i, i]
                                for j in range(k):
                                    sxy += GX[i, j] * GY[i, j]
                            terms[e, 0] = tot
                            terms[e, 1] = sxy
                            terms[e, 2] = tx
                            terms[e, 3] = ty
                if h < n_halves:
                    if solve and not flags & _HAVE_M and sync[_STOP] == 0:
                        G = GY if h % 2 == 0 else GX
                        if blas:  # a closure constant: one branch is compiled
                            _lapack_inverse(G, lam, M, S, iw, cw)
                        elif flags & _LAPACK:
                            _lapack_inverse(G, lam, M, S, iw, cw)
                        else:
                            for i in range(k):
                                for j in range(k):
                                    S[i, j] = G[i, j]
                                S[i, i] += lam
                            Mi = _spd_inverse(S)
                            for i in range(k):
                                for j in range(k):
                                    M[i, j] = Mi[i, j]
                    _atomic_store(sync, _READY, h + 1)
            else:
                side = h % 2
                off = 0 if side == 0 else n_ca + 1
                r0 = bounds[off + c]
                r1 = bounds[off + c + 1]
                if kind == 1:
                    _wait_at_least(sync, _DONE, before)
                    if solve and sync[_STOP] == 0:
                        ip, ix, dd, other = (indptr_a, indices_a, data_a, Y) if side == 0 \
                            else (indptr_b, indices_b, data_b, X)
                        for u in range(r0, r1):
                            _gather_row(u, ip, ix, dd, other, W[u])
                    _atomic_store(sync, _GATHERED + c, h + 1)
                else:
                    _wait_at_least(sync, _READY, h + 1)
                    _wait_at_least(sync, _GATHERED + c, h + 1)
                    if sync[_STOP] == 0:
                        F = X if side == 0 else Y
                        if blas:
                            cross[c] = _chunk_tiled(r0, r1, M, F, W, parts[c], solve)
                        else:
                            cross[c] = _chunk_loops(r0, r1, M, F, W, T, parts[c], solve, fw)
                    _atomic_add(sync, _DONE, 1)
            t = _take_next(sync)
        _blas_threads_local(prev)
        return 0.0
    return run


_SIGNATURE = types.float64(types.CPointer(types.int64), types.CPointer(types.int64),
                           types.float64)
_CTYPES = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_double)
_VARIANTS = {(b, np.dtype(dt).name): _make_run(b, dt)
             for b in (True, False) for dt in (np.float32, np.float64)}
_COMPILED = {}
_LOCK = threading.Lock()


def _callback(blas, dtype):
    """``(address, ctypes function)`` of the callback variant, compiled (or
    loaded from the cache) on first use."""
    key = (bool(blas), np.dtype(dtype).name)
    with _LOCK:
        if key not in _COMPILED:
            # The BLAS variant allocates nothing and makes no array of its
            # own (views by _view), so it compiles without NRT: no reference
            # counts to emit and optimize away.  The loops variant's
            # _spd_inverse returns an array.
            cf = numba.cfunc(_SIGNATURE, cache=True, fastmath=FASTMATH,
                             _nrt=not key[0])(_VARIANTS[key])
            _COMPILED[key] = (cf, cf.address, _CTYPES(cf.address))
        return _COMPILED[key][1:]


@njit(parallel=True, cache=True)
def _run_parallel(fn, n_threads, ptrs, ints, lam):
    """Every thread enters the callback at ``fn`` once; each takes tasks
    until the queue is empty."""
    for _ in prange(n_threads):
        _call_run(fn, ptrs.ctypes.data, ints.ctypes.data, lam)
    return 0


def _callers():
    """Most callers of one run: every Numba thread (the parallel kernel
    enters once per thread) or the calling thread."""
    return max(numba.config.NUMBA_NUM_THREADS, 1)


def _execute(blas, dtype, ptrs, ints, lam, parallel):
    """Run the program described by ``ptrs``/``ints`` (``sync`` zeroed)."""
    address, fn = _callback(blas, dtype)
    with single_threaded():
        if parallel and numba.get_num_threads() > 1:
            _run_parallel(address, numba.get_num_threads(), ptrs, ints, float(lam))
        else:
            fn(ptrs.ctypes.data, ints.ctypes.data, float(lam))


def dense_bounds(indptr, k):
    """Chunks of the fused dense step: one per :data:`DENSE_CHUNK_ROWS`
    rows, at most 32, balanced by cost (each holds a ``k x k`` float64
    partial Gram matrix).  Fixed by the data, never by the thread count.

    The same bounds as :func:`.chunks.chunk_bounds` (costs and their running
    sums are integers, exact in float64), by numpy: nothing to compile."""
    indptr = np.asarray(indptr, np.int64)
    n = indptr.size - 1
    n_chunks = int(min(max(n // DENSE_CHUNK_ROWS, 1), 32))
    acc = np.cumsum((np.diff(indptr) * k + k * k).astype(np.float64))
    total = float(acc[-1]) if n else 0.0
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    bounds[n_chunks] = n
    thresholds = total * np.arange(1, n_chunks) / n_chunks
    bounds[1:n_chunks] = np.minimum(np.searchsorted(acc, thresholds, side="left") + 1, n)
    return bounds


def _variant(k, blas):
    """``(blas variant, extra flags)`` for ``k`` factors."""
    blas = USE_BLAS if blas is None else bool(blas)
    if blas and k >= BLAS_MIN_FACTORS:
        return True, 0
    return False, (_LAPACK if blas else 0)


def _check(arrays):
    for name, arr, dt in arrays:
        if arr.dtype != dt or not arr.flags.c_contiguous:
            raise TypeError(f"dense_step: {name} must be C-contiguous {np.dtype(dt)}, "
                            f"got {arr.dtype}")


def dense_step(indptr, indices, data, Y, M, X, bounds, G=None, lam=0.0,
               blas=None, parallel=None):
    """The dense objective's half-step ``X = (R Y) M`` in one pass.

    ``M = (Y^T Y + lam I)^{-1}`` is shared by every row (all cells count),
    so a row costs ``nnz k`` for ``w = r Y`` and ``k^2`` for ``x = w M``;
    in the same pass the new Gram matrix ``X^T X`` (float64, needed by the
    next half-step and the loss) and ``sum_r x_r . w_r`` are formed.  After
    the item step, that sum is ``sum_obs r_ui x_u . y_i``, the loss's cross
    term, so the loss needs no pass of its own.

    ``M=None`` with ``G`` (``Y^T Y``, float64): ``M = (G + lam I)^{-1}``
    is computed first, in the same call (LAPACK ``dpotrf``/``dpotri`` in
    float64, then the factors' dtype; the ridge fallback of
    :func:`.dense.spd_inverse` where it is not positive definite).
    ``M=None`` and ``G=None``: only the Gram matrix of ``X`` (as it is).
    Returns ``(X^T X, cross)``.  ``bounds`` from :func:`dense_bounds`;
    ``blas``: None for :data:`.blas.USE_BLAS`.

    Small steps (below :data:`.chunks.SERIAL_BELOW` multiply-adds) and one
    thread run the callback from Python, in one call; larger ones every
    thread (``parallel``: True or False to choose).  The tasks and the
    order of their sums are the same, so are the results.
    """
    dtype = X.dtype
    k = X.shape[1]
    flags = 0
    if M is not None:
        flags |= _SOLVE | _HAVE_M
        M = np.ascontiguousarray(M, dtype)
    else:
        M = np.empty((k, k), dtype)
        if G is not None:
            flags |= _SOLVE
    _check((("indptr", indptr, np.int64), ("indices", indices, np.int32),
            ("data", data, dtype), ("Y", Y, dtype), ("X", X, dtype),
            ("bounds", bounds, np.int64)))
    use_blas, extra = _variant(k, blas)
    flags |= extra
    m, n = X.shape[0], Y.shape[0]
    nmax = bounds.size - 1
    lay = work_layout(k, nmax, 1)
    work = np.zeros(lay["size"])
    if G is not None:
        work[lay["GY"]:lay["GY"] + k * k] = np.asarray(G, np.float64).ravel()
    W = np.empty((max(m, 1) if flags & _SOLVE else 1, k), dtype)
    empty = np.zeros(n + 1, np.int64)
    sync = np.zeros(_GATHERED + nmax, np.int64)
    bounds = np.concatenate([bounds, np.zeros(1, np.int64)])
    callers = _callers()
    T = np.empty((callers, k, k), dtype)
    scr = np.zeros(callers * SCRATCH_BYTES // 8, np.int64)
    keep = (bounds, indptr, empty, indices, indices, data, data, X, Y, M, W, work, sync,
            T, scr)
    ptrs = np.array([a.ctypes.data for a in keep], np.int64)
    ints = np.array([nmax, 0, m, n, k, 1, flags, W.shape[0], nmax, callers], np.int64)
    work_ = m * k * k * (2 if flags & _SOLVE else 1) // 2
    if flags & _SOLVE:
        work_ += indptr[-1] * k
    _execute(use_blas, dtype, ptrs, ints, lam,
             work_ >= SERIAL_BELOW if parallel is None else parallel)
    del keep
    out = work[lay["GX"]:lay["GX"] + k * k].reshape(k, k).copy()
    return out, float(work[lay["ctot"]])


class DenseRun:
    """Epochs of the dense objective, one call each :meth:`run`.

    ``a`` (users) and ``b`` (items): ``(indptr, indices, data, bounds)``
    each (``bounds`` from :func:`dense_bounds`); ``X``, ``Y`` their factors
    (overwritten); ``GY`` the Gram matrix of ``Y`` (float64) and ``lam`` the
    regularization; ``max_epochs`` the most epochs one :meth:`run` does.
    The arrays must stay alive and unmoved while the object is used.
    """

    def __init__(self, a, b, X, Y, GY, lam, max_epochs, blas=None):
        dtype = X.dtype
        k = X.shape[1]
        self.k, self.dtype, self.lam = k, dtype, float(lam)
        self.X, self.Y = X, Y
        (ia, xa, da, ba), (ib, xb, db, bb) = a, b
        _check((("indptr", ia, np.int64), ("indices", xa, np.int32),
                ("data", da, dtype), ("indptr", ib, np.int64),
                ("indices", xb, np.int32), ("data", db, dtype), ("X", X, dtype),
                ("Y", Y, dtype), ("bounds", ba, np.int64), ("bounds", bb, np.int64)))
        self.blas, flags = _variant(k, blas)
        n_ca, n_cb = ba.size - 1, bb.size - 1
        nmax = max(n_ca, n_cb)
        m, n = X.shape[0], Y.shape[0]
        self.lay = work_layout(k, nmax, max_epochs)
        self.work = np.zeros(self.lay["size"])
        self.gram("GY")[:] = GY
        self.M = np.empty((k, k), dtype)
        self.W = np.empty((max(m, n, 1), k), dtype)
        self.sync = np.zeros(_GATHERED + nmax, np.int64)
        self.bounds = np.concatenate([ba, bb])
        self.max_epochs = max_epochs
        callers = _callers()
        self.T = np.empty((callers, k, k), dtype)
        self.scr = np.zeros(callers * SCRATCH_BYTES // 8, np.int64)
        self._keep = (self.bounds, ia, ib, xa, xb, da, db, X, Y, self.M, self.W,
                      self.work, self.sync, self.T, self.scr)
        self.ptrs = np.array([arr.ctypes.data for arr in self._keep], np.int64)
        self.ints = np.array([n_ca, n_cb, m, n, k, 0, flags | _SOLVE,
                              self.W.shape[0], nmax, callers], np.int64)
        self.parallel = max(m * k * k + int(ia[-1]) * k,
                            n * k * k + int(ib[-1]) * k) >= SERIAL_BELOW

    def gram(self, name):
        """``GX`` or ``GY`` (float64 ``k x k`` view of the workspace)."""
        o = self.lay[name]
        return self.work[o:o + self.k * self.k].reshape(self.k, self.k)

    def run(self, n_epochs):
        """``n_epochs`` epochs (users, then items).  Returns ``(terms,
        stop)``: per epoch ``(cross, sum GX * GY, tr GX, tr GY)`` (float64,
        ``n_epochs x 4``) and 0, or ``h + 1`` where half-step ``h`` (0: the
        first users step of this call) left a non-finite Gram matrix (the
        epochs from there on were not run)."""
        if not 0 < n_epochs <= self.max_epochs:
            raise ValueError(f"n_epochs must be in 1..{self.max_epochs}")
        self.sync[:] = 0
        self.ints[5] = 2 * n_epochs
        _execute(self.blas, self.dtype, self.ptrs, self.ints, self.lam, self.parallel)
        o = self.lay["terms"]
        terms = self.work[o:o + 4 * n_epochs].reshape(n_epochs, 4).copy()
        return terms, int(self.sync[_STOP])
