"""What every engine of the accelerator shares: the command interface and the descriptor checks.

An engine runs the operators of one or more opcodes. The descriptor processor
(:mod:`hw.vit.sequencer`) hands it one descriptor at a time:

* ``start`` is high for one cycle with ``desc`` (the 512-bit descriptor, words as
  in :mod:`hw.vit.descriptors`); ``desc`` stays stable until ``done``.
* The engine checks the descriptor first (:class:`TensorCheck` for every tensor it
  touches, its own limits for sizes). A bad descriptor ends the operator at once:
  ``done`` high for one cycle with ``error`` holding a code of
  :data:`hw.vit.descriptors.ERRORS`, nothing read or written.
* Otherwise it runs and raises ``done`` (``error`` = 0) for one cycle after the last
  write response of the operator has arrived, so the next operator reads what this
  one wrote. ``busy`` is high from the cycle after ``start`` to the ``done`` cycle.
* ``mem_stall`` is high in the cycles the engine is busy but waits for memory
  (read data not there yet, a write not accepted): the ``MEM_STALL`` counter.
* An engine never waits for anything but its own memory clients, so it cannot hang
  on a descriptor; a soft reset (the processor resets every engine while the AXI
  ports drain) returns it to idle from any state.

Memory: ``reads[i]`` / ``writes[i]`` are the engine's read and write clients
(:class:`hw.vit.axi.ReadClientSignature`, :class:`hw.vit.axi.WriteClientSignature`,
engine view); the top assigns each to a port.
"""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.nonlinear.pipeline import split_product

from .axi import ReadClientSignature, WriteClientSignature, read_request_layout
from .descriptors import DESCRIPTOR_BYTES, ERROR_BITS

DESC_BITS = 8 * DESCRIPTOR_BYTES

#: Most beats one client request may have (its 16-bit ``beats`` field).
MAX_REQUEST_BEATS = (1 << 16) - 1


def check_widths(*, addr_width: int, data_width: int, act_bytes: int = 1) -> tuple[int, int]:
    """``(log2(data_width / 8), log2(act_bytes))`` after checking the sizes an engine takes
    (``ValueError`` naming the argument otherwise)."""
    if not 1 <= addr_width <= 64:
        raise ValueError(f"addr_width must be in 1..64, not {addr_width}")
    if data_width < 32 or data_width & (data_width - 1):
        raise ValueError(f"data_width must be a power of two of at least 32, not {data_width}")
    if act_bytes < 1 or act_bytes & (act_bytes - 1) or act_bytes > data_width // 8:
        raise ValueError(f"act_bytes must be a power of two up to data_width / 8 = {data_width // 8}, "
                         f"not {act_bytes}")
    return (data_width // 8).bit_length() - 1, act_bytes.bit_length() - 1


def engine_members(*, addr_width: int, data_width: int, read_clients: int, write_clients: int) -> dict:
    """The members of an engine's signature (add the engine's own ports to them)."""
    members = {
        "start": In(1), "desc": In(unsigned(DESC_BITS)),
        "busy": Out(1), "done": Out(1), "error": Out(ERROR_BITS), "mem_stall": Out(1),
    }
    if read_clients:
        members["reads"] = Out(ReadClientSignature(addr_width, data_width)).array(read_clients)
    if write_clients:
        members["writes"] = Out(WriteClientSignature(addr_width, data_width)).array(write_clients)
    return members


def desc_field(desc, opcode: str, name: str):
    """The slice of the 512-bit descriptor value holding field ``name`` of ``opcode``."""
    from .descriptors import field_slice

    lsb, width = field_slice(opcode, name)
    return desc[lsb:lsb + width]


def desc_flag(desc, opcode: str, name: str):
    from .descriptors import FLAGS

    return desc[8 + FLAGS[opcode][name]]


class TensorCheck(wiring.Component):
    """Is a tensor of ``rows`` rows of ``row_bytes`` bytes, ``stride`` apart from ``base``, addressable?

    ``ok`` = ``base`` and ``stride`` are multiples of ``align`` bytes, ``rows >= 1``,
    and ``base + (rows - 1) * stride + row_bytes <= 2**addr_width``. ``base``, ``rows``
    and ``stride`` are sampled in the cycle ``sample`` is high; ``row_bytes`` is read
    two cycles later (:attr:`row_bytes_delay`), so an owner may derive it from the
    held descriptor through up to two register stages. ``ok`` is valid from
    :attr:`latency` cycles after ``sample`` until the next ``sample`` (a pipelined
    multiply: the check costs a few cycles once per descriptor instead of a long
    combinational path).
    """

    latency = 4
    #: Cycles after ``sample`` in which ``row_bytes`` is read (it must hold then).
    row_bytes_delay = 2

    def __init__(self, *, addr_width: int, align: int):
        if align & (align - 1):
            raise ValueError(f"align must be a power of two, not {align}")
        self._addr_width, self._align = addr_width, align
        super().__init__({"sample": In(1), "base": In(64), "rows": In(32), "stride": In(32), "row_bytes": In(32),
                          "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        low = self._align.bit_length() - 1
        # Sampled: rows - 1 (and whether rows is 0) rather than rows, so that the next stage holds only the multiply.
        base, rows_less, stride = (Signal(64, name="base_q"), Signal(32, name="rows_less_q"),
                                   Signal(32, name="stride_q"))
        no_rows = Signal(name="no_rows_q")
        with m.If(self.sample):
            m.d.sync += [base.eq(self.base), rows_less.eq(self.rows - 1), no_rows.eq(~self.rows.any()),
                         stride.eq(self.stride)]
        # (rows - 1) * stride as two registered half products (split on the stride): a whole 32 x 32 multiply
        # was the deepest path of the accelerator outside its TPE.
        span = split_product(m, Const(1, 1), "span", rows_less, stride)
        shape_ok = Signal(name="shape_ok")
        m.d.sync += shape_ok.eq(~no_rows & ~(base[:low] | stride[:low]).any() if low else ~no_rows)
        end = Signal(66, name="end")
        # The sampled registers hold until the next sample; row_bytes is read row_bytes_delay cycles after it.
        delayed = Signal(self.row_bytes_delay, name="sample_delayed")
        m.d.sync += delayed.eq(Cat(self.sample, delayed[:-1]))
        with m.If(delayed[-1]):
            m.d.sync += end.eq(base + span + self.row_bytes)
        ok_q = Signal(name="ok_q")
        m.d.sync += ok_q.eq(shape_ok & (end <= (1 << self._addr_width)))
        # The result registers load every cycle; the owner reads ok `latency` cycles after sample.
        m.d.comb += self.ok.eq(ok_q)
        return m


class EngineControl(wiring.Component):
    """The command sequence every engine follows: idle -> check -> run -> done.

    * ``check`` is high in the cycle ``start`` is taken (idle): the engine's checks
      sample the descriptor then. ``fault`` (an error code, 0 = none) must be valid
      ``check_cycles`` cycles later; then either the operator ends at once (``done``
      one cycle later, ``error`` = ``fault``) or ``go`` is high for one cycle (the
      engine loads its run registers) and ``running`` rises in the next cycle.
    * ``running`` lasts until ``finished`` (the engine's "every write acknowledged,
      every read beat consumed"); ``done`` follows in the next cycle.
    * ``busy`` is high from the cycle after ``start`` up to and including ``done``;
      ``error`` is cleared by ``start`` and holds the operator's code after ``done``.
    """

    def __init__(self, *, check_cycles: int):
        if check_cycles < 1:
            raise ValueError(f"check_cycles must be at least 1, not {check_cycles}")
        self._check_cycles = check_cycles
        super().__init__({"start": In(1), "fault": In(ERROR_BITS), "finished": In(1),
                          "check": Out(1), "go": Out(1), "running": Out(1),
                          "busy": Out(1), "done": Out(1), "error": Out(ERROR_BITS)})

    def elaborate(self, platform):
        m = Module()
        # One flag per phase instead of an encoded state: Yosys writes a test of an encoded state
        # against 0 as `!state`, which Verilator's lint reports (WIDTHTRUNC).
        checking, running, finishing = Signal(name="checking"), Signal(name="running_q"), Signal(name="finishing")
        wait = Signal(range(self._check_cycles), name="check_wait")
        error = Signal(ERROR_BITS, name="error_q")
        idle = ~(checking | running | finishing)
        decide = checking & ~wait.any()
        m.d.comb += [self.check.eq(idle & self.start), self.go.eq(decide & ~self.fault.any()),
                     self.running.eq(running), self.busy.eq(~idle), self.done.eq(finishing), self.error.eq(error)]
        m.d.sync += finishing.eq((decide & self.fault.any()) | (running & self.finished))
        with m.If(self.check):
            m.d.sync += [checking.eq(1), wait.eq(self._check_cycles - 1), error.eq(0)]
        with m.If(checking & wait.any()):
            m.d.sync += wait.eq(wait - 1)
        with m.If(decide):
            m.d.sync += [checking.eq(0), running.eq(~self.fault.any()), error.eq(self.fault)]
        with m.If(running & self.finished):
            m.d.sync += running.eq(0)
        return m


class RowRequests(wiring.Component):
    """A strided stream of memory requests: ``count`` requests of ``beats`` beats at ``base``,
    ``base + stride``, ``base + 2*stride``, ... (addresses modulo ``2**addr_width``).

    ``load`` (one cycle) samples ``base``, ``stride``, ``count`` and ``beats``; the requests
    follow from the next cycle on, one in every cycle ``req.ready`` is high (``req.valid``
    does not wait for ``ready``, so an engine issues requests as far ahead as the port
    takes them). ``pending`` is high while requests remain. The layout is that of read
    and write requests alike.
    """

    def __init__(self, *, addr_width: int):
        self._addr_width = addr_width
        super().__init__({"load": In(1), "base": In(addr_width), "stride": In(32), "count": In(32),
                          "beats": In(16), "req": Out(stream.Signature(read_request_layout(addr_width))),
                          "pending": Out(1)})

    def elaborate(self, platform):
        m = Module()
        addr = Signal(self._addr_width, name="addr")
        stride = Signal(32, name="stride_q")
        left = Signal(32, name="left")
        beats = Signal(16, name="beats_q")
        m.d.comb += [self.pending.eq(left.any()), self.req.valid.eq(left.any()),
                     self.req.payload.addr.eq(addr), self.req.payload.beats.eq(beats)]
        with m.If(self.load):
            m.d.sync += [addr.eq(self.base), stride.eq(self.stride), left.eq(self.count), beats.eq(self.beats)]
        with m.Elif(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(addr + stride), left.eq(left - 1)]
        return m
