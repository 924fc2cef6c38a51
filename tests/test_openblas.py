"""SciPy's OpenBLAS thread count around the kernels.

The kernels call BLAS from their own threads and need OpenBLAS at one
thread while they run; the caller's count must be what it was afterwards.
SciPy's pthreads OpenBLAS sets ``openblas_set_num_threads_local``
process-wide, and the kernels used to call it from every worker with a save
and restore: a fit left SciPy's BLAS at one thread (2 -> 1 after a k=64
Cholesky fit), and a dense k=100 fit varied in its last bits from run to
run (some BLAS calls ran on two threads).
"""

import threading

import pytest

from fastals import FastALS, make_ratings
from fastals.kernels import blas, openblas

pytestmark = pytest.mark.skipif(
    not openblas.CONTROL or openblas.num_threads() is None,
    reason="SciPy's BLAS has no OpenBLAS thread control to check")


@pytest.fixture
def two_threads():
    """SciPy's OpenBLAS at two threads for the test (one thread cannot show
    a lowered count), then as it was."""
    before = openblas.num_threads()
    openblas._SET(2)
    yield
    openblas._SET(before)


@pytest.mark.parametrize("kw", [
    dict(objective="dense"),
    dict(),
    dict(objective="implicit"),
    dict(objective="implicit", solver="cg"),
], ids=["dense", "cholesky", "implicit", "implicit-cg"])
def test_fit_and_recommend_leave_the_callers_blas_threads_alone(two_threads, kw):
    assert blas.USE_BLAS or pytest.skip("the kernels do not use BLAS here")
    r = make_ratings(seed=1)  # 943 x 1682, 100,000 ratings: parallel kernels
    model = FastALS(factors=32, iterations=2, random_state=0, **kw).fit(r)
    assert openblas.num_threads() == 2
    model.recommend_all(n=5)
    assert openblas.num_threads() == 2


def test_one_thread_inside_restored_once_after_nested_and_concurrent_use(two_threads):
    if openblas.PER_THREAD:
        pytest.skip("this OpenBLAS sets the count per thread; nothing is held")
    seen = []
    inside = threading.Barrier(2)

    def worker():
        with openblas.single_threaded():
            inside.wait()  # both inside at once
            seen.append(openblas.num_threads())
            inside.wait()  # neither leaves before both have looked

    t = threading.Thread(target=worker)
    t.start()
    with openblas.single_threaded():
        with openblas.single_threaded():
            inside.wait()
            seen.append(openblas.num_threads())
            inside.wait()
        seen.append(openblas.num_threads())  # the other caller may still be in
    t.join()
    assert seen == [1, 1, 1]
    assert openblas.num_threads() == 2


def test_the_setter_the_kernels_call_changes_no_other_thread(two_threads):
    """What the kernels call per worker thread must not move the count that
    other threads see (on this OpenBLAS: a no-op, or the real per-thread
    setter)."""
    import ctypes

    from llvmlite import binding as llvm

    address = llvm.address_of_symbol("fastals_blas_threads_local")
    setter = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)(address)
    t = threading.Thread(target=lambda: setter(1))
    t.start()
    t.join()
    assert openblas.num_threads() == 2
