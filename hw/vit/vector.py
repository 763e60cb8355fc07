"""The element-wise engine: opcode ``ADD`` (residual adds), ``y = fit(x + x2)`` row by row.

``rows`` rows of ``n`` elements; element ``j`` of row ``r`` of each tensor is an
``act_bytes``-byte little-endian container at byte ``j * act_bytes`` of the row, holding
the activation code sign-extended (zero-extended for an unsigned format). Rows start at
``src + r*src_stride`` (x), ``src2 + r*src2_stride`` (x2) and ``dst + r*dst_stride`` (y),
byte addresses aligned to the data width; a row is ``ceil(n*act_bytes / data_bytes)``
beats, one read request per row and tensor, one write request per row.

``y[r, j] = fit(x[r, j] + x2[r, j], act, overflow)`` (:func:`hw.arith.fixed.fit_hw`: the
exact sum made to fit the activation format), the golden's
:func:`sim.golden.moevit.fixed.add`. The bytes of the last beat of a row past element
``n - 1`` are not written (strobes off).

Timing: the read requests of every row go out as fast as the port takes them (one per
cycle and client), so the next rows' data is in flight while a row is added; a beat of
x and the same beat of x2 are taken together into one register stage (add and fit),
which is the write data: one beat per cycle when memory keeps up. ``mem_stall`` is high
in every running cycle in which no input pair is taken (the data of x or x2 is not there,
the write port does not take the result, or the last writes are being acknowledged).

Errors (before any memory access; the first that applies): ``BAD_FORMAT`` (a flag or
``fmt`` set), ``BAD_SIZE`` (``rows`` or ``n`` zero, a row of more than 65535 beats:
which also keeps ``n * act_bytes`` within 32 bits), ``BAD_ADDRESS``
(:class:`hw.vit.engine.TensorCheck` of the three tensors, ``row_bytes = n * act_bytes``).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring

from hw.arith.fixed import FixedFormat, Overflow, fit_hw

from .descriptors import ERROR
from .engine import (MAX_REQUEST_BEATS, EngineControl, RowRequests, TensorCheck, check_widths, desc_field,
                     engine_members)


class VectorEngine(wiring.Component):
    """The ``ADD`` engine (see the module docstring). Reads: ``reads[0]`` x, ``reads[1]`` x2;
    writes: ``writes[0]`` y."""

    def __init__(self, *, addr_width: int, data_width: int, act: FixedFormat, act_bytes: int, overflow: Overflow):
        self._log_bytes, self._log_act = check_widths(addr_width=addr_width, data_width=data_width,
                                                      act_bytes=act_bytes)
        if act.width > 8 * act_bytes:
            raise ValueError(f"act {act.describe()} ({act.width} bits) does not fit act_bytes = {act_bytes}")
        self.addr_width, self.data_width = addr_width, data_width
        self.act, self.act_bytes, self.overflow = act, act_bytes, Overflow(overflow)
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width, read_clients=2,
                                        write_clients=1))

    @property
    def lanes(self) -> int:
        """Elements per data beat."""
        return self.data_width // 8 // self.act_bytes

    def elaborate(self, platform):
        m = Module()
        lanes, log_lanes = self.lanes, self._log_bytes - self._log_act
        container = 8 * self.act_bytes

        def field(name):
            return desc_field(self.desc, "ADD", name)

        control = m.submodules.control = EngineControl(check_cycles=TensorCheck.latency)
        m.d.comb += [control.start.eq(self.start), self.busy.eq(control.busy), self.done.eq(control.done),
                     self.error.eq(control.error)]

        # ---- checks: sampled in the start cycle, decided TensorCheck.latency cycles later
        rows, n = field("rows"), field("n")
        row_beats_full = (n + lanes - 1) >> log_lanes
        tensors = {"x": ("src", "src_stride"), "x2": ("src2", "src2_stride"), "y": ("dst", "dst_stride")}
        address_ok = []
        for name, (base, stride) in tensors.items():
            check = m.submodules[f"check_{name}"] = TensorCheck(addr_width=self.addr_width,
                                                                align=self.data_width // 8)
            m.d.comb += [check.sample.eq(control.check), check.base.eq(field(base)), check.rows.eq(rows),
                         check.stride.eq(field(stride)), check.row_bytes.eq(n << self._log_act)]
            address_ok.append(check.ok)
        format_bad = Signal(name="format_bad")
        size_bad = Signal(name="size_bad")
        row_beats = Signal(16, name="row_beats")
        # Lane j of the last beat of a row is written when j < n mod lanes (all when 0); the last
        # lane only when 0 (j < tail would be a constant comparison, which lint reports).
        tail_lanes = Signal(lanes, name="tail_lanes")
        tail = n[:log_lanes]
        whole = ~tail.any()
        with m.If(control.check):
            m.d.sync += [format_bad.eq(self.desc[8:24].any()),
                         size_bad.eq(~rows.any() | ~n.any() | (row_beats_full > MAX_REQUEST_BEATS)),
                         row_beats.eq(row_beats_full),
                         tail_lanes.eq(Cat(*(whole | (j < tail) for j in range(lanes - 1)), whole))]
        m.d.comb += control.fault.eq(
            format_bad * ERROR["BAD_FORMAT"]
            | (~format_bad & size_bad) * ERROR["BAD_SIZE"]
            | (~format_bad & ~size_bad & ~Cat(*address_ok).all()) * ERROR["BAD_ADDRESS"])

        # ---- requests: every row of x, x2 and y, each as soon as its port takes it
        requesters = []
        for i, (name, (base, stride)) in enumerate(tensors.items()):
            requester = m.submodules[f"requests_{name}"] = RowRequests(addr_width=self.addr_width)
            m.d.comb += [requester.load.eq(control.go), requester.base.eq(field(base)),
                         requester.stride.eq(field(stride)), requester.count.eq(rows),
                         requester.beats.eq(row_beats)]
            client = self.reads[i] if i < 2 else self.writes[0]
            wiring.connect(m, requester.req, wiring.flipped(client.req))
            requesters.append(requester)

        # ---- data: a beat of x and of x2 together -> add, fit -> the write data register
        x, x2, y = self.reads[0].data, self.reads[1].data, self.writes[0].data
        rows_in = Signal(32, name="rows_in")  # rows whose last input beat has not been taken
        out_valid = Signal(name="out_valid")
        out_data = Signal(self.data_width, name="out_data")
        out_strb = Signal(self.data_width // 8, name="out_strb")
        advance = Signal(name="advance")
        take = Signal(name="take")
        m.d.comb += [advance.eq(~out_valid | y.ready),
                     take.eq(control.running & rows_in.any() & x.valid & x2.valid & advance),
                     x.ready.eq(take), x2.ready.eq(take),
                     y.valid.eq(out_valid), y.payload.data.eq(out_data), y.payload.strb.eq(out_strb)]
        with m.If(advance):
            m.d.sync += out_valid.eq(take)
        width = self.act.width
        with m.If(take):
            for j in range(lanes):
                a = x.payload.data[j * container:j * container + width]
                b = x2.payload.data[j * container:j * container + width]
                if self.act.signed:
                    a, b = a.as_signed(), b.as_signed()
                # fit_hw returns the format's shape; assigning it sign- (or zero-) extends to the container.
                m.d.sync += out_data[j * container:(j + 1) * container].eq(fit_hw(a + b, self.act, self.overflow))
            lane_on = Signal(lanes, name="lane_on")
            m.d.comb += lane_on.eq((1 << lanes) - 1)
            with m.If(x.payload.last):
                m.d.comb += lane_on.eq(tail_lanes)
                m.d.sync += rows_in.eq(rows_in - 1)
            m.d.sync += out_strb.eq(Cat(bit.replicate(self.act_bytes) for bit in lane_on))

        # ---- completion: every row requested, every write request acknowledged, every input taken
        outstanding = Signal(33, name="outstanding_writes")
        issued = self.writes[0].req.valid & self.writes[0].req.ready
        m.d.sync += outstanding.eq(outstanding + issued - self.writes[0].acked)
        with m.If(control.go):
            m.d.sync += rows_in.eq(rows)
        m.d.comb += [control.finished.eq(~Cat(r.pending for r in requesters).any() & ~outstanding.any()
                                         & ~rows_in.any()),
                     self.mem_stall.eq(control.running & ~take)]
        return m
