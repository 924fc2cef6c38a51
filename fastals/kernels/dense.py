"""Dense building blocks: the Gram matrix ``Y^T Y``, the small SPD inverse,
the right multiply ``Y M``, the sparse x dense product, and the dense
objective's half-step fused into one pass (:func:`dense_step`)."""

import ctypes

import numba
import numpy as np
import scipy.linalg.cython_lapack as _cython_lapack
import scipy.linalg.lapack as _lapack
from numba import carray, njit, prange, types
from numba.extending import overload

from .blas import (BLAS_MIN_FACTORS, USE_BLAS, _blas_threads_local, _external,
                   _gemm, _gemm_rows, _potrf, _syrk, _syrk_loops, _with_blas)
from .chunks import SERIAL_BELOW, _call
from .gather import _atomic_store, _gather_row, _wait
from .llvm import FASTMATH, _ChunkCallback, _take_next
from .openblas import single_threaded
from .rows import RIDGE_TRIES, _cholesky_upper, _ridge_solve


@njit(cache=True, fastmath=FASTMATH)
def _spd_inverse(G):
    k = G.shape[0]
    A = np.empty((k, k), np.float64)
    A0 = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(k):
            A0[i, j] = G[i, j]
            A[i, j] = G[i, j]
    one = 1.0
    b = np.zeros(k, np.float64)
    b0 = np.zeros(k, np.float64)
    if not _cholesky_upper(A, b, k, one):  # b = 0: only the factor matters
        # leaves the (ridged) factor in A
        _ridge_solve(A, A0, b, b0, k, one, 1e-6, RIDGE_TRIES)
    # U^{-1} (upper), by rows from the bottom: row i of U^{-1} needs rows > i
    V = np.zeros((k, k), np.float64)
    for i in range(k - 1, -1, -1):
        inv = 1.0 / A[i, i]
        vi = V[i]
        vi[i] = inv
        for p in range(i + 1, k):
            f = -A[i, p] * inv
            vp = V[p, p:]
            ti = vi[p:]
            for l in range(vp.size):
                ti[l] += f * vp[l]
    # A^{-1} = U^{-1} U^{-T}: entry (i, j) = V[i, m:] . V[j, m:], m = max(i, j)
    inv_ = np.empty((k, k), np.float64)
    for i in range(k):
        vi = V[i]
        for j in range(i, k):
            vj = V[j, j:]
            t = vi[j:]
            s = 0.0
            for l in range(vj.size):
                s += t[l] * vj[l]
            inv_[i, j] = s
            inv_[j, i] = s
    return inv_


def spd_inverse(G):
    """Inverse of a symmetric positive semi-definite matrix, in float64.

    LAPACK's Cholesky and inverse (``dpotrf``/``dpotri``, nothing to
    compile); a ``G`` that is not positive definite (for instance
    ``lam = 0`` and fewer rows than factors) takes the compiled Cholesky
    with the same ridge fallback as the row solves: the smallest ridge that
    makes it positive definite.
    """
    G = np.ascontiguousarray(G, dtype=np.float64)
    if G.shape[0] and np.isfinite(G).all():
        c, info = _lapack.dpotrf(G, lower=0, clean=0)
        if info == 0:
            inv, info = _lapack.dpotri(c, lower=0)
            if info == 0:
                upper = np.triu(inv)
                return upper + np.triu(upper, 1).T
    return _spd_inverse(G)


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _right_multiply(Y, M, bounds, blas):
    n, k = Y.shape
    m = M.shape[1]
    Z = np.empty((n, m), Y.dtype)
    for c in prange(bounds.size - 1):
        r0 = bounds[c]
        rows = bounds[c + 1] - r0
        if rows == 0:
            continue
        if blas and k >= BLAS_MIN_FACTORS:
            iw = np.empty(8, np.int32)
            fw = np.empty(4, Y.dtype)
            cw = np.empty(4, np.uint8)
            prev = _blas_threads_local(1)
            _gemm_rows(Y, r0, rows, M, Z, iw, fw, cw)
            _blas_threads_local(prev)
        else:
            for u in range(r0, r0 + rows):
                z = Z[u]
                y = Y[u]
                for j in range(m):
                    z[j] = 0
                for a in range(k):
                    ya = y[a]
                    Ma = M[a]
                    for j in range(m):
                        z[j] += ya * Ma[j]
    return Z


@_with_blas
def right_multiply(Y, M, bounds, blas):
    """``Y @ M`` for a tall ``Y`` and a small square ``M``, row-parallel
    (one GEMM per chunk of rows)."""
    return _call(_right_multiply, Y.shape[0] * Y.shape[1] * M.shape[1],
                 (Y, M, bounds, blas))


def sparse_times_dense(indptr, indices, data, Z, X, bounds):
    """Dense-objective half-step ``X = R Z`` with ``Z = Y (G + lam I)^{-1}``.

    All rows share one system matrix, so its inverse is folded into ``Z``
    once per half-step and each row costs only ``nnz * k``.
    """
    return _call(_sparse_times_dense, indptr[-1] * Z.shape[1],
                 (indptr, indices, data, Z, X, bounds))


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _sparse_times_dense(indptr, indices, data, Z, X, bounds):
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            _gather_row(u, indptr, indices, data, Z, X[u])
    return 0


@njit(cache=True, fastmath=FASTMATH)
def _gram_rows(Y, u, end, P, blas):
    """``P[upper] += Y[u:end]^T Y[u:end]`` in blocks of up to 512 rows summed
    in the factors' dtype, then in float64."""
    k = Y.shape[1]
    block = 512
    T = np.empty((k, k), Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    while u < end:
        m = min(block, end - u)
        for i in range(k):
            Ti = T[i]
            for j in range(k):
                Ti[j] = 0
        if blas and k >= BLAS_MIN_FACTORS:
            _syrk(one, Y, u, m, T, iw, fw, cw)
        else:
            _syrk_loops(one, Y, u, m, T)
        for i in range(k):
            Pi = P[i]
            Ti = T[i]
            for j in range(i, k):
                Pi[j] += Ti[j]
        u += m
    if blas:
        _blas_threads_local(prev)


@njit(parallel=True, cache=True)
def _gram(Y, bounds, blas):
    n_chunks = bounds.size - 1
    k = Y.shape[1]
    # Plain loops, not np.zeros or +=: with parallel=True each array
    # expression becomes a parallel loop of its own, about a second to compile.
    parts = np.empty((n_chunks, k, k), np.float64)
    for c in prange(n_chunks):
        P = parts[c]
        for i in range(k):
            for j in range(k):
                P[i, j] = 0.0
        _gram_rows(Y, bounds[c], bounds[c + 1], P, blas)
    out = np.empty((k, k), np.float64)
    for i in range(k):
        for j in range(i, k):
            t = 0.0
            for c in range(n_chunks):  # fixed order: not a parallel reduction
                t += parts[c, i, j]
            out[i, j] = t
            out[j, i] = t
    return out


@_with_blas
def gram(Y, bounds, blas):
    """``Y^T Y`` in float64 over fixed chunks of rows (one SYRK per block
    of up to 512 rows in the factors' dtype, summed in float64).  Fewer than
    8192 rows are summed as one chunk; the split depends only on the data,
    never on the number of threads."""
    n = Y.shape[0]
    if n < 8192:  # one partial sum: 16 float64 k x k partials cost more than the SYRK
        bounds = np.array([0, n], np.int64)
    return _call(_gram, n * Y.shape[1] ** 2 // 2, (Y, bounds, blas))

# ---------------------------------------------------------------------------
# The dense objective's half-step in one pass
# ---------------------------------------------------------------------------
# One parallel kernel per half-step whose work is done by C callbacks (as the
# row solvers', see :mod:`.llvm`), one task per call from one queue: the
# inverse ``M = (G + lam I)^{-1}``, the gathers ``W = R Y`` of every chunk
# (which run while the inverse does), the chunks' ``X = W M`` and partial
# Gram matrices; then the reduction of the partial sums in chunk order on
# the calling thread (see ``_REDUCE`` below).  The parallel kernel itself is a
# few lines, so a cold first dense fit compiles little more than the
# callback; and only one of its two variants is compiled: BLAS/LAPACK
# (``k >= BLAS_MIN_FACTORS`` where BLAS is usable), or the portable loops.

#: Rows per block of the fused dense step: one GEMM ``X = W M`` and one
#: SYRK of the block's ``X`` (in cache for it; summed in the factors' dtype
#: per block: as on main, for the same float32 rounding of the Gram matrix).
DENSE_BLOCK = 128

#: Rows per chunk of the fused dense step (at most 32 chunks; each holds a
#: ``k x k`` float64 partial Gram matrix).  Each chunk's Gram matrix is
#: summed in the factors' dtype: 128 rows doubled its float32 rounding and
#: failed bench/regression_check.py's comparison with a float64 sum.
DENSE_CHUNK_ROWS = 64

# Tasks ``c >= 0`` of the callback, handed out in this order by one queue:
# 0 the inverse (then ``M`` is ready), ``1..n`` the gathers
# ``W[chunk] = R[chunk] Y`` (which need no ``M``: on two threads the
# inverse runs while the other thread gathers), ``n+1..2n`` the chunks'
# ``X = W M``, Gram matrices and cross terms (each waits until ``M`` and
# its chunk's rows are ready).  Below 0: the reduction after the parallel
# loop, or all of it on the calling thread.
_REDUCE = -2
_SERIAL = -3
# slots of ``sync``: the task queue, ``M`` ready, chunk ``c`` gathered at 2 + c
_READY = 1
# ``flags`` bits
_SOLVE = 1      # X = (R Y) M (else only the Gram matrix of X)
_HAVE_M = 2     # M is given (else M = (G + lam I)^{-1})
_LAPACK = 4     # the loops variant: invert by LAPACK all the same

_dpotri = _external("dpotri", 5, _cython_lapack)


def _dense_signature(dtype, pointers):
    """``float64(c, n_chunks, bounds, indptr, indices, data, Y, M, X, W, T,
    G, parts, cross, out, sync, n_rows, nnz, n_other, k, cap, lam, flags)``:
    task ``c`` (or :data:`_REDUCE`, :data:`_SERIAL`) of the fused dense
    step for factors of ``dtype``, with the scratch ``W`` (``cap x k``:
    every row's ``R Y``) and ``T`` (``k x k``); ``G``, ``parts``, ``cross``
    and ``out`` are float64, ``sync`` int64.  ``pointers``: typed (the
    callback's view) or ``voidptr`` (the caller's)."""
    f = numba.from_dtype(np.dtype(dtype))
    i8 = types.int64
    if pointers:
        p = types.CPointer
        f8 = p(types.float64)
        ptrs = (p(i8), p(i8), p(types.int32)) + (p(f),) * 6 + (f8,) * 4 + (p(i8),)
    else:
        ptrs = (types.voidptr,) * 14
    return types.float64(i8, i8, *ptrs, i8, i8, i8, i8, i8, types.float64, i8)


_DENSE_CTYPES = ctypes.CFUNCTYPE(
    ctypes.c_double, ctypes.c_int64, ctypes.c_int64, *([ctypes.c_void_p] * 14),
    *([ctypes.c_int64] * 5), ctypes.c_double, ctypes.c_int64)


class _DenseCallback(_ChunkCallback):
    """One variant of the fused step's chunk function: the mechanism of
    :class:`.llvm._ChunkCallback` (compiled per dtype on first use behind
    the symbol ``fastals_<name>_<dtype>``) with this signature, callable
    from Python (:meth:`run`) as well as from the parallel kernel
    (:meth:`caller`).  Guarded kernels take ``(bounds, indptr, indices,
    data, Y, M, X, ...)``: the factors are argument 6."""

    signature = staticmethod(_dense_signature)
    factors_arg = 6

    def __init__(self, name, raw):
        super().__init__(name, raw)
        self.ctypes = {}

    def _compiled(self, name, cf):
        self.ctypes[name] = _DENSE_CTYPES(cf.address)

    def run(self, bounds, indptr, indices, data, Y, M, X, G, parts, cross, out,
            lam, flags):
        """The whole step on this thread (:data:`_SERIAL`), called from
        Python (through ctypes, which releases the GIL): no parallel kernel
        to compile or wake.  The arrays must be as :func:`dense_step`
        checks.  Returns the cross term."""
        self.ensure(X.dtype)
        k = X.shape[1]
        W = np.empty((_w_rows(X.shape[0], flags), k), X.dtype)
        T = np.empty((k, k), X.dtype)
        sync = np.zeros(bounds.size + 1, np.int64)
        fn = self.ctypes[np.dtype(X.dtype).name]
        return fn(_SERIAL, bounds.size - 1, bounds.ctypes.data, indptr.ctypes.data,
                  indices.ctypes.data, data.ctypes.data, Y.ctypes.data,
                  M.ctypes.data, X.ctypes.data, W.ctypes.data, T.ctypes.data,
                  G.ctypes.data, parts.ctypes.data, cross.ctypes.data,
                  out.ctypes.data, sync.ctypes.data, X.shape[0], indices.size,
                  Y.shape[0], k, W.shape[0], lam, flags)

    def caller(self):
        """A function for Numba code that calls the callback on arrays."""
        external = self.external

        def call(c, bounds, indptr, indices, data, Y, M, X, W, T, G, parts,
                 cross, out, sync, lam, flags):
            raise NotImplementedError("only callable from compiled code")

        @overload(call)
        def call_impl(c, bounds, indptr, indices, data, Y, M, X, W, T, G, parts,
                      cross, out, sync, lam, flags):
            f = X.dtype
            f8 = types.float64
            want = ((bounds, types.int64), (indptr, types.int64),
                    (indices, types.int32), (data, f), (Y, f), (M, f), (X, f),
                    (W, f), (T, f), (G, f8), (parts, f8), (cross, f8), (out, f8),
                    (sync, types.int64))
            self.check_arrays(want, f)
            fn = external["float32" if f == types.float32 else "float64"]

            def impl(c, bounds, indptr, indices, data, Y, M, X, W, T, G, parts,
                     cross, out, sync, lam, flags):
                return fn(c, bounds.size - 1, bounds.ctypes.data,
                          indptr.ctypes.data, indices.ctypes.data,
                          data.ctypes.data, Y.ctypes.data, M.ctypes.data,
                          X.ctypes.data, W.ctypes.data, T.ctypes.data,
                          G.ctypes.data, parts.ctypes.data, cross.ctypes.data,
                          out.ctypes.data, sync.ctypes.data, X.shape[0],
                          indices.size, Y.shape[0], X.shape[1], W.shape[0], lam,
                          flags)
            return impl
        return call


@njit(inline="always")
def _dense_views(n_chunks, bounds_p, indptr_p, indices_p, data_p, Y_p, M_p,
                 X_p, W_p, T_p, G_p, parts_p, cross_p, out_p, sync_p, n_rows, nnz,
                 n_other, k, cap):
    return (carray(bounds_p, n_chunks + 1), carray(indptr_p, n_rows + 1),
            carray(indices_p, nnz), carray(data_p, nnz),
            carray(Y_p, (n_other, k)), carray(M_p, (k, k)),
            carray(X_p, (n_rows, k)), carray(W_p, (cap, k)), carray(T_p, (k, k)),
            carray(G_p, (k, k)), carray(parts_p, (n_chunks, k, k)),
            carray(cross_p, n_chunks), carray(out_p, (k, k)),
            carray(sync_p, n_chunks + 2))


def _w_rows(n_rows, flags):
    """Rows of the scratch ``W``: every row's ``R Y`` when solving."""
    return max(n_rows, 1) if flags & _SOLVE else 1


@njit(cache=True, inline="always")
def _lapack_inverse(G, lam, M, A):
    """``M = (G + lam I)^{-1}`` by LAPACK (``dpotrf``, ``dpotri``; float64
    in the scratch ``A``, then ``M``'s dtype), with the ridge fallback of
    :func:`spd_inverse` where ``G + lam I`` is not positive definite:
    ``delta (mean |diagonal| + 1)``, ``delta`` from 1e-6 growing tenfold,
    up to ``RIDGE_TRIES - 1`` times; then NaN."""
    k = G.shape[0]
    iw = np.empty(8, np.int32)
    cw = np.empty(4, np.uint8)
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
    """``out = sum_c parts[c]`` (upper triangles, mirrored) and the sum of
    ``cross``, in chunk order: the same for any number of threads."""
    n_chunks = parts.shape[0]
    k = out.shape[0]
    for i in range(k):
        Oi = out[i]
        for j in range(i, k):
            Oi[j] = 0.0
        for c in range(n_chunks):
            Pi = parts[c, i]
            for j in range(i, k):
                Oi[j] += Pi[j]
        for j in range(i + 1, k):
            out[j, i] = Oi[j]
    total = 0.0
    for c in range(n_chunks):
        total += cross[c]
    return total


@njit(cache=True, inline="always")
def _gather_chunk(c, bounds, indptr, indices, data, Y, W, sync, solve):
    """Task: ``W[rows] = R[rows] Y`` for chunk ``c`` (with ``solve``), then
    mark it gathered."""
    if solve:
        for u in range(bounds[c], bounds[c + 1]):
            _gather_row(u, indptr, indices, data, Y, W[u])
    _atomic_store(sync, 2 + c, 1)


@njit(cache=True, inline="always")
def _clear(T):
    k = T.shape[0]
    for i in range(k):
        Ti = T[i]
        for j in range(k):
            Ti[j] = 0


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _block_end(X, u, b, W, T, P, solve):
    """``P[upper] += T[upper]`` (float64) and, with ``solve``, the block's
    ``sum_r x_{u+r} . w_r`` (each dot in the factors' dtype, summed in
    float64)."""
    k = X.shape[1]
    for i in range(k):
        Pi = P[i, i:]
        Ti = T[i, i:]
        for j in range(Pi.size):
            Pi[j] += Ti[j]
    cross = 0.0
    if solve:
        for r in range(b):
            x = X[u + r]
            w = W[u + r]
            s = x[0] * w[0]
            for i in range(1, k):
                s += x[i] * w[i]
            cross += s
    return cross


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _chunk_blas(r0, r1, M, X, W, T, P, solve):
    """Rows ``r0:r1`` (``W[rows] = R[rows] Y`` gathered), block by block:
    with ``solve``, ``X[rows] = W[rows] M`` (GEMM) and the sum of
    ``x_r . w_r`` (returned; over the item step it is ``sum_obs r x.y``,
    the loss's cross term); always ``P = X[r0:r1]^T X[r0:r1]`` (upper; one
    SYRK per block in the factors' dtype, summed in float64)."""
    k = X.shape[1]
    iw = np.empty(8, np.int32)
    fw = np.empty(4, X.dtype)
    cw = np.empty(4, np.uint8)
    fw[3] = 1
    one = fw[3]
    prev = _blas_threads_local(1)
    for i in range(k):
        for j in range(k):
            P[i, j] = 0.0
    cross = 0.0
    u = r0
    while u < r1:
        b = min(DENSE_BLOCK, r1 - u)
        _clear(T)
        if solve:
            # column-major: X[u:u+b]^T (k x b) = M^T (k x k) W^T (k x b)
            _gemm(78, 78, k, b, k, M.ctypes.data, k,
                  W.ctypes.data + u * k * W.itemsize, k,
                  X.ctypes.data + u * k * X.itemsize, k, iw, fw, cw)
        _syrk(one, X, u, b, T, iw, fw, cw)
        cross += _block_end(X, u, b, W, T, P, solve)
        u += b
    _blas_threads_local(prev)
    return cross


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _chunk_loops(r0, r1, M, X, W, T, P, solve):
    """:func:`_chunk_blas` with the portable loops."""
    k = X.shape[1]
    fw = np.empty(1, X.dtype)
    fw[0] = 1
    one = fw[0]
    for i in range(k):
        for j in range(k):
            P[i, j] = 0.0
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
        cross += _block_end(X, u, b, W, T, P, solve)
        u += b
    return cross


@njit(inline="always")
def _tasks(c, n_chunks):
    """The tasks that a call with ``c`` runs: all of them (:data:`_SERIAL`),
    task ``c``, or none (:data:`_REDUCE`)."""
    if c == _SERIAL:
        return 0, 2 * n_chunks + 1
    if c >= 0:
        return c, c + 1
    return 0, 0


def _dense_blas_c(c, n_chunks, bounds_p, indptr_p, indices_p, data_p, Y_p, M_p,
                  X_p, W_p, T_p, G_p, parts_p, cross_p, out_p, sync_p, n_rows, nnz,
                  n_other, k, cap, lam, flags):
    (bounds, indptr, indices, data, Y, M, X, W, T, G, parts, cross, out,
     sync) = _dense_views(n_chunks, bounds_p, indptr_p, indices_p, data_p, Y_p,
                          M_p, X_p, W_p, T_p, G_p, parts_p, cross_p, out_p, sync_p,
                          n_rows, nnz, n_other, k, cap)
    solve = (flags & _SOLVE) != 0
    first, last = _tasks(c, n_chunks)
    for t in range(first, last):
        if t == 0:
            if solve and not flags & _HAVE_M:
                prev = _blas_threads_local(1)
                _lapack_inverse(G, lam, M, out)  # out: scratch until the reduction
                _blas_threads_local(prev)
            _atomic_store(sync, _READY, 1)
        elif t <= n_chunks:
            _gather_chunk(t - 1, bounds, indptr, indices, data, Y, W, sync, solve)
        else:
            cc = t - 1 - n_chunks
            _wait(sync, _READY)
            _wait(sync, 2 + cc)
            cross[cc] = _chunk_blas(bounds[cc], bounds[cc + 1], M, X, W, T,
                                    parts[cc], solve)
    if c >= 0:
        return 0.0
    return _reduce(parts, cross, out)


def _dense_loops_c(c, n_chunks, bounds_p, indptr_p, indices_p, data_p, Y_p, M_p,
                   X_p, W_p, T_p, G_p, parts_p, cross_p, out_p, sync_p, n_rows, nnz,
                   n_other, k, cap, lam, flags):
    (bounds, indptr, indices, data, Y, M, X, W, T, G, parts, cross, out,
     sync) = _dense_views(n_chunks, bounds_p, indptr_p, indices_p, data_p, Y_p,
                          M_p, X_p, W_p, T_p, G_p, parts_p, cross_p, out_p, sync_p,
                          n_rows, nnz, n_other, k, cap)
    solve = (flags & _SOLVE) != 0
    first, last = _tasks(c, n_chunks)
    for t in range(first, last):
        if t == 0:
            if solve and not flags & _HAVE_M:
                if flags & _LAPACK:
                    prev = _blas_threads_local(1)
                    _lapack_inverse(G, lam, M, out)
                    _blas_threads_local(prev)
                else:
                    for i in range(k):
                        for j in range(k):
                            out[i, j] = G[i, j]
                        out[i, i] += lam
                    Mi = _spd_inverse(out)
                    for i in range(k):
                        for j in range(k):
                            M[i, j] = Mi[i, j]
            _atomic_store(sync, _READY, 1)
        elif t <= n_chunks:
            _gather_chunk(t - 1, bounds, indptr, indices, data, Y, W, sync, solve)
        else:
            cc = t - 1 - n_chunks
            _wait(sync, _READY)
            _wait(sync, 2 + cc)
            cross[cc] = _chunk_loops(bounds[cc], bounds[cc + 1], M, X, W, T,
                                     parts[cc], solve)
    if c >= 0:
        return 0.0
    return _reduce(parts, cross, out)


_DENSE_BLAS = _DenseCallback("dense_blas", _dense_blas_c)
_DENSE_LOOPS = _DenseCallback("dense_loops", _dense_loops_c)
_dense_blas_chunk = _DENSE_BLAS.caller()
_dense_loops_chunk = _DENSE_LOOPS.caller()


@_DENSE_BLAS.guard
@njit(parallel=True, cache=True)
def _dense_step_blas(bounds, indptr, indices, data, Y, M, X, G, parts, cross, out,
                     lam, flags):
    n_chunks = bounds.size - 1
    k = X.shape[1]
    W = np.empty((max(X.shape[0], 1) if flags & _SOLVE else 1, k), X.dtype)
    sync = np.zeros(n_chunks + 2, np.int64)
    n_tasks = 2 * n_chunks + 1
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        T = np.empty((k, k), X.dtype)
        c = _take_next(sync)
        while c < n_tasks:
            _dense_blas_chunk(c, bounds, indptr, indices, data, Y, M, X, W, T, G,
                              parts, cross, out, sync, lam, flags)
            c = _take_next(sync)
    return _dense_blas_chunk(_REDUCE, bounds, indptr, indices, data, Y, M, X, W, W,
                             G, parts, cross, out, sync, lam, flags)


@_DENSE_LOOPS.guard
@njit(parallel=True, cache=True)
def _dense_step_loops(bounds, indptr, indices, data, Y, M, X, G, parts, cross, out,
                      lam, flags):
    n_chunks = bounds.size - 1
    k = X.shape[1]
    W = np.empty((max(X.shape[0], 1) if flags & _SOLVE else 1, k), X.dtype)
    sync = np.zeros(n_chunks + 2, np.int64)
    n_tasks = 2 * n_chunks + 1
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        T = np.empty((k, k), X.dtype)
        c = _take_next(sync)
        while c < n_tasks:
            _dense_loops_chunk(c, bounds, indptr, indices, data, Y, M, X, W, T, G,
                               parts, cross, out, sync, lam, flags)
            c = _take_next(sync)
    return _dense_loops_chunk(_REDUCE, bounds, indptr, indices, data, Y, M, X, W, W,
                              G, parts, cross, out, sync, lam, flags)


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


def dense_step(indptr, indices, data, Y, M, X, bounds, G=None, lam=0.0,
               blas=None):
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
    :func:`spd_inverse` where it is not positive definite).  ``M=None``
    and ``G=None``: only the Gram matrix of ``X`` (as it is).  Returns
    ``(X^T X, cross)``.  ``bounds`` from :func:`dense_bounds`; ``blas``:
    None for :data:`.blas.USE_BLAS`.

    Small steps (below :data:`.chunks.SERIAL_BELOW` multiply-adds) and one
    thread run the chunk callback from Python, every chunk in order, in one
    call; larger ones the parallel kernel.  The chunks and the order of
    their sums are the same, so are the results.
    """
    dtype = X.dtype
    k = X.shape[1]
    blas = USE_BLAS if blas is None else bool(blas)
    flags = 0
    if M is not None:
        flags |= _SOLVE | _HAVE_M
        M = np.ascontiguousarray(M, dtype)
    else:
        M = np.empty((k, k), dtype)
        if G is not None:
            flags |= _SOLVE
    G = np.empty((k, k)) if G is None else np.ascontiguousarray(G, np.float64)
    for name, arr, dt in (("indptr", indptr, np.int64), ("indices", indices, np.int32),
                          ("data", data, dtype), ("Y", Y, dtype), ("X", X, dtype),
                          ("bounds", bounds, np.int64)):
        if arr.dtype != dt or not arr.flags.c_contiguous:
            raise TypeError(f"dense_step: {name} must be C-contiguous {np.dtype(dt)}, "
                            f"got {arr.dtype}")
    n_chunks = bounds.size - 1
    parts = np.empty((n_chunks, k, k))
    cross = np.empty(n_chunks)
    out = np.empty((k, k))
    work = X.shape[0] * k * k * (2 if flags & _SOLVE else 1) // 2
    if flags & _SOLVE:
        work += indptr[-1] * k
    if blas and k >= BLAS_MIN_FACTORS:
        cb, kernel = _DENSE_BLAS, _dense_step_blas
    else:
        cb, kernel = _DENSE_LOOPS, _dense_step_loops
        if blas:
            flags |= _LAPACK
    args = (bounds, indptr, indices, data, Y, M, X, G, parts, cross, out,
            float(lam), flags)
    if work < SERIAL_BELOW or numba.get_num_threads() == 1:
        with single_threaded():  # the parallel kernel's guard holds it itself
            total = cb.run(*args)
    else:
        total = kernel(*args)
    return out, total
