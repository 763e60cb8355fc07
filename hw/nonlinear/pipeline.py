"""Pieces the fixed-latency blocks share: the block base class, enabled registers, leading zeros, ROMs."""

from amaranth.hdl import Const, Module, Shape, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for


class ElementBlock(wiring.Component):
    """A fixed-latency element block: ``y = f(x)``, advancing when ``en`` is high.

    ``spec`` is a frozen dataclass with ``input`` and ``output`` formats and a
    ``latency`` (cycles, i.e. enabled edges, from ``x`` to ``y``; 0:
    combinational). Ports: ``x`` (``spec.input``), ``y`` (``spec.output``),
    ``en``. Every register of a block loads on a rising edge where ``en`` is
    high and holds otherwise.
    """

    def __init__(self, spec):
        self.spec = spec
        super().__init__({
            "x": In(spec.input.shape()),
            "y": Out(spec.output.shape()),
            "en": In(1),
        })

    @property
    def latency(self) -> int:
        """Cycles (enabled edges) from ``x`` to ``y``."""
        return self.spec.latency


def stage(m: Module, en: Value, name: str, value, shape=None) -> Signal:
    """A register named ``name`` that loads ``value`` on a rising edge where ``en`` is high, holds otherwise."""
    value = Value.cast(value)
    reg = Signal(shape if shape is not None else value.shape(), name=name)
    with m.If(en):
        m.d.sync += reg.eq(value)
    return reg


def delayed(m: Module, en: Value, value, stages: int, name: str):
    """``value`` after ``stages`` registers ``<name>_<k>`` loading while ``en`` is high (``value`` itself for 0)."""
    value = Value.cast(value) if not hasattr(value, "shape") else value
    shape = value.shape()  # keeps a view's layout
    for k in range(stages):
        value = stage(m, en, f"{name}_{k}", value, shape)
    return value


def split_product(m: Module, en: Value, name: str, a, b) -> Value:
    """``a * b`` as two registered partial products, ``<name>_high = a * (b >> k)`` and ``<name>_low = a * b[:k]``
    (``k`` half of ``b``'s width): two multipliers of half the depth of one. Returns their exact sum for the next
    stage, ``(high << k) + low`` (combinational)."""
    a, b = Value.cast(a), Value.cast(b)
    k = b.shape().width // 2
    high = stage(m, en, f"{name}_high", a * (b >> k))
    low = stage(m, en, f"{name}_low", a * b[:k])
    return (high << k) + low


def leading_zeros(m: Module, value: Value, name: str) -> Signal:
    """Combinational count of leading zero bits of ``value`` (its width when it is zero)."""
    value = Value.cast(value)
    width = value.shape().width
    count = Signal(range(width + 1), name=name)
    m.d.comb += count.eq(width)
    # Later assignments win: scanning upwards leaves the highest set bit's count.
    for bit in range(width):
        with m.If(value[bit]):
            m.d.comb += count.eq(width - 1 - bit)
    return count


def rom(m: Module, index: Value, entries, name: str, shape=None) -> Signal:
    """Combinational read of constant ``entries`` at ``index`` (0 beyond the last entry).

    Entries beyond the largest value ``index`` can take are left out.
    """
    index = Value.cast(index)
    entries = [int(e) for e in entries][:1 << index.shape().width]
    if shape is None:
        shape = unsigned(max(1, max(bits_for(e) for e in entries)))
    out = Signal(Shape.cast(shape), name=name)
    with m.Switch(index):
        for address, entry in enumerate(entries):
            with m.Case(address):
                m.d.comb += out.eq(Const(entry, out.shape()))
        if len(entries) < 1 << index.shape().width:
            with m.Default():  # a complete case statement (Verilator's CASEINCOMPLETE)
                m.d.comb += out.eq(0)
    return out
