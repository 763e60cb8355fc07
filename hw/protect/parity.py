"""Even parity over a word: one check bit that detects every odd number of flipped bits."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _check_width(width: int) -> int:
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width: {width!r} must be an integer >= 1")
    return width


class ParityEncoder(wiring.Component):
    """Even parity bit of a word.

    Combinational. ``parity = XOR of all bits of data``, so ``data`` together with
    ``parity`` always holds an even number of ones.

    Ports: ``data`` In(width), ``parity`` Out(1).
    """

    def __init__(self, width: int):
        self._width = _check_width(width)
        super().__init__({"data": In(width), "parity": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.parity.eq(self.data.xor())
        return m


class ParityChecker(wiring.Component):
    """Checks a word against its stored even parity bit.

    Combinational. ``error`` is high when ``data`` and ``parity`` together hold an
    odd number of ones: every single-bit error (in the data or in the parity bit)
    raises it; an even number of flips goes unseen. It detects, never corrects.

    Ports: ``data`` In(width), ``parity`` In(1), ``error`` Out(1).
    """

    def __init__(self, width: int):
        self._width = _check_width(width)
        super().__init__({"data": In(width), "parity": In(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.error.eq(self.data.xor() ^ self.parity)
        return m
