"""The row engines: opcodes ``LAYERNORM`` and ``SOFTMAX``, rows of activations through a nonlinear row unit.

One class, :class:`RowEngine`, serves both: it reads ``rows`` rows of ``n`` activation
containers (row ``r`` at ``src + r*src_stride``, ``act_bytes`` per element, the code sign-
or zero-extended as the activation format says), converts every element into the unit's
input format, streams the rows through the unit (:class:`hw.nonlinear.layernorm.LayerNorm`
or :class:`hw.nonlinear.softmax.Softmax`, ``lanes`` elements per beat), converts the
unit's output and writes the rows (row ``r`` at ``dst + r*dst_stride``, the same
containers; in the last beat of a row only the bytes of elements below ``n`` are written):

* ``LAYERNORM``: the golden's :func:`sim.golden.moevit.fixed.feature_layernorm`: ``act ->
  LN input`` (``requantize`` with the network's rounding and overflow), the unit with
  ``gamma``/``beta``, ``LN output -> act``. The parameters are read from ``params``: ``n``
  pairs (:func:`params_bytes` each), pair ``j`` holding ``gamma[j]`` in its low half and
  ``beta[j]`` in its high half, each a code of the unit's gamma / beta format in a
  ``params_bytes``-byte container; the row is padded to whole beats. They are loaded into
  the unit's parameter memory once per operator, before any row enters the unit.
* ``SOFTMAX``: the golden's :func:`sim.golden.moevit.fixed.feature_softmax`: ``act ->
  softmax input``, the unit; the probabilities are written as codes of the unit's output
  format (``u1.15`` ...) in the activation containers, zero-extended (sign-extended for a
  signed output format), so a ``LINEAR`` reads them like any activation rows.

Dataflow (``E`` elements per memory beat, ``L`` the unit's lanes)::

    src rows ─► convert (E lanes) ─► regroup E→L ─► unit ─► convert (L lanes) ─► regroup L→E ─► dst rows
    params   ─────────────────────► regroup E'→L ─► unit.params   (LAYERNORM)

Timing: 4 cycles of checks; then every row's read request and write request (and the
parameters' read request) go out as fast as the ports take them, so rows stream while
the unit works. The unit takes a beat per cycle while it has a free row buffer, so an
operator moves ``min(E, L)`` elements per cycle when memory keeps up and rows are long
against the unit's row latency; it takes about ``rows * ceil(n / min(E, L))`` cycles plus
the checks, the parameter load (``ceil(n / L)`` cycles before the first row enters) and
the latency of memory and unit. ``mem_stall`` is high in a running cycle in which no
read or write beat moved while the engine waited for read data, for the write port to
take a beat, or for the last write responses.

Errors (before any memory access; the first that applies): ``BAD_FORMAT`` (a flag or
``fmt`` set), ``BAD_SIZE`` (``rows`` or ``n`` zero, ``n`` above the unit's ``n_max``),
``BAD_ADDRESS`` (:class:`hw.vit.engine.TensorCheck` of src and dst, ``rows`` rows of
``n*act_bytes`` bytes, and of the parameters, one row of ``n`` pairs).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.fixed import FixedFormat, Overflow, Rounding, requantize_hw
from hw.nonlinear.interface import INPUT_STREAM, OUTPUT_STREAM
from hw.nonlinear.layernorm import PARAMS_STREAM, LayerNorm, LayerNormSpec
from hw.nonlinear.softmax import Softmax, SoftmaxSpec

from .descriptors import ERROR
from .engine import EngineControl, RowRequests, TensorCheck, check_widths, desc_field, engine_members
from .regroup import Regroup, beat_count, row_layout

#: The opcode each unit's engine runs.
OPCODE_OF = {LayerNormSpec: "LAYERNORM", SoftmaxSpec: "SOFTMAX"}


def params_bytes(gamma: FixedFormat, beta: FixedFormat) -> int:
    """Bytes of the container of one parameter code: 1, 2 or 4 (a pair is twice that)."""
    width = max(gamma.width, beta.width)
    for size in (1, 2, 4):
        if width <= 8 * size:
            return size
    raise ValueError(f"gamma/beta of {width} bits do not fit a 4-byte container")


def beats_and_tail(n, per_beat: int):
    """``(ceil(n / per_beat), elements in the last beat)`` of a row of ``n`` elements, ``per_beat`` a power of
    two (the tail is ``per_beat`` when it divides ``n``)."""
    log = per_beat.bit_length() - 1
    tail = Mux(n[:log].any(), n[:log], per_beat) if log else 1
    return (n + per_beat - 1) >> log, tail


def feed(m: Module, data, inp, *, lanes: int, element, tail, open_):
    """Memory beats of a read client's ``data`` stream into the row stream ``inp`` while ``open_``: element
    ``j`` is ``element(data bits, j)``, ``count`` is ``tail`` on a request's last beat (a row's). Returns
    whether a beat moved."""
    m.d.comb += [inp.valid.eq(data.valid & open_), data.ready.eq(inp.ready & open_),
                 inp.payload.last.eq(data.payload.last)]
    for j in range(lanes):
        m.d.comb += inp.payload.data[j].eq(element(data.payload.data, j))
    if lanes > 1:
        m.d.comb += inp.payload.count.eq(Mux(data.payload.last, tail, lanes))
    return data.valid & data.ready


class Convert(wiring.Component):
    """A register stage applying ``convert`` to every element of a row stream of ``lanes`` elements
    (``count`` and ``last`` pass unchanged); one beat per cycle, ``inp.ready = ~valid | out.ready``."""

    def __init__(self, convert, in_shape, out_shape, lanes: int):
        self._convert, self.lanes = convert, lanes
        super().__init__({"inp": In(stream.Signature(row_layout(in_shape, lanes))),
                          "out": Out(stream.Signature(row_layout(out_shape, lanes)))})

    def elaborate(self, platform):
        m = Module()
        inp, out = self.inp, self.out
        valid = Signal(name="valid")
        m.d.comb += [out.valid.eq(valid), inp.ready.eq(~valid | out.ready)]
        with m.If(inp.valid & inp.ready):
            m.d.sync += [valid.eq(1), out.payload.last.eq(inp.payload.last)]
            if self.lanes > 1:
                m.d.sync += out.payload.count.eq(inp.payload.count)
            for lane in range(self.lanes):
                m.d.sync += out.payload.data[lane].eq(self._convert(inp.payload.data[lane]))
        with m.Elif(out.ready):
            m.d.sync += valid.eq(0)
        return m


class RowEngine(wiring.Component):
    """The ``LAYERNORM`` or ``SOFTMAX`` engine (see the module docstring), chosen by the unit's ``spec``
    (a :class:`~hw.nonlinear.layernorm.LayerNormSpec` or :class:`~hw.nonlinear.softmax.SoftmaxSpec`).

    ``rounding`` and ``overflow`` are the network's: they convert activations into the unit's input
    format and its output back. Reads: ``reads[0]`` the rows, ``reads[1]`` the parameters
    (``LAYERNORM``); writes: ``writes[0]`` the rows.
    """

    def __init__(self, *, spec, addr_width: int, data_width: int, act: FixedFormat, act_bytes: int,
                 rounding: Rounding, overflow: Overflow):
        if type(spec) not in OPCODE_OF:
            raise ValueError(f"spec must be a LayerNormSpec or a SoftmaxSpec, not {type(spec).__name__}")
        self._log_bytes, self._log_act = check_widths(addr_width=addr_width, data_width=data_width,
                                                      act_bytes=act_bytes)
        self.opcode = OPCODE_OF[type(spec)]
        self.spec, self.addr_width, self.data_width = spec, addr_width, data_width
        self.act, self.act_bytes = act, act_bytes
        self.rounding, self.overflow = Rounding(rounding), Overflow(overflow)
        if act.width > 8 * act_bytes:
            raise ValueError(f"act {act.describe()} ({act.width} bits) does not fit act_bytes = {act_bytes}")
        if self.opcode == "SOFTMAX" and spec.output.width > 8 * act_bytes:
            raise ValueError(f"the softmax output {spec.output.describe()} does not fit act_bytes = {act_bytes}")
        self.params_bytes = params_bytes(spec.gamma, spec.beta) if self.opcode == "LAYERNORM" else 0
        self.unit = LayerNorm(spec) if self.opcode == "LAYERNORM" else Softmax(spec)
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width,
                                        read_clients=2 if self.params_bytes else 1, write_clients=1))

    @property
    def lanes(self) -> int:
        """Elements per data beat."""
        return self.data_width // 8 // self.act_bytes

    @property
    def unit_latency(self) -> int:
        """Cycles from a row's last beat into the unit to its first beat out (the unit's ``latency``)."""
        return self.unit.latency

    @property
    def pair_lanes(self) -> int:
        """(gamma, beta) pairs per data beat."""
        return self.data_width // 16 // self.params_bytes

    def elaborate(self, platform):
        m = Module()
        spec, act, opcode = self.spec, self.act, self.opcode
        lanes = self.lanes
        container = 8 * self.act_bytes
        unit = m.submodules.unit = self.unit

        def field(name):
            return desc_field(self.desc, opcode, name)

        control = m.submodules.control = EngineControl(check_cycles=TensorCheck.latency)
        m.d.comb += [control.start.eq(self.start), self.busy.eq(control.busy), self.done.eq(control.done),
                     self.error.eq(control.error)]

        # ---- checks: sampled in the start cycle, decided TensorCheck.latency cycles later
        rows, n = field("rows"), field("n")
        tensors = {"src": ("src", "src_stride", rows, n << self._log_act),
                   "dst": ("dst", "dst_stride", rows, n << self._log_act)}
        if self.params_bytes:
            pair_log = (2 * self.params_bytes).bit_length() - 1
            tensors["params"] = ("params", None, 1, n << pair_log)
        address_ok = []
        for name, (base, stride, count, row_bytes) in tensors.items():
            check = m.submodules[f"check_{name}"] = TensorCheck(addr_width=self.addr_width,
                                                                align=self.data_width // 8)
            m.d.comb += [check.sample.eq(control.check), check.base.eq(field(base)), check.rows.eq(count),
                         check.stride.eq(field(stride) if stride else 0), check.row_bytes.eq(row_bytes)]
            address_ok.append(check.ok)
        format_bad = Signal(name="format_bad")
        size_bad = Signal(name="size_bad")
        row_beats = Signal(16, name="row_beats")
        tail = Signal(range(lanes + 1), name="tail")  # elements in the last beat of a row
        beats_now, tail_now = beats_and_tail(n, lanes)
        with m.If(control.check):
            m.d.sync += [format_bad.eq(self.desc[8:24].any()),
                         size_bad.eq(~rows.any() | ~n.any() | (n > spec.n_max)),
                         row_beats.eq(beats_now), tail.eq(tail_now)]
        m.d.comb += control.fault.eq(
            format_bad * ERROR["BAD_FORMAT"]
            | (~format_bad & size_bad) * ERROR["BAD_SIZE"]
            | (~format_bad & ~size_bad & ~Cat(*address_ok).all()) * ERROR["BAD_ADDRESS"])

        # ---- requests: every row of src and dst (and the parameters), each as soon as its port takes it
        requesters = []
        for name, client in (("src", self.reads[0]), ("dst", self.writes[0])):
            requester = m.submodules[f"requests_{name}"] = RowRequests(addr_width=self.addr_width)
            m.d.comb += [requester.load.eq(control.go), requester.base.eq(field(name)),
                         requester.stride.eq(field(f"{name}_stride")), requester.count.eq(rows),
                         requester.beats.eq(row_beats)]
            wiring.connect(m, requester.req, wiring.flipped(client.req))
            requesters.append(requester)

        rows_in = Signal(32, name="rows_in")  # rows whose last read beat has not been taken
        rows_out = Signal(32, name="rows_out")  # rows whose last write beat has not been taken
        with m.If(control.go):
            m.d.sync += [rows_in.eq(rows), rows_out.eq(rows)]

        # ---- read side: containers -> the unit's input format -> L lanes per beat
        rd = self.reads[0].data
        convert_in = m.submodules.convert_in = Convert(self._input_convert, unsigned(act.width), spec.input.shape(),
                                                       lanes)
        to_unit = m.submodules.to_unit = Regroup(spec.input.shape(), in_lanes=lanes, out_lanes=spec.lanes)
        wiring.connect(m, convert_in.out, to_unit.inp)
        read_moved = feed(m, rd, convert_in.inp, lanes=lanes, tail=tail, open_=rows_in.any(),
                          element=lambda bits, j: bits[j * container:j * container + act.width])
        with m.If(read_moved & rd.payload.last):
            m.d.sync += rows_in.eq(rows_in - 1)
        read_wait = rd.ready & ~rd.valid

        # The rows enter the unit once its parameters are loaded.
        loaded = Signal(name="params_loaded")
        unit_in = getattr(unit, INPUT_STREAM)
        m.d.comb += [unit_in.valid.eq(to_unit.out.valid & loaded), to_unit.out.ready.eq(unit_in.ready & loaded),
                     unit_in.payload.eq(to_unit.out.payload)]
        if self.params_bytes:
            read_moved, read_wait = self._parameters(m, unit, control, n, loaded, requesters, read_moved, read_wait)
        else:
            m.d.comb += loaded.eq(1)

        # ---- write side: the unit's output format -> activation containers, E lanes per beat
        convert_out = m.submodules.convert_out = Convert(self._output_convert, spec.output.shape(),
                                                         self._written_shape, spec.lanes)
        from_unit = m.submodules.from_unit = Regroup(self._written_shape, in_lanes=spec.lanes, out_lanes=lanes)
        wiring.connect(m, getattr(unit, OUTPUT_STREAM), convert_out.inp)
        wiring.connect(m, convert_out.out, from_unit.inp)
        wr = self.writes[0].data
        beat = from_unit.out
        m.d.comb += [wr.valid.eq(beat.valid), beat.ready.eq(wr.ready)]
        lane_on = Signal(lanes, name="lane_on")
        count = beat_count(beat.payload, lanes)
        m.d.comb += lane_on.eq(Cat(*(count > j for j in range(lanes))) if lanes > 1 else 1)
        for j in range(lanes):
            # Assigning the code sign- (or zero-) extends it to the container.
            m.d.comb += wr.payload.data[j * container:(j + 1) * container].eq(beat.payload.data[j])
        m.d.comb += wr.payload.strb.eq(Cat(bit.replicate(self.act_bytes) for bit in lane_on))
        write_moved = wr.valid & wr.ready
        with m.If(write_moved & beat.payload.last):
            m.d.sync += rows_out.eq(rows_out - 1)

        # ---- completion: every request issued, every row written, every write acknowledged
        outstanding = Signal(33, name="outstanding_writes")
        issued = self.writes[0].req.valid & self.writes[0].req.ready
        m.d.sync += outstanding.eq(outstanding + issued - self.writes[0].acked)
        m.d.comb += control.finished.eq(~Cat(r.pending for r in requesters).any() & ~rows_out.any()
                                        & ~outstanding.any())
        waiting = read_wait | (wr.valid & ~wr.ready) | (~rows_out.any() & outstanding.any())
        m.d.comb += self.mem_stall.eq(control.running & ~read_moved & ~write_moved & waiting)
        return m

    # ------------------------------------------------------------------ parts
    @property
    def _written_shape(self):
        """The codes written: activations (LAYERNORM) or the unit's probabilities (SOFTMAX)."""
        return self.act.shape() if self.opcode == "LAYERNORM" else self.spec.output.shape()

    def _input_convert(self, bits):
        code = bits.as_signed() if self.act.signed else bits
        return requantize_hw(code, self.act.frac, self.spec.input, self.rounding, self.overflow)

    def _output_convert(self, code):
        if self.opcode == "SOFTMAX":
            return code
        return requantize_hw(code, self.spec.output.frac, self.act, self.rounding, self.overflow)

    def _parameters(self, m, unit, control, n, loaded, requesters, read_moved, read_wait):
        """The LAYERNORM parameter load: one request of ``n`` pairs, regrouped to the unit's lanes."""
        spec, pair_lanes = self.spec, self.pair_lanes
        half = 8 * self.params_bytes
        beats = Signal(16, name="params_beats")
        tail = Signal(range(pair_lanes + 1), name="params_tail")
        beats_now, tail_now = beats_and_tail(n, pair_lanes)
        with m.If(control.check):
            m.d.sync += [beats.eq(beats_now), tail.eq(tail_now)]
        requester = m.submodules.requests_params = RowRequests(addr_width=self.addr_width)
        m.d.comb += [requester.load.eq(control.go), requester.base.eq(desc_field(self.desc, "LAYERNORM", "params")),
                     requester.stride.eq(0), requester.count.eq(1), requester.beats.eq(beats)]
        wiring.connect(m, requester.req, wiring.flipped(self.reads[1].req))
        requesters.append(requester)

        regroup = m.submodules.to_params = Regroup(unsigned(spec.gamma.width + spec.beta.width),
                                                   in_lanes=pair_lanes, out_lanes=spec.lanes)
        rd = self.reads[1].data
        due = Signal(name="params_due")  # the parameters' last beat has not been taken
        with m.If(control.go):
            m.d.sync += [due.eq(1), loaded.eq(0)]

        def pair(bits, j):  # gamma in the low half of the pair's bytes, beta in the high half
            return Cat(bits[2 * half * j:2 * half * j + spec.gamma.width],
                       bits[(2 * j + 1) * half:(2 * j + 1) * half + spec.beta.width])

        moved = feed(m, rd, regroup.inp, lanes=pair_lanes, element=pair, tail=tail, open_=due)
        with m.If(moved & rd.payload.last):
            m.d.sync += due.eq(0)
        params = getattr(unit, PARAMS_STREAM)
        out = regroup.out
        m.d.comb += [params.valid.eq(out.valid), out.ready.eq(params.ready), params.payload.last.eq(out.payload.last)]
        for lane in range(spec.lanes):
            m.d.comb += [params.payload.gamma[lane].eq(out.payload.data[lane][:spec.gamma.width]),
                         params.payload.beta[lane].eq(out.payload.data[lane][spec.gamma.width:])]
        with m.If(out.valid & out.ready & out.payload.last):
            m.d.sync += loaded.eq(1)
        return read_moved | moved, read_wait | (rd.ready & ~rd.valid)
