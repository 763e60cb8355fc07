"""cocotb testbench: the AXI4 master port (flat ``m_axi_*`` ports) against cocotbext-axi's ``AxiRam``.

Started by ``tests/test_vit_axi.py::test_against_cocotbext_axi_ram``, which converts the
port behind a small wrapper, builds it with Verilator and passes the stimulus in the JSON
file named by ``AXI_STIMULUS``: per read client ``[addr, beats]`` requests, per write
client ``[addr, [[data, strb], ...]]`` requests, the memory size and a seed. Every channel
of the RAM pauses at random. Checked: every read beat against the memory, ``last`` flags,
each ``acked`` against the RAM's contents, the final memory against the expected one,
and AR/AW bursts (length, 4 KB). Results go to the JSON file ``results`` names, written
before the test asserts.
"""

import json
import os
import random
from collections import deque
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

PAGE = 4096


class Pauses:
    """A pause generator for one cocotbext-axi channel that counts its pauses."""

    def __init__(self, rng: random.Random, probability: float):
        self.rng, self.probability, self.count = rng, probability, 0

    def __iter__(self):
        while True:
            pause = self.rng.random() < self.probability
            self.count += pause
            yield pause


def _port(dut, side: str, c: int, name: str):
    return getattr(dut, f"{side}__{c}__{name}")


@cocotb.test()
async def port_against_axi_ram(dut):
    stim = json.loads(Path(os.environ["AXI_STIMULUS"]).read_text())
    aw, dw = stim["addr_width"], stim["data_width"]
    nbytes = dw // 8
    rng = random.Random(stim["seed"])
    problems = []

    Clock(dut.clk, 10, unit="ns").start()
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=stim["memory"])
    initial = bytes(rng.getrandbits(8) for _ in range(stim["memory"]))
    ram.write(0, initial)
    pauses = [Pauses(random.Random(rng.getrandbits(32)), 0.3) for _ in range(5)]
    channels = (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                ram.read_if.ar_channel, ram.read_if.r_channel)
    for channel, generator in zip(channels, pauses):
        channel.set_pause_generator(iter(generator))

    reads = [deque(map(tuple, requests)) for requests in stim["reads"]]
    writes = [deque((addr, [tuple(b) for b in data]) for addr, data in requests) for requests in stim["writes"]]
    expected_beats = [deque() for _ in reads]
    write_beats = [deque(b for _, data in requests for b in data) for requests in writes]
    unacked = [deque(r for r in requests if r[1]) for requests in writes]
    expected_memory = bytearray(initial)
    for requests in writes:
        for addr, data in requests:
            for i, (value, strb) in enumerate(data):
                raw = value.to_bytes(nbytes, "little")
                for b in range(nbytes):
                    if strb >> b & 1:
                        expected_memory[addr + i * nbytes + b] = raw[b]
    acks = [0] * len(writes)
    read_beats = 0

    dut.rst.value = 1
    dut.drain.value = 0
    dut.clear.value = 0
    for side, count in (("reads", len(reads)), ("writes", len(writes))):
        for c in range(count):
            _port(dut, side, c, "req__valid").value = 0
            if side == "reads":
                _port(dut, side, c, "data__ready").value = 0
            else:
                _port(dut, side, c, "data__valid").value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    offers = {}  # (stream, client) -> a beat is on offer (held until it moves)

    def offer(key, queue, side, c, stream, pack):
        on = bool(queue) and (offers.get(key) or rng.random() < 0.7)
        offers[key] = on
        _port(dut, side, c, f"{stream}__valid").value = int(on)
        if on:
            _port(dut, side, c, f"{stream}__payload").value = pack(queue[0])

    for cycle in range(40000):
        # Drive after the falling edge: requests and write data with random gaps, read data back-pressure.
        for c, pending in enumerate(reads):
            offer(("r", c), pending, "reads", c, "req", lambda r: r[0] | r[1] << aw)
            offers["rd", c] = rng.random() < 0.6
            _port(dut, "reads", c, "data__ready").value = int(offers["rd", c])
        for c, pending in enumerate(writes):
            offer(("w", c), pending, "writes", c, "req", lambda r: r[0] | len(r[1]) << aw)
            offer(("wd", c), write_beats[c], "writes", c, "data", lambda b: b[0] | b[1] << dw)

        await ReadOnly()
        # Sample what the coming rising edge sees.
        for p in ("ar", "aw"):
            if int(getattr(dut, f"m_axi_{p}valid").value) and int(getattr(dut, f"m_axi_{p}ready").value):
                addr = int(getattr(dut, f"m_axi_{p}addr").value)
                length = int(getattr(dut, f"m_axi_{p}len").value) + 1
                if length > stim["max_burst"] or addr % PAGE + length * nbytes > PAGE or addr % nbytes:
                    problems.append(f"cycle {cycle}: {p.upper()} burst of {length} beats at {addr:#x}")
        for c, pending in enumerate(reads):
            if offers["r", c] and int(_port(dut, "reads", c, "req__ready").value):
                addr, beats = pending.popleft()
                expected_beats[c].extend((addr + i * nbytes, int(i == beats - 1)) for i in range(beats))
                offers["r", c] = False
            if offers["rd", c] and int(_port(dut, "reads", c, "data__valid").value):
                word = int(_port(dut, "reads", c, "data__payload").value)
                data, last = word & ((1 << dw) - 1), word >> dw
                if not expected_beats[c]:
                    problems.append(f"cycle {cycle}: reader {c}: a beat nobody asked for")
                    continue
                addr, want_last = expected_beats[c].popleft()
                want = int.from_bytes(initial[addr:addr + nbytes], "little")
                if (data, last) != (want, want_last):
                    problems.append(f"cycle {cycle}: reader {c}: beat of {addr:#x} is {data:#x} last={last}, "
                                    f"expected {want:#x} last={want_last}")
                read_beats += 1
        for c, pending in enumerate(writes):
            if offers["w", c] and int(_port(dut, "writes", c, "req__ready").value):
                pending.popleft()
                offers["w", c] = False
            if offers["wd", c] and int(_port(dut, "writes", c, "data__ready").value):
                write_beats[c].popleft()
                offers["wd", c] = False
            if int(_port(dut, "writes", c, "acked").value):
                if not unacked[c]:
                    problems.append(f"cycle {cycle}: writer {c}: acked without a request waiting")
                    continue
                addr, data = unacked[c].popleft()
                acks[c] += 1
                held = ram.read(addr, len(data) * nbytes)
                for i, (value, strb) in enumerate(data):
                    raw = value.to_bytes(nbytes, "little")
                    if any(strb >> b & 1 and held[i * nbytes + b] != raw[b] for b in range(nbytes)):
                        problems.append(f"cycle {cycle}: writer {c}: acked, but beat {i} at {addr:#x} "
                                        "is not in memory")
                        break
        done = (not any(reads) and not any(expected_beats) and not any(writes) and not any(write_beats)
                and not any(unacked) and int(dut.idle.value))
        await FallingEdge(dut.clk)
        if done:
            break
    else:
        problems.append("traffic did not finish in 40000 cycles")

    if bytes(ram.read(0, stim["memory"])) != bytes(expected_memory):
        problems.append("final memory differs from the expected writes")
    if int(dut.read_error.value) or int(dut.write_error.value):
        problems.append("an error flag is set, but the RAM answered OKAY")
    results = {"problems": problems, "read_beats": read_beats, "acks": acks,
               "pauses": sum(p.count for p in pauses), "cycles": cycle}
    Path(stim["results"]).write_text(json.dumps(results) + "\n")
    assert not problems, problems[:5]
