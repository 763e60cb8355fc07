"""The accelerator's register map (hw/vit/regmap.py) and its AXI4-Lite register block (hw/vit/csr.py).

* the generated SystemRDL elaborates into the map of docs/accelerator.md ("Registers"),
  for several engine lists and port counts; bad facts and unsupported RDL are refused;
* the C header compiles and places every register at its offset; the HTML reference is written;
* the register block in Amaranth's simulator, driven by an AXI4-Lite master model with random
  stalls on every channel, checked every cycle against a model of the map's documented
  behaviour (``RegisterModel``); scripted cases pin literal values;
* the Verilog is lint-clean; one Verilator build runs the cocotb test
  (``tests/vit_csr_cocotb.py``, cocotbext-axi's ``AxiLiteMaster``) at the port level.
"""

import json
import os
import random
import re
import subprocess
from dataclasses import dataclass, field

import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from conftest import BUILD_ROOT, ROOT

from gen.lint import lint
from hw.vit.accel import ENGINE_OPCODES
from hw.vit.csr import OKAY, SLVERR, CsrBlock, port_name
from hw.vit.regmap import (
    COUNTER_BASE, ID_VALUE, RegisterMap, accel_rdl, c_header, counter_names, elaborate_rdl, html_reference,
)

DEFAULT_ENGINES = ["fetch", *(e for e in ENGINE_OPCODES if e not in ("attention", "gate"))]  # without the optional engines
CAPS = {"data_bytes_log2": 5, "rows": 16, "cols": 8}
MASK32 = (1 << 32) - 1


def make_rdl(engines=DEFAULT_ENGINES, ports=2, **overrides):
    facts = dict(name="moevit_accel", engines=engines, ports=ports, version=(1, 2), config_id=0xBEEF, caps=CAPS)
    return accel_rdl(**{**facts, **overrides})


def make_map(engines=DEFAULT_ENGINES, ports=2) -> RegisterMap:
    return elaborate_rdl(make_rdl(engines, ports))[0]


# ============================================================================================
# (a) the map
# ============================================================================================

#: docs/accelerator.md's table, restated: offset, name, width, {field: (lsb, width, kind)}.
DOCUMENTED = [
    (0x000, "ID", 32, {"value": (0, 32, "constant")}),
    (0x004, "VERSION", 32, {"minor": (0, 8, "constant"), "major": (8, 8, "constant"),
                            "config": (16, 16, "constant")}),
    (0x008, "CTRL", 32, {"start": (0, 1, "pulse"), "soft_reset": (1, 1, "pulse")}),
    (0x00C, "STATUS", 32, {"busy": (0, 1, "input"), "done": (1, 1, "input"), "error": (2, 1, "input"),
                           "code": (8, 8, "input")}),
    (0x010, "DESC_BASE", 64, {"value": (0, 64, "storage")}),
    (0x018, "IRQ_ENABLE", 32, {"done": (0, 1, "storage"), "error": (1, 1, "storage")}),
    (0x01C, "IRQ_STATUS", 32, {"done": (0, 1, "clear_on_write_one"), "error": (1, 1, "clear_on_write_one")}),
    (0x020, "ERROR_DESC", 32, {"value": (0, 32, "input")}),
    (0x024, "DESC_DONE", 32, {"value": (0, 32, "input")}),
    (0x028, "CAPS", 32, {"ports": (0, 4, "constant"), "data_bytes_log2": (4, 4, "constant"),
                         "rows": (8, 8, "constant"), "cols": (16, 8, "constant")}),
]


def documented_counters(engines, ports):
    names = (["CYCLES"] + [f"BUSY_{e.upper()}" for e in engines] + ["MAC_ACTIVE", "MEM_STALL"]
             + [f"{kind}_BYTES_P{p}" for p in range(ports) for kind in ("RD", "WR")])
    return [(0x040 + 8 * i, name, 64, {"value": (0, 64, "input")}) for i, name in enumerate(names)]


@pytest.mark.parametrize("engines,ports", [(DEFAULT_ENGINES, 1), (DEFAULT_ENGINES, 2), (["linear", "vector"], 3)],
                         ids=["default-1port", "default-2ports", "two-engines-3ports"])
def test_map_matches_the_documented_table(engines, ports):
    regmap = make_map(engines, ports)
    expected = DOCUMENTED + documented_counters(engines, ports)
    got = [(r.offset, r.name, r.width, {f.name: (f.lsb, f.width, f.kind) for f in r.fields})
           for r in regmap.registers]
    assert got == expected
    assert regmap.addr_width == 12
    assert counter_names(engines, ports) == [name for _, name, _, _ in documented_counters(engines, ports)]
    resets = {(r.name, f.name): f.reset for r in regmap.registers for f in r.fields}
    assert resets["ID", "value"] == ID_VALUE == 0x4E505556
    assert (resets["VERSION", "major"], resets["VERSION", "minor"], resets["VERSION", "config"]) == (1, 2, 0xBEEF)
    assert [resets["CAPS", k] for k in ("ports", "data_bytes_log2", "rows", "cols")] == [ports, 5, 16, 8]
    assert resets["DESC_BASE", "value"] == 0 and resets["STATUS", "busy"] is None
    # the access rules as SystemRDL names them
    ctrl, irq = regmap["CTRL"].field("start"), regmap["IRQ_STATUS"].field("done")
    assert (ctrl.sw, ctrl.hw, ctrl.pulse) == ("w", "r", True)
    assert (irq.sw, irq.hw, irq.clear_on_write_one) == ("rw", "r", True)
    assert regmap["CYCLES"].latched and not regmap["DESC_BASE"].latched
    assert all(r.desc for r in regmap.registers) and all(f.desc for r in regmap.registers for f in r.fields)


def test_docs_table_is_the_generated_map():
    """The table in docs/accelerator.md ("Registers") names the generated offsets and bits."""
    text = (ROOT / "docs" / "accelerator.md").read_text()
    section = text[text.index("## Registers"):text.index("## Descriptors")]
    regmap = make_map()
    access_of = {"constant": "r", "input": "r", "storage": "rw", "pulse": "w", "clear_on_write_one": "rw1c"}
    rows = re.findall(r"^\| (0x[0-9A-F]{3}) \| `(\w+)`[^|]*\| (\w+) \| (.*) \|$", section, re.M)
    assert [name for _, name, _, _ in rows] == [name for _, name, _, _ in DOCUMENTED]
    for offset, name, access, fields in rows:
        register = regmap[name]
        assert int(offset, 16) == register.offset, name
        assert {access_of[f.kind] for f in register.fields} == {access}, name
        for fname, high, low in re.findall(r"`(\w+)\[(\d+)(?::(\d+))?\]`", fields):
            f = register.field(fname)
            assert (f.msb, f.lsb) == (int(high), int(low or high)), f"{name}.{fname}"
    counters = re.search(r"^\| 0x040 \+ 8i \|.*$", section, re.M).group(0)
    order = [counters.index(f"`{name}") for name in ("CYCLES", "BUSY_", "MAC_ACTIVE", "MEM_STALL", "RD_BYTES_P",
                                                     "WR_BYTES_P")]
    assert order == sorted(order)
    assert re.findall(r"`([A-Z0-9]+)`", counters[counters.index("per engine"):counters.index("MAC_ACTIVE")]) \
        == [e.upper() for e in DEFAULT_ENGINES]
    assert regmap["CYCLES"].offset == COUNTER_BASE == 0x040


def test_rdl_is_deterministic_and_documented():
    text = make_rdl()
    assert text == make_rdl()
    assert not re.search(r"/(tmp|home|work|usr|root)/", text)  # no machine paths
    assert text.count("desc = ") == text.count("name = ")  # every component documented
    regmap, _ = elaborate_rdl(text)
    assert json.loads(json.dumps(regmap.to_json())) == regmap.to_json()
    assert regmap.to_json() == make_map().to_json()
    first = regmap.to_json()["registers"][0]
    assert list(first) == ["name", "offset", "width", "desc", "fields"]
    assert first["fields"][0]["reset"] == ID_VALUE
    with pytest.raises(KeyError, match="no register 'NOPE'"):
        regmap["NOPE"]
    with pytest.raises(KeyError, match="no field 'nope'"):
        regmap["CTRL"].field("nope")
    assert "CTRL" in regmap and "NOPE" not in regmap


@pytest.mark.parametrize("overrides,message", [
    (dict(engines=["fetch", "FETCH"]), "engines: .* repeats"),
    (dict(engines=["bad name"]), "engines: 'bad name' is not an identifier"),
    (dict(ports=0), "ports: 0 is not an integer in 1 .. 15"),
    (dict(ports=16), "ports: 16"),
    (dict(version=(256, 0)), "version major: 256"),
    (dict(config_id=1 << 16), "config_id: 65536"),
    (dict(caps={"rows": 16, "cols": 8}), "caps: keys .*data_bytes_log2"),
    (dict(caps={**CAPS, "rows": 256}), "caps rows: 256"),
    (dict(caps={**CAPS, "ports": 3}), "caps: ports = 3 differs from ports = 2"),
    (dict(name="9lives"), "name: '9lives'"),
])
def test_bad_facts_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_rdl(**overrides)


def _rdl_with(field_body: str, reg_body: str = "", instance: str = "f[0:0] = 0") -> str:
    return (f"addrmap m {{ reg {{ {reg_body} field {{ {field_body} }} {instance}; }} R @ 0x0; }};\n")


@pytest.mark.parametrize("text,message", [
    (_rdl_with("sw = r; hw = r; rclr;"), "property rclr"),
    (_rdl_with("sw = rw; hw = rw;"), "sw = rw, hw = rw"),
    (_rdl_with("sw = rw; hw = r; onwrite = woclr;"), "woclr without hwset"),
    (_rdl_with("sw = rw; hw = r; hwset;"), "hwset without woclr"),
    (_rdl_with("sw = rw; hw = r; onwrite = woset;"), "onwrite = woset"),
    (_rdl_with("sw = rw; hw = w; counter;", instance="f[7:0] = 0"), "property counter"),
    (_rdl_with("sw = rw; hw = r;", instance="f[0:0]"), "no reset value"),
    (_rdl_with("sw = r; hw = w;", instance="f[0:0] = 1"), "reset value on a hardware-written field"),
    (_rdl_with("sw = rw; hw = r;", reg_body="regwidth = 16;", instance="f[0:0] = 0"), "regwidth 16"),
    (_rdl_with("sw = rw; hw = r;", reg_body="regwidth = 64; accesswidth = 64;"), "accesswidth 64"),
    ("addrmap m { reg { field { sw = rw; hw = r; } f[0:0] = 0; } R[4] @ 0x0; };", "register array"),
    ("addrmap m { regfile { reg { field {} f; } R; } F @ 0x0; };", "a regfile"),
    ("addrmap m { reg { field { sw = rw; hw = r; } f[0:0] = 0; } R @ 0x0 ", "does not compile"),
])
def test_unsupported_rdl_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        elaborate_rdl(text)


# ============================================================================================
# (b), (c) the C header and the HTML reference
# ============================================================================================

def test_c_header_compiles_and_places_every_register(tmp_path):
    text = make_rdl(ports=3)
    regmap, node = elaborate_rdl(text)
    header = c_header(node)
    assert header == c_header(elaborate_rdl(text)[1])  # deterministic
    assert "/tmp" not in header and not re.search(r"20\d\d-\d\d-\d\d", header)
    (tmp_path / "moevit_accel_regs.h").write_text(header)
    checks = ["#include <stddef.h>", '#include "moevit_accel_regs.h"']
    for r in regmap.registers:
        checks.append(f'_Static_assert(offsetof(moevit_accel_t, {r.name}) == 0x{r.offset:X}, "{r.name}");')
        checks.append(f'_Static_assert(sizeof(((moevit_accel_t *)0)->{r.name}) == {r.width // 8}, "{r.name}");')
        for f in r.fields:
            macro = f"MOEVIT_ACCEL__{r.name}__{f.name.upper()}"
            checks.append(f'_Static_assert({macro}_bp == {f.lsb} && {macro}_bw == {f.width}, "{macro}");')
            if f.kind == "constant":
                checks.append(f'_Static_assert({macro}_reset == 0x{f.reset:X}, "{macro}");')
    (tmp_path / "check.c").write_text("\n".join(checks) + "\n")
    done = subprocess.run(["gcc", "-fsyntax-only", "-std=c11", "-Wall", "-Wextra", "-Werror", "check.c"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the check itself can fail: a wrong offset is a compile error
    (tmp_path / "wrong.c").write_text(checks[0] + "\n" + checks[1] + "\n"
                                      + '_Static_assert(offsetof(moevit_accel_t, CYCLES) == 0x44, "x");\n')
    assert subprocess.run(["gcc", "-fsyntax-only", "-std=c11", "wrong.c"], cwd=tmp_path,
                          capture_output=True).returncode != 0


def test_html_reference_is_written(tmp_path):
    _, node = elaborate_rdl(make_rdl())
    index = html_reference(node, tmp_path / "html")
    assert index == tmp_path / "html" / "index.html"
    assert index.stat().st_size > 0
    pages = "".join(p.read_text() for p in (tmp_path / "html" / "content").glob("*.html"))
    for name in ("DESC_BASE", "IRQ_STATUS", "BUSY_IM2COL", "BUSY_LAYERNORM", "BUSY_SOFTMAX",
                 "Bytes read through m_axi1."):
        assert name in pages, name
    assert str(tmp_path) not in index.read_text() + pages


# ============================================================================================
# (d) the register block in Amaranth's simulator
# ============================================================================================

class RegisterModel:
    """What the map documents, per clock edge: the value of every output port and every read."""

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        self.words = {r.offset // 4 + k: (r, k) for r in regmap.registers for k in range(r.words)}
        self.fields = [(r, f, port_name(r, f)) for r in regmap.registers for f in r.fields]
        self.coverage = {"race": 0, "pulse": 0, "clear": 0, "latched_differs": 0}
        self.reset()

    def reset(self):
        self.values = {p: f.reset for _, f, p in self.fields if f.kind in ("storage", "clear_on_write_one")}
        self.pulses = {p: 0 for _, f, p in self.fields if f.kind == "pulse"}
        self.shadow = {r.name: 0 for r in self.regmap.registers if r.latched}

    def outputs(self) -> dict[str, int]:
        return {**self.values, **self.pulses}

    def _live(self, register, inputs) -> int:
        value = 0
        for r, f, p in self.fields:
            if r is register:
                v = {"constant": f.reset, "input": inputs.get(p, 0), "pulse": 0}.get(f.kind)
                value |= (self.values[p] if v is None else v) << f.lsb
        return value

    def read(self, addr: int, inputs: dict) -> tuple[int, int]:
        """Data and response of a read sampled with these register values and inputs."""
        word = (addr % (1 << self.regmap.addr_width)) >> 2
        if word not in self.words:
            return 0, SLVERR
        register, k = self.words[word]
        if register.latched and k:
            return (self.shadow[register.name] >> 32 * (k - 1)) & MASK32, OKAY
        live = self._live(register, inputs)
        if register.latched:
            self.shadow[register.name] = live >> 32
        return (live >> 32 * k) & MASK32, OKAY

    def step(self, inputs: dict, write=None):
        """One clock edge with these inputs and (maybe) a write executing; return its response."""
        clears, self.pulses = {}, dict.fromkeys(self.pulses, 0)
        resp = None
        if write is not None:
            word = (write.addr % (1 << self.regmap.addr_width)) >> 2
            resp = SLVERR
            if word in self.words:
                resp = OKAY
                register, k = self.words[word]
                lanes = sum(0xFF << 8 * i for i in range(4) if write.strb >> i & 1) << 32 * k
                data = write.data << 32 * k
                for r, f, p in self.fields:
                    if r is not register:
                        continue
                    enable = lanes >> f.lsb & ((1 << f.width) - 1)
                    new = data >> f.lsb & enable
                    if f.kind == "storage":
                        self.values[p] = self.values[p] & ~enable | new
                    elif f.kind == "pulse":
                        self.pulses[p] = new
                        self.coverage["pulse"] += bool(new)
                    elif f.kind == "clear_on_write_one":
                        clears[p] = new
        for _, f, p in self.fields:
            if f.kind == "clear_on_write_one":
                clear, set_ = clears.get(p, 0), inputs.get(f"{p}_set", 0)
                self.coverage["race"] += bool(clear & set_)
                self.coverage["clear"] += bool(clear & self.values[p] & ~set_)
                self.values[p] = self.values[p] & ~clear | set_
        return resp


@dataclass
class Op:
    """One bus operation: ``w`` (write), ``r`` (read) or ``reset`` (hold ``rst`` for ``cycles``)."""

    kind: str
    addr: int = 0
    data: int = 0
    strb: int = 0xF
    delay: int = 0     # cycles before AWVALID / ARVALID, from when the channel could start it
    w_delay: int = 0   # cycles before WVALID
    cycles: int = 0
    # filled in by the run
    aw_at: int | None = None
    w_at: int | None = None
    ar_at: int | None = None
    begin: int | None = None   # first cycle of its B or R response
    done_at: int | None = None
    resp: int | None = None
    result: int | None = None
    expect: tuple | None = None
    since: dict = field(default_factory=dict)


def W(addr, data, strb=0xF, delay=0, w_delay=0):
    return Op("w", addr, data & MASK32, strb, delay, w_delay)


def R(addr, delay=0):
    return Op("r", addr, delay=delay)


def random_inputs(regmap, set_prob=0.25):
    """Per cycle: every hardware-written field random, each rw1c set bit high with ``set_prob``."""
    ports = [(port_name(r, f), f) for r in regmap.registers for f in r.fields]

    def inputs(cycle, rng):
        values = {}
        for p, f in ports:
            if f.kind == "input":
                values[p] = rng.getrandbits(f.width)
            elif f.kind == "clear_on_write_one":
                values[f"{p}_set"] = sum(1 << b for b in range(f.width) if rng.random() < set_prob)
        return values
    return inputs


def quiet_inputs(**fixed):
    """Hardware-written fields 0 (or as given by port name), no rw1c set."""
    def inputs(cycle, rng):
        return {k: (v(cycle) if callable(v) else v) for k, v in fixed.items()}
    return inputs


@dataclass
class Trace:
    ops: list
    problems: list
    coverage: dict
    cycles: int
    model: RegisterModel


def run_bus(regmap: RegisterMap, ops: list[Op], *, seed=1, ordered=False, ready_prob=0.7, inputs=None,
            max_cycles=20000) -> Trace:
    """Drive ``ops`` into a ``CsrBlock(regmap)`` and check it, every cycle, against ``RegisterModel``.

    ``ordered``: an op starts only when the one before it has completed; otherwise writes and
    reads run concurrently on their channels (each channel in op order). ``reset`` ops wait
    for everything before them. BREADY/RREADY are high with ``ready_prob`` each cycle.
    """
    rng = random.Random(seed)
    dut = CsrBlock(regmap)
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = dut
    inputs = inputs or random_inputs(regmap)
    in_ports = [n for n, m in dut.signature.members.items() if n != "bus" and m.flow == In]
    out_ports = [n for n, m in dut.signature.members.items() if n != "bus" and m.flow == Out]
    ops = [Op("reset", cycles=3)] + list(ops)
    model = RegisterModel(regmap)
    problems: list[str] = []
    coverage = {"aw_first": 0, "w_first": 0, "together": 0}
    state = {"cycles": 0}

    def done_before(i):
        return all(op.done_at is not None for op in ops[:i])

    def head(kind, stamp):
        """The first op of ``kind`` whose ``stamp`` is unset, if it may start now."""
        for i, op in enumerate(ops):
            if op.kind == "reset" and op.done_at is None:
                return None  # a barrier
            if op.kind == kind and getattr(op, stamp) is None:
                return op if (not ordered or done_before(i)) else None
        return None

    async def bench(ctx):
        bus = dut.bus
        prev = None
        reset_left = 0
        for cycle in range(max_cycles):
            if all(op.done_at is not None for op in ops) or len(problems) > 20:
                break
            # ---- drive ----
            rst = 0
            for i, op in enumerate(ops):
                if op.kind == "reset" and op.done_at is None:
                    if done_before(i):
                        if op.begin is None:
                            op.begin, reset_left = cycle, op.cycles
                        rst = 1
                        reset_left -= 1
                        if reset_left == 0:
                            op.done_at = cycle
                    break
            ctx.set(domain.rst, rst)
            offers = {}
            for channel, kind, stamp, delay in (("aw", "w", "aw_at", "delay"), ("w", "w", "w_at", "w_delay"),
                                                ("ar", "r", "ar_at", "delay")):
                op = None if rst else head(kind, stamp)
                if op is not None:
                    op.since.setdefault(channel, cycle)
                    if cycle < op.since[channel] + getattr(op, delay):
                        op = None
                offers[channel] = op
            ctx.set(bus.awvalid, offers["aw"] is not None)
            ctx.set(bus.awaddr, offers["aw"].addr if offers["aw"] else 0)
            ctx.set(bus.wvalid, offers["w"] is not None)
            ctx.set(bus.wdata, offers["w"].data if offers["w"] else 0)
            ctx.set(bus.wstrb, offers["w"].strb if offers["w"] else 0)
            ctx.set(bus.arvalid, offers["ar"] is not None)
            ctx.set(bus.araddr, offers["ar"].addr if offers["ar"] else 0)
            bready, rready = rng.random() < ready_prob, rng.random() < ready_prob
            ctx.set(bus.bready, bready)
            ctx.set(bus.rready, rready)
            driven = inputs(cycle, rng)
            for name in in_ports:
                ctx.set(getattr(dut, name), driven.get(name, 0))
            # ---- sample ----
            now = {name: ctx.get(getattr(bus, name)) for name in
                   ("awready", "wready", "bvalid", "bresp", "arready", "rvalid", "rdata", "rresp")}
            outs = {name: ctx.get(getattr(dut, name)) for name in out_ports}
            now.update(rst=rst, bready=bready, rready=rready, inputs=driven)

            def problem(text):
                problems.append(f"cycle {cycle}: {text}")

            if rst and (now["awready"] or now["wready"] or now["arready"]):
                problem("a ready is high during reset")
            if rst and prev and prev["rst"] and (now["bvalid"] or now["rvalid"]):
                problem("a valid is high during reset")
            if prev is not None:
                # the model's edge from the previous cycle to this one
                if prev["rst"]:
                    model.reset()
                else:
                    new_b = now["bvalid"] and not (prev["bvalid"] and not prev["bready"])
                    new_r = now["rvalid"] and not (prev["rvalid"] and not prev["rready"])
                    if prev["bvalid"] and not prev["bready"] and (not now["bvalid"] or now["bresp"] != prev["bresp"]):
                        problem("B withdrawn or changed before its handshake")
                    if prev["rvalid"] and not prev["rready"] and (
                            not now["rvalid"] or (now["rdata"], now["rresp"]) != (prev["rdata"], prev["rresp"])):
                        problem("R withdrawn or changed before its handshake")
                    if new_r:
                        op = next((o for o in ops if o.kind == "r" and o.begin is None and o.done_at is None), None)
                        if op is None or op.ar_at is None or op.ar_at >= cycle:
                            problem("R without an accepted read")
                        else:
                            op.begin = cycle
                            op.expect = model.read(op.addr, prev["inputs"])
                            if op.expect != (now["rdata"], now["rresp"]):
                                problem(f"read 0x{op.addr:03X}: got (0x{now['rdata']:X}, {now['rresp']}), "
                                        f"expected (0x{op.expect[0]:X}, {op.expect[1]})")
                    write = None
                    if new_b:
                        write = next((o for o in ops if o.kind == "w" and o.begin is None and o.done_at is None),
                                     None)
                        if write is None or None in (write.aw_at, write.w_at) or max(write.aw_at, write.w_at) >= cycle:
                            problem("B before both AW and W were accepted")
                            write = None
                        else:
                            write.begin = cycle
                    resp = model.step(prev["inputs"], write)
                    if write is not None:
                        write.expect = (resp,)
                        if resp != now["bresp"]:
                            problem(f"write 0x{write.addr:03X}: BRESP {now['bresp']}, expected {resp}")
                expected = model.outputs()
                for name, value in expected.items():
                    if outs[name] != value:
                        problem(f"port {name} = 0x{outs[name]:X}, expected 0x{value:X}")
            # ---- handshakes at this edge ----
            if offers["aw"] is not None and now["awready"]:
                offers["aw"].aw_at = cycle
            if offers["w"] is not None and now["wready"]:
                offers["w"].w_at = cycle
            if offers["ar"] is not None and now["arready"]:
                offers["ar"].ar_at = cycle
            if now["bvalid"] and bready:
                op = next((o for o in ops if o.kind == "w" and o.begin is not None and o.done_at is None), None)
                if op is None:
                    problem("B handshake without a write")
                else:
                    op.done_at, op.resp = cycle, now["bresp"]
                    order = "together" if op.aw_at == op.w_at else ("aw_first" if op.aw_at < op.w_at else "w_first")
                    coverage[order] += 1
            if now["rvalid"] and rready:
                op = next((o for o in ops if o.kind == "r" and o.begin is not None and o.done_at is None), None)
                if op is None:
                    problem("R handshake without a read")
                else:
                    op.done_at, op.resp, op.result = cycle, now["rresp"], now["rdata"]
            prev = now
            state["cycles"] = cycle + 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for op in ops:
        if op.done_at is None:
            problems.append(f"{op.kind} 0x{op.addr:03X} never completed (dropped or hung)")
    coverage.update(model.coverage)
    return Trace(ops=ops[1:], problems=problems, coverage=coverage, cycles=state["cycles"], model=model)


def reads(trace):
    return [(op.result, op.resp) for op in trace.ops if op.kind == "r"]


SIM_MAP = make_map(ports=2)


def test_sim_constants_rw_and_strobes():
    ops = [R(0x000), R(0x004), R(0x028), R(0x002),  # addr[1:0] are ignored
           W(0x010, 0x89ABCDEF), W(0x014, 0x01234567), R(0x010), R(0x014),
           W(0x011, 0x0000AA00, strb=0b0010), W(0x017, 0x55000000, strb=0b1000), R(0x010), R(0x014),
           W(0x014, 0xFFFFFFFF, strb=0), R(0x014),
           W(0x018, 0xFFFFFFFF), R(0x018), W(0x018, 0x0, strb=0b1110), R(0x018),
           W(0x000, 0x12345678), R(0x000), W(0x008, 0x3), R(0x008)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=2)
    assert trace.problems == []
    assert reads(trace) == [
        (0x4E505556, OKAY), (0x0102 | 0xBEEF << 16, OKAY), (2 | 5 << 4 | 16 << 8 | 8 << 16, OKAY), (0x4E505556, OKAY),
        (0x89ABCDEF, OKAY), (0x01234567, OKAY),
        (0x89ABAAEF, OKAY), (0x55234567, OKAY),
        (0x55234567, OKAY),
        (0x3, OKAY), (0x3, OKAY),
        (0x4E505556, OKAY), (0, OKAY)]
    assert all(op.resp == OKAY for op in trace.ops if op.kind == "w")  # read-only writes are ignored, OKAY


def test_sim_unmapped_addresses_answer_slverr():
    holes = [0x02C, 0x03C, 0x040 + 8 * len(counter_names(DEFAULT_ENGINES, 2)), 0xFFC]
    ops = [W(0x018, 0x3)] + [W(a, 0xFFFFFFFF) for a in holes] + [R(a) for a in holes] + [R(0x018), R(0x010)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=3)
    assert trace.problems == []
    assert [op.resp for op in trace.ops if op.kind == "w"] == [OKAY] + [SLVERR] * len(holes)
    assert reads(trace) == [(0, SLVERR)] * len(holes) + [(0x3, OKAY), (0, OKAY)]


def test_sim_singlepulse_fires_one_cycle_per_write_of_one():
    ops = [W(0x008, 0x1), W(0x008, 0x2), W(0x008, 0x3), W(0x008, 0x0), W(0x008, 0x3, strb=0b1110),
           W(0x008, 0x1), R(0x008)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=4, inputs=quiet_inputs())
    assert trace.problems == []  # the model checked the pulse ports every cycle
    assert trace.coverage["pulse"] == 5  # start x3, soft_reset x2
    assert reads(trace) == [(0, OKAY)]


def test_sim_rw1c_set_wins_over_clear():
    # set held high on done for the whole run: a write of 1 cannot clear it; error is set once, then cleared
    def inputs(cycle, rng):
        return {"irq_status_done_set": 1, "irq_status_error_set": int(cycle == 5)}
    ops = [R(0x01C, delay=10), W(0x01C, 0x3), R(0x01C), W(0x01C, 0x3), R(0x01C)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=5, inputs=inputs)
    assert trace.problems == []
    assert reads(trace) == [(0x3, OKAY), (0x1, OKAY), (0x1, OKAY)]
    assert trace.coverage["race"] >= 2 and trace.coverage["clear"] >= 1


def test_sim_64bit_counters_read_as_consistent_pairs():
    # every counter changes in both words every cycle; a low-then-high pair is one snapshot
    def value(cycle):
        return (cycle * 0x0000_0003_0000_0007 + 0xFFFF_FFF0) & ((1 << 64) - 1)
    counters = {port_name(SIM_MAP[n], SIM_MAP[n].fields[0]): value for n in counter_names(DEFAULT_ENGINES, 2)}
    ops = []
    for i, name in enumerate(["CYCLES", "MEM_STALL", "WR_BYTES_P1"] * 4):
        offset = SIM_MAP[name].offset
        ops += [R(offset, delay=i % 3), R(offset + 4, delay=(2 * i) % 5)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=6, inputs=quiet_inputs(**counters))
    assert trace.problems == []
    results = reads(trace)
    cycles = [op.begin for op in trace.ops]
    for k in range(0, len(results), 2):
        (low, _), (high, _) = results[k], results[k + 1]
        assert high << 32 | low == value(cycles[k] - 1)  # the value in the cycle of the low read
        assert high != value(cycles[k + 1] - 1) >> 32  # the live high word had moved on
    # reading the high word alone returns the last latched one, not the live value
    trace = run_bus(SIM_MAP, [R(0x040), R(0x04C), R(0x044, delay=7)], ordered=True, seed=7,
                    inputs=quiet_inputs(**counters))
    assert trace.problems == []
    low_cycle = trace.ops[0].begin - 1
    assert reads(trace)[1:] == [(0, OKAY), (value(low_cycle) >> 32, OKAY)]


def test_sim_write_orders_back_to_back_and_reset():
    ops = [W(0x018, 0x1, delay=6, w_delay=0), W(0x018, 0x2, delay=0, w_delay=6), W(0x018, 0x3),
           W(0x010, 0xA5A5A5A5, delay=2, w_delay=2), R(0x018), R(0x010)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=8, inputs=quiet_inputs())
    assert trace.problems == []
    assert trace.coverage["aw_first"] >= 1 and trace.coverage["w_first"] >= 1 and trace.coverage["together"] >= 2
    assert reads(trace) == [(0x3, OKAY), (0xA5A5A5A5, OKAY)]

    # back to back: zero delays and ready always high; one write and one read every two cycles
    n = 20
    burst = [W(0x010, i) for i in range(n)] + [R(0x010) for _ in range(n)]
    trace = run_bus(SIM_MAP, burst, seed=9, ready_prob=1.0, inputs=quiet_inputs())
    assert trace.problems == []
    assert trace.cycles <= 3 + 2 * n + 4, trace.cycles

    # reset clears the registers and a pending irq bit; the block answers afterwards
    ops = [W(0x010, 0x1234), W(0x018, 0x3), R(0x01C), Op("reset", cycles=4), R(0x010), R(0x018), R(0x01C),
           W(0x018, 0x2), R(0x018)]
    trace = run_bus(SIM_MAP, ops, ordered=True, seed=10,
                    inputs=quiet_inputs(irq_status_done_set=lambda c: int(c == 4)))
    assert trace.problems == []
    assert reads(trace) == [(0x1, OKAY), (0, OKAY), (0, OKAY), (0, OKAY), (0x2, OKAY)]


@pytest.mark.parametrize("seed", [11, 12])
def test_sim_random_traffic_matches_the_model(seed):
    """Concurrent reads and writes, random addresses, data, strobes, stalls, inputs and a reset."""
    rng = random.Random(seed)
    mapped = [r.offset + 4 * k for r in SIM_MAP.registers for k in range(r.words)]
    latched = [r.offset for r in SIM_MAP.registers if r.latched]

    def address():
        pick = rng.random()
        if pick < 0.1:
            return rng.randrange(0, 1 << SIM_MAP.addr_width)  # anywhere, mostly unmapped
        if pick < 0.4:
            return rng.choice([0x008, 0x010, 0x014, 0x018, 0x01C])  # writable
        return rng.choice(mapped) + rng.randrange(4)

    ops = []
    for i in range(140):
        if i == 70:
            ops.append(Op("reset", cycles=rng.randint(1, 4)))
        if rng.random() < 0.5:
            ops.append(W(address(), rng.getrandbits(32), rng.getrandbits(4), rng.choice([0, 0, 1, 3, 6]),
                         rng.choice([0, 0, 1, 3, 6])))
        elif rng.random() < 0.2:
            low = rng.choice(latched)
            ops += [R(low, rng.choice([0, 2])), R(low + 4, rng.choice([0, 1, 4]))]
        else:
            ops.append(R(address(), rng.choice([0, 0, 1, 3])))
    trace = run_bus(SIM_MAP, ops, seed=seed, ready_prob=0.6)
    assert trace.problems == []
    cov = trace.coverage
    assert min(cov["aw_first"], cov["w_first"], cov["together"], cov["pulse"], cov["clear"]) >= 1, cov
    assert any(op.resp == SLVERR for op in trace.ops if op.kind == "r")


def test_the_model_catches_a_wrong_block(monkeypatch):
    """A block whose rw1c clear wins over set is caught: the checks can fail."""
    import hw.vit.csr as csr

    original = csr.CsrBlock._register_logic

    def clear_wins(self, m, register, state):
        live = original(self, m, register, state)
        for f in register.fields:
            if f.kind == "clear_on_write_one":
                name = port_name(register, f)
                stored, clear = state[name], state[f"{name}_clear"]
                m.d.sync += stored.eq((stored | getattr(self, f"{name}_set")) & ~clear)
        return live
    monkeypatch.setattr(csr.CsrBlock, "_register_logic", clear_wins)

    def inputs(cycle, rng):
        return {"irq_status_done_set": 1}
    trace = run_bus(SIM_MAP, [W(0x01C, 0x1), R(0x01C)], ordered=True, seed=13, inputs=inputs)
    assert any("irq_status_done" in p for p in trace.problems)


# ============================================================================================
# (e) lint, (f) cocotb at the port level
# ============================================================================================

def test_csr_verilog_is_lint_clean(tmp_path):
    path = tmp_path / "csr.v"
    path.write_text(verilog.convert(CsrBlock(make_map(ports=3)), name="csr", emit_src=False))
    assert lint(path, "csr") == []


class CsrTop(wiring.Component):
    """A ``CsrBlock`` with flat AXI4-Lite port names (``s_axil_awaddr``, ...) for cocotbext-axi."""

    def __init__(self, regmap: RegisterMap):
        self.csr = CsrBlock(regmap)
        members = {f"s_axil_{n}": m for n, m in self.csr.signature.members["bus"].signature.members.items()}
        members.update((n, m) for n, m in self.csr.signature.members.items() if n != "bus")
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.csr = csr = self.csr
        for name, member in csr.signature.members.items():
            pairs = ([(getattr(csr.bus, n), getattr(self, f"s_axil_{n}"), mm.flow) for n, mm in
                      member.signature.members.items()] if name == "bus"
                     else [(getattr(csr, name), getattr(self, name), member.flow)])
            for inner, outer, flow in pairs:
                m.d.comb += (inner.eq(outer) if flow == In else outer.eq(inner))
        return m


@pytest.mark.rtl
def test_csr_with_cocotbext_axi(tmp_path):
    from sim.runner import build_verilog, run_cocotb_module

    text = make_rdl(ports=2)
    regmap, _ = elaborate_rdl(text)
    (tmp_path / "regs.rdl").write_text(text)
    source = tmp_path / "csr_top.v"
    source.write_text(verilog.convert(CsrTop(regmap), name="csr_top", emit_src=False))
    assert lint(source, "csr_top") == []
    sim_dir = build_verilog(source, "csr_top", tmp_path / "sim", build_root=BUILD_ROOT)
    tests, failed = run_cocotb_module("vit_csr_cocotb", "csr_top", sim_dir, tmp_path, {
        "NPUFORGE_CSR_RDL": str(tmp_path / "regs.rdl"), "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])})
    assert (tests, failed) == (1, 0), (tmp_path / "sim.log").read_text()[-3000:]
