"""Carry-save compressors: add many vectors into two without propagating a carry.

A 3:2 compressor (a row of full adders) turns three vectors ``x, y, z`` into a
sum ``x ^ y ^ z`` and a carry ``majority(x, y, z) << 1`` with the same total;
every bit is computed from three input bits, so its delay does not grow with
the width. A 4:2 compressor is two 3:2 rows, four vectors into two. All vectors
here are ``width`` bits and everything is modulo ``2**width``: the carry out of
the top bit is dropped, which changes the total only by a multiple of
``2**width``. So a carry-save pair kept at ``width`` bits and resolved by one
``width``-bit add is exact modulo ``2**width``, signed or unsigned.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def compress_3_2(m: Module, x, y, z, width: int, name: str):
    """Add a 3:2 compressor row to ``m``: ``(sum, carry)`` with ``sum + carry == x + y + z`` mod ``2**width``."""
    total = Signal(unsigned(width), name=f"{name}_sum")
    carry = Signal(unsigned(width), name=f"{name}_carry")
    m.d.comb += [
        total.eq(x ^ y ^ z),
        carry.eq(((x & y) | (x & z) | (y & z)) << 1),
    ]
    return total, carry


def compress_4_2(m: Module, w, x, y, z, width: int, name: str):
    """Add a 4:2 compressor (two 3:2 rows) to ``m``: ``(sum, carry)`` totalling ``w + x + y + z`` mod ``2**width``."""
    first_sum, first_carry = compress_3_2(m, w, x, y, width, f"{name}_a")
    return compress_3_2(m, first_sum, first_carry, z, width, f"{name}_b")


class CarrySaveTree(wiring.Component):
    """Reduces ``terms`` vectors to a carry-save pair, with no carry-propagate adder.

    Combinational: ``sum + carry == sum(terms)`` modulo ``2**width``. Each level
    takes the vectors four at a time into 4:2 compressors, three left over into a
    3:2 row, and passes one or two left over unchanged, until two remain; e.g. 7
    vectors take two levels (4:2 and 3:2, then 4:2). With fewer than two terms
    the missing vectors are zero.

    Parameters
    ----------
    terms : int
        Number of input vectors.
    width : int
        Width of every vector (and of ``sum`` and ``carry``).
    """

    def __init__(self, terms: int, width: int):
        if terms < 1:
            raise ValueError(f"a carry-save tree needs at least one term, not {terms}")
        self._width = width
        super().__init__({
            "terms": In(data.ArrayLayout(unsigned(width), terms)),
            "sum": Out(unsigned(width)),
            "carry": Out(unsigned(width)),
        })

    @staticmethod
    def levels(terms: int) -> int:
        """Compressor levels (each one or two full-adder delays) for ``terms`` vectors."""
        level = 0
        while terms > 2:
            terms = 2 * (terms // 4) + {0: 0, 1: 1, 2: 2, 3: 2}[terms % 4]
            level += 1
        return level

    def elaborate(self, platform):
        m = Module()
        vectors = list(self.terms)
        level = 0
        while len(vectors) > 2:
            reduced = []
            for index in range(0, len(vectors) - 3, 4):
                reduced += compress_4_2(m, *vectors[index:index + 4], self._width, f"l{level}_c{index // 4}")
            rest = vectors[len(vectors) - len(vectors) % 4:]
            if len(rest) == 3:
                reduced += compress_3_2(m, *rest, self._width, f"l{level}_r")
            else:
                reduced += rest
            vectors = reduced
            level += 1
        vectors += [0] * (2 - len(vectors))
        m.d.comb += [self.sum.eq(vectors[0]), self.carry.eq(vectors[1])]
        return m
