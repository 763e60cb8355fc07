"""Processing element of an output-stationary systolic array."""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .interface import StepTag, accumulator_shape

READOUTS = ("shift", "bus")


class OutputStationaryPE(wiring.Component):
    """Multiply-accumulate cell that keeps its output and forwards its operands.

    Contract, per clock cycle:

    * ``a_out``/``tag_out`` register ``a_in``/``tag_in`` (they feed the PE to the
      right); ``b_out`` registers ``b_in`` (it feeds the PE below). A PE on the
      array's edge leaves out the registers nobody reads (see ``forward``), so
      every register is a real fault site.
    * When ``tag_in.valid``: ``acc <= (0 if tag_in.first else acc) + a_in * b_in``,
      wrapped to ``acc_width`` bits.

    How a finished sum leaves the PE depends on ``readout``:

    * ``"shift"``: when ``tag_in.last`` is also set, the sum is written to
      ``result`` so the accumulator is free for the next job. When ``drain``:
      ``result <= result_in``; the array shifts finished results up one row per
      output beat this way. ``drain`` wins over a capture; the array never asks
      for both in the same cycle.
    * ``"bus"``: ``done`` is high for the one cycle after a job's last step, in
      which ``acc`` still holds the finished sum (the next job's first step
      overwrites it at the end of that cycle). The array reads it then.

    Parameters
    ----------
    operand_shape : Shape
        Shape of ``a`` and ``b`` (signed or unsigned, any width).
    acc_width : int
        Width of ``acc`` and ``result``; signed when the operands are.
    forward : set of str
        Which of ``"a"``, ``"b"``, ``"tag"`` this PE passes on; the ``*_out``
        ports of the others do not exist.
    readout : str
        ``"shift"`` or ``"bus"`` (above).
    """

    def __init__(self, operand_shape, acc_width: int, *, forward=frozenset({"a", "b", "tag"}),
                 readout: str = "shift"):
        self._operand_shape = Shape.cast(operand_shape)
        self._acc_shape = accumulator_shape(acc_width, self._operand_shape.signed)
        self._forward = frozenset(forward)
        unknown = self._forward - {"a", "b", "tag"}
        if unknown:
            raise ValueError(f"forward: unknown members {sorted(unknown)}")
        if readout not in READOUTS:
            raise ValueError(f"readout: {readout!r} is not one of {READOUTS}")
        self._readout = readout
        members = {
            "a_in": In(self._operand_shape),
            "b_in": In(self._operand_shape),
            "tag_in": In(StepTag),
        }
        if readout == "shift":
            members |= {"drain": In(1), "result_in": In(self._acc_shape), "result": Out(self._acc_shape)}
        else:
            members |= {"done": Out(1), "acc": Out(self._acc_shape)}
        outputs = {"a": self._operand_shape, "b": self._operand_shape, "tag": StepTag}
        for name in sorted(self._forward):
            members[f"{name}_out"] = Out(outputs[name])
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()

        acc = self.acc if self._readout == "bus" else Signal(self._acc_shape, name="acc")
        # Assigning to a narrower signal wraps modulo 2**acc_width, which is the
        # documented behaviour (and the golden model's) if K exceeds k_max.
        total = Signal(self._acc_shape)
        m.d.comb += total.eq(Mux(self.tag_in.first, 0, acc) + self.a_in * self.b_in)

        for name in sorted(self._forward):
            m.d.sync += getattr(self, f"{name}_out").eq(getattr(self, f"{name}_in"))
        with m.If(self.tag_in.valid):
            m.d.sync += acc.eq(total)
        if self._readout == "bus":
            m.d.sync += self.done.eq(self.tag_in.valid & self.tag_in.last)
        else:
            with m.If(self.tag_in.valid & self.tag_in.last):
                m.d.sync += self.result.eq(total)
            with m.If(self.drain):
                m.d.sync += self.result.eq(self.result_in)
        return m
