"""A single-port-write, single-port-read word memory (an operand or command buffer)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .one_word import address_shape, one_word_memory


class Buffer(wiring.Component):
    """``depth`` words of ``width`` bits: one write port, one synchronous read port.

    Contract, per clock cycle:

    * write: when ``w_en``, ``mem[w_addr] <= w_data`` at the rising edge.
    * read: when ``r_en``, ``r_data`` shows ``mem[r_addr]`` from the next cycle on
      (one cycle of latency, as an SRAM macro); while ``r_en`` is low ``r_data``
      holds its value. A read and a write of the same address in one cycle
      read the old word (no transparency: the controller never needs it).

    The words live in ``mem`` (a fault site of kind ``memory``), the read
    register in ``r_data`` (a register fault site). Memories are not cleared
    by reset.

    Parameters
    ----------
    width, depth : int
        Bits per word and words.
    """

    def __init__(self, width: int, depth: int):
        if width < 1 or depth < 1:
            raise ValueError(f"a buffer needs width and depth >= 1, not {width} x {depth}")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_en": In(1),
            "w_addr": In(address_shape(depth)),
            "w_data": In(width),
            "r_en": In(1),
            "r_addr": In(address_shape(depth)),
            "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        # An asynchronous read port and a named register: the read register is a
        # plain fault site (a synchronous port's register gets no usable name).
        if self.depth == 1:
            write, read = one_word_memory(m, "mem", self.width, read_domain="comb")
        else:
            m.submodules.mem = mem = memory.Memory(shape=self.width, depth=self.depth, init=[])
            write = mem.write_port()
            read = mem.read_port(domain="comb")
        r_data = Signal(self.width, name="r_data_reg")
        m.d.comb += [
            write.en.eq(self.w_en),
            write.addr.eq(self.w_addr),
            write.data.eq(self.w_data),
            read.addr.eq(self.r_addr),
            self.r_data.eq(r_data),
        ]
        with m.If(self.r_en):
            m.d.sync += r_data.eq(read.data)
        return m
