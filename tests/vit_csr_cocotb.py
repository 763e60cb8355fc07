"""cocotb test of the AXI4-Lite register block at the port level (run by tests/test_vit_csr.py).

The top is ``CsrBlock`` with flat ``s_axil_*`` names; cocotbext-axi's ``AxiLiteMaster`` drives it
with random pauses on all five channels. ``NPUFORGE_CSR_RDL`` names the SystemRDL file of the
map; the expected constants come from elaborating it.
"""

import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from hw.vit.regmap import elaborate_rdl

MASK64 = (1 << 64) - 1


def pauses(rng, probability):
    while True:
        yield rng.random() < probability


def value(handle) -> int:
    raw = handle.value
    return raw.to_unsigned() if hasattr(raw, "to_unsigned") else int(raw)


async def read32(master, addr):
    done = await master.read(addr, 4)
    return int.from_bytes(done.data, "little"), done.resp


async def write32(master, addr, data):
    done = await master.write(addr, data.to_bytes(4, "little"))
    return done.resp


class PulseMonitor:
    """Counts the cycles each pulse port is high and the longest run of high cycles."""

    def __init__(self, dut, names):
        self.dut, self.names = dut, names
        self.high = dict.fromkeys(names, 0)
        self.longest = dict.fromkeys(names, 0)
        self._run = dict.fromkeys(names, 0)
        cocotb.start_soon(self._watch())

    async def _watch(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            for name in self.names:
                if value(getattr(self.dut, name)):
                    self.high[name] += 1
                    self._run[name] += 1
                    self.longest[name] = max(self.longest[name], self._run[name])
                else:
                    self._run[name] = 0


async def check_reset_outputs(dut, cycles):
    """Hold ``rst`` for ``cycles``; every ready and valid output must be low meanwhile."""
    dut.rst.value = 1
    for cycle in range(cycles):
        await RisingEdge(dut.clk)
        await ReadOnly()
        for name in ("awready", "wready", "arready", "bvalid", "rvalid"):
            assert value(getattr(dut, f"s_axil_{name}")) == 0, f"s_axil_{name} high in reset cycle {cycle}"
    await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test(timeout_time=100, timeout_unit="us")  # about 10,000 cycles: a hang fails
async def csr_port_level(dut):
    regmap, _ = elaborate_rdl(Path(os.environ["NPUFORGE_CSR_RDL"]).read_text())
    rng = random.Random(2026)
    inputs = [f"{r.name}_{f.name}".lower() for r in regmap.registers for f in r.fields if f.kind == "input"]
    sets = [f"{r.name}_{f.name}_set".lower() for r in regmap.registers for f in r.fields
            if f.kind == "clear_on_write_one"]
    for name in inputs + sets:
        getattr(dut, name).value = 0
    Clock(dut.clk, 10, unit="ns").start()
    await check_reset_outputs(dut, 4)

    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    channels = (master.write_if.aw_channel, master.write_if.w_channel, master.write_if.b_channel,
                master.read_if.ar_channel, master.read_if.r_channel)
    for channel in channels:
        channel.set_pause_generator(pauses(rng, 0.3))
    pulses = PulseMonitor(dut, ["ctrl_start", "ctrl_soft_reset"])

    # constants
    for name in ("ID", "VERSION", "CAPS"):
        register = regmap[name]
        expected = sum(f.reset << f.lsb for f in register.fields)
        assert await read32(master, register.offset) == (expected, AxiResp.OKAY), name
    assert (await read32(master, 0x000))[0] == 0x4E505556

    # read-write registers, byte strobes, the hardware ports
    await master.write(0x010, (0x0123456789ABCDEF).to_bytes(8, "little"))
    assert int.from_bytes((await master.read(0x010, 8)).data, "little") == 0x0123456789ABCDEF
    await master.write(0x012, b"\x5A")  # one byte: WSTRB 0b0100
    await master.write(0x017, b"\xA5")  # one byte of the high word: WSTRB 0b1000
    assert int.from_bytes((await master.read(0x010, 8)).data, "little") == 0xA5234567895ACDEF
    assert value(dut.desc_base_value) == 0xA5234567895ACDEF
    assert await write32(master, 0x018, 0x3) == AxiResp.OKAY
    assert await read32(master, 0x018) == (0x3, AxiResp.OKAY)
    assert (value(dut.irq_enable_done), value(dut.irq_enable_error)) == (1, 1)
    assert await write32(master, 0x000, 0) == AxiResp.OKAY  # read-only: ignored
    assert (await read32(master, 0x000))[0] == 0x4E505556

    # single pulses: exactly one cycle per write of 1
    for data in (0x1, 0x2, 0x3, 0x0):
        await write32(master, 0x008, data)
    await ClockCycles(dut.clk, 3)
    assert pulses.high == {"ctrl_start": 2, "ctrl_soft_reset": 2}, pulses.high
    assert pulses.longest == {"ctrl_start": 1, "ctrl_soft_reset": 1}
    assert await read32(master, 0x008) == (0, AxiResp.OKAY)

    # hardware-written fields read live
    dut.status_busy.value, dut.status_error.value, dut.status_code.value = 1, 1, 5
    dut.error_desc_value.value, dut.desc_done_value.value = 17, 0xDEADBEEF
    assert await read32(master, 0x00C) == (0x0505, AxiResp.OKAY)
    assert await read32(master, 0x020) == (17, AxiResp.OKAY)
    assert await read32(master, 0x024) == (0xDEADBEEF, AxiResp.OKAY)

    # rw1c: the hardware sets, a write of 1 clears, a set in the same cycle wins
    await RisingEdge(dut.clk)
    dut.irq_status_error_set.value = 1
    await RisingEdge(dut.clk)
    dut.irq_status_error_set.value = 0
    assert await read32(master, 0x01C) == (0x2, AxiResp.OKAY)
    assert value(dut.irq_status_error) == 1
    await write32(master, 0x01C, 0x2)
    assert await read32(master, 0x01C) == (0x0, AxiResp.OKAY)
    dut.irq_status_done_set.value = 1  # held through the clearing write
    await write32(master, 0x01C, 0x3)
    assert await read32(master, 0x01C) == (0x1, AxiResp.OKAY)
    dut.irq_status_done_set.value = 0
    await write32(master, 0x01C, 0x1)
    assert await read32(master, 0x01C) == (0x0, AxiResp.OKAY)

    # 64-bit counters: both words change every cycle; a low-then-high pair is one snapshot
    def count(n):
        return (n * 0x0000_0005_0000_000B + 0xFFFF_FF00) & MASK64
    tick = {"n": 0}

    async def drive_counters():
        while True:
            await RisingEdge(dut.clk)
            tick["n"] += 1
            for r in regmap.registers:
                if r.latched:
                    getattr(dut, f"{r.name.lower()}_value").value = count(tick["n"] + r.offset)
    driver = cocotb.start_soon(drive_counters())
    for register in [r for r in regmap.registers if r.latched]:
        for _ in range(3):
            start = tick["n"]
            pair = int.from_bytes((await master.read(register.offset, 8)).data, "little")
            window = {count(n + register.offset) for n in range(start, tick["n"] + 1)}
            assert pair in window, f"{register.name}: 0x{pair:016X} is no snapshot"
    driver.cancel()

    # outside the map: SLVERR, reads return 0
    end = max(r.offset + r.width // 8 for r in regmap.registers)
    for addr in (0x02C, 0x03C, end, 0xFFC):
        assert await read32(master, addr) == (0, AxiResp.SLVERR), hex(addr)
        assert await write32(master, addr, 0xFFFFFFFF) == AxiResp.SLVERR, hex(addr)

    # back to back, no pauses: many transactions queued at once, none lost
    for channel in channels:
        channel.clear_pause_generator()
        channel.pause = False  # clearing the generator leaves its last value
    writes = [cocotb.start_soon(master.write(0x018, bytes([i % 4, 0, 0, 0]))) for i in range(16)]
    reads = [cocotb.start_soon(master.read(0x000, 4)) for _ in range(16)]
    answers = [await task for task in writes + reads]
    assert all(answer.resp == AxiResp.OKAY for answer in answers)
    assert all(int.from_bytes(answer.data, "little") == 0x4E505556 for answer in answers[16:])
    assert await read32(master, 0x018) == (15 % 4, AxiResp.OKAY)

    # reset with a write response and a read response pending (B and R stalled): valids drop,
    # the registers clear, and the block answers afterwards
    master.write_if.b_channel.pause = master.read_if.r_channel.pause = True
    cocotb.start_soon(master.write(0x018, b"\x01\x00\x00\x00"))
    cocotb.start_soon(master.read(0x000, 4))
    for _ in range(50):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if value(dut.s_axil_bvalid) and value(dut.s_axil_rvalid):
            break
    assert value(dut.s_axil_bvalid) and value(dut.s_axil_rvalid)
    await RisingEdge(dut.clk)
    await check_reset_outputs(dut, 3)
    master.write_if.b_channel.pause = master.read_if.r_channel.pause = False
    await ClockCycles(dut.clk, 2)
    assert int.from_bytes((await master.read(0x010, 8)).data, "little") == 0
    assert await read32(master, 0x018) == (0, AxiResp.OKAY)
    assert await write32(master, 0x018, 0x2) == AxiResp.OKAY
    assert await read32(master, 0x018) == (0x2, AxiResp.OKAY)
