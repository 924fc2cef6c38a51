"""BLAS and LAPACK from compiled code: SciPy's Fortran entry points bound
under fixed symbol names, OpenBLAS's thread count (:mod:`.openblas`), and the
portable loops used where BLAS is not.
"""

import ctypes
import functools
import os

import llvmlite.binding as _llvm
import scipy.linalg.cython_blas as _cython_blas
import scipy.linalg.cython_lapack as _cython_lapack
from numba import njit, types
from numba.extending import overload

from . import openblas as _openblas
from .llvm import FASTMATH

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
# chunk calls ``_blas_threads_local(1)`` and restores the count, and every
# entry point from Python holds :func:`.openblas.single_threaded` (see
# :mod:`.openblas`: which of the two does the work depends on the OpenBLAS
# build).  Where that control is missing (a SciPy not built on a recent
# OpenBLAS) or FASTALS_NO_BLAS is set, the kernels use their own loops
# instead (same results up to rounding).


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
_strsm = _external("strsm", 11)
_dtrsm = _external("dtrsm", 11)
_spotrf = _external("spotrf", 5, _cython_lapack)
_dpotrf = _external("dpotrf", 5, _cython_lapack)
_dsyev = _external("dsyev", 9, _cython_lapack)  # CG's eigenbasis


_blas_threads_local = types.ExternalFunction(
    "fastals_blas_threads_local", types.int32(types.int32))
#: Whether the kernels call BLAS (False: portable loops only).
USE_BLAS = _openblas.CONTROL and not os.environ.get("FASTALS_NO_BLAS")
#: Below this many factors a BLAS call costs more than it saves.
BLAS_MIN_FACTORS = 16


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


def _syrk_rows(Z, n, C, iw, fw, cw):
    """``C[upper] += Z[:n] Z[:n]^T`` (BLAS SYRK; ``C`` is ``n x n``): the
    Gram matrix of ``n`` rows, where :func:`_syrk` sums their outer
    products."""


@overload(_syrk_rows)
def _syrk_rows_impl(Z, n, C, iw, fw, cw):
    fn = _ssyrk if Z.dtype == types.float32 else _dsyrk

    def impl(Z, n, C, iw, fw, cw):
        # column-major: C (n x n, lower) += Zc^T Zc, Zc = Z[:n]^T (k x n)
        cw[0] = 76  # 'L'
        cw[1] = 84  # 'T'
        iw[0] = n
        iw[1] = Z.shape[1]
        iw[2] = Z.shape[1]
        iw[3] = n
        fw[0] = 1
        fw[1] = 1
        ip = iw.ctypes.data
        isz = iw.itemsize
        fp = fw.ctypes.data
        fn(cw.ctypes.data, cw.ctypes.data + 1, ip, ip + isz, fp, Z.ctypes.data,
           ip + 2 * isz, fp + fw.itemsize, C.ctypes.data, ip + 3 * isz)
    return impl


def _trsm_rows(U, Z, n, iw, fw, cw):
    """``Z[:n] <- Z[:n] U^{-1}`` for the row-major upper triangular ``U``
    (``k x k``): row by row, ``U^T w = z`` (BLAS TRSM)."""


@overload(_trsm_rows)
def _trsm_rows_impl(U, Z, n, iw, fw, cw):
    fn = _strsm if Z.dtype == types.float32 else _dtrsm

    def impl(U, Z, n, iw, fw, cw):
        # column-major: L Wc = Zc with L = U^T (lower), Zc = Z[:n]^T (k x n)
        cw[0] = 76  # side 'L'
        cw[1] = 76  # uplo 'L'
        cw[2] = 78  # 'N'
        cw[3] = 78  # non-unit diagonal
        iw[0] = U.shape[0]
        iw[1] = n
        iw[2] = U.shape[1]
        iw[3] = Z.shape[1]
        fw[0] = 1
        ip = iw.ctypes.data
        isz = iw.itemsize
        c = cw.ctypes.data
        fn(c, c + 1, c + 2, c + 3, ip, ip + isz, fw.ctypes.data, U.ctypes.data,
           ip + 2 * isz, Z.ctypes.data, ip + 3 * isz)
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


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
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


def _with_blas(kernel):
    """Public entry point: the compiled kernel with ``USE_BLAS`` appended.

    (Numba's dynamic scheduling, ``parallel_chunksize``, measured 30-100x
    slower on small kernels here; the row solvers hand out their chunks
    with one atomic counter instead, see :func:`.llvm._take_next`.)"""
    @functools.wraps(kernel)
    def wrapper(*args):
        with _openblas.single_threaded():
            return kernel(*args, USE_BLAS)
    wrapper.kernel = kernel
    return wrapper
