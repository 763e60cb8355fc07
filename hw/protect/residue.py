"""Mod-3 residue checks of multiply-accumulate paths.

Why mod 3: ``2**i mod 3`` is 1 or 2, never 0, so changing any single bit of a
value changes its residue. An error that changes a value by a multiple of 3
(some multi-bit errors) goes unseen. Residues commute with the datapath:
``(x + y) mod 3 = (x mod 3 + y mod 3) mod 3`` and the same for products, so a
2-bit shadow computed from the operands predicts the residue of a result.

Precondition of every check here: the result is the exact sum (no wrap at the
accumulator width; ``hw.arith.widths.accumulator_width`` sizes accumulators so
for ``K <= k_max``). A wrapped result changes by ``2**width``, which is not a
multiple of 3, and would be flagged.

Residues of signed values are those of the integer (``-1 mod 3 = 2``), as
Python's ``%`` computes them.
"""

from amaranth.hdl import Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

RESIDUE = unsigned(2)


def _mod3(m: Module, value, name: str) -> Signal:
    """A named signal holding ``value mod 3`` for a ``value`` in 0..4 (a sum or product of two residues).

    Named signals, not nested expressions: an expression used twice would be
    copied into each use, and the copies multiply at every level of a tree.
    """
    raw = Signal(3, name=f"{name}_raw")
    residue = Signal(RESIDUE, name=name)
    m.d.comb += [raw.eq(value), residue.eq(Mux(raw >= 3, raw - 3, raw)[:2])]
    return residue


def residue_mod3(m: Module, value, name: str) -> Signal:
    """Add to ``m`` the logic of ``value mod 3`` (0..2) for a signed or unsigned value; return it.

    Combinational. Base-4 digits (``4 mod 3 = 1``) are reduced to 0..2 and summed
    modulo 3 in a balanced tree of 2-bit mod-3 adders; for a signed value the sign
    bit, whose weight is ``-2**(width-1)``, is corrected at the end. The result and
    the tree's nodes are signals named ``<name>`` and ``<name>_<level>_<index>``.
    """
    value = Value.cast(value)
    width, signed = len(value), value.shape().signed
    bits = value.as_unsigned()
    residues = []
    for low in range(0, width, 2):
        digit = bits[low:low + 2]
        residues.append(Mux(digit == 3, 0, digit)[:2] if len(digit) == 2 else digit)
    level = 0
    while len(residues) > 1:
        paired = [_mod3(m, x + y, f"{name}_{level}_{n}")
                  for n, (x, y) in enumerate(zip(residues[::2], residues[1::2]))]
        residues = paired + residues[len(paired) * 2:]
        level += 1
    if signed:
        # The unsigned view counted the sign bit as +2**(w-1); the integer has -2**(w-1),
        # i.e. subtract 2**w: add 2 (w even, 2**w = 1 mod 3) or 1 (w odd) per sign bit.
        correction = Mux(bits[width - 1], 2 if width % 2 == 0 else 1, 0)
        return _mod3(m, residues[0] + correction, name)
    result = Signal(RESIDUE, name=name)
    m.d.comb += result.eq(residues[0])
    return result


def _mac_residue(m: Module, a, b, name: str) -> Signal:
    """``(a * b) mod 3`` from the operands' residues."""
    return _mod3(m, residue_mod3(m, a, f"{name}_a") * residue_mod3(m, b, f"{name}_b"), name)


class Mod3Residue(wiring.Component):
    """``residue = value mod 3``. Combinational. Ports: ``value`` In(shape), ``residue`` Out(2)."""

    def __init__(self, shape):
        self._shape = Shape.cast(shape)
        super().__init__({"value": In(self._shape), "residue": Out(RESIDUE)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.residue.eq(residue_mod3(m, self.value, "value_residue"))
        return m


class MacResidueChecker(wiring.Component):
    """Checks one multiply-accumulate step ``result == addend + a * b`` through residues.

    Combinational. Ports: ``a``, ``b`` In(operand_shape); ``addend``, ``result``
    In(acc_shape); ``error`` Out(1), high when
    ``result mod 3 != (addend + (a mod 3)(b mod 3)) mod 3``. Catches every
    single-bit error of ``result`` (and of the adder or multiplier output that
    produced it); misses errors that are multiples of 3.
    """

    def __init__(self, operand_shape, acc_shape):
        self._operand_shape, self._acc_shape = Shape.cast(operand_shape), Shape.cast(acc_shape)
        super().__init__({
            "a": In(self._operand_shape),
            "b": In(self._operand_shape),
            "addend": In(self._acc_shape),
            "result": In(self._acc_shape),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        product = _mac_residue(m, self.a, self.b, "product")
        expected = _mod3(m, residue_mod3(m, self.addend, "addend") + product, "expected")
        actual = residue_mod3(m, self.result, "actual")
        m.d.comb += self.error.eq(expected != actual)
        return m


class MacResidueShadow(wiring.Component):
    """A 2-bit shadow accumulator that follows an accumulator register's residue.

    Registered, same timing as an output-stationary PE's accumulator: when
    ``valid``, ``shadow <= ((0 if first else shadow) + (a mod 3)(b mod 3)) mod 3``
    at the clock edge, in the same cycle in which the accumulator takes
    ``(0 if first else acc) + a * b``. ``error`` (combinational from the two
    registers) is high when ``acc mod 3 != shadow``: every single-bit upset of the
    accumulator register, or an error of its adder or multiplier, is flagged
    from the cycle after it lands until the accumulator is restarted by ``first``.
    Both registers must reset to residue 0 (the accumulator to 0).

    Ports: ``a``, ``b`` In(operand_shape); ``valid``, ``first`` In(1); ``acc``
    In(acc_shape), the accumulator register's current value; ``error`` Out(1).
    Register: ``shadow`` (2 bits).
    """

    def __init__(self, operand_shape, acc_shape):
        self._operand_shape, self._acc_shape = Shape.cast(operand_shape), Shape.cast(acc_shape)
        super().__init__({
            "a": In(self._operand_shape),
            "b": In(self._operand_shape),
            "valid": In(1),
            "first": In(1),
            "acc": In(self._acc_shape),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shadow = Signal(RESIDUE, name="shadow")
        product = _mac_residue(m, self.a, self.b, "product")
        following = _mod3(m, Mux(self.first, 0, shadow) + product, "following")
        with m.If(self.valid):
            m.d.sync += shadow.eq(following)
        m.d.comb += self.error.eq(residue_mod3(m, self.acc, "acc") != shadow)
        return m
