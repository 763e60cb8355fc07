"""Processing element of an output-stationary systolic array."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.widths import accumulator_signed
from .interface import StepTag, accumulator_shape
from .mac import CompressedMac, SYSTOLIC_MAC, check_mac, part_shape, parts, split_widths

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
    a_shape : Shape
        Shape of ``a`` (signed or unsigned, any width), and of ``b`` unless ``b_shape`` is given.
    acc_width : int
        Width of ``acc`` and ``result``; signed when either operand is (the product is then exact
        in two's complement whatever the other operand's signedness).
    forward : set of str
        Which of ``"a"``, ``"b"``, ``"tag"`` this PE passes on; the ``*_out``
        ports of the others do not exist.
    readout : str
        ``"shift"`` or ``"bus"`` (above).
    mac : str
        ``"baseline"``: ``acc`` and ``result`` are single registers, the sum is
        formed by a multiplier and an adder. ``"opt1"`` (:mod:`hw.tpe.mac`):
        ``a_in`` is Booth-recoded, and its partial products with the
        accumulator's sum and carry go through one carry-save tree; every value
        above is a pair ``acc_sum``/``acc_carry`` (``result_sum``/``result_carry``,
        ``result_sum_in``/``result_carry_in``) of unsigned ``acc_width``-bit
        vectors whose total modulo ``2**acc_width`` is the value. The array
        resolves a pair with one adder where it leaves. Where the compressor tree
        splits (:func:`hw.tpe.mac.split_widths` gives ``(L, G)``) the accumulator is
        held as ``acc_sum``/``acc_carry`` (``L`` bits), ``acc_high`` (the bits above)
        and ``acc_top_sum``/``acc_top_carry`` (the tree's ``G`` upper bits of the last
        step): ``acc_high`` adds the top of step ``k`` in the cycle of step ``k + 1``
        (or the next idle one), so no carry-propagate adder follows the tree inside
        the loop. Its value is the pair ``{settled, acc_sum}``, ``{0, acc_carry}`` with
        ``settled = acc_high + acc_top_sum + acc_top_carry - constants``; in
        ``"bus"`` readout the ports carrying it are ``value_sum``/``value_carry``.
    b_shape : Shape or None
        Shape of ``b``; ``None``: ``a_shape``.
    """

    def __init__(self, a_shape, acc_width: int, *, b_shape=None, forward=frozenset({"a", "b", "tag"}),
                 readout: str = "shift", mac: str = "baseline"):
        self._a_shape = Shape.cast(a_shape)
        self._b_shape = self._a_shape if b_shape is None else Shape.cast(b_shape)
        self._acc_shape = accumulator_shape(acc_width, accumulator_signed(self._a_shape.signed,
                                                                          self._b_shape.signed))
        self._mac = check_mac(mac, SYSTOLIC_MAC)
        self._parts = parts(mac)
        value = part_shape(mac, self._acc_shape)
        self._forward = frozenset(forward)
        unknown = self._forward - {"a", "b", "tag"}
        if unknown:
            raise ValueError(f"forward: unknown members {sorted(unknown)}")
        if readout not in READOUTS:
            raise ValueError(f"readout: {readout!r} is not one of {READOUTS}")
        self._readout = readout
        members = {
            "a_in": In(self._a_shape),
            "b_in": In(self._b_shape),
            "tag_in": In(StepTag),
        }
        if readout == "shift":
            members["drain"] = In(1)
            for part in self._parts:
                members |= {f"result{part}_in": In(value), f"result{part}": Out(value)}
        else:
            members["done"] = Out(1)
            for name in self.readout_names:
                members[name] = Out(value)
        outputs = {"a": self._a_shape, "b": self._b_shape, "tag": StepTag}
        for name in sorted(self._forward):
            members[f"{name}_out"] = Out(outputs[name])
        super().__init__(members)

    @property
    def _split(self):
        if self._mac != "opt1":
            return None
        return split_widths(1, self._a_shape, self._b_shape, self._acc_shape.width)

    @property
    def readout_names(self) -> list[str]:
        """``"bus"`` readout: the ports that carry the accumulator's value (a pair for ``opt1``)."""
        stem = "value" if self._split else "acc"
        return [f"{stem}{part}" for part in self._parts]

    def elaborate(self, platform):
        m = Module()
        if self._split:
            self._elaborate_split(m)
        else:
            self._elaborate_whole(m)
        return m

    def _forward_operands(self, m) -> None:
        for name in sorted(self._forward):
            m.d.sync += getattr(self, f"{name}_out").eq(getattr(self, f"{name}_in"))

    def _done(self, m) -> None:
        m.d.sync += self.done.eq(self.tag_in.valid & self.tag_in.last)

    def _capture(self, m, total) -> None:
        """Shift readout: the job's finished value (``total``, one value per part) into ``result``."""
        for part, new in zip(self._parts, total):
            result = getattr(self, f"result{part}")
            with m.If(self.tag_in.valid & self.tag_in.last):
                m.d.sync += result.eq(new)
            with m.If(self.drain):
                m.d.sync += result.eq(getattr(self, f"result{part}_in"))

    def _elaborate_split(self, m) -> None:
        low, guard = self._split
        width = self._acc_shape.width
        first = self.tag_in.first
        mac = CompressedMac(1, self._a_shape, width, 2, b_shape=self._b_shape, deferred=True)
        m.submodules.mac = mac
        pair = [Signal(low, name="acc_sum"), Signal(low, name="acc_carry")]
        high = Signal(width - low, name="acc_high")
        # Reset and idle value: a top worth nothing (its constants cancel).
        top = [Signal(guard, name="acc_top_sum", init=mac.constants), Signal(guard, name="acc_top_carry")]
        settled = Signal(width - low, name="settled")  # acc_high with the last step's top added
        start = Signal(width - low, name="start")      # the bits above L before this step's top
        m.d.comb += [
            settled.eq(high + top[0] + top[1] - mac.constants),
            start.eq(Mux(first, 0, settled)),
            mac.a[0].eq(self.a_in), mac.b[0].eq(self.b_in),
        ]
        for addend, held in zip(mac.addends, pair):
            m.d.comb += addend.eq(Mux(first, 0, held))
        with m.If(self.tag_in.valid):
            m.d.sync += [pair[0].eq(mac.sum), pair[1].eq(mac.carry), high.eq(start),
                         top[0].eq(mac.top_sum), top[1].eq(mac.top_carry)]
        with m.Else():
            m.d.sync += [high.eq(settled), top[0].eq(mac.constants), top[1].eq(0)]
        self._forward_operands(m)
        if self._readout == "bus":
            self._done(m)
            value = getattr(self, self.readout_names[0]), getattr(self, self.readout_names[1])
            m.d.comb += [value[0].eq(Cat(pair[0], settled)), value[1].eq(pair[1])]
        else:
            finished = Signal(width - low, name="finished")  # the bits above L after this step
            m.d.comb += finished.eq(start + mac.top_sum + mac.top_carry - mac.constants)
            self._capture(m, [Cat(mac.sum, finished), mac.carry])

    def _elaborate_whole(self, m) -> None:
        if self._readout == "bus":
            acc = [getattr(self, f"acc{part}") for part in self._parts]
        else:
            acc = [Signal(part_shape(self._mac, self._acc_shape), name=f"acc{part}") for part in self._parts]
        # Assigning to acc_width-bit signals wraps modulo 2**acc_width, which is the
        # documented behaviour (and the golden model's) if K exceeds k_max.
        total = [Signal(value.shape(), name=f"total{part}") for value, part in zip(acc, self._parts)]
        if self._mac == "baseline":
            m.d.comb += total[0].eq(Mux(self.tag_in.first, 0, acc[0]) + self.a_in * self.b_in)
        else:
            m.submodules.mac = mac = CompressedMac(1, self._a_shape, self._acc_shape.width, 2, b_shape=self._b_shape)
            m.d.comb += [mac.a[0].eq(self.a_in), mac.b[0].eq(self.b_in),
                         total[0].eq(mac.sum), total[1].eq(mac.carry)]
            for n, value in enumerate(acc):
                m.d.comb += mac.addends[n].eq(Mux(self.tag_in.first, 0, value))

        self._forward_operands(m)
        with m.If(self.tag_in.valid):
            m.d.sync += [value.eq(new) for value, new in zip(acc, total)]
        if self._readout == "bus":
            self._done(m)
        else:
            self._capture(m, total)
