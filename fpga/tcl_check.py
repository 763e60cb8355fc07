"""Checks of the generated Vivado scripts without Vivado: run them in ``tclsh`` with Vivado's commands
stubbed (``fpga/tcl/vivado_stub.tcl`` records every call), then hold the recorded calls to the design.

:func:`run_stubbed` runs one script and returns its :class:`Call` list; :func:`check_ip`,
:func:`check_block_design` and :func:`check_project` return the problems found (empty: the script
does what the design needs): every port of the manifest on an interface or a net, every AXI master
on its own HP port through a SmartConnect, the CSRs on HPM0 FPD, every address space assigned
without overlaps, ``pl_clk0`` at ``clock_mhz`` on every clock pin, the reset and ``irq`` wired,
the IP's files and interfaces declared.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gen.errors import ToolError

from .boards import DDR_LOW, Board, hp_config
from .vivado import BD, CELL, SMARTCONNECT_VLNV, hdl_files

STUB = Path(__file__).with_name("tcl") / "vivado_stub.tcl"
PS = "zynq_ultra_ps_e_0"


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple

    def option(self, flag: str) -> str | None:
        """The value after ``flag`` (``-vlnv x`` -> ``x``), or None."""
        if flag in self.args:
            index = self.args.index(flag)
            return self.args[index + 1] if index + 1 < len(self.args) else None
        return None


def run_stubbed(script: Path, work_dir: Path) -> list[Call]:
    """Run ``script`` in ``tclsh`` from ``work_dir`` with the stubs; its calls. A failing script is a
    ``ToolError`` naming the Tcl error."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise ToolError("tclsh: not found on PATH (apt-get install tcl); needed to check the Vivado scripts")
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / (Path(script).stem + ".calls")
    done = subprocess.run([tclsh, str(STUB), str(log), str(Path(script).resolve())], cwd=work_dir,
                          capture_output=True, text=True, timeout=60)
    if done.returncode:
        message = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}").splitlines()[0]
        raise ToolError(f"tclsh {script}: {message}")
    calls = []
    for line in log.read_text().splitlines():
        name, *args = line.split("\x1f")
        calls.append(Call(name, tuple(args)))
    return calls


def _named(calls: list[Call], name: str) -> list[Call]:
    return [c for c in calls if c.name == name]


def _tcl_words(text: str) -> list[str]:
    """A flat Tcl list (``a {b c} d``) as words; enough for the property lists the generators write."""
    words, depth, current = [], 0, ""
    for char in text:
        if char == "{":
            depth += 1
            if depth == 1:
                continue
        elif char == "}":
            depth -= 1
            if depth == 0:
                words.append(current)
                current = ""
                continue
        if char.isspace() and depth == 0:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    if current:
        words.append(current)
    return words


def cell_config(calls: list[Call], cell: str) -> dict[str, str]:
    """``CONFIG.*`` properties set on ``cell`` by ``set_property -dict``."""
    config: dict[str, str] = {}
    for call in _named(calls, "set_property"):
        if call.args and call.args[0] == "-dict" and call.args[-1] == cell:
            words = _tcl_words(call.args[1])
            config.update({k.removeprefix("CONFIG."): v for k, v in zip(words[::2], words[1::2], strict=True)})
    return config


def nets(calls: list[Call]) -> list[set]:
    """The nets ``connect_bd_net`` made: sets of pins (calls naming a common pin are one net)."""
    groups: list[set] = []
    for call in _named(calls, "connect_bd_net"):
        pins = set(call.args)
        joined = [g for g in groups if g & pins]
        for g in joined:
            groups.remove(g)
            pins |= g
        groups.append(pins)
    return groups


def _net_of(groups: list[set], pin: str) -> set:
    return next((g for g in groups if pin in g), set())


def _reach(calls: list[Call], start: str) -> set:
    """Interface pins reachable from ``start`` over ``connect_bd_intf_net`` and through SmartConnects
    (``S00_AXI`` to ``M00_AXI`` of a SmartConnect cell)."""
    smartconnects = {c.args[-1] for c in _named(calls, "create_bd_cell") if c.option("-vlnv") == SMARTCONNECT_VLNV}
    edges: dict[str, set] = {}
    for call in _named(calls, "connect_bd_intf_net"):
        a, b = call.args[-2:]
        edges.setdefault(a, set()).add(b)
        edges.setdefault(b, set()).add(a)
    for smc in smartconnects:
        edges.setdefault(f"{smc}/S00_AXI", set()).add(f"{smc}/M00_AXI")
        edges.setdefault(f"{smc}/M00_AXI", set()).add(f"{smc}/S00_AXI")
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def check_ip(calls: list[Call], manifest: dict) -> list[str]:
    """The IP packaging: the HDL files read, the core packaged, every interface declared and clocked."""
    problems = []
    read = {Path(c.args[-1]).name for c in _named(calls, "read_verilog")}
    problems += [f"IP: {name} is not read" for name in hdl_files(manifest) if name not in read]
    if not _named(calls, "ipx::package_project"):
        problems.append("IP: ipx::package_project is not called")
    prefixes = [m["prefix"] for m in manifest["axi"]["masters"]] + [manifest["axi"]["csr"]["prefix"]]
    clocked = set()
    for call in _named(calls, "ipx::associate_bus_interfaces"):
        if call.option("-busif") and call.option("-clock") == manifest["clock"]["port"]:
            clocked |= set(call.option("-busif").split(":"))
    problems += [f"IP: interface {p} is not associated with {manifest['clock']['port']}" for p in prefixes
                 if p not in clocked]
    spaces = {c.args[0] for c in _named(calls, "ipx::add_address_space")}
    problems += [f"IP: master {m['prefix']} has no address space" for m in manifest["axi"]["masters"]
                 if m["prefix"] not in spaces]
    if manifest["axi"]["csr"]["prefix"] not in {c.args[0] for c in _named(calls, "ipx::add_memory_map")}:
        problems.append("IP: the register slave has no memory map")
    inferred = {c.args[0] for c in _named(calls, "ipx::infer_bus_interface")}
    problems += [f"IP: port {port} is not an interface" for port in
                 (manifest["clock"]["port"], manifest["reset"]["port"], manifest["axi"]["irq"]) if port not in inferred]
    if not _named(calls, "ipx::save_core"):
        problems.append("IP: the core is not saved")
    return problems


def check_block_design(calls: list[Call], manifest: dict, board: Board, clock_mhz: float) -> list[str]:
    """The block design against the design's ports and address map (module doc)."""
    problems = []
    axi = manifest["axi"]
    masters, lite = axi["masters"], axi["csr"]["prefix"]
    ps = cell_config(calls, PS)
    groups = nets(calls)
    prefixes = [m["prefix"] for m in masters] + [lite]
    for port in manifest["ports"]:  # every port is on an interface or a net
        name = port["name"]
        if not any(name.startswith(p + "_") for p in prefixes) and not _net_of(groups, f"{CELL}/{name}"):
            problems.append(f"port {name} is not connected")
    hp_of: dict[str, int] = {}
    for master in masters:
        reached = _reach(calls, f"{CELL}/{master['prefix']}")
        hps = [int(pin.split("S_AXI_HP")[1][0]) for pin in reached if pin.startswith(f"{PS}/S_AXI_HP")]
        if len(hps) != 1:
            problems.append(f"master {master['prefix']} reaches HP ports {hps}; allowed: exactly one")
            continue
        hp_of[master["prefix"]] = hps[0]
        if ps.get(hp_config(hps[0])) != "1":
            problems.append(f"master {master['prefix']}: HP{hps[0]} is not enabled ({hp_config(hps[0])})")
        if f"{PS}/saxihp{hps[0]}_fpd_aclk" not in _net_of(groups, f"{PS}/pl_clk0"):
            problems.append(f"HP{hps[0]}'s clock is not pl_clk0")
    if len(set(hp_of.values())) != len(hp_of):
        problems.append(f"masters share HP ports: {hp_of}")
    if len(masters) > board.hp_ports:
        problems.append(f"{len(masters)} masters; {board.name} has {board.hp_ports} HP ports")
    if f"{CELL}/{lite}" not in _reach(calls, f"{PS}/M_AXI_HPM0_FPD") or ps.get("PSU__USE__M_AXI_GP0") != "1":
        problems.append(f"the registers {lite} are not on M_AXI_HPM0_FPD")
    if ps.get("PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ") != f"{clock_mhz:g}":
        problems.append(f"pl_clk0 at {ps.get('PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ')} MHz; the config says {clock_mhz:g}")
    clock_net = _net_of(groups, f"{PS}/pl_clk0")
    smartconnects = [c.args[-1] for c in _named(calls, "create_bd_cell") if c.option("-vlnv") == SMARTCONNECT_VLNV]
    for pin in [f"{CELL}/{manifest['clock']['port']}", f"{PS}/maxihpm0_fpd_aclk",
                *(f"{smc}/aclk" for smc in smartconnects)]:
        if pin not in clock_net:
            problems.append(f"{pin} is not on pl_clk0")
    reset_source = "peripheral_reset" if manifest["reset"]["active"] == "high" else "peripheral_aresetn"
    if f"rst_pl0/{reset_source}" not in _net_of(groups, f"{CELL}/{manifest['reset']['port']}"):
        problems.append(f"{manifest['reset']['port']} is not driven by the reset block's {reset_source}")
    if f"{PS}/pl_resetn0" not in _net_of(groups, "rst_pl0/ext_reset_in"):
        problems.append("the reset block is not driven by pl_resetn0")
    if f"{PS}/pl_ps_irq0" not in _net_of(groups, f"{CELL}/{axi['irq']}") or ps.get("PSU__USE__IRQ0") != "1":
        problems.append(f"{axi['irq']} is not on pl_ps_irq0")
    problems += _check_addresses(calls, manifest, hp_of)
    for needed in ("validate_bd_design", "save_bd_design", "make_wrapper"):
        if not _named(calls, needed):
            problems.append(f"{needed} is not called")
    if not any(c.args[-1] == CELL for c in _named(calls, "create_bd_cell")):
        problems.append(f"no {CELL} cell")
    return problems


def _check_addresses(calls: list[Call], manifest: dict, hp_of: dict) -> list[str]:
    problems = []
    assigned: dict[str, list] = {}
    for call in _named(calls, "assign_bd_address"):
        space = call.option("-target_address_space")
        offset, size = int(call.option("-offset"), 16), _size(call.option("-range"))
        assigned.setdefault(space, []).append((offset, size, call.args[-1]))
    for master in manifest["axi"]["masters"]:
        entries = assigned.get(f"{CELL}/{master['prefix']}", [])
        hp = hp_of.get(master["prefix"])
        segment = f"{PS}/SAXIGP{hp + 2}/HP{hp}_DDR_LOW" if hp is not None else None
        if not any(seg == segment for _, _, seg in entries):
            problems.append(f"master {master['prefix']}: the DDR behind its HP port is not assigned")
        for offset, size, seg in entries:
            if offset + size > 1 << master["addr_width"]:
                problems.append(f"master {master['prefix']}: {seg} at {offset:#x} + {size:#x} is beyond its "
                                f"{master['addr_width']}-bit addresses")
            if (offset, size) != DDR_LOW:
                problems.append(f"master {master['prefix']}: {seg} at {offset:#x} size {size:#x}; allowed: the DDR "
                                "below 2 GB")
    data = sorted(assigned.get(f"{PS}/Data", []))
    if not any(seg == f"{CELL}/{manifest['axi']['csr']['prefix']}/reg0" for _, _, seg in data):
        problems.append("the registers have no address in the PS's data space")
    for (o1, s1, a), (o2, _, b) in zip(data, data[1:]):
        if o1 + s1 > o2:
            problems.append(f"{a} and {b} overlap")
    return problems


def _size(text: str) -> int:
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * scale[text[-1]] if text[-1] in scale else int(text, 0)


def check_project(calls: list[Call], manifest: dict, board: Board, clock_mhz: float) -> list[str]:
    """``project.tcl``: the IP and the block design as above, the board's part and constraints, the bitstream."""
    problems = check_ip(calls, manifest) + check_block_design(calls, manifest, board, clock_mhz)
    created = _named(calls, "create_project")
    if not created or created[0].option("-part") != board.part:
        problems.append(f"the project is not created for {board.part}")
    if not any(Path(c.args[-1]).name == f"{board.name}.xdc" for c in _named(calls, "read_xdc")):
        problems.append(f"{board.name}.xdc is not read")
    runs = _named(calls, "launch_runs")
    if not any(c.args[0] == "impl_1" and c.option("-to_step") == "write_bitstream" for c in runs):
        problems.append("no bitstream run (launch_runs impl_1 -to_step write_bitstream)")
    copied = {Path(c.args[-1]).suffix for c in _named(calls, "file copy")}
    if not {".bit", ".hwh"} <= copied:
        problems.append(f"the overlay's .bit and .hwh are not copied (copied {sorted(copied)})")
    if not any(c.args[1] == f"{BD}_wrapper" for c in _named(calls, "set_property") if c.args[0] == "top"):
        problems.append("the top is not the block design's wrapper")
    return problems
