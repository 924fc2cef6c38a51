"""Eight rows at once: counter-based standard normals and the tiny
Cholesky factorizations and triangular solves of the Gibbs row draws,
each row in its own SIMD lane.

A row draw of :mod:`.gibbs` factors a ``w x w`` matrix (``w`` about 10-30)
and turns a few uniforms into normals: too little work per row to fill
vector registers, and one long chain of dependent square roots, divisions
and logarithms.  Here ``LANES`` rows go through the same instructions side
by side: every array is laid out with the lane as its last, contiguous
axis (``A[i, j, l]`` is entry ``(i, j)`` of lane ``l``'s matrix) and every
innermost loop runs over the ``LANES`` lanes, which LLVM turns into whole
vector instructions.  Lanes never mix: a lane's result depends on its own
inputs only, never on the other rows of its batch or on the thread that
runs it.  (The normals' flat loop may leave its last few iterations to a
scalar remainder, so which lane a row occupies could matter in the last
bit; :class:`fastals.BayesianALS` gives :func:`.gibbs.sample_rows` chunks
that start on multiples of ``LANES``, so row ``u`` is always in lane
``u % LANES``.)

Random numbers
--------------
The ``j``-th 64-bit word of the stream ``rk`` is ``mix(rk + (j + 1) *
GOLDEN)``, with ``mix`` the SplitMix64 finalizer (Steele, Lea & Flood
2014); word ``j`` gives the uniform ``((word >> 11) + 0.5) / 2^53`` in
(0, 1] (1 only by rounding).  Uniforms ``2p`` and ``2p + 1`` give
normals ``2p`` and ``2p + 1`` by Box-Muller, ``sqrt(-2 log u1) (cos, sin)(2 pi u2)``, with ``log`` and
``cos``/``sin`` evaluated by polynomials that vectorize (no libm call): a
few units in the last place from the libm values.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .llvm import FASTMATH

#: Rows handled side by side (8 float64 = two AVX2 or one AVX-512 register).
LANES = 8

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_HALF_PI = 0.5 * np.pi


@intrinsic
def _f64_to_bits(typingctx, x):
    """The IEEE-754 bits of a float64, as an int64 (a bitcast)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_to_f64(typingctx, x):
    """The float64 whose IEEE-754 bits are the int64 ``x`` (a bitcast)."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def mix(z):
    """SplitMix64 finalizer: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def uniform(rk, j):
    """The ``j``-th uniform in (0, 1] of the stream ``rk`` (53 random bits;
    exactly 1 only by rounding, for the top 2^-54 of the words)."""
    h = mix(rk + (np.uint64(j) + np.uint64(1)) * GOLDEN)
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def _unit(h):
    """``((h >> 11) + 0.5) / 2^53`` for a uint64 ``h``, the same double as
    :func:`uniform` computes, without an integer-to-float conversion (which
    AVX2 lacks for 64-bit integers): ``(h >> 12) / 2^52`` from the bits of
    ``1 + (h >> 12) / 2^52``, then the last random bit and the half, with the
    one rounding of the direct formula."""
    v = _bits_to_f64(np.int64((h >> np.uint64(12)) | np.uint64(0x3FF0000000000000))) - 1.0
    odd = (h >> np.uint64(11)) & np.uint64(1)
    return v + (3.0 / 18014398509481984.0 if odd else 1.0 / 18014398509481984.0)


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def log_pos(x):
    """Natural logarithm of a positive normal float64 (no libm call).

    ``x = 2^e m`` with ``m`` in [sqrt(1/2), sqrt(2)), ``log m = 2 atanh(f)``,
    ``f = (m - 1) / (m + 1)``, ``|f| <= 0.172``, by its series to ``f^17``
    (truncation below 1e-16 relative).  The exponent goes through the bits
    of ``2^52 + e + 1023``, not an integer-to-float conversion.
    """
    bits = _f64_to_bits(x)
    e = _bits_to_f64((bits >> 52) | 0x4330000000000000) - 4503599627371519.0
    m = _bits_to_f64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = 1.0 / 17.0
    p = p * f2 + 1.0 / 15.0
    p = p * f2 + 1.0 / 13.0
    p = p * f2 + 1.0 / 11.0
    p = p * f2 + 1.0 / 9.0
    p = p * f2 + 1.0 / 7.0
    p = p * f2 + 1.0 / 5.0
    p = p * f2 + 1.0 / 3.0
    p = p * f2 + 1.0
    return e * _LN2 + 2.0 * f * p


@njit(cache=True, inline="always", fastmath=FASTMATH, error_model="numpy")
def cos_sin_2pi(u):
    """``(cos(2 pi u), sin(2 pi u))`` for ``u`` in [0, 1] (no libm call).

    ``4u = q + g`` with ``q`` the nearest integer and ``|g| <= 1/2``: the
    angle is ``q pi/2 + t``, ``|t| = |g| pi/2 <= pi/4``, where the Taylor
    series of ``sin t`` to ``t^15`` and of ``cos t`` to ``t^16`` are exact
    to below 1e-16; the quadrant ``q`` (0-4, as a float) swaps and negates
    them.
    """
    s4 = 4.0 * u
    q = np.floor(s4 + 0.5)
    t = (s4 - q) * _HALF_PI
    t2 = t * t
    s = -1.0 / 1307674368000.0
    s = s * t2 + 1.0 / 6227020800.0
    s = s * t2 - 1.0 / 39916800.0
    s = s * t2 + 1.0 / 362880.0
    s = s * t2 - 1.0 / 5040.0
    s = s * t2 + 1.0 / 120.0
    s = s * t2 - 1.0 / 6.0
    s = (s * t2) * t + t
    c = 1.0 / 20922789888000.0
    c = c * t2 - 1.0 / 87178291200.0
    c = c * t2 + 1.0 / 479001600.0
    c = c * t2 - 1.0 / 3628800.0
    c = c * t2 + 1.0 / 40320.0
    c = c * t2 - 1.0 / 720.0
    c = c * t2 + 1.0 / 24.0
    c = c * t2 - 0.5
    c = c * t2 + 1.0
    odd = (q == 1.0) | (q == 3.0)
    x = s if odd else c
    y = c if odd else s
    x = -x if (q == 1.0) | (q == 2.0) else x
    y = -y if (q == 2.0) | (q == 3.0) else y
    return x, y


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def lane_normals(rk, Z, n, keys, T):
    """``Z[j, l]``, ``j < n``: the ``j``-th standard normal of stream ``rk[l]``.

    ``Z`` has an even number of rows ``>= n`` (row ``n`` is written too
    when ``n`` is odd: the pair's second normal).  ``keys`` (uint64) and
    ``T`` (``(2, m)`` float64) are scratch of at least ``m = LANES *
    ((n + 1) // 2)`` entries: the pairs of all lanes go through one flat
    loop, which LLVM vectorizes.
    """
    npairs = (n + 1) // 2
    m = LANES * npairs
    for q in range(m):
        l = q // npairs
        keys[q] = rk[l] + np.uint64(2 * (q - l * npairs) + 1) * GOLDEN
    T0 = T[0]
    T1 = T[1]
    for q in range(m):
        c = keys[q]
        h1 = mix(c)
        h2 = mix(c + GOLDEN)
        u1 = _unit(h1)
        u2 = _unit(h2)
        r = np.sqrt(-2.0 * log_pos(u1))
        x, y = cos_sin_2pi(u2)
        T0[q] = r * x
        T1[q] = r * y
    for l in range(LANES):
        for p in range(npairs):
            Z[2 * p, l] = T0[l * npairs + p]
            Z[2 * p + 1, l] = T1[l * npairs + p]


# ---------------------------------------------------------------------------
# Whole-vector operations on 8 contiguous elements
# ---------------------------------------------------------------------------
# LLVM fully unrolls an 8-iteration loop before its vectorizers run, and
# the SLP vectorizer then cannot reorder the loads of one lane past the
# stores of the previous one without knowing that the views do not overlap
# (Numba tells LLVM nothing about aliasing): the lane loops came out scalar.
# These intrinsics load, compute and store whole ``<8 x T>`` vectors.
# ``X`` and friends are C-contiguous float arrays (any number of
# dimensions), ``ix`` a flat element offset.


def _vector_ptr(context, builder, aty, ary, ity, idx):
    a = context.make_array(aty)(context, builder, ary)
    i = context.cast(builder, idx, ity, types.intp)
    et = context.get_data_type(aty.dtype)
    return builder.bitcast(builder.gep(a.data, [i]),
                           ir.VectorType(et, LANES).as_pointer())


def _float_arrays(*tys):
    return all(isinstance(t, types.Array) and t.layout == "C"
               and t.dtype in (types.float32, types.float64)
               and t.dtype == tys[0].dtype for t in tys)


def _vector_intrinsic(builder, name, vt, n_args):
    """``llvm.<name>.v<N>f<bits>`` (llvmlite cannot name vector overloads)."""
    bits = 64 if isinstance(vt.element, ir.DoubleType) else 32
    fnty = ir.FunctionType(vt, [vt] * n_args)
    return cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.{name}.v{vt.count}f{bits}")


def _fmuladd(builder, a, b, c):
    return builder.call(_vector_intrinsic(builder, "fmuladd", a.type, 3), [a, b, c])


@intrinsic
def v_fnma(typingctx, X, ix, Y, iy, Z, iz):
    """``X[ix:ix+8] -= Y[iy:iy+8] * Z[iz:iz+8]`` (flat offsets)."""
    if not _float_arrays(X, Y, Z):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        px = _vector_ptr(context, builder, t[0], args[0], t[1], args[1])
        py = _vector_ptr(context, builder, t[2], args[2], t[3], args[3])
        pz = _vector_ptr(context, builder, t[4], args[4], t[5], args[5])
        al = t[0].dtype.bitwidth // 8
        x = builder.load(px, align=al)
        y = builder.load(py, align=al)
        z = builder.load(pz, align=al)
        builder.store(_fmuladd(builder, builder.fneg(y), z, x), px, align=al)
        return context.get_dummy_value()
    return types.void(X, ix, Y, iy, Z, iz), codegen


def _fnma_sums(q):
    """The intrinsic ``v_fnma_sum{q}``: ``q`` vectors of 8 less their sums
    of products, each accumulated in a register in order."""
    def typer(typingctx, X, ix, Y, iy, sy, Z, iz, sz, n):
        if not _float_arrays(X, Y, Z):
            return None

        def codegen(context, builder, sig, args):
            t = sig.args
            Xa, ix_, Ya, iy_, sy_, Za, iz_, sz_, n_ = args
            intp = context.get_value_type(types.intp)

            def cast(v, ty):
                return context.cast(builder, v, ty, types.intp)
            ix_, iy_, sy_ = cast(ix_, t[1]), cast(iy_, t[3]), cast(sy_, t[4])
            iz_, sz_, n_ = cast(iz_, t[6]), cast(sz_, t[7]), cast(n_, t[8])
            xa = context.make_array(t[0])(context, builder, Xa)
            ya = context.make_array(t[2])(context, builder, Ya)
            za = context.make_array(t[5])(context, builder, Za)
            vt = ir.VectorType(context.get_data_type(t[0].dtype), LANES)
            al = t[0].dtype.bitwidth // 8

            def vp(arr, i):
                return builder.bitcast(builder.gep(arr.data, [i]), vt.as_pointer())
            L8 = ir.Constant(intp, LANES)
            accs = [cgutils.alloca_once_value(builder, builder.load(
                vp(xa, builder.add(ix_, builder.mul(ir.Constant(intp, c), L8))),
                align=al)) for c in range(q)]
            with cgutils.for_range(builder, n_) as loop:
                y = builder.fneg(builder.load(
                    vp(ya, builder.add(iy_, builder.mul(loop.index, sy_))), align=al))
                zo = builder.add(iz_, builder.mul(loop.index, sz_))
                for c in range(q):
                    zi = builder.add(zo,
                                     builder.mul(ir.Constant(intp, c), L8))
                    z = builder.load(vp(za, zi), align=al)
                    builder.store(_fmuladd(builder, y, z, builder.load(accs[c])),
                                  accs[c])
            for c in range(q):
                dst = vp(xa, builder.add(ix_, builder.mul(ir.Constant(intp, c), L8)))
                builder.store(builder.load(accs[c]), dst, align=al)
            return context.get_dummy_value()
        return types.void(X, ix, Y, iy, sy, Z, iz, sz, n), codegen
    typer.__name__ = f"v_fnma_sum{q}"
    typer.__doc__ = (
        f"``X[ix + 8c : ix + 8c + 8] -= sum_r Y[iy + r sy : +8] * Z[iz + r sz + 8c "
        f": +8]`` for ``c < {q}``, ``r`` from 0 to ``n - 1`` in order, one fused "
        "multiply-add each (flat offsets): what ``n`` calls of :func:`v_fnma` "
        "do, bit for bit, with the sums in registers.")
    return intrinsic(typer)


v_fnma_sum1 = _fnma_sums(1)
v_fnma_sum2 = _fnma_sums(2)
v_fnma_sum4 = _fnma_sums(4)


def _row_sums(q):
    """The intrinsic ``v_rowsum{q}``: ``q`` blocks of 8 of a sum of rows,
    accumulated in registers."""
    def typer(typingctx, X, ix, Y, iy, indices, start, end):
        if not _float_arrays(X, Y) or Y.ndim != 2 \
                or not isinstance(indices, types.Array) \
                or not isinstance(indices.dtype, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            t = sig.args
            Xa, ix_, Ya, iy_, ia, st, en = args
            intp = context.get_value_type(types.intp)

            def cast(v, ty):
                return context.cast(builder, v, ty, types.intp)
            ix_, iy_, st, en = cast(ix_, t[1]), cast(iy_, t[3]), cast(st, t[5]), cast(en, t[6])
            xa = context.make_array(t[0])(context, builder, Xa)
            ya = context.make_array(t[2])(context, builder, Ya)
            iarr = context.make_array(t[4])(context, builder, ia)
            vt = ir.VectorType(context.get_data_type(t[0].dtype), LANES)
            al = t[0].dtype.bitwidth // 8
            wy = builder.extract_value(ya.shape, 1)

            def vp(ptr, i):
                return builder.bitcast(builder.gep(ptr, [i]), vt.as_pointer())
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vt, [0.0] * LANES))
                    for _ in range(q)]
            with cgutils.for_range_slice(builder, st, en, ir.Constant(intp, 1),
                                         inc=True) as (e, _):
                idx = builder.load(builder.gep(iarr.data, [e]))
                idx = context.cast(builder, idx, t[4].dtype, types.intp)
                row = builder.add(builder.mul(idx, wy), iy_)
                for c in range(q):
                    y = builder.load(vp(ya.data, builder.add(row, ir.Constant(intp, 8 * c))),
                                     align=al)
                    builder.store(builder.fadd(builder.load(accs[c]), y), accs[c])
            for c in range(q):
                builder.store(builder.load(accs[c]),
                              vp(xa.data, builder.add(ix_, ir.Constant(intp, 8 * c))),
                              align=al)
            return context.get_dummy_value()
        return types.void(X, ix, Y, iy, indices, start, end), codegen
    typer.__name__ = f"v_rowsum{q}"
    typer.__doc__ = (
        f"``X[ix : ix + {8 * q}] = sum_e Y[indices[e], iy : iy + {8 * q}]`` over "
        "``e`` in ``start:end`` (``Y`` 2-D C-contiguous, ``X`` flat offset), "
        "summed from zero in entry order, one addition each, in registers: "
        "the sums of :func:`v_axpy4` with unit weights, bit for bit.")
    return intrinsic(typer)


v_rowsum1 = _row_sums(1)
v_rowsum2 = _row_sums(2)


@intrinsic
def v_mul(typingctx, X, ix, Y, iy):
    """``X[ix:ix+8] *= Y[iy:iy+8]`` (flat offsets)."""
    if not _float_arrays(X, Y):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        px = _vector_ptr(context, builder, t[0], args[0], t[1], args[1])
        py = _vector_ptr(context, builder, t[2], args[2], t[3], args[3])
        al = t[0].dtype.bitwidth // 8
        x = builder.load(px, align=al)
        y = builder.load(py, align=al)
        builder.store(builder.fmul(x, y), px, align=al)
        return context.get_dummy_value()
    return types.void(X, ix, Y, iy), codegen


@intrinsic
def v_axpy4(typingctx, X, ix, Y, i0, i1, i2, i3, c0, c1, c2, c3):
    """``X[ix:ix+8] += c0 Y[i0:i0+8] + c1 Y[i1:i1+8] + c2 Y[i2:i2+8] +
    c3 Y[i3:i3+8]`` (flat offsets, the ``c`` scalars of ``X``'s dtype),
    summed in that order."""
    if not _float_arrays(X, Y) or not all(c == X.dtype for c in (c0, c1, c2, c3)):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        px = _vector_ptr(context, builder, t[0], args[0], t[1], args[1])
        al = t[0].dtype.bitwidth // 8
        acc = builder.load(px, align=al)
        vt = acc.type
        for q in range(4):
            py = _vector_ptr(context, builder, t[2], args[2], t[3 + q], args[3 + q])
            y = builder.load(py, align=al)
            c = builder.insert_element(ir.Constant(vt, ir.Undefined), args[7 + q],
                                       ir.IntType(32)(0))
            c = builder.shuffle_vector(c, ir.Constant(vt, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                   [0] * LANES))
            acc = _fmuladd(builder, c, y, acc)
        builder.store(acc, px, align=al)
        return context.get_dummy_value()
    return types.void(X, ix, Y, i0, i1, i2, i3, c0, c1, c2, c3), codegen


@intrinsic
def v_axpy(typingctx, X, ix, Y, iy, c):
    """``X[ix:ix+8] += c Y[iy:iy+8]`` (flat offsets, ``c`` a scalar of
    ``X``'s dtype): one fused multiply-add per element."""
    if not _float_arrays(X, Y) or c != X.dtype:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        px = _vector_ptr(context, builder, t[0], args[0], t[1], args[1])
        py = _vector_ptr(context, builder, t[2], args[2], t[3], args[3])
        al = t[0].dtype.bitwidth // 8
        acc = builder.load(px, align=al)
        vt = acc.type
        cv = builder.insert_element(ir.Constant(vt, ir.Undefined), args[4],
                                    ir.IntType(32)(0))
        cv = builder.shuffle_vector(cv, ir.Constant(vt, ir.Undefined),
                                    ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                [0] * LANES))
        builder.store(_fmuladd(builder, cv, builder.load(py, align=al), acc), px,
                      align=al)
        return context.get_dummy_value()
    return types.void(X, ix, Y, iy, c), codegen


@intrinsic
def v_gram8(typingctx, S, so, ss, D, indices, start, end, ci, nr, jb):
    """Eight rows of ``sum_e d_e d_e^T`` on one column block, accumulated in
    registers: with ``d_e = D[indices[e]]`` (``D`` 2-D, C-contiguous) over
    ``e`` in ``start:end``, ``S.flat[so + r ss : so + r ss + 8] = sum_e
    D[idx_e, ci + r] D[idx_e, jb:jb+8]`` for ``r < nr`` (at most 8; the
    other rows are summed, not stored).  Columns ``ci:ci+8`` and
    ``jb:jb+8`` must lie within the rows of ``D``.  Each entry costs one
    vector load, eight broadcasts and eight fused multiply-adds, the sums
    in ``D``'s dtype in entry order, with no store until the end."""
    if not _float_arrays(S, D) or not isinstance(indices, types.Array) \
            or not isinstance(indices.dtype, types.Integer) or D.ndim != 2:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        Sa, so_, ss_, Da, ia, st, en, ci_, nr_, jb_ = args
        intp = context.get_value_type(types.intp)

        def cast(v, ty):
            return context.cast(builder, v, ty, types.intp)
        so_, ss_, st, en = cast(so_, t[1]), cast(ss_, t[2]), cast(st, t[5]), cast(en, t[6])
        ci_, nr_, jb_ = cast(ci_, t[7]), cast(nr_, t[8]), cast(jb_, t[9])
        darr = context.make_array(t[3])(context, builder, Da)
        iarr = context.make_array(t[4])(context, builder, ia)
        sarr = context.make_array(t[0])(context, builder, Sa)
        et = context.get_data_type(t[3].dtype)
        vt = ir.VectorType(et, LANES)
        al = t[3].dtype.bitwidth // 8
        wp = builder.extract_value(darr.shape, 1)
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vt, [0.0] * LANES))
                for _ in range(LANES)]
        mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        with cgutils.for_range_slice(builder, st, en, ir.Constant(intp, 1),
                                     inc=True) as (e, _):
            idx = builder.load(builder.gep(iarr.data, [e]))
            idx = context.cast(builder, idx, t[4].dtype, types.intp)
            row = builder.gep(darr.data, [builder.mul(idx, wp)])
            v = builder.load(builder.bitcast(builder.gep(row, [jb_]), vt.as_pointer()),
                             align=al)
            for r in range(LANES):
                a = builder.load(builder.gep(row, [builder.add(ci_, ir.Constant(intp, r))]))
                a = builder.insert_element(ir.Constant(vt, ir.Undefined), a,
                                           ir.IntType(32)(0))
                a = builder.shuffle_vector(a, ir.Constant(vt, ir.Undefined), mask)
                builder.store(_fmuladd(builder, a, v, builder.load(accs[r])), accs[r])
        for r in range(LANES):
            rr = ir.Constant(intp, r)
            with builder.if_then(builder.icmp_signed("<", rr, nr_)):
                off = builder.add(so_, builder.mul(rr, ss_))
                dst = builder.bitcast(builder.gep(sarr.data, [off]), vt.as_pointer())
                builder.store(builder.load(accs[r]), dst, align=al)
        return context.get_dummy_value()
    return types.void(S, so, ss, D, indices, start, end, ci, nr, jb), codegen


@intrinsic
def v_gram16(typingctx, S, D, indices, target, offset, start, end):
    """A row system in registers for 16-column design rows, with its
    right-hand side as a 16th column: over ``e`` in ``start:end``, with
    ``i = indices[e]``, ``a_e = D[i]`` (16 columns, the last one zero) with
    ``target[e] - offset[i]`` in column 15, ``S[r, c] = sum_e a_e[r]
    a_e[c]`` for the upper blocks: ``r < 8`` all 16 columns, ``8 <= r``
    columns 8-15 (the lower-left block is not written).

    So for design rows of ``w <= 15`` columns, ``S[:w, :w]`` (upper
    triangle) is ``sum d_i d_i^T``, ``S[:w, 15]`` is ``sum (t - o_i) d_i``
    and ``S[15, 15]`` is ``sum (t - o_i)^2``: the products, fused
    multiply-adds and order (entry by entry, from zero) of
    :func:`v_gram8` and :func:`v_axpy4` as :func:`.gibbs._gram_row` sums
    them, bit for bit, in two passes over the entries instead of four
    (12 and 12 accumulators, one broadcast per row and entry: 16 instead
    of 28 per entry).  ``D`` 2-D C-contiguous with 16 columns, ``S``
    ``(16, 16)``, ``target`` and ``offset`` of ``D``'s dtype.
    """
    if not _float_arrays(S, D, target, offset) or not isinstance(indices, types.Array) \
            or not isinstance(indices.dtype, types.Integer) or D.ndim != 2:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        Sa, Da, ia, ta, oa, st, en = args
        intp = context.get_value_type(types.intp)
        st = context.cast(builder, st, t[5], types.intp)
        en = context.cast(builder, en, t[6], types.intp)
        darr = context.make_array(t[1])(context, builder, Da)
        iarr = context.make_array(t[2])(context, builder, ia)
        tarr = context.make_array(t[3])(context, builder, ta)
        oarr = context.make_array(t[4])(context, builder, oa)
        sarr = context.make_array(t[0])(context, builder, Sa)
        et = context.get_data_type(t[1].dtype)
        vt = ir.VectorType(et, LANES)
        al = t[1].dtype.bitwidth // 8
        i32 = ir.IntType(32)
        mask = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

        def c(v):
            return ir.Constant(intp, v)

        def bcast(x):
            x = builder.insert_element(ir.Constant(vt, ir.Undefined), x, i32(0))
            return builder.shuffle_vector(x, ir.Constant(vt, ir.Undefined), mask)

        def entry(e):
            idx = builder.load(builder.gep(iarr.data, [e]))
            idx = context.cast(builder, idx, t[2].dtype, types.intp)
            row = builder.gep(darr.data, [builder.mul(idx, c(16))])
            a0 = builder.load(builder.bitcast(row, vt.as_pointer()), align=al)
            a1 = builder.load(builder.bitcast(builder.gep(row, [c(8)]), vt.as_pointer()),
                              align=al)
            tmo = builder.fsub(builder.load(builder.gep(tarr.data, [e])),
                               builder.load(builder.gep(oarr.data, [idx])))
            return row, a0, builder.insert_element(a1, tmo, i32(LANES - 1)), tmo

        def scalar(row, r):
            return bcast(builder.load(builder.gep(row, [c(r)])))

        def new_acc():
            return cgutils.alloca_once_value(builder, ir.Constant(vt, [0.0] * LANES))

        def fma(acc, b, a):
            builder.store(_fmuladd(builder, b, a, builder.load(acc)), acc)

        acc0 = {r: new_acc() for r in range(LANES)}      # rows r < 8, columns 0-7
        acc1 = {r: new_acc() for r in range(16)}         # rows r, columns 8-15
        one = c(1)
        # pass 1: rows 0-5, both blocks (12 accumulators)
        with cgutils.for_range_slice(builder, st, en, one, inc=True) as (e, _):
            row, a0, a1, tmo = entry(e)
            for r in range(6):
                b = scalar(row, r)
                fma(acc0[r], b, a0)
                fma(acc1[r], b, a1)
        # pass 2: rows 6-7 both blocks, rows 8-15 the right block (12)
        with cgutils.for_range_slice(builder, st, en, one, inc=True) as (e, _):
            row, a0, a1, tmo = entry(e)
            for r in range(6, 16):
                b = bcast(tmo) if r == 15 else scalar(row, r)
                if r < LANES:
                    fma(acc0[r], b, a0)
                fma(acc1[r], b, a1)
        for r in range(16):
            for blk, accs in ((0, acc0), (LANES, acc1)):
                if r in accs:
                    dst = builder.gep(sarr.data, [c(16 * r + blk)])
                    builder.store(builder.load(accs[r]),
                                  builder.bitcast(dst, vt.as_pointer()), align=al)
        return context.get_dummy_value()
    return types.void(S, D, indices, target, offset, start, end), codegen


@intrinsic
def v_dots8(typingctx, S, X, ix, Y, i0, i1, i2, i3, i4, i5, i6, i7):
    """``S[q] += sum(X[ix:ix+8] * Y[iq:iq+8])`` for ``q = 0..7`` (flat
    offsets; ``S`` holds 8 elements): eight dot products at once, the
    products of each summed by the same fixed tree (pairs, then quads,
    then halves), in their dtype.  One transposing reduction for eight
    dots instead of one horizontal sum each."""
    if not _float_arrays(S, X, Y):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        al = t[0].dtype.bitwidth // 8
        ps = _vector_ptr(context, builder, t[0], args[0], types.intp,
                         context.get_constant(types.intp, 0))
        x = builder.load(_vector_ptr(context, builder, t[1], args[1], t[2], args[2]),
                         align=al)
        p = [builder.fmul(x, builder.load(_vector_ptr(
            context, builder, t[3], args[3], t[4 + q], args[4 + q]), align=al))
            for q in range(LANES)]
        i32 = ir.IntType(32)

        def shuf(a, b, idx):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, LANES), idx))
        # level 1: lanes (2c, 2c+1) of a and b -> [a01, b01, a23, b23, ...]
        lo1 = [0, 8, 2, 10, 4, 12, 6, 14]
        hi1 = [1, 9, 3, 11, 5, 13, 7, 15]
        a = [builder.fadd(shuf(p[2 * q], p[2 * q + 1], lo1),
                          shuf(p[2 * q], p[2 * q + 1], hi1)) for q in range(4)]
        # level 2: -> [p0 0:4, p1 0:4, p2 0:4, p3 0:4, p0 4:8, ...]
        lo2 = [0, 1, 8, 9, 4, 5, 12, 13]
        hi2 = [2, 3, 10, 11, 6, 7, 14, 15]
        b = [builder.fadd(shuf(a[2 * q], a[2 * q + 1], lo2),
                          shuf(a[2 * q], a[2 * q + 1], hi2)) for q in range(2)]
        # level 3: the two halves
        tot = builder.fadd(shuf(b[0], b[1], [0, 1, 2, 3, 8, 9, 10, 11]),
                           shuf(b[0], b[1], [4, 5, 6, 7, 12, 13, 14, 15]))
        builder.store(builder.fadd(builder.load(ps, align=al), tot), ps, align=al)
        return context.get_dummy_value()
    return types.void(S, X, ix, Y, i0, i1, i2, i3, i4, i5, i6, i7), codegen


@intrinsic
def v_resid8(typingctx, acc, ao, dots, target, offset, indices, e0, pred, inv, keep,
             kept):
    """Eight residuals at once: for ``q < 8``, ``e = e0 + q``, ``p = offset[
    indices[e]] + dots[q]`` and ``r = target[e] - p`` in float64; lane ``q``
    of ``acc[ao:ao+8]`` adds ``r``, of ``acc[ao+8:ao+16]`` ``r^2``; with
    ``keep``, ``pred[e] += p`` (rounded to ``pred``'s dtype, as a scalar
    ``+=``); with ``kept``, ``acc[ao+16:ao+24]`` adds ``(target[e] - pred[e]
    inv)^2`` (``ao``: best a multiple of 64 bytes from the start of a cache
    line, the sums being stored and read back for each group).  The sums of
    :func:`.gibbs._row_residuals` in eight lanes instead of one chain each.
    ``acc`` float64; ``dots``, ``target``, ``offset`` of one float dtype,
    ``pred`` of any."""
    if not _float_arrays(dots, target, offset) or not _float_arrays(acc) \
            or not _float_arrays(pred) or acc.dtype != types.float64 or not isinstance(indices, types.Array) \
            or not isinstance(indices.dtype, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        A, ao_, Dd, Ta, Oa, Ia, e0_, Pa, inv_, keep_, kept_ = args
        t = (t[0],) + t[2:]
        intp = context.get_value_type(types.intp)
        e0_ = context.cast(builder, e0_, t[5], types.intp)
        ao_ = context.cast(builder, ao_, sig.args[1], types.intp)
        et = context.get_data_type(t[1].dtype)
        v64 = ir.VectorType(ir.DoubleType(), LANES)
        vte = ir.VectorType(et, LANES)
        al = t[1].dtype.bitwidth // 8
        arr = {n: context.make_array(t[j])(context, builder, a)
               for n, j, a in (("a", 0, A), ("d", 1, Dd), ("t", 2, Ta), ("o", 3, Oa),
                               ("i", 4, Ia), ("p", 6, Pa))}

        def vptr(name, i, vt):
            return builder.bitcast(builder.gep(arr[name].data, [i]), vt.as_pointer())

        def ext(v):
            return v if v.type == v64 else builder.fpext(v, v64)
        vtp = ir.VectorType(context.get_data_type(t[6].dtype), LANES)
        alp = t[6].dtype.bitwidth // 8

        def c(v):
            return ir.Constant(intp, v)
        o = ir.Constant(v64, ir.Undefined)
        for q in range(LANES):
            idx = builder.load(builder.gep(arr["i"].data, [builder.add(e0_, c(q))]))
            idx = context.cast(builder, idx, t[4].dtype, types.intp)
            x = builder.load(builder.gep(arr["o"].data, [idx]))
            x = x if et == ir.DoubleType() else builder.fpext(x, ir.DoubleType())
            o = builder.insert_element(o, x, ir.IntType(32)(q))
        p = builder.fadd(o, ext(builder.load(vptr("d", c(0), vte), align=al)))
        tv = ext(builder.load(vptr("t", e0_, vte), align=al))
        r = builder.fsub(tv, p)
        ps, pss, pq = (vptr("a", builder.add(ao_, c(8 * j)), v64) for j in range(3))
        builder.store(builder.fadd(builder.load(ps, align=8), r), ps, align=8)
        builder.store(_fmuladd(builder, r, r, builder.load(pss, align=8)), pss, align=8)
        pp = vptr("p", e0_, vtp)
        old = builder.load(pp, align=alp)
        new = builder.fadd(ext(old), p)
        new = new if vtp == v64 else builder.fptrunc(new, vtp)
        kb = context.cast(builder, keep_, t[8], types.boolean)
        cur = builder.select(kb, new, old)
        with builder.if_then(kb):
            builder.store(new, pp, align=alp)
        with builder.if_then(context.cast(builder, kept_, t[9], types.boolean)):
            iv = builder.insert_element(ir.Constant(v64, ir.Undefined), inv_,
                                        ir.IntType(32)(0))
            iv = builder.shuffle_vector(iv, ir.Constant(v64, ir.Undefined), ir.Constant(
                ir.VectorType(ir.IntType(32), LANES), [0] * LANES))
            d = _fmuladd(builder, builder.fneg(ext(cur)), iv, tv)
            builder.store(_fmuladd(builder, d, d, builder.load(pq, align=8)), pq, align=8)
        return context.get_dummy_value()
    return types.void(acc, ao, dots, target, offset, indices, e0, pred, types.float64,
                      types.boolean, types.boolean), codegen


@intrinsic
def v_root(typingctx, A, ia, R, ir_, bad):
    """Cholesky pivots of 8 lanes: ``A[ia:ia+8] <- sqrt(A[ia:ia+8])`` and
    ``R[ir:ir+8] <- 1 / that``; where a pivot is not > 0 (or NaN) it is
    taken as 1 and ``bad[0:8]`` grows by 1."""
    if not _float_arrays(A, R, bad) or A.dtype != types.float64:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args
        pa = _vector_ptr(context, builder, t[0], args[0], t[1], args[1])
        pr = _vector_ptr(context, builder, t[2], args[2], t[3], args[3])
        pb = _vector_ptr(context, builder, t[4], args[4], types.intp,
                         context.get_constant(types.intp, 0))
        a = builder.load(pa, align=8)
        vt = a.type
        zero = ir.Constant(vt, [0.0] * LANES)
        one = ir.Constant(vt, [1.0] * LANES)
        ok = builder.fcmp_ordered(">", a, zero)
        a = builder.select(ok, a, one)
        r = builder.call(_vector_intrinsic(builder, "sqrt", vt, 1), [a])
        builder.store(r, pa, align=8)
        builder.store(builder.fdiv(one, r), pr, align=8)
        b = builder.load(pb, align=8)
        builder.store(builder.fadd(b, builder.select(ok, zero, one)), pb, align=8)
        return context.get_dummy_value()
    return types.void(A, ia, R, ir_, bad), codegen


@njit(cache=True, fastmath=FASTMATH)
def lane_factor(A, w, dinv, bad):
    """Cholesky ``A = U^T U`` of every lane's upper triangle, in place.

    ``A`` is ``(w, w, LANES)`` float64; its upper triangle ``i <= j``
    is read and overwritten by ``U``.  ``dinv[i, l] = 1 / U[i, i]``.
    ``bad[l]`` (float64) grows where lane ``l``'s matrix is not numerically
    positive definite (its ``U`` is then meaningless but finite).
    """
    L = LANES
    st = w * L
    for i in range(w):        # left-looking: row i of U from rows 0..i-1
        ii = (i * w + i) * L
        # entry (i, j) less U[r, i] U[r, j], r = 0..i-1 in order: the
        # right-looking updates' order, bit for bit, the sums in registers
        # (the row's entries four, two, one at a time)
        j = i
        while j + 4 <= w:
            v_fnma_sum4(A, (i * w + j) * L, A, i * L, st, A, j * L, st, i)
            j += 4
        if j + 2 <= w:
            v_fnma_sum2(A, (i * w + j) * L, A, i * L, st, A, j * L, st, i)
            j += 2
        if j < w:
            v_fnma_sum1(A, (i * w + j) * L, A, i * L, st, A, j * L, st, i)
        v_root(A, ii, dinv, i * L, bad)
        for j in range(i + 1, w):
            v_mul(A, (i * w + j) * L, dinv, i * L)


@njit(cache=True, fastmath=FASTMATH)
def lane_sample(A, dinv, b, Z, w):
    """With ``A`` factored by :func:`lane_factor`: ``b <- A^{-1} b`` (the
    mean) and ``Z <- U^{-1} Z`` (the noise, covariance ``A^{-1}``), per lane."""
    L = LANES
    # U^T y = b: y[j] = (b[j] - sum_{i<j} U[i, j] y[i]) / U[j, j], the
    # products subtracted in the order i = 0, 1, ... (as column sweeps
    # would, bit for bit), the sum in a register
    for j in range(w):
        v_fnma_sum1(b, j * L, A, j * L, w * L, b, 0, L, j)
        v_mul(b, j * L, dinv, j * L)
    for i in range(w - 1, -1, -1):        # U x = y and U s = z, row dots
        n = w - 1 - i
        a = (i * w + i + 1) * L
        v_fnma_sum1(b, i * L, A, a, L, b, (i + 1) * L, L, n)
        v_fnma_sum1(Z, i * L, A, a, L, Z, (i + 1) * L, L, n)
        v_mul(b, i * L, dinv, i * L)
        v_mul(Z, i * L, dinv, i * L)
