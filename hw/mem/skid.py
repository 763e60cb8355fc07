"""A stream register slice whose ``ready`` is a register (a skid buffer)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class Skid(wiring.Component):
    """One stream stage between a producer and a consumer that cuts both directions.

    ``o.valid`` and ``o.payload`` are registers, and so is ``i.ready``: neither the
    producer's ``valid`` nor the consumer's ``ready`` reaches the other side in the same
    cycle, so a consumer whose ``ready`` is a deep path (an engine's back-pressure) adds
    nothing to the producer's logic (a FIFO's level, an arbiter's credits).

    Contract (``amaranth.lib.stream`` rules on both sides): a beat taken at ``i`` appears
    at ``o`` from the next cycle on, in order; one beat per cycle when the consumer is
    always ready; two beats of storage (the output register and a spare that catches the
    beat taken in the cycle the consumer stalls). Reset (or a ``ResetInserter``) empties it.
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        spare = Signal(self.shape, name="spare")
        spare_valid = Signal(name="spare_valid")
        taken = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~spare_valid)
        with m.If(~self.o.valid | self.o.ready):  # the output register is free this cycle
            with m.If(spare_valid):
                m.d.sync += [self.o.payload.eq(spare), self.o.valid.eq(1), spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(taken)]
        with m.Elif(taken):  # the consumer stalls: the beat taken waits in the spare
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m
