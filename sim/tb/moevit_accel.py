"""Testbench of ``kind: moevit_accel``: the accelerator behind cocotbext-axi models.

Host side (:func:`make_vectors`): compiles the program of the config's network
(:func:`sim.moevit.compiler.golden_ops_program`: every operator the accelerator has, on the
golden's own inputs) with the network's weights (seeded random ones when it has none) and a synthetic
image, and adds one list per bad descriptor with the error code the hardware must report.
The vectors hold the memory image, the runs in order and the expected regions.

Simulator side (:class:`AccelTb`, one class per protocol side: ``AxiRam`` behind every master
port sharing one memory, ``AxiLiteMaster`` on the registers, seeded pauses on every channel,
an AXI rule monitor per port): the bad lists first (each must stop with its code and touch no
region), then a run reset in the middle, then the program to its end; the expected regions
are read back and compared on the host.
"""

import hashlib
import random

import cocotb
import numpy as np

from hw.vit import descriptors

from sim.moevit.registers import Registers

from .harness import RunFiles, as_unsigned

#: What the vectors are made of (``npuforge sim`` counts ``vectors[VECTOR_UNIT]``).
VECTOR_UNIT = "runs"
#: Cycles a run may take before the testbench calls it hung.
RUN_TIMEOUT = 400_000


# --------------------------------------------------------------------------- host side

def compile_program(cfg, seed: int):
    """The program of ``cfg``'s network (every operator the accelerator has) on synthetic image ``seed``."""
    from sim.moevit.accel_run import program_for

    return program_for(cfg, image=seed, seed=seed)


def bad_lists(program, cfg) -> list[dict]:
    """Descriptor lists the hardware must refuse, each with its error code (added to the program's image)."""
    t, image = program.target, program.image
    first_linear = next(op for op in program.ops if op.opcode == "LINEAR")
    first_add = next(op for op in program.ops if op.opcode == "ADD")
    beyond = 1 << t.addr_width
    cases = [
        ("bad_opcode", bytes([0x7E]) + bytes(descriptors.DESCRIPTOR_BYTES - 1), None, "BAD_OPCODE"),
        ("misaligned_src", first_linear, {"src": first_linear.fields["src"] + 4}, "BAD_ADDRESS"),
        ("src_past_memory", first_linear, {"src": beyond - t.beat_bytes}, "BAD_ADDRESS"),
        ("k_beyond_buffers", first_linear, {"k": t.k_max + 1}, "BAD_SIZE"),
        ("zero_rows", first_linear, {"m": 0}, "BAD_SIZE"),
        ("format_beyond_table", first_linear, {"fmt": 200}, "BAD_FORMAT"),
        # (Every bit of LINEAR's flags byte names a flag now, gather and scatter the last two; ADD takes none.)
        ("unknown_flag", first_add, {"flags": (0,)}, "BAD_FORMAT"),
        ("add_zero_rows", "ADD", {"rows": 0, "n": 4}, "BAD_SIZE"),
        ("im2col_patch_3", "IM2COL", {"channels": 1, "height": 6, "width": 6, "patch": 3}, "BAD_SIZE"),
    ]
    rows = {op.opcode: op for op in program.ops if op.opcode in ("LAYERNORM", "SOFTMAX")}
    if "LAYERNORM" in rows:
        cases += [("layernorm_beyond_n_max", rows["LAYERNORM"], {"n": t.layernorm_n_max + 1}, "BAD_SIZE"),
                  ("layernorm_params_misaligned", rows["LAYERNORM"], {"params": rows["LAYERNORM"].fields["params"] + 2},
                   "BAD_ADDRESS")]
    if "SOFTMAX" in rows:
        cases += [("softmax_zero_n", rows["SOFTMAX"], {"n": 0}, "BAD_SIZE"),
                  ("softmax_flag", rows["SOFTMAX"], {"flags": (0,)}, "BAD_FORMAT")]
    qk = next((op for op in program.ops if "b_transposed" in op.flags), None)
    if qk is not None:  # the unified attention's operands
        cases += [("keys_beyond_banks", qk, {"n": t.a_rows + 1}, "BAD_SIZE"),
                  ("two_b_sources", qk, {"flags": ("b_transposed", "b_rows")}, "BAD_FORMAT")]
    runs = []
    for name, base, change, error in cases:
        if isinstance(base, bytes):
            raw = base
        elif isinstance(base, str):
            raw = descriptors.encode(base, change)
        else:
            fields = dict(base.fields)
            fmt = change.get("fmt", base.fmt)
            flags = [f for f in change.get("flags", base.flags) if isinstance(f, str)]
            fields.update({k: v for k, v in change.items() if k not in ("fmt", "flags")})
            raw = bytearray(descriptors.encode(base.opcode, fields, flags=tuple(flags), fmt=fmt))
            for extra in change.get("flags", ()):
                if isinstance(extra, int):
                    raw[1] |= 1 << extra
            raw = bytes(raw)
        region = image.raw(f"bad.{name}", raw + descriptors.encode("END"))
        runs.append({"name": name, "desc": region.addr, "code": descriptors.ERROR[error], "index": 0})
    # A descriptor list that is not 64-byte aligned.
    runs.append({"name": "misaligned_list", "desc": program.desc.addr + 32, "code": descriptors.ERROR["BAD_ADDRESS"],
                 "index": 0})
    return runs


def make_vectors(cfg, *, seed: int = 1, n_random: int = 0, valid_prob: float = 1.0, ready_prob: float = 1.0) -> dict:
    """Runs for the testbench: every bad list, a run reset midway, then the program; ``ready_prob`` sets the
    AXI models' pauses (the probability that a channel is ready in a cycle)."""
    program = compile_program(cfg, seed)
    runs = bad_lists(program, cfg)
    runs.append({"name": "reset_midway", "desc": program.desc.addr, "reset_after": 200 + 37 * seed})
    runs.append({"name": "program", "desc": program.desc.addr, "code": 0, "index": len(program.ops)})
    regions = {name: program.image.regions[name].to_json() for name in program.expected}
    return {
        "seed": seed, "stall": 1.0 - ready_prob, "base": program.image.base,
        "memory_size": program.image.end + 4096, "image": program.image.image().hex(),
        "runs": runs, "regions": regions,
        "expected": {name: codes.tolist() for name, codes in program.expected.items()},
        "ops": [op.name for op in program.ops],
    }


def _codes(vectors: dict, name: str, raw: bytes) -> np.ndarray:
    from hw.arith.fixed import FixedFormat
    from sim.moevit.memory import Region, tensor_codes

    r = vectors["regions"][name]
    fmt = FixedFormat(r["format"]["width"], r["format"]["frac"], r["format"]["signed"])
    region = Region(name, r["addr"], r["size"], "tensor", r["rows"], r["n"], r["stride"], r["container"], fmt)
    return tensor_codes(region, raw, r["addr"])


def first_mismatch(vectors: dict, results: dict) -> dict | None:
    """The first run that ended wrong, or the first wrong element of an expected region."""
    for run, got in zip(vectors["runs"], results.get("runs", [])):
        if "code" not in run:
            continue
        if got["irq"] == 0:
            return {"run": run["name"], "what": f"no irq within {RUN_TIMEOUT} cycles"}
        if got["code"] != run["code"] or (run["code"] and got["error_desc"] != run["index"]):
            return {"run": run["name"], "what": f"status code {got['code']} (descriptor {got['error_desc']}), "
                                                f"expected {run['code']} (descriptor {run['index']})"}
        if run["code"] and got.get("touched"):
            return {"run": run["name"], "what": f"a refused descriptor wrote {got['touched']}"}
    if len(results.get("runs", [])) < len(vectors["runs"]):
        return {"run": "-", "what": "the testbench stopped early"}
    for name, expected in vectors["expected"].items():
        got = _codes(vectors, name, bytes.fromhex(results["regions"][name]))
        want = np.asarray(expected, dtype=np.int64)
        diff = np.argwhere(got != want)
        if diff.size:
            r, j = diff[0]
            return {"run": "program", "region": name, "row": int(r), "element": int(j),
                    "expected": int(want[r, j]), "got": int(got[r, j])}
    if results.get("violations"):
        return {"run": "-", "what": "AXI rule broken: " + results["violations"][0]}
    return None


def describe_mismatch(mismatch: dict) -> str:
    if "region" in mismatch:
        return (f"region {mismatch['region']} row {mismatch['row']} element {mismatch['element']}: "
                f"expected {mismatch['expected']}, got {mismatch['got']}")
    return f"run {mismatch['run']}: {mismatch['what']}"


def summary_lines(manifest: dict, vectors: dict, results: dict, seconds: float) -> list[str]:
    runs = results.get("runs", [])
    program = runs[-1] if runs else {}
    counters = program.get("counters", {})
    macs = manifest["parameters"]["linear"]["macs"]
    cycles = program.get("cycles", 0)
    util = counters.get("MAC_ACTIVE", 0) / cycles if cycles else 0.0
    return [f"{len(vectors['ops'])} operators + {len(runs) - 1} other runs in {seconds:.1f} s",
            f"program: {cycles} cycles, MAC beats {counters.get('MAC_ACTIVE', 0)} ({util:.1%} of cycles, "
            f"{macs} MACs each)"]


# --------------------------------------------------------------------------- simulator side

class AxiRuleMonitor:
    """Watches one master port's AR and AW channels: bursts INCR, aligned, within 4 KB, nothing valid in reset."""

    def __init__(self, dut, prefix: str, data_bytes: int, problems: list):
        self.dut, self.prefix, self.data_bytes, self.problems = dut, prefix, data_bytes, problems

    def _sig(self, name):
        return getattr(self.dut, f"{self.prefix}_{name}")

    async def watch(self):
        from cocotb.triggers import RisingEdge

        while True:
            await RisingEdge(self.dut.clk)
            in_reset = as_unsigned(self.dut.rst.value)
            for ch in ("ar", "aw"):
                if not as_unsigned(self._sig(f"{ch}valid").value):
                    continue
                if in_reset:
                    self._note(f"{ch.upper()}VALID high during reset")
                    continue
                if not as_unsigned(self._sig(f"{ch}ready").value):
                    continue
                addr = as_unsigned(self._sig(f"{ch}addr").value)
                beats = as_unsigned(self._sig(f"{ch}len").value) + 1
                if addr % self.data_bytes:
                    self._note(f"{ch.upper()} address {addr:#x} not aligned")
                if addr >> 12 != (addr + beats * self.data_bytes - 1) >> 12:
                    self._note(f"{ch.upper()} burst at {addr:#x} of {beats} beats crosses 4 KB")
                if as_unsigned(self._sig(f"{ch}burst").value) != 1:
                    self._note(f"{ch.upper()} burst type not INCR")
            if in_reset and (as_unsigned(self._sig("wvalid").value)):
                self._note("WVALID high during reset")

    def _note(self, what: str):
        if len(self.problems) < 20:
            self.problems.append(f"{self.prefix}: {what}")


class AccelTb:
    """The accelerator with ``AxiRam`` behind every master port (one shared memory) and an ``AxiLiteMaster``."""

    def __init__(self, dut, manifest: dict, *, memory_size: int, stall: float, seed: int):
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

        self.dut, self.manifest = dut, manifest
        self.regs = Registers(manifest)
        masters = manifest["axi"]["masters"]
        self.rams = []
        for port in masters:
            shared = self.rams[0].mem if self.rams else None
            ram = AxiRam(AxiBus.from_prefix(dut, port["prefix"]), dut.clk, dut.rst, size=memory_size, mem=shared)
            self.rams.append(ram)
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, manifest["axi"]["csr"]["prefix"]), dut.clk, dut.rst)
        self.problems: list[str] = []
        if stall > 0:
            rng = random.Random(seed)

            def pauses():
                while True:
                    yield rng.random() < stall

            for ram in self.rams:
                for channel in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                                ram.read_if.ar_channel, ram.read_if.r_channel):
                    channel.set_pause_generator(pauses())
        for port in masters:
            monitor = AxiRuleMonitor(dut, port["prefix"], port["data_width"] // 8, self.problems)
            cocotb.start_soon(monitor.watch())

    @property
    def memory(self):
        return self.rams[0].mem

    async def reset(self, cycles: int = 4):
        from cocotb.triggers import RisingEdge

        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def write(self, name: str, value: int, offset: int = 0):
        await self.csr.write_dword(self.regs.offset(name) + offset, value)

    async def read(self, name: str, offset: int = 0) -> int:
        return await self.csr.read_dword(self.regs.offset(name) + offset)

    async def start(self, desc: int):
        await self.write("DESC_BASE", desc & 0xFFFFFFFF)
        await self.write("DESC_BASE", desc >> 32, 4)
        await self.write("IRQ_STATUS", 3)
        await self.write("IRQ_ENABLE", 3)
        await self.write("CTRL", 1)

    async def wait_irq(self, timeout: int) -> int:
        """Cycles until ``irq`` rises (0 if it did not within ``timeout``)."""
        from cocotb.triggers import RisingEdge

        for cycle in range(1, timeout + 1):
            await RisingEdge(self.dut.clk)
            if as_unsigned(self.dut.irq.value):
                return cycle
        return 0

    async def status(self) -> dict:
        value = await self.read("STATUS")
        counters = {}
        for name in self.regs.counters():
            low = await self.read(name)
            high = await self.read(name, 4)
            counters[name] = low | high << 32
        return {"code": self.regs.extract(value, "STATUS", "code"), "error": self.regs.extract(value, "STATUS", "error"),
                "done": self.regs.extract(value, "STATUS", "done"), "error_desc": await self.read("ERROR_DESC"),
                "desc_done": await self.read("DESC_DONE"), "counters": counters}


def _digest(tb: AccelTb, vectors: dict) -> dict:
    return {name: hashlib.sha256(tb.memory[r["addr"]:r["addr"] + r["size"]]).hexdigest()
            for name, r in vectors["regions"].items()}


@cocotb.test()
async def accelerator(dut):
    """Bad lists, a run reset midway, then the program; every expected region read back."""
    from cocotb.clock import Clock

    files = RunFiles.from_env()
    v, manifest = files.vectors, files.manifest
    Clock(dut.clk, 10, unit="ns").start()
    tb = AccelTb(dut, manifest, memory_size=v["memory_size"], stall=v["stall"], seed=v["seed"])
    await tb.reset()
    image = bytes.fromhex(v["image"])
    tb.memory[v["base"]:v["base"] + len(image)] = image
    results = {"runs": [], "regions": {}, "violations": tb.problems}
    before = _digest(tb, v)
    for run in v["runs"]:
        await tb.start(run["desc"])
        if "reset_after" in run:
            from cocotb.triggers import ClockCycles

            await ClockCycles(dut.clk, run["reset_after"])
            await tb.reset()
            results["runs"].append({"name": run["name"], "irq": 1, "code": 0, "error_desc": 0})
            continue
        cycles = await tb.wait_irq(RUN_TIMEOUT)
        status = await tb.status()
        entry = {"name": run["name"], "irq": int(cycles > 0), "cycles": cycles, **status}
        if run.get("code"):
            after = _digest(tb, v)
            entry["touched"] = [name for name in before if before[name] != after[name]]
        results["runs"].append(entry)
        if not cycles:
            break
    for name, r in v["regions"].items():
        results["regions"][name] = bytes(tb.memory[r["addr"]:r["addr"] + r["size"]]).hex()
    files.write_results(results)
    mismatch = first_mismatch(v, results)
    assert mismatch is None, describe_mismatch(mismatch)
