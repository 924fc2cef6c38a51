"""OpenBLAS's thread count while the kernels run.

The kernels call BLAS from inside their own parallel loops, one small
problem per thread, so OpenBLAS must not start threads of its own.
``openblas_set_num_threads_local`` promises a count for the calling thread
only, and keeps that promise in OpenMP builds.  In the pthreads builds that
SciPy's wheels ship (OpenBLAS 0.3.30 here) it sets the process-wide count.
Called with a save and restore from every worker thread, it raced: one
thread restored two threads while another was still inside BLAS, so some
calls ran multi-threaded (a dense k=100 fit then differed in the last bits
from run to run), and a fit left SciPy's BLAS at one thread for the rest of
the process.

So the setter is tried once, from a helper thread, at import.  Where it is
per-thread, the kernels call it as before.  Where it is process-wide, the
symbol the kernels call does nothing, and :func:`single_threaded` sets the
process-wide count to one around each kernel call made from Python: counted,
so that nested and concurrent calls restore the caller's count once, when
the last of them returns.  Where no setter exists, :data:`CONTROL` is False
and the kernels use their own loops instead of BLAS.
"""

import contextlib
import ctypes
import threading

import llvmlite.binding as _llvm
import scipy.linalg.cython_blas as _cython_blas


def _library():
    try:
        return ctypes.CDLL(_cython_blas.__file__)  # dlsym searches its dependencies
    except OSError:
        return None


def _first(lib, names):
    for name in names:
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            return fn
    return None


_LIB = _library()
_SET_LOCAL = _first(_LIB, ("openblas_set_num_threads_local",
                           "scipy_openblas_set_num_threads_local",
                           "scipy_openblas_set_num_threads_local64_"))
_GET = _first(_LIB, ("openblas_get_num_threads", "scipy_openblas_get_num_threads",
                     "scipy_openblas_get_num_threads64_"))
_SET = _first(_LIB, ("openblas_set_num_threads", "scipy_openblas_set_num_threads",
                     "scipy_openblas_set_num_threads64_"))


def _setter_is_per_thread():
    """Whether ``_SET_LOCAL`` leaves other threads' count alone: called from
    a helper thread, does the count seen here change?  Undecidable at one
    thread (nothing to lower); False then, which is always safe."""
    before = _GET()
    if before <= 1:
        return False
    t = threading.Thread(target=lambda: _SET_LOCAL(1))
    t.start()
    t.join()
    after = _GET()
    if after != before:  # process-wide: put it back
        _SET(before)
        return False
    return True


def _keep_address():
    """Address of a C function ``int f(int)`` without side effects that
    returns 1 for 1, the stand-in for the per-thread setter where the real
    one is process-wide (the count is already one then, see
    :func:`single_threaded`; the kernels pass back what it returned): the C
    library's ``abs``, found at once, or else a compiled no-op (about a
    quarter of a second at import)."""
    try:
        return ctypes.cast(ctypes.CDLL(None).abs, ctypes.c_void_p).value
    except (OSError, AttributeError, TypeError):
        from numba import cfunc, types

        def one(n):
            return 1
        keep = cfunc(types.int32(types.int32))(one)
        _KEEP.append(keep)  # keeps the compiled code alive
        return keep.address


_KEEP = []


if _SET_LOCAL is not None and _GET is not None and _SET is not None:
    PER_THREAD = _setter_is_per_thread()
    CONTROL = True
elif _SET_LOCAL is not None and _GET is None:
    PER_THREAD = True  # cannot check; the documented behaviour
    CONTROL = True
else:
    PER_THREAD = False
    CONTROL = False

#: Address of what the kernels call as ``fastals_blas_threads_local``.
_llvm.add_symbol("fastals_blas_threads_local",
                 ctypes.cast(_SET_LOCAL, ctypes.c_void_p).value if PER_THREAD
                 else _keep_address())

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED = 0


@contextlib.contextmanager
def single_threaded():
    """Hold SciPy's OpenBLAS at one thread for the enclosed kernel calls and
    restore the caller's count afterwards (a no-op where the kernels set it
    per thread themselves, or cannot set it at all).  Usable as a decorator."""
    global _DEPTH, _SAVED
    if PER_THREAD or not CONTROL:
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _SAVED = _GET()
            if _SAVED != 1:
                _SET(1)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _SAVED != 1:
                _SET(_SAVED)


def num_threads():
    """SciPy's OpenBLAS thread count as the calling thread sees it (None
    where it cannot be read)."""
    return None if _GET is None else int(_GET())
