"""A stream unit that applies a fixed-latency element block to ``lanes`` elements per beat."""

from typing import Callable

from amaranth.hdl import Module
from amaranth.lib import wiring

from ..arith.fixed import FixedFormat
from .interface import element_signature
from .pipeline import stage


class Elementwise(wiring.Component):
    """``lanes`` copies of an element block between the element streams ``inp`` and ``out``.

    ``block_factory()`` returns a new block: a component with ports ``x``
    (``input_fmt``), ``y`` (``output_fmt``), ``en`` and a ``latency`` property
    (cycles from ``x`` to ``y`` while ``en`` is high; 0: combinational), such as
    :class:`hw.nonlinear.exp.Exp`. Lane ``l`` of every beat goes through block
    ``lane_l``; ``count`` and ``last`` travel alongside in registers of the same
    depth, so the output row has exactly the input row's beat structure. Lanes
    at or beyond ``count`` are computed too and their outputs are don't-care.

    Flow control (``stall``): the whole pipeline advances on a rising edge where
    its output slot is empty or being taken (``en = ~out.valid | out.ready``),
    and ``inp.ready`` equals ``en``. So a beat leaves exactly :attr:`latency`
    cycles after it entered while ``out.ready`` stays high, one beat per cycle;
    a low ``out.ready`` with a valid output stalls every stage (and ``inp``) in
    the same cycle, and nothing is lost or reordered. ``inp.ready`` depends
    combinationally on ``out.ready``. With a latency-0 block the unit is a
    combinational pass-through (``inp.ready = out.ready``).
    """

    def __init__(self, block_factory: Callable[[], wiring.Component], input_fmt: FixedFormat,
                 output_fmt: FixedFormat, lanes: int):
        self.blocks = [block_factory() for _ in range(lanes)]
        latencies = {block.latency for block in self.blocks}
        if len(latencies) != 1:
            raise ValueError(f"the block factory made blocks of different latencies {sorted(latencies)}")
        self._latency = latencies.pop()
        self.lanes = lanes
        super().__init__(element_signature(input_fmt, output_fmt, lanes))

    @property
    def latency(self) -> int:
        """Cycles from an input beat moving to its output beat becoming valid, with ``out.ready`` high."""
        return self._latency

    #: How the unit reacts to a low ``out.ready`` (see the class docstring).
    flow_control = "stall"

    def elaborate(self, platform):
        m = Module()
        inp, out = self.inp, self.out
        for lane, block in enumerate(self.blocks):
            m.submodules[f"lane_{lane}"] = block
            m.d.comb += [block.x.eq(inp.payload.data[lane]), out.payload.data[lane].eq(block.y)]

        if self.latency == 0:
            m.d.comb += [out.valid.eq(inp.valid), inp.ready.eq(out.ready)]
            m.d.comb += [block.en.eq(1) for block in self.blocks]
            side = inp.payload
        else:
            en = ~out.valid | out.ready
            m.d.comb += inp.ready.eq(en)
            m.d.comb += [block.en.eq(en) for block in self.blocks]
            valid, side = inp.valid, inp.payload
            for depth in range(1, self.latency + 1):
                valid = stage(m, en, f"valid_{depth}", valid)
                side = {"last": stage(m, en, f"last_{depth}", side["last"]),
                        **({"count": stage(m, en, f"count_{depth}", side["count"])} if self.lanes > 1 else {})}
            m.d.comb += out.valid.eq(valid)
        m.d.comb += out.payload.last.eq(side["last"])
        if self.lanes > 1:
            m.d.comb += out.payload.count.eq(side["count"])
        return m
