"""The Gram update of an exact row solve in register tiles, for few factors.

A row of the implicit objective with ``n`` ratings adds ``B^T B`` to its
``k x k`` system, ``B`` the ``n x k`` block of its gathered, scaled item
vectors.  For ``k <= 64`` and the ``n`` of most rows (tens to hundreds)
BLAS ``ssyrk`` runs well below the machine's multiply-add rate (argument
checks, packing ``B`` twice, a kernel made for larger shapes).  Here the
block, already in L1, is read in place: :func:`v_syrk_tile` keeps a tile of
``TILE_ROWS`` rows by 64 bytes of columns (16 float32, 8 float64: two
256-bit vectors) of the result in registers (12 vector accumulators) while
it runs over the ``n`` entries, one broadcast per row and entry, then adds
the tile to the system.  :func:`_syrk_tiled` covers the upper triangle of
``A`` with such tiles, column block by column block (plain Numba loops did
not keep such a tile in registers; this writes the vector code directly).

The sums run entry by entry from zero in the dtype of ``B``, with fused
multiply-adds: the same sums as SYRK up to rounding, and the same for any
thread count (a row's result depends on its own data only).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .blas import BLAS_MIN_FACTORS
from .factor import _factor_panel
from .llvm import FASTMATH

#: Rows of ``A`` per register tile (12 accumulators of 256 bits: the
#: tile, two loaded vectors and a broadcast fill the 16 AVX2 registers).
TILE_ROWS = 6

#: Largest number of factors that the tiled Gram update is used for (above
#: it BLAS SYRK; measured up to 128).
TILE_MAX_FACTORS = 128


def _c_float_2d(t):
    return (isinstance(t, types.Array) and t.layout == "C" and t.ndim == 2
            and t.dtype in (types.float32, types.float64))


@intrinsic
def v_syrk_tile(typingctx, A, B, r0, n, i0, j0, lo, alpha):
    """``A[i0 + r, j0:j0 + w] += alpha * sum_e B[e, i0 + r] B[e, j0:j0 + w]``
    for ``lo <= r < TILE_ROWS``, ``e`` in ``r0:r0 + n``, ``w`` 64 bytes of
    columns (16 float32, 8 float64).

    The sums for all ``TILE_ROWS`` rows are formed in registers (rows
    below ``lo`` are summed and dropped), each from zero in entry order by
    fused multiply-adds, then added to ``A`` with one more (``alpha`` a
    scalar of ``A``'s dtype).  ``A`` and ``B`` 2-D, C-contiguous, of one
    dtype; columns ``i0:i0 + TILE_ROWS`` and ``j0:j0 + w`` within ``A``
    and ``B``.
    """
    if not (_c_float_2d(A) and _c_float_2d(B) and A.dtype == B.dtype
            and alpha == A.dtype):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        Aa, Ba, r0_, n_, i0_, j0_, lo_, al_ = args
        intp = context.get_value_type(types.intp)

        def cast(v, ty):
            return context.cast(builder, v, ty, types.intp)
        r0_, n_, i0_ = cast(r0_, t[2]), cast(n_, t[3]), cast(i0_, t[4])
        j0_, lo_ = cast(j0_, t[5]), cast(lo_, t[6])
        aarr = context.make_array(t[0])(context, builder, Aa)
        barr = context.make_array(t[1])(context, builder, Ba)
        et = context.get_data_type(t[1].dtype)
        size = t[1].dtype.bitwidth // 8
        lanes = 32 // size
        vt = ir.VectorType(et, lanes)
        vp = vt.as_pointer()
        i32 = ir.IntType(32)
        mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

        def c(v):
            return ir.Constant(intp, v)

        def bcast(x):
            x = builder.insert_element(ir.Constant(vt, ir.Undefined), x, i32(0))
            return builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined), mask)

        def fmuladd(a, b, acc):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt] * 3),
                f"llvm.fmuladd.v{lanes}f{size * 8}")
            return builder.call(fn, [a, b, acc])

        kb = builder.extract_value(barr.shape, 1)
        ka = builder.extract_value(aarr.shape, 1)
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vt, [0.0] * lanes))
                 for _ in range(2)] for _ in range(TILE_ROWS)]
        end = builder.add(r0_, n_)
        with cgutils.for_range_slice(builder, r0_, end, c(1), inc=True) as (e, _):
            row = builder.gep(barr.data, [builder.mul(e, kb)])
            cols = builder.gep(row, [j0_])
            v0 = builder.load(builder.bitcast(cols, vp), align=size)
            v1 = builder.load(builder.bitcast(builder.gep(cols, [c(lanes)]), vp),
                              align=size)
            rows = builder.gep(row, [i0_])
            for r in range(TILE_ROWS):
                b = bcast(builder.load(builder.gep(rows, [c(r)])))
                for h, v in ((0, v0), (1, v1)):
                    builder.store(fmuladd(b, v, builder.load(accs[r][h])), accs[r][h])
        av = bcast(al_)
        for r in range(TILE_ROWS):
            with builder.if_then(builder.icmp_signed(">=", c(r), lo_)):
                dst = builder.gep(aarr.data, [builder.add(
                    builder.mul(builder.add(i0_, c(r)), ka), j0_)])
                for h in range(2):
                    p = builder.bitcast(builder.gep(dst, [c(h * lanes)]), vp)
                    builder.store(fmuladd(av, builder.load(accs[r][h]),
                                          builder.load(p, align=size)),
                                  p, align=size)
        return context.get_dummy_value()
    return types.void(A, B, r0, n, i0, j0, lo, alpha), codegen


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def tile_width(A):
    """Columns per tile for ``A``'s dtype (64 bytes: 16 float32, 8 float64)."""
    return 64 // A.itemsize


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _syrk_tiled(alpha, B, r0, n, A, o):
    """``A[o:, o:][upper] += alpha * B[r0:r0+n, o:]^T B[r0:r0+n, o:]`` by
    register tiles (:func:`v_syrk_tile`); ``A`` is ``k x k``, ``k - o`` a
    multiple of :func:`tile_width` and at least ``TILE_ROWS``.  The entries
    are taken in blocks of at most 32 KiB, of equal size (they stay in L1
    while every tile runs over them); a block's sums are added to ``A``
    tile by tile.  Entries below the diagonal within the diagonal blocks
    are updated too (never read)."""
    k = A.shape[0]
    w = tile_width(A)
    nb = max(8, 32768 // (k * B.itemsize))
    blocks = (n + nb - 1) // nb
    p = r0
    end = r0 + n
    while p < end:
        m = min((n + blocks - 1) // blocks, end - p)
        for j0 in range(o, k, w):
            top = j0 + w  # rows o..top-1 reach the upper triangle of this block
            i0 = o
            while i0 < top:
                # the last tile ends at row top - 1: rows before i0 dropped
                s = min(i0, top - TILE_ROWS)
                v_syrk_tile(A, B, p, m, s, j0, i0 - s, alpha)
                i0 += TILE_ROWS
        p += m


@njit(cache=True, fastmath=FASTMATH, forceinline=True)
def _factor_tiled(A, one):
    """Right-looking blocked Cholesky ``A = U^T U`` of the row-major upper
    triangle in place, in panels of :func:`tile_width` rows: the panel is
    factored row by row (each row's tail scaled, then subtracted from the
    panel's later rows), then the trailing matrix gets the panel's rank-w
    update by register tiles (:func:`_syrk_tiled`, ``alpha = -1``).
    ``A`` is ``k x k``, ``k`` a multiple of the tile width.  Returns False
    where ``A`` is not numerically positive definite (``A`` undefined)."""
    k = A.shape[0]
    w = tile_width(A)
    for j in range(0, k, w):
        if not _factor_panel(A, j, w, one):
            return False
        if j + w < k:
            _syrk_tiled(-one, A, j, w, A, j + w)
    return True


def tiles_apply(k, dtype):
    """Whether the k x k row solves use the register tiles of
    :mod:`.tiles` (``k`` a multiple of 16 in float32, 8 in float64, from
    ``BLAS_MIN_FACTORS`` to ``TILE_MAX_FACTORS``): the row solves'
    callback with the tiles (``rows._TILED``) is compiled only for those."""
    return (k % (64 // np.dtype(dtype).itemsize) == 0
            and BLAS_MIN_FACTORS <= k <= TILE_MAX_FACTORS)


@njit(cache=True, forceinline=True)
def _tiles_fit(k, A):
    """:func:`tiles_apply` in compiled code (``A``: of the factors' dtype)."""
    return k % tile_width(A) == 0 and BLAS_MIN_FACTORS <= k <= TILE_MAX_FACTORS


def _maybe_syrk(fn, alpha, B, r0, m, A):
    """``fn(alpha, B, r0, m, A, 0)``, or nothing where ``fn`` is None
    (compiled code only: then ``fn`` is never typed as a call)."""
    raise NotImplementedError("only callable from compiled code")


def _maybe_factor(fn, A, one):
    """``fn(A, one)``, or False where ``fn`` is None (compiled code only)."""
    raise NotImplementedError("only callable from compiled code")


@overload(_maybe_syrk, inline="always")
def _maybe_syrk_impl(fn, alpha, B, r0, m, A):
    if isinstance(fn, types.NoneType):
        return lambda fn, alpha, B, r0, m, A: None
    return lambda fn, alpha, B, r0, m, A: fn(alpha, B, r0, m, A, 0)


@overload(_maybe_factor, inline="always")
def _maybe_factor_impl(fn, A, one):
    if isinstance(fn, types.NoneType):
        return lambda fn, A, one: False
    return lambda fn, A, one: fn(A, one)
