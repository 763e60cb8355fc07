"""Algorithm-based fault tolerance for a GEMM tile (Huang and Abraham's full checksum matrix).

For ``C = A @ B`` with ``A`` of ``M x K`` and ``B`` of ``K x N``, append to ``A``
a checksum row (the sum of its rows) and to ``B`` a checksum column (the sum of
its columns). The product of the extended operands is the *full checksum
matrix* ``Cf`` of ``(M + 1) x (N + 1)``: ``C`` itself, each row's sum in column
``N`` and each column's sum in row ``M``. A single wrong element of ``Cf``
breaks exactly one row sum and one column sum, which locate it; the row's
residual gives its correction.

Everything holds modulo ``2**W`` (sums are linear), so an array that wraps its
accumulators at ``W`` bits is checked exactly; a wrapped value's signedness does
not matter. The checksum operands are wider than the operands (``ceil(log2 M)``
and ``ceil(log2 N)`` more bits): the array's checksum row and column need PEs
of that operand width.

:class:`AbftEncoder` forms the checksum row of ``A`` and the checksum column of
``B``; :class:`AbftChecker` checks a full checksum matrix at once,
:class:`AbftRowChecker` checks one arriving row by row (for arrays that emit rows). The numpy twin is
``sim/golden/abft.py``.
"""

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.tree import balanced


def _grown(shape: Shape, terms: int) -> Shape:
    """Shape holding the exact sum of ``terms`` values of ``shape``."""
    extra = (terms - 1).bit_length()
    return signed(shape.width + extra) if shape.signed else unsigned(shape.width + extra)


def _check_dims(**dims):
    for name, value in dims.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {value!r} must be an integer >= 1")


class AbftEncoder(wiring.Component):
    """Checksum row of ``A`` and checksum column of ``B``.

    Combinational. Ports:

    * ``a`` In(M x K operands): ``a[i][k]``; ``b`` In(K x N operands): ``b[k][j]``;
    * ``a_sum`` Out(K values): ``a_sum[k] = sum_i a[i][k]``, exact, ``ceil(log2 M)`` bits wider;
    * ``b_sum`` Out(K values): ``b_sum[k] = sum_j b[k][j]``, exact, ``ceil(log2 N)`` bits wider.

    Feeding ``a_sum`` as row ``M`` of ``A`` and ``b_sum`` as column ``N`` of ``B``
    makes the array compute the full checksum matrix.
    """

    def __init__(self, m: int, k: int, n: int, operand_shape):
        _check_dims(m=m, k=k, n=n)
        self._m, self._k, self._n = m, k, n
        self._shape = Shape.cast(operand_shape)
        self.a_sum_shape = _grown(self._shape, m)
        self.b_sum_shape = _grown(self._shape, n)
        super().__init__({
            "a": In(data.ArrayLayout(data.ArrayLayout(self._shape, k), m)),
            "b": In(data.ArrayLayout(data.ArrayLayout(self._shape, n), k)),
            "a_sum": Out(data.ArrayLayout(self.a_sum_shape, k)),
            "b_sum": Out(data.ArrayLayout(self.b_sum_shape, k)),
        })

    def elaborate(self, platform):
        m = Module()
        for k in range(self._k):
            m.d.comb += [
                self.a_sum[k].eq(balanced(operator.add, (self.a[i][k] for i in range(self._m)))),
                self.b_sum[k].eq(balanced(operator.add, (self.b[k][j] for j in range(self._n)))),
            ]
        return m


class AbftChecker(wiring.Component):
    """Checks a full checksum matrix modulo ``2**width``; locates and corrects one wrong element.

    Combinational. Ports:

    * ``c`` In((M + 1) x (N + 1) of ``width`` bits): ``c[i][j]``; rows ``< M`` and
      columns ``< N`` are the tile, column ``N`` and row ``M`` the checksums;
    * ``row_error`` Out(M + 1), ``col_error`` Out(N + 1): which row / column sums
      fail (row ``i``: ``sum_{j<N} c[i][j] != c[i][N]``; column likewise);
    * ``error`` Out(1): some sum fails;
    * ``located`` Out(1): exactly one row and one column fail, i.e. one element is
      wrong (any single-element error, checksum elements included);
    * ``row``, ``col`` Out: the wrong element's position (valid when ``located``);
    * ``value`` Out(width): its corrected value (valid when ``located``);
    * ``uncorrectable`` Out(1): ``error`` and not ``located`` (several wrong elements).

    Two wrong elements are always flagged unless their errors cancel in every
    sum they share; they are never "located" unless they look like one error.
    """

    def __init__(self, m: int, n: int, width: int):
        _check_dims(m=m, n=n, width=width)
        self._m, self._n, self._width = m, n, width
        super().__init__({
            "c": In(data.ArrayLayout(data.ArrayLayout(unsigned(width), n + 1), m + 1)),
            "row_error": Out(m + 1),
            "col_error": Out(n + 1),
            "error": Out(1),
            "located": Out(1),
            "row": Out(range(m + 1)),
            "col": Out(range(n + 1)),
            "value": Out(width),
            "uncorrectable": Out(1),
        })

    @staticmethod
    def _exactly_one(m: Module, flags: Signal, name: str) -> Signal:
        """High when exactly one bit of ``flags`` is set (clearing the lowest set bit leaves zero)."""
        one = Signal(name=name)
        m.d.comb += one.eq(flags.any() & ~(flags & (flags - 1)[:len(flags)]).any())
        return one

    def elaborate(self, platform):
        m = Module()
        rows, cols, width = self._m, self._n, self._width
        c = self.c
        # Residual of each row / column: the sum of its tile elements minus its checksum, mod 2**width.
        row_residual = [Signal(width, name=f"row_residual_{i}") for i in range(rows + 1)]
        col_residual = [Signal(width, name=f"col_residual_{j}") for j in range(cols + 1)]
        for i in range(rows + 1):
            m.d.comb += row_residual[i].eq(balanced(operator.add, (c[i][j] for j in range(cols))) - c[i][cols])
        for j in range(cols + 1):
            m.d.comb += col_residual[j].eq(balanced(operator.add, (c[i][j] for i in range(rows))) - c[rows][j])
        m.d.comb += [
            self.row_error.eq(Cat(r.any() for r in row_residual)),
            self.col_error.eq(Cat(r.any() for r in col_residual)),
            self.error.eq(self.row_error.any() | self.col_error.any()),
        ]
        one_row = self._exactly_one(m, self.row_error, "one_row")
        one_col = self._exactly_one(m, self.col_error, "one_col")
        m.d.comb += [self.located.eq(one_row & one_col), self.uncorrectable.eq(self.error & ~self.located)]

        # With one flag set, an OR over the flagged entries selects that entry.
        residual = Signal(width, name="residual")
        element = Signal(width, name="element")
        m.d.comb += [
            self.row.eq(_index(self.row_error, len(self.row))),
            self.col.eq(_index(self.col_error, len(self.col))),
            residual.eq(_or_select(self.row_error, row_residual)),
            element.eq(_or_select(Cat(self.row_error[i] & self.col_error[j]
                                      for i in range(rows + 1) for j in range(cols + 1)),
                                  [c[i][j] for i in range(rows + 1) for j in range(cols + 1)])),
        ]
        # A tile or checksum-row element is too large by the row residual; an element of
        # the checksum column enters its row's residual negated, so it is too small by it.
        with m.If(self.col_error[cols]):
            m.d.comb += self.value.eq(element + residual)
        with m.Else():
            m.d.comb += self.value.eq(element - residual)
        return m


def _index(flags, width: int):
    """Index of the set bit of a one-hot ``flags`` (OR of the indices of set bits)."""
    bits = []
    for b in range(width):
        terms = [flags[i] for i in range(len(flags)) if i >> b & 1]
        bits.append(Cat(terms).any() if terms else Const(0, 1))
    return Cat(bits)


def _or_select(flags, values):
    """OR of ``values[i]`` whose ``flags[i]`` is set; the selected value when one flag is set."""
    width = len(values[0])
    return balanced(operator.or_, [value & flags[i].replicate(width) for i, value in enumerate(values)])


class AbftRowChecker(wiring.Component):
    """Checks a full checksum matrix that arrives one row per beat: a row-sum check and registered column sums.

    The streaming twin of :class:`AbftChecker` for arrays that emit results row by
    row; it keeps ``N + 1`` column sums instead of the whole matrix. Rows arrive in
    order ``0 .. M`` (the checksum row last); any number of idle cycles may come
    between beats.

    Ports:

    * ``valid`` In(1), ``beat`` In(N + 1 values of ``width`` bits): row ``i`` of the
      full checksum matrix; ``last`` In(1): this beat is row ``M``;
    * ``row_error`` Out(1): this beat's row sum fails (combinational, with the beat);
    * ``verdict`` Out(1): high with the last beat; the outputs below are valid then
      (combinational from the last beat and the registers), and the state clears for
      the next tile at the end of that cycle;
    * ``error``, ``located``, ``uncorrectable``, ``row``, ``col``: as in :class:`AbftChecker`;
    * ``delta`` Out(width): the located element is too large by ``delta`` (modulo
      ``2**width``): its corrected value is ``element - delta``.

    Registers: ``col_sum`` (``N + 1`` sums of the rows so far), ``row_index``,
    ``failed_rows`` (how many rows failed, saturating at 2), ``failed_row`` and
    ``failed_residual`` (the first failing row and its residual).
    """

    def __init__(self, m: int, n: int, width: int):
        _check_dims(m=m, n=n, width=width)
        self._m, self._n, self._width = m, n, width
        super().__init__({
            "valid": In(1),
            "last": In(1),
            "beat": In(data.ArrayLayout(unsigned(width), n + 1)),
            "row_error": Out(1),
            "verdict": Out(1),
            "error": Out(1),
            "located": Out(1),
            "uncorrectable": Out(1),
            "row": Out(range(m + 1)),
            "col": Out(range(n + 1)),
            "delta": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, width = self._m, self._n, self._width
        beat = self.beat
        col_sum = Signal(data.ArrayLayout(unsigned(width), cols + 1), name="col_sum")
        row_index = Signal(range(rows + 1), name="row_index")
        failed_rows = Signal(range(3), name="failed_rows")
        failed_row = Signal(range(rows + 1), name="failed_row")
        failed_residual = Signal(width, name="failed_residual")

        residual = Signal(width, name="residual")
        m.d.comb += [
            residual.eq(balanced(operator.add, (beat[j] for j in range(cols))) - beat[cols]),
            self.row_error.eq(self.valid & residual.any()),
            self.verdict.eq(self.valid & self.last),
        ]

        # Column verdict with the last beat: the sums of the tile rows against the checksum row.
        col_error = Signal(cols + 1, name="col_error")
        m.d.comb += col_error.eq(Cat((col_sum[j] - beat[j])[:width].any() for j in range(cols + 1)))
        rows_now = Signal(range(4), name="rows_now")
        m.d.comb += rows_now.eq(failed_rows + self.row_error)
        one_col = AbftChecker._exactly_one(m, col_error, "one_col")
        bad_residual = Signal(width, name="bad_residual")
        m.d.comb += [
            self.error.eq(rows_now.any() | col_error.any()),
            self.located.eq((rows_now == 1) & one_col),
            self.uncorrectable.eq(self.error & ~self.located),
            self.row.eq(Mux(self.row_error, row_index, failed_row)),
            self.col.eq(_index(col_error, len(self.col))),
            bad_residual.eq(Mux(self.row_error, residual, failed_residual)),
            # A checksum-column element enters its row's residual negated.
            self.delta.eq(Mux(col_error[cols], -bad_residual, bad_residual)),
        ]

        with m.If(self.valid):
            with m.If(self.last):
                m.d.sync += [col_sum.eq(0), row_index.eq(0), failed_rows.eq(0)]
            with m.Else():
                m.d.sync += [col_sum[j].eq(col_sum[j] + beat[j]) for j in range(cols + 1)]
                m.d.sync += row_index.eq(row_index + 1)
                with m.If(self.row_error & (failed_rows != 2)):
                    m.d.sync += failed_rows.eq(failed_rows + 1)
                with m.If(self.row_error & ~failed_rows.any()):
                    m.d.sync += [failed_row.eq(row_index), failed_residual.eq(residual)]
        return m
