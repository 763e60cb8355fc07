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

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import ReadClientSignature, WriteClientSignature
from .descriptors import DESCRIPTOR_BYTES, ERROR_BITS

DESC_BITS = 8 * DESCRIPTOR_BYTES


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
    and ``base + (rows - 1) * stride + row_bytes <= 2**addr_width``. The inputs are
    sampled in the cycle ``start`` is high; ``ok`` is valid from :attr:`latency`
    cycles later until the next ``start`` (a pipelined multiply: the check costs
    a few cycles once per descriptor instead of a long combinational path).
    """

    latency = 4

    def __init__(self, *, addr_width: int, align: int):
        if align & (align - 1):
            raise ValueError(f"align must be a power of two, not {align}")
        self._addr_width, self._align = addr_width, align
        super().__init__({"start": In(1), "base": In(64), "rows": In(32), "stride": In(32), "row_bytes": In(32),
                          "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        low = self._align.bit_length() - 1
        base, rows, stride, row_bytes = (Signal(64, name="base_q"), Signal(32, name="rows_q"),
                                         Signal(32, name="stride_q"), Signal(32, name="row_bytes_q"))
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), rows.eq(self.rows), stride.eq(self.stride),
                         row_bytes.eq(self.row_bytes)]
        span = Signal(64, name="span")  # (rows - 1) * stride
        shape_ok = Signal(name="shape_ok")
        m.d.sync += [span.eq((rows - 1) * stride),
                     shape_ok.eq((rows != 0) & ((base[:low] | stride[:low]) == 0) if low else rows != 0)]
        end = Signal(66, name="end")
        m.d.sync += end.eq(base + span + row_bytes)
        ok_q = Signal(name="ok_q")
        m.d.sync += ok_q.eq(shape_ok & (end <= (1 << self._addr_width)))
        # The result registers load every cycle; the owner reads ok `latency` cycles after start.
        m.d.comb += self.ok.eq(ok_q)
        return m
