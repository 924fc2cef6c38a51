"""Work split of the parallel kernels: row chunks of similar cost, the
serial cutoff for small kernels, and the Numba thread count."""

import contextlib

import numba
import numpy as np
from numba import njit


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


@contextlib.contextmanager
def threads(num_threads):
    """Run the enclosed block with ``num_threads`` Numba threads (0 = all)."""
    old = numba.get_num_threads()
    n = numba.config.NUMBA_NUM_THREADS if not num_threads else int(num_threads)
    numba.set_num_threads(min(max(n, 1), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def n_chunks(n_rows):
    """Number of row chunks of a side: fixed by the data, never by the thread
    count, so sums over chunks are reduced in the same order whatever the
    number of threads."""
    return int(max(1, min(n_rows, 256)))


def even_bounds(n):
    """Few chunks of equal row counts (each holds a ``k x k`` float64 partial
    Gram matrix)."""
    return np.linspace(0, n, min(max(n, 1), 16) + 1).astype(np.int64)
