"""Numba kernels for alternating least squares.

Nothing in this module validates input or touches files: the public API in
:mod:`fastals.model` prepares canonical arrays and calls these functions.

Conventions
-----------
* A sparse side is given as CSR arrays ``(indptr, indices, ...)`` with
  ``indptr`` int64 and ``indices`` int32; row ``u`` owns entries
  ``indptr[u]:indptr[u + 1]``.
* Every per-entry array (``conf``, ``target``) has the dtype of the factors.
* Work is split into ``chunks`` (row boundaries, balanced by estimated cost)
  and the parallel loop runs over chunks (the row solvers hand them out
  dynamically, see :func:`_take_next`), so scratch buffers are allocated
  once per chunk, never per row, and partial sums are reduced in a fixed
  order: results do not depend on the number of threads.
* The per-chunk row solvers and the loss are C callbacks that the parallel
  kernels reach through fixed symbol names (see "Chunk functions behind C
  symbols"): this keeps the first, cold compilation short.

The weighted row update solved for every row ``u`` is::

    A_u = w0 * G + sum_{i in u} (c_ui - w0) y_i y_i^T + lam_u I
    b_u = sum_{i in u} c_ui * t_ui * y_i
    x_u = A_u^{-1} b_u

with ``G = Y^T Y`` and ``t_ui = target - offset[i]``.  ``w0 = 0`` and
``c = 1`` is explicit-feedback ALS, ``w0 = 1, c = 1 + alpha r, t = 1`` is
Hu, Koren & Volinsky's implicit ALS, and the dense objective (every cell
counts, missing cells are 0) is ``w0 = 1, c = 1`` where the per-row term
vanishes and every row shares ``G + lam I`` (see :func:`sparse_times_dense`).
"""

import ctypes
import functools
import os
import threading

import llvmlite.binding as _llvm
from llvmlite import ir as _ir
import numba
import numpy as np
import scipy.linalg.cython_blas as _cython_blas
import scipy.linalg.cython_lapack as _cython_lapack
from numba import carray, njit, prange, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

# Safe fast-math: allow reassociation and contraction (FMA) but keep NaN/inf
# semantics so that non-finite checks still work.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True)
def chunk_bounds(indptr, k, n_chunks):
    """Split rows into ``n_chunks`` contiguous chunks of similar cost.

    The cost of a row is ``nnz * k + k * k`` (Gram build plus solve, in units
    of ``k`` flops), so a few very long rows do not leave threads idle.
    """
    n = indptr.size - 1
    total = 0.0
    for u in range(n):
        total += (indptr[u + 1] - indptr[u]) * k + k * k
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    c = 1
    acc = 0.0
    for u in range(n):
        acc += (indptr[u + 1] - indptr[u]) * k + k * k
        while c < n_chunks and acc >= total * c / n_chunks:
            bounds[c] = u + 1
            c += 1
    while c <= n_chunks:
        bounds[c] = n
        c += 1
    return bounds


# ---------------------------------------------------------------------------
# BLAS from compiled code
# ---------------------------------------------------------------------------
# The Gram updates are SYRK-shaped (``A += B^T B`` for a small gathered block
# ``B`` of item vectors) and the dense step is a GEMM: both run at several
# times the speed of any loop Numba generates when handed to the level-3 BLAS
# that SciPy ships.  Its Fortran entry points are exported by
# ``scipy.linalg.cython_blas``; they are registered with LLVM under fixed
# symbol names (not as ctypes pointers) so that the on-disk Numba cache
# stays usable.  Row-major ``C`` is column-major ``C^T``: the row-major upper
# triangle that the solvers use is BLAS's lower triangle (``uplo='L'``).
#
# Every call is made from inside our own parallel loops, one small problem
# per thread, so the BLAS library must not start threads of its own: each
# chunk sets OpenBLAS's thread-local thread count to 1 and restores it.
# Where that control is missing (a SciPy not built on a recent OpenBLAS) or
# FASTALS_NO_BLAS is set, the kernels use their own loops instead (same
# results up to rounding).


def _capsule_address(module, name):
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _external(name, nargs, module=_cython_blas):
    symbol = "fastals_blas_" + name
    _llvm.add_symbol(symbol, _capsule_address(module, name))
    return types.ExternalFunction(symbol, types.void(*([types.voidptr] * nargs)))


_ssyrk = _external("ssyrk", 10)
_dsyrk = _external("dsyrk", 10)
_sgemm = _external("sgemm", 13)
_dgemm = _external("dgemm", 13)
_spotrf = _external("spotrf", 5, _cython_lapack)
_dpotrf = _external("dpotrf", 5, _cython_lapack)


def _blas_local_threads():
    """Register OpenBLAS's per-thread thread-count setter, if there is one.

    ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27) sets the number
    of BLAS threads for the calling thread only: each of our worker threads
    then runs its BLAS calls itself, and the caller's global setting (and
    other threads) are untouched.  Changing the global count instead wakes
    OpenBLAS's own threads, which then spin and steal the cores.
    """
    try:
        lib = ctypes.CDLL(_cython_blas.__file__)  # dlsym searches its dependencies
    except OSError:
        lib = None
    for name in ("openblas_set_num_threads_local",
                 "scipy_openblas_set_num_threads_local",
                 "scipy_openblas_set_num_threads_local64_"):
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            _llvm.add_symbol("fastals_blas_threads_local",
                             ctypes.cast(fn, ctypes.c_void_p).value)
            return True, None
    # Not available: BLAS stays unused; a stub keeps the kernels linkable.
    stub = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda n: 1)
    _llvm.add_symbol("fastals_blas_threads_local",
                     ctypes.cast(stub, ctypes.c_void_p).value)
    return False, stub


_HAVE_LOCAL_THREADS, _STUB = _blas_local_threads()
_blas_threads_local = types.ExternalFunction(
    "fastals_blas_threads_local", types.int32(types.int32))
#: Whether the kernels call BLAS (False: portable loops only).
USE_BLAS = _HAVE_LOCAL_THREADS and not os.environ.get("FASTALS_NO_BLAS")
#: Below this many factors a BLAS call costs more than it saves.
BLAS_MIN_FACTORS = 16
#: ``mode`` of the row kernels that sums loss terms instead of solving.
LOSS_MODE = -1
#: Factorizations tried per row before it is set to zero: the exact system,
#: then ridges of 1e-6 ... 1e21 times (mean diagonal + 1).
RIDGE_TRIES = 30
#: From this many factors LAPACK's blocked Cholesky (xPOTRF) beats ours
#: (measured: equal at k=64, 1.6x faster at k=100 and k=128).
LAPACK_MIN_FACTORS = 64


def _syrk(alpha, B, r0, n, C, iw, fw, cw):
    """``C[upper] += alpha * B[r0:r0+n]^T B[r0:r0+n]`` (BLAS SYRK)."""


@overload(_syrk)
def _syrk_impl(alpha, B, r0, n, C, iw, fw, cw):
    fn = _ssyrk if B.dtype == types.float32 else _dsyrk

    def impl(alpha, B, r0, n, C, iw, fw, cw):
        cw[0] = 76  # 'L' (column-major lower == row-major upper)
        cw[1] = 78  # 'N'
        iw[0] = C.shape[0]
        iw[1] = n
        iw[2] = B.shape[1]
        iw[3] = C.shape[1]
        fw[0] = alpha
        fw[1] = 1
        ip = iw.ctypes.data
        isz = iw.itemsize
        fp = fw.ctypes.data
        fn(cw.ctypes.data, cw.ctypes.data + 1, ip, ip + isz, fp,
           B.ctypes.data + r0 * B.shape[1] * B.itemsize, ip + 2 * isz,
           fp + fw.itemsize, C.ctypes.data, ip + 3 * isz)
    return impl


def _gemm(ta, tb, m, n, kk, a, lda, b, ldb, c, ldc, iw, fw, cw):
    """Column-major ``C (m x n) = op(A) op(B)`` (BLAS xGEMM, alpha 1, beta 0)
    on raw addresses ``a``, ``b``, ``c``; ``ta``/``tb`` are 78 ('N') or 84
    ('T'); the dtype is ``fw``'s.  ``iw``/``fw``/``cw`` are scratch."""


@overload(_gemm)
def _gemm_impl(ta, tb, m, n, kk, a, lda, b, ldb, c, ldc, iw, fw, cw):
    fn = _sgemm if fw.dtype == types.float32 else _dgemm

    def impl(ta, tb, m, n, kk, a, lda, b, ldb, c, ldc, iw, fw, cw):
        cw[0] = ta
        cw[1] = tb
        iw[0] = m
        iw[1] = n
        iw[2] = kk
        iw[3] = lda
        iw[4] = ldb
        iw[5] = ldc
        fw[0] = 1
        fw[1] = 0
        ip = iw.ctypes.data
        isz = iw.itemsize
        fp = fw.ctypes.data
        fn(cw.ctypes.data, cw.ctypes.data + 1, ip, ip + isz, ip + 2 * isz, fp,
           a, ip + 3 * isz, b, ip + 4 * isz, fp + fw.itemsize, c, ip + 5 * isz)
    return impl


@njit(cache=True)
def _gemm_rows(Y, r0, n, M, Z, iw, fw, cw):
    """``Z[r0:r0+n] = Y[r0:r0+n] @ M`` (BLAS GEMM)."""
    # column-major: Z^T (m x n) = M^T (m x k) Y^T (k x n)
    _gemm(78, 78, M.shape[1], n, Y.shape[1], M.ctypes.data, M.shape[1],
          Y.ctypes.data + r0 * Y.shape[1] * Y.itemsize, Y.shape[1],
          Z.ctypes.data + r0 * Z.shape[1] * Z.itemsize, Z.shape[1], iw, fw, cw)


def _potrf(A, iw, cw):
    """Cholesky factor of ``A``'s row-major upper triangle in place (LAPACK
    xPOTRF, ``A = U^T U``); returns LAPACK's ``info`` (0: success)."""


@overload(_potrf)
def _potrf_impl(A, iw, cw):
    fn = _spotrf if A.dtype == types.float32 else _dpotrf

    def impl(A, iw, cw):
        cw[0] = 76
        iw[0] = A.shape[0]
        iw[1] = A.shape[1]
        iw[2] = 0
        ip = iw.ctypes.data
        isz = iw.itemsize
        fn(cw.ctypes.data, ip, A.ctypes.data, ip + isz, ip + 2 * isz)
        return iw[2]
    return impl


@intrinsic
def _prefetch(typingctx, address):
    """Hint the CPU to start loading the cache line at ``address`` (an
    integer) for reading (``llvm.prefetch``; never faults, may be a no-op)."""
    sig = types.void(types.intp)

    def codegen(context, builder, signature, args):
        i8p = _ir.IntType(8).as_pointer()
        i32 = _ir.IntType(32)
        fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.inttoptr(args[0], i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _take_next(typingctx, counter):
    """Atomically increment ``counter[0]`` (int64) and return its old value.

    The row solvers hand out chunks with it: in a parallel loop over the
    chunks, each thread's first iteration keeps taking the next unsolved
    chunk until none is left, and every later iteration finds none.  Numba's
    own ``prange`` splits the chunks into fixed halves, and whichever half
    the cost estimate got wrong keeps one thread waiting for the other.
    Which thread solves a chunk does not change its result (each chunk is
    solved by one thread, its BLAS calls single-threaded) and partial sums
    are still reduced by chunk index, so the results stay independent of
    the number of threads and of timing.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, _ir.Constant(_ir.IntType(64), 1),
                                  "monotonic")
    return sig, codegen


#: Entries ahead of the current one whose factor row is prefetched by the
#: gathers.  Gathering a row's factor vectors from a factor matrix larger
#: than the cache waits on memory for every vector; asking for them a few
#: entries ahead overlaps those waits.  Measured on the 20M synthetic set,
#: k=128, one thread: the gather (with the right-hand side) took 30-40 %
#: less time at distances 4-32, alike within noise.
PREFETCH_AHEAD = 8


@njit(cache=True, inline="always")
def _prefetch_entry(indices, e, Y):
    """Prefetch every cache line of ``Y[indices[e]]`` if entry ``e`` exists."""
    if e < indices.size:
        nbytes = Y.shape[1] * Y.itemsize
        a = Y.ctypes.data + indices[e] * nbytes
        last = a + nbytes - 1
        while a < last:
            _prefetch(a)
            a += 64
        _prefetch(last)


# ---------------------------------------------------------------------------
# Small dense building blocks (row-major upper triangle, typed scalars)
# ---------------------------------------------------------------------------
# Loops are written over slices from index 0: Numba's negative-index
# wraparound on ``A[i, j]`` with ``j`` starting at ``i`` stops LLVM from
# vectorizing them.  Scalars that enter inner loops are of the array dtype
# (``one`` is passed in) so float32 never silently widens to float64.


@njit(cache=True, fastmath=FASTMATH)
def _syrk_loops(alpha, B, r0, n, C):
    """Portable ``C[upper] += alpha * B[r0:r0+n]^T B[r0:r0+n]``, 4 rows at a time."""
    k = C.shape[0]
    p = r0
    end = r0 + n
    while p + 4 <= end:
        y0 = B[p]
        y1 = B[p + 1]
        y2 = B[p + 2]
        y3 = B[p + 3]
        for i in range(k):
            a0 = alpha * y0[i]
            a1 = alpha * y1[i]
            a2 = alpha * y2[i]
            a3 = alpha * y3[i]
            Ci = C[i, i:]
            t0 = y0[i:]
            t1 = y1[i:]
            t2 = y2[i:]
            t3 = y3[i:]
            for j in range(Ci.size):
                Ci[j] += a0 * t0[j] + a1 * t1[j] + a2 * t2[j] + a3 * t3[j]
        p += 4
    while p < end:
        y0 = B[p]
        for i in range(k):
            a0 = alpha * y0[i]
            Ci = C[i, i:]
            t0 = y0[i:]
            for j in range(Ci.size):
                Ci[j] += a0 * t0[j]
        p += 1


@njit(cache=True, fastmath=FASTMATH)
def _cholesky_upper(A, b, k, one):
    """Solve ``A x = b`` in place; ``A``'s row-major upper triangle is read.

    ``A`` is overwritten by its factor ``U`` (``A = U^T U``).  Returns False
    if ``A`` is not numerically positive definite (``A`` and ``b`` are then
    undefined).
    """
    if not _factor_upper(A, k, one):
        return False
    _solve_upper(A, b, k)
    return True


@njit(cache=True, fastmath=FASTMATH)
def _factor_upper(A, k, one):
    """Right-looking Cholesky ``A = U^T U`` of the row-major upper triangle,
    in panels of 4 rows: the panel is factored unblocked, then every
    trailing row gets one rank-4 update of its contiguous upper part."""
    j = 0
    while j < k:
        jb = min(4, k - j)
        for q in range(jb):
            r = j + q
            d = A[r, r]
            if not d > 0:
                return False
            d = np.sqrt(d)
            A[r, r] = d
            inv = one / d
            ur = A[r, r + 1:]
            for l in range(ur.size):
                ur[l] *= inv
            for s in range(r + 1, j + jb):
                f = A[r, s]
                As = A[s, s:]
                us = A[r, s:]
                for l in range(As.size):
                    As[l] -= f * us[l]
        if jb == 4:
            for i in range(j + 4, k):
                f0 = A[j, i]
                f1 = A[j + 1, i]
                f2 = A[j + 2, i]
                f3 = A[j + 3, i]
                Ai = A[i, i:]
                v0 = A[j, i:]
                v1 = A[j + 1, i:]
                v2 = A[j + 2, i:]
                v3 = A[j + 3, i:]
                for l in range(Ai.size):
                    Ai[l] -= (f0 * v0[l] + f1 * v1[l]) + (f2 * v2[l] + f3 * v3[l])
        else:
            for q in range(jb):
                r = j + q
                for i in range(j + jb, k):
                    f = A[r, i]
                    Ai = A[i, i:]
                    v = A[r, i:]
                    for l in range(Ai.size):
                        Ai[l] -= f * v[l]
        j += jb
    return True


@njit(cache=True, fastmath=FASTMATH)
def _solve_upper(A, b, k):
    """``b <- (U^T U)^{-1} b``: ``U^T z = b`` by column sweeps, then
    ``U x = z`` by row dot products."""
    for i in range(k):
        zi = b[i] / A[i, i]
        b[i] = zi
        bs = b[i + 1:]
        ui = A[i, i + 1:]
        for l in range(bs.size):
            bs[l] -= zi * ui[l]
    for i in range(k - 1, -1, -1):
        ui = A[i, i + 1:]
        bs = b[i + 1:]
        s = b[i]
        for l in range(bs.size):
            s -= ui[l] * bs[l]
        b[i] = s / A[i, i]


@njit(cache=True, fastmath=FASTMATH)
def _ridge_solve(A, A0, b, b0, k, one):
    """Fallback for a system that is not numerically positive definite.

    ``A0``/``b0`` hold the system.  A growing ridge ``delta * (mean diagonal
    + 1)`` is added until the factorization succeeds; the result is then a
    (slightly) regularized least-squares solution instead of NaN.  Returns
    the number of attempts.
    """
    scale = 0.0
    for i in range(k):
        scale += abs(A0[i, i])
    scale = scale / k + 1.0
    delta = 1e-6
    for attempt in range(1, 30):
        for i in range(k):
            for j in range(i, k):
                A[i, j] = A0[i, j]
            A[i, i] += delta * scale
            b[i] = b0[i]
        if _cholesky_upper(A, b, k, one):
            return attempt
        delta *= 10.0
    for i in range(k):
        b[i] = 0
    return 30


@njit(cache=True, fastmath=FASTMATH)
def _matvec(G, v, out):
    """``out = G v`` for a small dense ``G``, four rows per sweep of ``v``."""
    k = v.size
    i = 0
    while i + 4 <= k:
        g0 = G[i]
        g1 = G[i + 1]
        g2 = G[i + 2]
        g3 = G[i + 3]
        s0 = g0[0] * v[0]
        s1 = g1[0] * v[0]
        s2 = g2[0] * v[0]
        s3 = g3[0] * v[0]
        for j in range(1, k):
            vj = v[j]
            s0 += g0[j] * vj
            s1 += g1[j] * vj
            s2 += g2[j] * vj
            s3 += g3[j] * vj
        out[i] = s0
        out[i + 1] = s1
        out[i + 2] = s2
        out[i + 3] = s3
        i += 4
    while i < k:
        gi = G[i]
        s0 = gi[0] * v[0]
        for j in range(1, k):
            s0 += gi[j] * v[j]
        out[i] = s0
        i += 1


# ---------------------------------------------------------------------------
# Row solves
# ---------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
               A, b, B, iw, fw, cw, blas, one):
    """Fill the upper triangle of ``A`` and ``b`` for row ``u``.

    The row's item vectors are gathered into the contiguous block ``B``,
    scaled by ``sqrt|c - w0|`` (positive weights from the top, negative ones
    from the bottom), and added to ``A`` by a SYRK per block.
    """
    k = Y.shape[1]
    cap = B.shape[0]
    start = indptr[u]
    end = indptr[u + 1]
    for i in range(k):
        Ai = A[i]
        Gi = G[i]
        for j in range(k):
            Ai[j] = w0 * Gi[j]
        b[i] = 0
    use_blas = blas and k >= BLAS_MIN_FACTORS
    p = start
    while p < end:
        q = min(end, p + cap)
        # int64 from the start: a literal 0 here made Numba compile the
        # SYRK loop a second time for a constant row count.
        npos = np.int64(0)
        nneg = np.int64(0)
        for e in range(p, q):
            _prefetch_entry(indices, e + PREFETCH_AHEAD, Y)
            it = indices[e]
            cf = conf[e]
            cwt = cf - w0
            ct = cf * (target[e] - offset[it])
            yr = Y[it]
            for j in range(k):
                b[j] += ct * yr[j]
            if cwt > 0:
                s = np.sqrt(cwt)
                row = B[npos]
                npos += 1
            elif cwt < 0:
                s = np.sqrt(-cwt)
                nneg += 1
                row = B[cap - nneg]
            else:
                continue
            for j in range(k):
                row[j] = s * yr[j]
        for seg in range(2):  # one call site each: less code to compile
            r0 = 0
            m = npos
            alpha = one
            if seg == 1:
                r0 = cap - nneg
                m = nneg
                alpha = -one
            if m == 0:
                continue
            if use_blas:
                _syrk(alpha, B, r0, m, A, iw, fw, cw)
            else:
                _syrk_loops(alpha, B, r0, m, A)
        p = q
    reg = lam
    if wr:
        reg = lam * (end - start)
    for i in range(k):
        A[i, i] += reg


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cholesky_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                   wr, w0, X, blas, cap):
    """Solve rows ``r0:r1`` (one chunk) with scratch allocated once; returns
    the number of rows that needed the ridge fallback.

    A row whose system is not numerically positive definite (``lam = 0``
    with fewer ratings than factors, say) is rebuilt with a growing ridge
    ``delta * (mean diagonal + 1)``, ``delta = 1e-6, 1e-5, ...``, until the
    factorization succeeds: a (slightly) regularized least-squares solution
    instead of NaN; after 29 tries the row is set to zero.  Each helper has
    one call site, which keeps compilation short.  Inlined into its C
    callback (see "Chunk functions behind C symbols"), never into a parallel
    loop's body, which is much more expensive to compile.
    """
    k = Y.shape[1]
    A = np.empty((k, k), Y.dtype)
    B = np.empty((cap, k), Y.dtype)
    b = np.empty(k, Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    lapack = blas and k >= LAPACK_MIN_FACTORS
    fallbacks = 0
    prev = np.int32(1)
    if blas:
        prev = _blas_threads_local(1)
    for u in range(r0, r1):
        delta = 0.0
        ok = False
        for attempt in range(RIDGE_TRIES):
            _build_row(u, indptr, indices, conf, target, offset, Y, G, lam, wr,
                       w0, A, b, B, iw, fw, cw, blas, one)
            if attempt > 0:
                scale = 0.0
                for i in range(k):
                    scale += abs(A[i, i])
                shift = delta * (scale / k + 1.0)
                for i in range(k):
                    A[i, i] += shift
            if lapack:
                ok = _potrf(A, iw, cw) == 0
                if ok:
                    _solve_upper(A, b, k)
            else:
                ok = _cholesky_upper(A, b, k, one)
            if ok:
                break
            if attempt == 0:
                fallbacks += 1
                delta = 1e-6
            else:
                delta *= 10.0
        x = X[u]
        for i in range(k):
            x[i] = b[i] if ok else 0
    if blas:
        _blas_threads_local(prev)
    return fallbacks


# Chunk functions behind C symbols
# ---------------------------------
# The per-chunk functions (solve a range of rows, sum the loss of a range
# of rows) are compiled as C callbacks and called from the parallel kernels
# through fixed symbol names, as the BLAS routines above are.  A Numba
# function otherwise gets the LLVM code of everything it calls linked in
# and optimized again, and a parallel kernel does that twice (its loop
# body, then itself): for the Cholesky solver that was about 5 s of a 15 s
# cold start.  Behind a symbol the code is compiled once, and cached as the
# rest is.  All callbacks share one C signature (unused arguments ignored).
# The symbol must be registered before a kernel that calls it is compiled or
# loaded from the cache: such kernels are wrapped by
# :meth:`_ChunkCallback.guard`, which sees to it.


def _chunk_signature(dtype, pointers):
    """``float64(r0, r1, 8 array pointers, n_rows, nnz, n_other, k, n_g,
    lam, wr, w0, blas, cap, mode)`` for factors of ``dtype``;
    ``pointers``: typed pointers (the callback's view) or ``voidptr`` (the
    caller's).  ``mode``: :data:`LOSS_MODE` to sum the loss terms of the
    rows instead of solving them, else the number of CG steps."""
    f = numba.from_dtype(np.dtype(dtype))
    i8 = types.int64
    if pointers:
        ptrs = (types.CPointer(i8), types.CPointer(types.int32)) + \
            (types.CPointer(f),) * 6
    else:
        ptrs = (types.voidptr,) * 8
    return types.float64(i8, i8, *ptrs, i8, i8, i8, i8, i8, f, i8, f, i8, i8, i8)


@njit(inline="always")
def _chunk_views(indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p,
                 X_p, n_rows, nnz, n_other, k, n_g):
    return (carray(indptr_p, n_rows + 1), carray(indices_p, nnz),
            carray(conf_p, nnz), carray(target_p, nnz),
            carray(offset_p, n_other), carray(Y_p, (n_other, k)),
            carray(G_p, (n_g, n_g)), carray(X_p, (n_rows, k)))


_CALLBACK_LOCK = threading.Lock()


class _ChunkCallback:
    """A chunk function on raw pointers, compiled per dtype on first use."""

    def __init__(self, name, raw):
        self.name = name
        self.raw = raw
        self.compiled = {}
        self.external = {
            dt: types.ExternalFunction(self.symbol(dt), _chunk_signature(dt, False))
            for dt in ("float32", "float64")}

    def symbol(self, dtype):
        return "fastals_%s_%s" % (self.name, np.dtype(dtype).name)

    def ensure(self, dtype):
        """Compile (or load from the cache) the callback for ``dtype`` and
        register its symbol (once per process; the object stays alive)."""
        name = np.dtype(dtype).name
        with _CALLBACK_LOCK:
            if name not in self.compiled:
                cf = numba.cfunc(_chunk_signature(dtype, True), cache=True,
                                 fastmath=FASTMATH)(self.raw)
                _llvm.add_symbol(self.symbol(dtype), cf.address)
                self.compiled[name] = cf

    def guard(self, kernel):
        """Wrap a compiled ``kernel`` that calls this callback so that every
        call first makes sure of the symbol (argument 5 holds the factors).
        Loading such a kernel without the symbol would abort the process."""
        @functools.wraps(kernel.py_func)
        def guarded(*args):
            self.ensure(args[5].dtype)
            return kernel(*args)
        guarded.kernel = kernel
        return guarded

    def caller(self):
        """A function for Numba code that calls the callback on arrays."""
        external = self.external

        def call(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr,
                 w0, X, blas, cap, mode):
            raise NotImplementedError("only callable from compiled code")

        @overload(call)
        def call_impl(r0, r1, indptr, indices, conf, target, offset, Y, G,
                      lam, wr, w0, X, blas, cap, mode):
            # The callback reads raw memory: refuse, at compile time, any
            # layout or dtype it would misread.
            f = Y.dtype
            want = ((indptr, types.int64), (indices, types.int32), (conf, f),
                    (target, f), (offset, f), (Y, f), (G, f), (X, f))
            for arr, dt in want:
                if not (isinstance(arr, types.Array) and arr.layout == "C"
                        and arr.dtype == dt and f in (types.float32, types.float64)):
                    raise TypingError("%s: arrays must be C-contiguous with "
                                      "int64 indptr, int32 indices and one float "
                                      "dtype, got %s" % (self.name, arr))
            fn = external["float32" if f == types.float32 else "float64"]

            def impl(r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                     wr, w0, X, blas, cap, mode):
                return fn(r0, r1, indptr.ctypes.data, indices.ctypes.data,
                          conf.ctypes.data, target.ctypes.data,
                          offset.ctypes.data, Y.ctypes.data, G.ctypes.data,
                          X.ctypes.data, X.shape[0], indices.size, Y.shape[0],
                          Y.shape[1], G.shape[0], lam, np.int64(wr), w0,
                          np.int64(blas), cap, mode)
            return impl
        return call


def _cholesky_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                     Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                     blas, cap, mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    return float(_cholesky_rows(r0, r1, indptr, indices, conf, target, offset,
                                Y, G, lam, wr != 0, w0, X, blas != 0, cap))


_CHOLESKY = _ChunkCallback("cholesky_rows", _cholesky_rows_c)
_cholesky_chunk = _CHOLESKY.caller()


@_CHOLESKY.guard
@njit(parallel=True, cache=True)
def _solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                    X, bounds, blas, mode):
    """Solve every row (``mode`` 0: returns the number of ridge fallbacks)
    or sum the loss terms of every row (``mode`` :data:`LOSS_MODE`)."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)  # np.zeros: a parallel loop more
    cap = max(64, 65536 // k)  # gathered rows per SYRK: 256 KiB in float32
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_chunks:
            partial[c] = _cholesky_chunk(bounds[c], bounds[c + 1], indptr,
                                         indices, conf, target, offset, Y, G,
                                         lam, wr, w0, X, blas, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


#: Kernels whose work (multiply-adds) is below this run on the calling
#: thread only.  Waking the worker threads costs microseconds on an idle
#: machine but milliseconds when the cores are busy with other processes (a
#: parallel region waits for its slowest thread).  Measured on the dense
#: ML-100k fit (kernels of 2e6-2e7 multiply-adds): 5e6 beat 2e7 at light
#: load (0.66-0.79 s against 0.96-1.0 s), 2e7 was safer under heavy load.
#: Chunks are fixed, so the results are the same either way.
SERIAL_BELOW = 5_000_000


def _call(kernel, work, args):
    if work < SERIAL_BELOW and numba.get_num_threads() > 1:
        old = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return kernel(*args)
        finally:
            numba.set_num_threads(old)
    return kernel(*args)


def _with_blas(kernel):
    """Public entry point: the compiled kernel with ``USE_BLAS`` appended.

    (Numba's dynamic scheduling, ``parallel_chunksize``, measured 30-100x
    slower on small kernels here; the row solvers hand out their chunks
    with one atomic counter instead, see :func:`_take_next`.)"""
    @functools.wraps(kernel)
    def wrapper(*args):
        return kernel(*args, USE_BLAS)
    wrapper.kernel = kernel
    return wrapper


@_with_blas
def solve_cholesky(indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                   X, bounds, blas):
    """Exact ALS half-step: overwrite every row of ``X`` with its solution.

    Per row: gather the row's item vectors into a contiguous per-chunk block,
    accumulate ``A`` with a SYRK (symmetric: one triangle), solve by
    Cholesky.  Returns the number of rows whose system was not positive
    definite and needed the ridge fallback.
    """
    k = Y.shape[1]
    work = indptr[-1] * k * (k + 1) // 2 + (indptr.size - 1) * k ** 3 // 3
    return int(_call(_solve_cholesky, work,
                     (indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
                      X, bounds, blas, 0)))


@njit(cache=True, fastmath=FASTMATH)
def _cg_gather(indices, conf, target, offset, Y, w0, p, n, B, wv, tv):
    """Copy entries ``p:p+n`` of a row into the block ``B`` with their
    weights ``c - w0`` and weighted targets ``c (t - offset)``."""
    k = Y.shape[1]
    for e in range(n):
        _prefetch_entry(indices, p + e + PREFETCH_AHEAD, Y)
        it = indices[p + e]
        cf = conf[p + e]
        wv[e] = cf - w0
        tv[e] = cf * (target[p + e] - offset[it])
        yr = Y[it]
        row = B[e]
        for j in range(k):
            row[j] = yr[j]


@njit(cache=True, fastmath=FASTMATH)
def _cg_accumulate(B, wv, tv, n, v, out, residual):
    """``out += sum_e s_e y_e`` over the block, 4 rows at a time, with
    ``s_e = tv_e - wv_e (y_e . v)`` (residual) or ``wv_e (y_e . v)``."""
    k = v.size
    e = 0
    while e + 4 <= n:
        y0 = B[e]
        y1 = B[e + 1]
        y2 = B[e + 2]
        y3 = B[e + 3]
        d0 = y0[0] * v[0]
        d1 = y1[0] * v[0]
        d2 = y2[0] * v[0]
        d3 = y3[0] * v[0]
        for i in range(1, k):
            vi = v[i]
            d0 += y0[i] * vi
            d1 += y1[i] * vi
            d2 += y2[i] * vi
            d3 += y3[i] * vi
        if residual:
            s0 = tv[e] - wv[e] * d0
            s1 = tv[e + 1] - wv[e + 1] * d1
            s2 = tv[e + 2] - wv[e + 2] * d2
            s3 = tv[e + 3] - wv[e + 3] * d3
        else:
            s0 = wv[e] * d0
            s1 = wv[e + 1] * d1
            s2 = wv[e + 2] * d2
            s3 = wv[e + 3] * d3
        for i in range(k):
            out[i] += s0 * y0[i] + s1 * y1[i] + s2 * y2[i] + s3 * y3[i]
        e += 4
    while e < n:
        y0 = B[e]
        d0 = y0[0] * v[0]
        for i in range(1, k):
            d0 += y0[i] * v[i]
        if residual:
            s0 = tv[e] - wv[e] * d0
        else:
            s0 = wv[e] * d0
        for i in range(k):
            out[i] += s0 * y0[i]
        e += 1


def solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
             bounds, steps):
    """Conjugate-gradient ALS half-step, warm-started from ``X``.

    Runs ``steps`` CG iterations on each row's system without forming
    ``A_u`` (Takacs et al. 2011): a product ``A_u v`` costs ``k^2`` for the
    shared ``w0 G v`` plus ``2 k`` per entry of the row.  The row's item
    vectors are gathered once into a contiguous block (up to ~1 MiB) that
    every CG step then streams from cache; longer rows are re-gathered block
    by block at each step.
    """
    k = Y.shape[1]
    work = (indptr[-1] * 4 * k + (indptr.size - 1) * k * k) * (steps + 1)
    return _call(_solve_cg, work, (indptr, indices, conf, target, offset, Y, G,
                                   lam, wr, w0, X, bounds, steps))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr, w0,
             X, steps, cap):
    """CG for rows ``r0:r1`` (one chunk), scratch allocated once."""
    k = Y.shape[1]
    B = np.empty((cap, k), Y.dtype)
    wv = np.empty(cap, Y.dtype)
    tv = np.empty(cap, Y.dtype)
    r = np.empty(k, Y.dtype)
    d = np.empty(k, Y.dtype)
    Ad = np.empty(k, Y.dtype)
    Gv = np.zeros(k, Y.dtype)
    x = np.empty(k, Y.dtype)
    for u in range(r0, r1):
        start = indptr[u]
        end = indptr[u + 1]
        n = end - start
        reg = lam
        if wr:
            reg = lam * n
        for i in range(k):
            x[i] = X[u, i]
        once = n <= cap
        if once:
            _cg_gather(indices, conf, target, offset, Y, w0, start, n,
                       B, wv, tv)
        # r = b - A x
        if w0 != 0:
            _matvec(G, x, Gv)
        for i in range(k):
            r[i] = -w0 * Gv[i] - reg * x[i]
        if once:
            _cg_accumulate(B, wv, tv, n, x, r, True)
        else:
            p = start
            while p < end:
                m = min(cap, end - p)
                _cg_gather(indices, conf, target, offset, Y, w0, p, m,
                           B, wv, tv)
                _cg_accumulate(B, wv, tv, m, x, r, True)
                p += m
        rs = r[0] * r[0]
        for i in range(1, k):
            rs += r[i] * r[i]
        for i in range(k):
            d[i] = r[i]
        for _ in range(steps):
            if rs < 1e-20:
                break
            if w0 != 0:
                _matvec(G, d, Gv)
            for i in range(k):
                Ad[i] = w0 * Gv[i] + reg * d[i]
            if once:
                _cg_accumulate(B, wv, tv, n, d, Ad, False)
            else:
                p = start
                while p < end:
                    m = min(cap, end - p)
                    _cg_gather(indices, conf, target, offset, Y, w0, p,
                               m, B, wv, tv)
                    _cg_accumulate(B, wv, tv, m, d, Ad, False)
                    p += m
            dAd = d[0] * Ad[0]
            for i in range(1, k):
                dAd += d[i] * Ad[i]
            if not dAd > 0:
                break
            a = rs / dAd
            for i in range(k):
                x[i] += a * d[i]
                r[i] -= a * Ad[i]
            rs_new = r[0] * r[0]
            for i in range(1, k):
                rs_new += r[i] * r[i]
            beta = rs_new / rs
            for i in range(k):
                d[i] = r[i] + beta * d[i]
            rs = rs_new
        for i in range(k):
            X[u, i] = x[i]
    return 0


def _cg_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p, Y_p,
               G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0, blas, cap,
               mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    if mode == LOSS_MODE:
        return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y,
                          w0)
    _cg_rows(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr != 0,
             w0, X, mode, cap)
    return 0.0


_CG = _ChunkCallback("cg_rows", _cg_rows_c)
_cg_chunk = _CG.caller()


@_CG.guard
@njit(parallel=True, cache=True)
def _solve_cg(indptr, indices, conf, target, offset, Y, G, lam, wr, w0, X,
              bounds, mode):
    """``mode`` CG steps on every row, or (``mode`` :data:`LOSS_MODE`) the
    sum of the rows' loss terms."""
    k = Y.shape[1]
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    cap = max(256, 262144 // k)
    counter = np.empty(1, np.int64)
    counter[0] = 0
    for _ in prange(n_chunks):  # each thread's first pass drains the queue
        c = _take_next(counter)
        while c < n_chunks:
            partial[c] = _cg_chunk(bounds[c], bounds[c + 1], indptr, indices,
                                   conf, target, offset, Y, G, lam, wr, w0, X,
                                   False, cap, mode)
            c = _take_next(counter)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


# ---------------------------------------------------------------------------
# Dense objective, loss, Gram
# ---------------------------------------------------------------------------


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
        _ridge_solve(A, A0, b, b0, k, one)  # leaves the (ridged) factor in A
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

    Cholesky with the same ridge fallback as the row solves: a singular
    ``G`` (for instance ``lam = 0`` and fewer rows than factors) gets the
    smallest ridge that makes it positive definite.
    """
    return _spd_inverse(np.ascontiguousarray(G, dtype=np.float64))


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
    k = Z.shape[1]
    for c in prange(bounds.size - 1):
        for u in range(bounds[c], bounds[c + 1]):
            x = X[u]
            for i in range(k):
                x[i] = 0
            p = indptr[u]
            end = indptr[u + 1]
            while p + 4 <= end:
                for q in range(4):
                    _prefetch_entry(indices, p + PREFETCH_AHEAD + q, Z)
                r0 = data[p]
                r1 = data[p + 1]
                r2 = data[p + 2]
                r3 = data[p + 3]
                z0 = Z[indices[p]]
                z1 = Z[indices[p + 1]]
                z2 = Z[indices[p + 2]]
                z3 = Z[indices[p + 3]]
                for i in range(k):
                    x[i] += r0 * z0[i] + r1 * z1[i] + r2 * z2[i] + r3 * z3[i]
                p += 4
            while p < end:
                r0 = data[p]
                z0 = Z[indices[p]]
                for i in range(k):
                    x[i] += r0 * z0[i]
                p += 1
    return 0


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
        return _call(_solve_cg, work, args + (LOSS_MODE,))
    return _call(_loss_terms, work,
                 (indptr, indices, conf, target, offset, X, Y, dt(w0), bounds))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y, w0):
    """The loss terms of rows ``r0:r1``, summed in float64."""
    k = X.shape[1]
    acc = 0.0
    for u in range(r0, r1):
        x = X[u]
        p = indptr[u]
        end = indptr[u + 1]
        while p + 4 <= end:  # four independent rows of Y in flight
            for q in range(4):
                _prefetch_entry(indices, p + PREFETCH_AHEAD + q, Y)
            y0 = Y[indices[p]]
            y1 = Y[indices[p + 1]]
            y2 = Y[indices[p + 2]]
            y3 = Y[indices[p + 3]]
            d0 = x[0] * y0[0]
            d1 = x[0] * y1[0]
            d2 = x[0] * y2[0]
            d3 = x[0] * y3[0]
            for i in range(1, k):
                xi = x[i]
                d0 += xi * y0[i]
                d1 += xi * y1[i]
                d2 += xi * y2[i]
                d3 += xi * y3[i]
            for q, dot in ((0, d0), (1, d1), (2, d2), (3, d3)):
                e_ = p + q
                d = np.float64(dot)
                e = (np.float64(target[e_]) - np.float64(offset[indices[e_]])) - d
                acc += np.float64(conf[e_]) * e * e - w0 * d * d
            p += 4
        while p < end:
            it = indices[p]
            y = Y[it]
            dot = x[0] * y[0]
            for i in range(1, k):
                dot += x[i] * y[i]
            d = np.float64(dot)
            e = (np.float64(target[p]) - np.float64(offset[it])) - d
            acc += np.float64(conf[p]) * e * e - w0 * d * d
            p += 1
    return acc


def _loss_rows_c(r0, r1, indptr_p, indices_p, conf_p, target_p, offset_p,
                 Y_p, G_p, X_p, n_rows, nnz, n_other, k, n_g, lam, wr, w0,
                 blas, cap, mode):
    indptr, indices, conf, target, offset, Y, G, X = _chunk_views(
        indptr_p, indices_p, conf_p, target_p, offset_p, Y_p, G_p, X_p, n_rows,
        nnz, n_other, k, n_g)
    return _loss_rows(r0, r1, indptr, indices, conf, target, offset, X, Y, w0)


_LOSS = _ChunkCallback("loss_rows", _loss_rows_c)
_loss_chunk = _LOSS.caller()


@_LOSS.guard
@njit(parallel=True, cache=True)
def _loss_terms(indptr, indices, conf, target, offset, X, Y, w0, bounds):
    n_chunks = bounds.size - 1
    partial = np.empty(n_chunks, np.float64)
    G = np.empty((0, 0), Y.dtype)
    for c in prange(n_chunks):
        partial[c] = _loss_chunk(bounds[c], bounds[c + 1], indptr, indices, conf,
                                 target, offset, Y, G, w0, False, w0, X, False, 0,
                                 0)
    total = 0.0
    for c in range(n_chunks):  # fixed order: not a parallel reduction
        total += partial[c]
    return total


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
