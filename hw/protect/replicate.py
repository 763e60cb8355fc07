"""Replication: a majority voter for TMR (and any odd number of replicas) and a DMR comparator."""

from typing import NamedTuple

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def _check_width(width: int) -> int:
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width: {width!r} must be an integer >= 1")
    return width


class Voter(wiring.Component):
    """Bitwise majority of ``n`` replicas with a disagreement flag.

    Combinational. Ports:

    * ``inputs`` In(ArrayLayout(width, n)): the replicas;
    * ``out`` Out(width): per bit, the value held by more than half the replicas,
      so any error confined to fewer than ``n / 2`` replicas is masked;
    * ``faulty`` Out(n): bit ``i`` is high when replica ``i`` differs from ``out``;
    * ``disagree`` Out(1): some replica differs from ``out`` (the TMR alarm: the
      error was masked, report it so the flipped replica does not stay latent).

    ``n`` must be odd and >= 3. For ``n = 3`` each output bit is
    ``ab | ac | bc``; larger ``n`` counts ones per bit.
    """

    def __init__(self, width: int, n: int = 3):
        self._width = _check_width(width)
        if not isinstance(n, int) or n < 3 or n % 2 == 0:
            raise ValueError(f"n: {n!r} must be an odd integer >= 3")
        self._n = n
        super().__init__({
            "inputs": In(data.ArrayLayout(width, n)),
            "out": Out(width),
            "faulty": Out(n),
            "disagree": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        voted = add_voter_logic(m, [self.inputs[i] for i in range(self._n)])
        m.d.comb += [self.out.eq(voted.out), self.faulty.eq(voted.faulty), self.disagree.eq(voted.disagree)]
        return m


class Voted(NamedTuple):
    """Signals :func:`add_voter_logic` adds; same meaning as :class:`Voter`'s outputs."""

    out: Signal
    faulty: Signal
    disagree: Signal


def add_voter_logic(m: Module, replicas, prefix: str = "") -> Voted:
    """Add :class:`Voter`'s logic over ``replicas`` (an odd number >= 3 of equal-width values) to ``m``.

    Signals are named ``<prefix>voted``, ``<prefix>faulty``, ``<prefix>disagree``.
    Logic added in place keeps register replicas' names in the emitted Verilog
    (a register driving a submodule's input port is renamed after the port).
    """
    replicas = [Value.cast(replica).as_unsigned() for replica in replicas]
    n, width = len(replicas), len(replicas[0])
    if n < 3 or n % 2 == 0 or any(len(replica) != width for replica in replicas):
        raise ValueError(f"replicas: need an odd number >= 3 of equal widths, got widths "
                         f"{[len(replica) for replica in replicas]}")
    voted = Voted(Signal(width, name=f"{prefix}voted"), Signal(n, name=f"{prefix}faulty"),
                  Signal(name=f"{prefix}disagree"))
    if n == 3:
        a, b, c = replicas
        m.d.comb += voted.out.eq((a & b) | (a & c) | (b & c))
    else:
        m.d.comb += voted.out.eq(Cat(sum(replica[bit] for replica in replicas) > n // 2
                                     for bit in range(width)))
    m.d.comb += [voted.faulty[i].eq(replica != voted.out) for i, replica in enumerate(replicas)]
    m.d.comb += voted.disagree.eq(voted.faulty.any())
    return voted


class Comparator(wiring.Component):
    """DMR comparator: flags any difference between two copies.

    Combinational. Ports: ``a`` In(width), ``b`` In(width), ``mismatch`` Out(1)
    (high when any bit differs). It detects, never corrects: which copy is right
    is unknown.
    """

    def __init__(self, width: int):
        self._width = _check_width(width)
        super().__init__({"a": In(width), "b": In(width), "mismatch": Out(1)})

    def elaborate(self, platform):
        m = Module()
        difference = Signal(self._width, name="difference")
        m.d.comb += [difference.eq(self.a ^ self.b), self.mismatch.eq(difference.any())]
        return m
