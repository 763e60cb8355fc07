"""Result checks of the tile's compute block that watch the engine from outside (residue, ABFT).

Both see the same two events the tile already has: an operand beat taken by the
engine (``beat``: ``a``, ``b``, ``last``) and a result row leaving it (``res_valid``,
``res_c``, ``res_last``). They rely on the tile's controller running one engine job
at a time (a GEMM's beats, then its result rows; the next job's beats only after
its last row), and on the engine's accumulators being exact for ``K <= k_max``
(``kind: tpe`` sizes ``acc_width`` so), so a result row equals ``A @ B`` exactly.
"""

from functools import reduce
from operator import add

from amaranth.hdl import Module, Mux, Shape, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.protect.abft import AbftRowChecker
from hw.protect.residue import residue_mod3

from .storage import RegisterGroup

RESIDUE = unsigned(2)


def _beat_ports(c_rows: int, cols: int, steps: int, operand_shape, res_shape) -> dict:
    return {
        "beat": In(1), "a": In(data.ArrayLayout(operand_shape, c_rows * steps)),
        "b": In(data.ArrayLayout(operand_shape, cols * steps)), "beat_last": In(1),
        "res_valid": In(1), "res_last": In(1), "res_c": In(data.ArrayLayout(res_shape, cols)),
    }


class ResidueCheck(wiring.Component):
    """A mod-3 shadow of every element of the engine's result, checked as the rows leave.

    Contract, per clock cycle:

    * ``beat`` (an operand beat moves into the engine): for every element
      ``(i, j)``, ``shadow[i][j] <= (0 if fresh else shadow[i][j]) + sum_s
      (a[s*rows+i] mod 3)(b[s*cols+j] mod 3)  (mod 3)``; ``fresh <= beat_last``
      (the next beat starts a new job). ``fresh`` resets to 1.
    * ``res_valid``: row ``row`` of the result is compared element by element:
      ``error`` is high in that cycle when some ``res_c[j] mod 3 != shadow[row][j]``;
      ``row`` steps, back to 0 after ``res_last``.

    Every single-bit error of a result element changes its residue (``2**i mod 3``
    is never 0), so it is flagged; an error of ``k * 3`` (e.g. an operand upset
    whose partner operand is a multiple of 3) is not.

    Registers (group ``state``, :mod:`hw.npu.storage`): ``shadow``
    (``rows x cols`` residues), ``row``, ``fresh``.
    """

    def __init__(self, c_rows: int, cols: int, steps: int, operand_shape, res_shape):
        self._rows, self._cols, self._steps = c_rows, cols, steps
        self._operand_shape, self._res_shape = Shape.cast(operand_shape), Shape.cast(res_shape)
        self._layout = data.StructLayout({
            "shadow": data.ArrayLayout(data.ArrayLayout(RESIDUE, cols), c_rows),
            "row": range(max(c_rows, 2)), "fresh": unsigned(1)})
        super().__init__(_beat_ports(c_rows, cols, steps, operand_shape, res_shape) | {"error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rows, cols, steps = self._rows, self._cols, self._steps
        state = RegisterGroup(m, "state", self._layout, init={"fresh": 1})
        q, d = state.q, state.d
        ra = [residue_mod3(m, self.a[n], f"a_res_{n}") for n in range(rows * steps)]
        rb = [residue_mod3(m, self.b[n], f"b_res_{n}") for n in range(cols * steps)]
        with m.If(self.beat):
            m.d.comb += d.fresh.eq(self.beat_last)
            for i in range(rows):
                for j in range(cols):
                    products = [ra[s * rows + i] * rb[s * cols + j] for s in range(steps)]
                    total = reduce(add, products, Mux(q.fresh, 0, q.shadow[i][j]))
                    m.d.comb += d.shadow[i][j].eq(residue_mod3(m, total, f"next_{i}_{j}"))
        # The shadow of row ``row``: a chain of Muxes over the rows' flat values.
        shadow_row = q.shadow[0].as_value()
        for i in range(1, rows):
            shadow_row = Mux(q.row == i, q.shadow[i].as_value(), shadow_row)
        shadow_row = data.View(data.ArrayLayout(RESIDUE, cols), shadow_row)
        wrong = [residue_mod3(m, self.res_c[j], f"res_res_{j}") != shadow_row[j] for j in range(cols)]
        with m.If(self.res_valid):
            m.d.comb += [self.error.eq(reduce(lambda x, y: x | y, wrong)),
                         d.row.eq(Mux(self.res_last | (q.row == rows - 1), 0, q.row + 1))]
        return m


class AbftCheck(wiring.Component):
    """ABFT of the engine's GEMM: checksum row and column computed beside the engine, checked per row.

    Huang and Abraham's full checksum matrix, with the checksum row and column
    of PEs placed beside the array instead of in it: multiply-accumulate units
    fed with the same operand beats compute, modulo ``2**width``,

    * ``col_chk[i] = sum_k A[i][k] * (sum_j B[k][j])`` (the checksum column),
    * ``row_chk[j] = sum_k (sum_i A[i][k]) * B[k][j]`` (the checksum row),
    * ``corner = sum_k (sum_i A[i][k]) * (sum_j B[k][j])``.

    The engine's result rows, sign-extended to ``width`` bits and bordered by
    ``col_chk[i]``, enter a :class:`hw.protect.abft.AbftRowChecker` (submodule
    ``rows``) as they leave the engine; one cycle after the last row the checksum
    row ``(row_chk, corner)`` follows as its last beat, and the verdict comes
    with it.

    Contract, per clock cycle:

    * ``beat``: the sums take the beat's products (restarting after a beat with
      ``beat_last``: ``fresh`` resets to 1);
    * ``res_valid``: row ``row`` of the result is checked; ``row`` steps, back to
      0 after ``res_last``, and ``pending`` is set for the checksum beat;
    * the cycle after the last row (``pending``): the verdict. ``fix`` is high
      when exactly one element of the tile (not of the checksums) was wrong:
      ``fix_row``, ``fix_col``, ``fix_delta`` say that element is too large by
      ``fix_delta`` modulo ``2**width`` (the accumulator subtracts it);
      ``corrected`` is high when the error was located (in the tile or a
      checksum), ``detected`` when it could not be located (several wrong
      elements).

    With ``width`` the tile accumulator width, sign-extended results and the
    accumulators agree modulo ``2**width``, so subtracting ``fix_delta`` from
    the accumulator restores its value exactly, also within a K loop.

    Registers (group ``sums``): ``col_chk``, ``row_chk``, ``corner``, ``row``,
    ``fresh``, ``pending``; and the row checker's.
    """

    def __init__(self, c_rows: int, cols: int, steps: int, operand_shape, res_shape, width: int):
        self._rows, self._cols, self._steps, self._width = c_rows, cols, steps, width
        self._operand_shape, self._res_shape = Shape.cast(operand_shape), Shape.cast(res_shape)
        word = unsigned(width)
        self._layout = data.StructLayout({
            "col_chk": data.ArrayLayout(word, c_rows), "row_chk": data.ArrayLayout(word, cols), "corner": word,
            "row": range(max(c_rows, 2)), "fresh": unsigned(1), "pending": unsigned(1)})
        super().__init__(_beat_ports(c_rows, cols, steps, operand_shape, res_shape) | {
            "fix": Out(1), "fix_row": Out(range(max(c_rows, 2))), "fix_col": Out(range(max(cols, 2))),
            "fix_delta": Out(width), "corrected": Out(1), "detected": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rows, cols, steps, width = self._rows, self._cols, self._steps, self._width
        sums = RegisterGroup(m, "sums", self._layout, init={"fresh": 1})
        q, d = sums.q, sums.d
        a = [[self.a[s * rows + i] for i in range(rows)] for s in range(steps)]
        b = [[self.b[s * cols + j] for j in range(cols)] for s in range(steps)]
        a_sum = [reduce(add, a[s]) for s in range(steps)]
        b_sum = [reduce(add, b[s]) for s in range(steps)]

        def follow(old, products):
            return (reduce(add, products, Mux(q.fresh, 0, old)))[:width]

        with m.If(self.beat):
            m.d.comb += d.fresh.eq(self.beat_last)
            m.d.comb += [d.col_chk[i].eq(follow(q.col_chk[i], [a[s][i] * b_sum[s] for s in range(steps)]))
                         for i in range(rows)]
            m.d.comb += [d.row_chk[j].eq(follow(q.row_chk[j], [a_sum[s] * b[s][j] for s in range(steps)]))
                         for j in range(cols)]
            m.d.comb += d.corner.eq(follow(q.corner, [a_sum[s] * b_sum[s] for s in range(steps)]))

        m.submodules.rows = checker = AbftRowChecker(rows, cols, width)
        col_chk = q.col_chk[0]
        for i in range(1, rows):
            col_chk = Mux(q.row == i, q.col_chk[i], col_chk)
        with m.If(q.pending):  # the checksum row closes the tile
            m.d.comb += [checker.valid.eq(1), checker.last.eq(1), checker.beat[cols].eq(q.corner),
                         d.pending.eq(0)]
            m.d.comb += [checker.beat[j].eq(q.row_chk[j]) for j in range(cols)]
        with m.Elif(self.res_valid):
            m.d.comb += [checker.valid.eq(1), checker.beat[cols].eq(col_chk),
                         d.row.eq(Mux(self.res_last | (q.row == rows - 1), 0, q.row + 1)),
                         d.pending.eq(self.res_last)]
            m.d.comb += [checker.beat[j].eq(self.res_c[j]) for j in range(cols)]  # sign-extends signed results
        in_tile = (checker.row < rows) & (checker.col < cols)
        m.d.comb += [
            self.fix.eq(checker.verdict & checker.located & in_tile),
            self.fix_row.eq(checker.row), self.fix_col.eq(checker.col), self.fix_delta.eq(checker.delta),
            self.corrected.eq(checker.verdict & checker.located),
            self.detected.eq(checker.verdict & checker.uncorrectable),
        ]
        return m
