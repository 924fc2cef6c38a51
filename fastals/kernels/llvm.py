"""LLVM-level plumbing of the kernels: fast-math flags, intrinsics
(prefetch, atomic counter) and the C-callback machinery (chunk functions
compiled once behind fixed symbol names, which keeps cold compiles short).
"""

import functools
import threading

import llvmlite.binding as _llvm
from llvmlite import ir as _ir
import numba
import numpy as np
from numba import carray, njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from .openblas import single_threaded

# Safe fast-math: allow reassociation and contraction (FMA) but keep NaN/inf
# semantics so that non-finite checks still work.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: ``mode`` of the row kernels that sums loss terms instead of solving.
LOSS_MODE = -1


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
def _prefetch_row(M, r):
    """Prefetch every cache line of row ``r`` of the C-contiguous ``M``, once
    each (from the line holding its first byte)."""
    nbytes = M.shape[1] * M.itemsize
    a = M.ctypes.data + r * nbytes
    last = a + nbytes - 1
    a -= a & 63
    while a <= last:
        _prefetch(a)
        a += 64


@njit(cache=True, inline="always")
def _prefetch_entry(indices, e, Y):
    """Prefetch every cache line of ``Y[indices[e]]`` if entry ``e`` exists."""
    if e < indices.size:
        _prefetch_row(Y, indices[e])


def outlined(builder, name, arg_types, emit):
    """The function ``name`` (void, arguments of the LLVM types
    ``arg_types``) of the builder's module, emitted by ``emit(builder,
    args)`` (which ends it with ``ret void``) where the module lacks it.

    For the code generators of register tiles: a tile's code is a function
    of its own, internal and never inlined, that every call site calls,
    instead of a copy inlined at each.  LLVM then optimizes and compiles it
    once, apart from its caller: with the Gram tiles (:mod:`.dense_tiles`)
    inlined, the dense callback took 0.6-1 s longer to compile (the GEMM
    and gather tiles, outlined the same way, saved nothing measurable)."""
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = _ir.Function(builder.module, _ir.FunctionType(_ir.VoidType(), arg_types),
                          name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        emit(_ir.IRBuilder(fn.append_basic_block("entry")), fn.args)
    return fn


# Chunk functions behind C symbols
# ---------------------------------
# The per-chunk functions (solve a range of rows, sum the loss of a range
# of rows) are compiled as C callbacks and called from the parallel kernels
# through fixed symbol names, as the BLAS routines of :mod:`.blas` are.  A Numba
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


@njit(inline="always")
def _chunk_args(r0, r1, indptr, indices, conf, target, offset, Y, G, lam, wr,
                w0, X, blas, cap, mode):
    """The arguments of a chunk callback (:func:`_chunk_signature`) for the
    arrays and scalars a kernel holds: pointers, sizes, flags as int64."""
    return (r0, r1, indptr.ctypes.data, indices.ctypes.data, conf.ctypes.data,
            target.ctypes.data, offset.ctypes.data, Y.ctypes.data,
            G.ctypes.data, X.ctypes.data, X.shape[0], indices.size, Y.shape[0],
            Y.shape[1], G.shape[0], lam, np.int64(wr), w0, np.int64(blas), cap,
            mode)


_CALLERS_AT = {}


def _call_at(target):
    """An intrinsic ``call(addr, args)`` that calls the C function at the
    integer address ``addr`` with signature ``target`` (a Numba signature of
    scalars and ``voidptr``), the values of the tuple ``args`` converted to
    it (integer addresses to pointers).  One per signature."""
    if target in _CALLERS_AT:
        return _CALLERS_AT[target]

    @intrinsic
    def call(typingctx, addr, args):
        if not (isinstance(addr, types.Integer) and isinstance(args, types.BaseTuple)
                and len(args) == len(target.args)):
            return None

        def codegen(context, builder, signature, llargs):
            fnty = _ir.FunctionType(context.get_value_type(target.return_type),
                                    [context.get_value_type(t) for t in target.args])
            vals = []
            for i, (src, dst) in enumerate(zip(args, target.args)):
                v = builder.extract_value(llargs[1], i)
                if dst == types.voidptr:
                    v = builder.inttoptr(v, context.get_value_type(dst))
                else:
                    v = context.cast(builder, v, src, dst)
                vals.append(v)
            fn = builder.inttoptr(llargs[0], fnty.as_pointer())
            return builder.call(fn, vals)
        return target.return_type(addr, args), codegen
    _CALLERS_AT[target] = call
    return call


_CALLBACK_LOCK = threading.Lock()


class _ChunkCallback:
    """A chunk function on raw pointers, compiled per dtype on first use.

    Subclasses with another signature set :attr:`signature` (a function of
    ``(dtype, pointers)`` as :func:`_chunk_signature`) and
    :attr:`factors_arg` (the position of the factors among the guarded
    kernel's arguments), and may extend :meth:`_compiled`."""

    signature = staticmethod(_chunk_signature)
    factors_arg = 5

    def __init__(self, name, raw):
        self.name = name
        self.raw = raw
        self.compiled = {}
        self.external = {
            dt: types.ExternalFunction(self.symbol(dt), self.signature(dt, False))
            for dt in ("float32", "float64")}

    def symbol(self, dtype):
        return "fastals_%s_%s" % (self.name, np.dtype(dtype).name)

    def ensure(self, dtype):
        """Compile (or load from the cache) the callback for ``dtype`` and
        register its symbol (once per process; the object stays alive)."""
        name = np.dtype(dtype).name
        with _CALLBACK_LOCK:
            if name not in self.compiled:
                cf = numba.cfunc(self.signature(dtype, True), cache=True,
                                 fastmath=FASTMATH)(self.raw)
                _llvm.add_symbol(self.symbol(dtype), cf.address)
                self.compiled[name] = cf
                self._compiled(name, cf)

    def _compiled(self, name, cf):
        """Called once per dtype, under the lock, after ``cf`` is compiled."""

    def guard(self, kernel):
        """Wrap a compiled ``kernel`` that calls this callback so that every
        call first makes sure of the symbol (argument :attr:`factors_arg`
        holds the factors) and runs with OpenBLAS held at one thread.
        Loading such a kernel without the symbol would abort the process."""
        @functools.wraps(getattr(kernel, "py_func", kernel))
        def guarded(*args):
            self.ensure(args[self.factors_arg].dtype)
            with single_threaded():
                return kernel(*args)
        guarded.kernel = getattr(kernel, "kernel", kernel)
        return guarded

    def check_arrays(self, want, f):
        """At compile time, refuse any ``(array type, dtype)`` of ``want``
        that the callback would misread: not C-contiguous, another dtype, or
        factors (``f``) neither float32 nor float64."""
        for arr, dt in want:
            if not (isinstance(arr, types.Array) and arr.layout == "C"
                    and arr.dtype == dt and f in (types.float32, types.float64)):
                raise TypingError("%s: arrays must be C-contiguous with "
                                  "int64 indptr, int32 indices and one float "
                                  "dtype, got %s" % (self.name, arr))

    def address(self, dtype):
        """The callback's address for ``dtype`` (compiled or loaded from
        the cache first), for a kernel made with :meth:`address_caller`."""
        self.ensure(dtype)
        return self.compiled[np.dtype(dtype).name].address

    def address_caller(self):
        """:meth:`caller` with the address of the callback to call as its
        first argument (:meth:`address` of this callback or of any other
        with the same signature): the kernel binds no symbol, so it can call
        whichever of several callbacks a half-step needs, and only that one
        is ever compiled."""
        signature = self.signature

        def call(addr, r0, r1, indptr, indices, conf, target, offset, Y, G,
                 lam, wr, w0, X, blas, cap, mode):
            raise NotImplementedError("only callable from compiled code")

        @overload(call)
        def call_impl(addr, r0, r1, indptr, indices, conf, target, offset, Y,
                      G, lam, wr, w0, X, blas, cap, mode):
            f = Y.dtype
            want = ((indptr, types.int64), (indices, types.int32), (conf, f),
                    (target, f), (offset, f), (Y, f), (G, f), (X, f))
            self.check_arrays(want, f)
            dt = "float32" if f == types.float32 else "float64"
            call_at = _call_at(signature(dt, False))

            def impl(addr, r0, r1, indptr, indices, conf, target, offset, Y, G,
                     lam, wr, w0, X, blas, cap, mode):
                return call_at(addr, _chunk_args(
                    r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                    wr, w0, X, blas, cap, mode))
            return impl
        return call

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
            self.check_arrays(want, f)
            fn = external["float32" if f == types.float32 else "float64"]

            def impl(r0, r1, indptr, indices, conf, target, offset, Y, G, lam,
                     wr, w0, X, blas, cap, mode):
                return fn(*_chunk_args(r0, r1, indptr, indices, conf, target,
                                       offset, Y, G, lam, wr, w0, X, blas, cap,
                                       mode))
            return impl
        return call
