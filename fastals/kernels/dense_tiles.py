"""The dense objective's product ``X = W M`` and Gram matrix ``X^T X`` of a
block of rows in register tiles.

Per chunk of rows the dense half-step multiplies the gathered block ``W``
(``b x k``, ``b`` about 64 rows) by the shared ``k x k`` inverse ``M``.
One BLAS GEMM per chunk packs ``M`` again in every call (about a third of
the GEMM's time at ``k = 100``, 40 calls per ML-100k epoch); here
:func:`v_gemm_tile` reads ``M`` in place: a tile of ``rows`` rows by
``nv`` SIMD vectors of columns of ``X`` (6 x 2 vectors: 12 of the 16 AVX2
registers, 6 x 16 float32) is summed in registers over the ``k`` columns
of ``W`` (one broadcast of ``W[r, a]`` per row, ``nv`` loads of
``M[a, j0:]`` per column ``a``), then stored.

Every entry ``X[r, j]`` is the sum over ``a`` of ``W[r, a] M[a, j]`` in
order from zero, one fused multiply-add per term (``llvm.fmuladd``): its
value does not depend on the tiling, so tiles that overlap (the last
column tile ends at ``k``, the last row tile at the chunk's end) write the
same values twice, and the result is the same for any thread count.

The block's Gram matrix (:func:`v_gram_tile`, :func:`_gram_tiled`) is
summed the same way, tile by tile over the block's rows, in the factors'
dtype, and stored (or added) in float64 straight into the chunk's partial
sum: one BLAS SYRK per block packed the block twice, and its float32
result had to be cleared before and copied after.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .llvm import outlined
from .tiles import _c_float_2d

#: Rows of ``X`` per register tile (with :data:`TILE_VECTORS` vectors of
#: columns: 12 accumulators, two loaded vectors and a broadcast).
TILE_ROWS = 6

#: SIMD vectors (256 bits) of columns per register tile.
TILE_VECTORS = 2


class _Vec:
    """What both tiles' code generators need for 256-bit vectors of the
    factors' dtype ``dtype``: ``et`` (element type), ``size`` (bytes),
    ``lanes``, ``vt`` / ``vp`` (vector type and pointer), ``i32``, ``mask`` and
    ``undef`` (for broadcasts), ``zero``, ``fma`` (``llvm.fmuladd`` on
    vectors) and ``c(v)`` (an ``intp`` constant)."""

    def __init__(self, context, builder, dtype):
        self.intp = context.get_value_type(types.intp)
        self.et = context.get_data_type(dtype)
        self.size = dtype.bitwidth // 8
        self.lanes = 32 // self.size
        self.vt = ir.VectorType(self.et, self.lanes)
        self.vp = self.vt.as_pointer()
        self.i32 = ir.IntType(32)
        self.mask = ir.Constant(ir.VectorType(self.i32, self.lanes), [0] * self.lanes)
        self.undef = ir.Constant(self.vt, ir.Undefined)
        self.zero = ir.Constant(self.vt, [ir.Constant(self.et, 0.0)] * self.lanes)
        self.fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vt, [self.vt] * 3),
            f"llvm.fmuladd.v{self.lanes}f{self.size * 8}")

    def c(self, v):
        return ir.Constant(self.intp, v)

    def tile_loop(self, builder, name, start, end, vectors_at, scalar_at, rows, nv):
        """Emit the loop of a register tile: for ``i`` in ``start:end``,
        the ``nv`` vectors at ``vectors_at(i)`` times the broadcast
        scalars at ``scalar_at(i, r)`` (``r < rows``) added into
        ``rows x nv`` accumulators from zero by fused multiply-adds; leaves
        the builder after the loop and returns the accumulators there."""
        pre = builder.block
        hdr = builder.append_basic_block(f"{name}.hdr")
        body = builder.append_basic_block(f"{name}.body")
        out = builder.append_basic_block(f"{name}.out")
        builder.branch(hdr)
        builder.position_at_end(hdr)
        i = builder.phi(self.intp)
        i.add_incoming(start, pre)
        accs = [[builder.phi(self.vt) for _ in range(nv)] for _ in range(rows)]
        for row in accs:
            for acc in row:
                acc.add_incoming(self.zero, pre)
        builder.cbranch(builder.icmp_signed("<", i, end), body, out)
        builder.position_at_end(body)
        base = vectors_at(i)
        vs = [builder.load(builder.bitcast(builder.gep(base, [self.c(h * self.lanes)]),
                                           self.vp), align=self.size)
              for h in range(nv)]
        new = []
        for r in range(rows):
            x = builder.load(scalar_at(i, r))
            b = builder.shuffle_vector(builder.insert_element(
                self.undef, x, self.i32(0)), self.undef, self.mask)
            new.append([builder.call(self.fma, [b, vs[h], accs[r][h]])
                        for h in range(nv)])
        last = builder.block
        i.add_incoming(builder.add(i, self.c(1)), last)
        for r in range(rows):
            for h in range(nv):
                accs[r][h].add_incoming(new[r][h], last)
        builder.branch(hdr)
        builder.position_at_end(out)
        return accs


@intrinsic
def v_gemm_tile(typingctx, X, W, M, r0, j0, rows, nv):
    """``X[r0:r0 + rows, j0:j0 + w] = W[r0:r0 + rows] @ M[:, j0:j0 + w]``,
    ``w`` = ``nv`` 256-bit vectors of columns (``rows`` and ``nv`` literal
    integers); the sums in registers, from zero in the order of ``M``'s
    rows, by fused multiply-adds.  ``X``, ``W``, ``M`` 2-D, C-contiguous,
    of one dtype; ``W.shape[1] == M.shape[0]``; the tile within ``X`` and
    ``M`` (not checked)."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(nv, types.IntegerLiteral)):
        return None
    if not (_c_float_2d(X) and _c_float_2d(W) and _c_float_2d(M)
            and X.dtype == W.dtype == M.dtype):
        return None
    R = rows.literal_value
    NV = nv.literal_value
    sig = types.void(X, W, M, r0, j0, rows, nv)

    def codegen(context, builder, signature, args):
        t = signature.args
        Xa, Wa, Ma, r0_, j0_ = args[:5]
        r0_ = context.cast(builder, r0_, t[3], types.intp)
        j0_ = context.cast(builder, j0_, t[4], types.intp)
        xarr = context.make_array(t[0])(context, builder, Xa)
        warr = context.make_array(t[1])(context, builder, Wa)
        marr = context.make_array(t[2])(context, builder, Ma)
        V = _Vec(context, builder, t[0].dtype)
        size, lanes, vp, c = V.size, V.lanes, V.vp, V.c
        kx = builder.extract_value(xarr.shape, 1)
        kw = builder.extract_value(warr.shape, 1)
        km = builder.extract_value(marr.shape, 1)
        wrows = [builder.gep(warr.data, [builder.mul(builder.add(r0_, c(r)), kw)])
                 for r in range(R)]
        mcol = builder.gep(marr.data, [j0_])
        accs = V.tile_loop(
            builder, "gemmtile", c(0), kw,
            lambda a: builder.gep(mcol, [builder.mul(a, km)]),
            lambda a, r: builder.gep(wrows[r], [a]), R, NV)
        for r in range(R):
            xrow = builder.gep(xarr.data, [builder.add(
                builder.mul(builder.add(r0_, c(r)), kx), j0_)])
            for h in range(NV):
                builder.store(accs[r][h],
                              builder.bitcast(builder.gep(xrow, [c(h * lanes)]), vp),
                              align=size)
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, inline="always")
def _gemm_tiled(X, W, M, u, b):
    """``X[u:u+b] = W[u:u+b] @ M`` by register tiles (:func:`v_gemm_tile`),
    column tiles outer (a tile's columns of ``M`` stay in L1 while every
    row tile of the block runs over them).  ``k = M.shape[1]`` at least
    one tile of columns (16 float32, 8 float64).  (A last tile of one
    vector where at most one is left measured no faster at ``k = 100``:
    six accumulators wait on the multiply-add latency.)"""
    k = X.shape[1]
    w = TILE_VECTORS * 32 // X.itemsize
    for j0 in range(0, k, w):
        j = min(j0, k - w)  # the last tile ends at k
        if b >= TILE_ROWS:
            r = u
            while r < u + b:
                v_gemm_tile(X, W, M, min(r, u + b - TILE_ROWS), j, TILE_ROWS, TILE_VECTORS)
                r += TILE_ROWS
        else:
            for r in range(u, u + b):
                v_gemm_tile(X, W, M, r, j, 1, TILE_VECTORS)


@intrinsic
def v_gram_tile(typingctx, P, X, e0, n, i0, j0, lo, jlo, add, trans):
    """``P(i0 + r, j) (=, or += with add) sum_e X[e, i0 + r] X[e, j]`` for
    ``lo <= r < TILE_ROWS``, ``e`` in ``e0:e0 + n`` and the columns ``j``
    of ``j0:j0 + w`` (``w``: :data:`TILE_VECTORS` vectors of ``X``'s dtype)
    from ``max(jlo, i0 + r)`` on (the others and rows below ``lo`` are left
    alone).  ``P`` is the packed upper triangle of a ``k x k`` matrix
    (``k = X.shape[1]``; row ``i`` at ``i k - i (i - 1) / 2``, columns
    ``i..k-1``), float64, 1-D; ``X`` 2-D; both C-contiguous; the tile's
    columns within ``X`` and its rows within ``P`` (not checked; the
    entries left alone are not touched).  The sums in registers, from zero
    in entry order by fused multiply-adds in ``X``'s dtype, then converted
    to float64.  Stored by whole vectors where every lane is kept, else
    lane by lane (a masked store, which LLVM made of a select of the old
    values stored back, ran at about a third of the speed on AMD Zen 3).

    ``trans`` (a literal 1; else 0) stores the tile transposed: its rows
    ``i0 + r`` are columns ``c`` of ``P`` and its columns rows ``i``:
    ``P(i, c)`` for ``i`` from ``jlo`` to ``c`` (entry by entry), for the
    last columns of a ``k`` that is not a multiple of the tile width."""
    if not (isinstance(P, types.Array) and P.layout == "C" and P.ndim == 1
            and P.dtype == types.float64 and _c_float_2d(X)
            and isinstance(add, types.Boolean)
            and isinstance(trans, types.IntegerLiteral)):
        return None
    NV = TILE_VECTORS
    R = TILE_ROWS
    TRANS = bool(trans.literal_value)
    sig = types.void(P, X, e0, n, i0, j0, lo, jlo, add, trans)

    def codegen(context, builder, signature, args):
        # one function per dtype and orientation (see .llvm.outlined)
        t = signature.args
        intp = context.get_value_type(types.intp)

        def cast(v, ty):
            return context.cast(builder, v, ty, types.intp)
        parr = context.make_array(t[0])(context, builder, args[0])
        xarr = context.make_array(t[1])(context, builder, args[1])
        et = context.get_data_type(t[1].dtype)
        fn = outlined(builder, f"fastals.gram_tile.{t[1].dtype}.{int(TRANS)}",
                      [ir.DoubleType().as_pointer(), et.as_pointer()] + [intp] * 7
                      + [ir.IntType(1)],
                      lambda b, fargs: _gram_tile_body(context, b, fargs, t[1].dtype))
        builder.call(fn, [parr.data, xarr.data, builder.extract_value(xarr.shape, 1)]
                     + [cast(args[i], t[i]) for i in range(2, 8)]
                     + [context.cast(builder, args[8], t[8], types.boolean)])
        return context.get_dummy_value()

    def _gram_tile_body(context, builder, fargs, dtype):
        pdata, xdata, kx, e0_, n_, i0_, j0_, lo_, jlo_, add_ = fargs
        V = _Vec(context, builder, dtype)
        size, lanes, i32, c = V.size, V.lanes, V.i32, V.c
        dt = ir.VectorType(ir.DoubleType(), lanes)
        dp = dt.as_pointer()
        end_ = builder.add(e0_, n_)
        accs = V.tile_loop(
            builder, "gramtile", e0_, end_,
            lambda e: builder.gep(builder.gep(xdata, [builder.mul(e, kx)]), [j0_]),
            lambda e, r: builder.gep(xdata, [builder.add(builder.mul(e, kx),
                                                             builder.add(i0_, c(r)))]),
            R, NV)

        def packed(i):  # packed row start of row i, minus i
            return builder.sub(builder.sub(builder.mul(i, kx), builder.ashr(
                builder.mul(i, builder.sub(i, c(1))), c(1))), i)

        def added(p, v, align):  # v, or what p holds plus v with add
            return builder.select(add_, builder.fadd(builder.load(p, align=align), v), v)

        if TRANS:
            # lane by lane (each lane is another packed row): the kept
            # entries only
            for r in range(R):
                with builder.if_then(builder.icmp_signed(">=", c(r), lo_)):
                    col = builder.add(i0_, c(r))
                    for h in range(NV):
                        v = accs[r][h]
                        if size == 4:
                            v = builder.fpext(v, dt)
                        for lane in range(lanes):
                            i = builder.add(j0_, c(h * lanes + lane))
                            keep = builder.and_(builder.icmp_signed(">=", i, jlo_),
                                                builder.icmp_signed("<=", i, col))
                            with builder.if_then(keep):
                                q = builder.gep(pdata, [builder.add(packed(i), col)])
                                builder.store(added(q, builder.extract_element(
                                    v, i32(lane)), None), q)
            builder.ret_void()
            return

        # per row: every column kept (from max(row, jlo) on): whole
        # vectors stored (or added); else the kept ones one by one, by a
        # loop of atomic (unordered: plain moves) stores, which LLVM does
        # not merge.  (A select of the old values stored back became a
        # masked store, vmaskmovpd, slow on AMD, into which LLVM also
        # merged the stores of whole vectors.)
        for r in range(R):
            with builder.if_then(builder.icmp_signed(">=", c(r), lo_)):
                row = builder.add(i0_, c(r))
                # the address of column j of the packed row is prow + (j - j0)
                prow = builder.gep(pdata, [builder.add(packed(row), j0_)])
                first = builder.select(builder.icmp_signed(">", row, jlo_), row, jlo_)
                skip = builder.sub(first, j0_)  # columns left alone
                vs = [builder.fpext(v, dt) if size == 4 else v for v in accs[r]]
                ps = [builder.bitcast(builder.gep(prow, [c(h * lanes)]), dp)
                      for h in range(NV)]
                with builder.if_else(builder.icmp_signed("<=", skip, c(0))) as (
                        whole, part):
                    with whole:
                        with builder.if_else(add_) as (plus, to):
                            with plus:
                                for v, p in zip(vs, ps):
                                    builder.store(builder.fadd(
                                        builder.load(p, align=8), v), p, align=8)
                            with to:  # no load of what was there
                                for v, p in zip(vs, ps):
                                    builder.store(v, p, align=8)
                    with part:
                        for h, (v, p) in enumerate(zip(vs, ps)):
                            # this vector's columns left alone
                            sk = builder.sub(skip, c(h * lanes))
                            with builder.if_else(builder.icmp_signed("<=", sk, c(0))) as (
                                    vec, lanewise):
                                with vec:
                                    builder.store(added(p, v, 8), p, align=8)
                                with lanewise:
                                    q0 = builder.gep(prow, [c(h * lanes)])
                                    with cgutils.for_range_slice(builder, sk, c(lanes),
                                                                 c(1), V.intp) as (j, _):
                                        q = builder.gep(q0, [j])
                                        builder.store_atomic(
                                            added(q, builder.extract_element(v, j), None),
                                            q, "unordered", 8)
        builder.ret_void()
    return sig, codegen


@njit(cache=True, inline="always")
def _gram_tiled(P, X, u, b, add):
    """``P = X[u:u+b]^T X[u:u+b]`` (``add``: ``+=``), ``P`` the packed
    upper triangle (float64, 1-D, see :func:`v_gram_tile`), by register
    tiles: the block's sums in ``X``'s dtype, then float64.  Column tiles
    of :data:`TILE_VECTORS` vectors over the rows that reach the upper
    triangle (the last row tile ends at the column tile's end and leaves
    the rows before alone; entries below the diagonal are left alone too);
    the columns past the last whole tile (``k`` not a multiple of its
    width) by transposed tiles, those columns as the tile's rows: at
    ``k = 100`` (float32) 65 tiles instead of 75 with a last column tile
    ending at ``k`` (which recomputed 12 of its 16 columns over all rows).
    ``k`` at least one tile of columns."""
    k = X.shape[1]
    w = TILE_VECTORS * 32 // X.itemsize
    kt = k - k % w
    for j0 in range(0, kt, w):
        top = j0 + w
        i0 = 0
        while i0 < top:
            s = min(i0, top - TILE_ROWS)
            v_gram_tile(P, X, u, b, s, j0, i0 - s, j0, add, 0)
            i0 += TILE_ROWS
    c0 = kt
    while c0 < k:  # the last k - kt columns, TILE_ROWS at a time
        s = min(c0, k - TILE_ROWS)
        for j0 in range(0, k, w):
            v_gram_tile(P, X, u, b, s, min(j0, k - w), c0 - s, j0, add, 1)
        c0 += TILE_ROWS
