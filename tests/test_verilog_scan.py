"""Reading ports, registers and memories back from Yosys output."""

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

import gen.toolchain  # noqa: F401 -- built-in Yosys
from gen.verilog_scan import scan_modules


class _RegisterFile(wiring.Component):
    """16 x 8-bit memory with a synchronous read port, plus one plain register."""

    def __init__(self):
        super().__init__({"addr": In(4), "wdata": In(8), "we": In(1), "rdata": Out(8), "count": Out(3)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=[])
        read, write = mem.read_port(), mem.write_port()
        m.d.comb += [read.addr.eq(self.addr), self.rdata.eq(read.data),
                     write.addr.eq(self.addr), write.data.eq(self.wdata), write.en.eq(self.we)]
        m.d.sync += self.count.eq(self.count + 1)
        return m


def test_scan_finds_ports_registers_memories_and_aliases():
    text = verilog.convert(_RegisterFile(), name="regfile", emit_src=False)
    (module,) = scan_modules(text)
    assert module.name == "regfile"
    assert sorted(module.ports) == sorted([
        ("addr", "input", 4), ("wdata", "input", 8), ("we", "input", 1), ("clk", "input", 1),
        ("rst", "input", 1), ("rdata", "output", 8), ("count", "output", 3)])
    assert module.memories == {"mem": (8, 16)}
    # The plain register and the memory's read-data register (a Yosys-named net aliased to rdata).
    assert "count" in module.flops
    read_data = [name for name in module.flops if "rdata" in module.aliases.get(name, [])]
    assert len(read_data) == 1 and module.widths[read_data[0]] == 8
    assert "mem" not in module.flops


def test_scan_handles_escaped_module_names():
    text = ("module \\top.sub (clk, q);\n  input clk;\n  wire clk;\n  output [3:0] q;\n"
            "  reg [3:0] q = 4'h0;\n  always @(posedge clk)\n    q <= \\$1 ;\nendmodule\n")
    (module,) = scan_modules(text)
    assert module.name == "top.sub" and module.flops == ["q"] and module.widths["q"] == 4
