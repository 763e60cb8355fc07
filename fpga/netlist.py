"""A design as a flat netlist of generic gates, with the load of every net, cached.

For gate-level toggle counts (``sim.energy.gate_proxy``): the RTL proxy of ``sim.energy``
sees only the signals Verilator keeps, so a multiplier written as one ``*`` is one net
while a compressor tree built from named vectors shows every partial sum. Here every
design is lowered to the same kind of cells first, so each net is counted once, by the
same rule, whatever the RTL looked like:

```
read_verilog design.v
synth -flatten -top TOP
dfflegalize -cell $_DFF_P_ 01        # as the generic target: plain flip-flops, enables in logic
opt_clean -purge                     # one name per net: the RTL's aliases go
rename -hide w:* i:* %d o:* %d       # every net but the ports gets a short name n<k>,
rename -enumerate -pattern n% w:*    # so Verilator's coverage names it plainly
write_verilog -noattr netlist.v
write_json netlist.json
```

:func:`net_loads` reads ``netlist.json``: the **load** of a net bit is the number of cell
input pins it drives, plus one if it is an output port; the clock and reset nets are
the caller's to leave out. The netlist has the top's ports and their widths, so the
same harness drives it as the RTL.

The cache follows :mod:`fpga.modules` (one ``result.json`` per ``cache_dir`` keyed by the
Verilog bytes, top, config hash, Yosys version, script and :data:`FLOW_VERSION`, written
last through a rename, a lock against parallel runs); the netlist is kept beside it.
"""

import hashlib
import json
import time
from pathlib import Path

from gen.errors import ToolError
from gen.locking import locked

from . import yosys
from .modules import flow_cache_key, flow_inputs, yosys_run
from .process import DEFAULT_TIMEOUT
from .synth import RESULT, YOSYS_LOG, _forget_previous_run, _read_result, _write_atomic

#: The name of this flow in results and cache keys (not an ``npuforge synth`` target).
FLOW = "gate_netlist"
#: Bump when the numbers are derived differently from the same Yosys output.
FLOW_VERSION = 2
NETLIST = "netlist.v"
NETLIST_JSON = "netlist.json"
LOADS = "loads.json"


def netlist_script(top: str) -> str:
    """Flat generic gates with one short name per net (see the module docstring)."""
    return "\n".join([
        f"read_verilog {yosys.DESIGN}",
        f"synth -flatten -top {top}",
        "dfflegalize -cell $_DFF_P_ 01",
        "opt_clean -purge",
        "rename -hide w:* i:* %d o:* %d",
        "rename -enumerate -pattern n% w:*",
        f"write_verilog -noattr {NETLIST}",
        f"write_json {NETLIST_JSON}",
        f"tee -q -o {yosys.STAT} stat -json -tech cmos",
        "",
    ])


def net_loads(netlist: dict, top: str) -> dict:
    """The nets of ``top`` in Yosys' ``write_json`` output: ``{"bits": {name: net}, "loads": {net: load},
    "constants": [name, ...]}``.

    ``net`` is Yosys' bit number (as a string in ``loads``, JSON keys being strings). A
    name is the one Verilator's coverage uses: ``n12`` for a one-bit wire,
    ``results__payload[3]`` for bit 3 of a vector (a range's ``offset`` counted in). A
    net may have several names (a port and the wire driving it, a vector of bits of
    other wires): all are listed, so every coverage point finds its net and each net is
    counted once. Constant bits are not nets; ``constants`` lists the names bound to them
    (Verilator may count one toggle there, when the model sets the constant at time 0). The load is the number of cell input pins
    the net drives, plus one for an output port bit (the pin outside).
    """
    try:
        module = netlist["modules"][top]
    except KeyError:
        raise ValueError(f"write_json: no module {top}") from None
    pins: dict[int, int] = {}
    for cell in module["cells"].values():
        directions = cell["port_directions"]
        for port, bits in cell["connections"].items():
            if directions.get(port) == "input":
                for bit in bits:
                    if isinstance(bit, int):
                        pins[bit] = pins.get(bit, 0) + 1
    for port in module["ports"].values():
        if port["direction"] == "output":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    pins[bit] = pins.get(bit, 0) + 1
    names: dict[str, int] = {}
    constants = []
    for name, entry in sorted(module["netnames"].items()):
        bits, offset = entry["bits"], entry.get("offset", 0)
        for index, bit in enumerate(bits):
            bit_name = name if len(bits) == 1 else f"{name}[{index + offset}]"
            if isinstance(bit, int):
                names[bit_name] = bit
            else:
                constants.append(bit_name)
    return {"bits": names, "loads": {str(bit): pins.get(bit, 0) for bit in sorted(set(names.values()))},
            "constants": constants}


def gate_netlist(verilog: Path, top: str, *, config_hash: str, cache_dir: Path,
                 timeout: float = DEFAULT_TIMEOUT) -> dict:
    """The flat gate netlist of ``verilog``, cached: ``netlist`` (its path), ``nets`` (see
    :func:`net_loads`), ``cells``, ``transistors`` and ``ff`` of the netlist.

    Same errors as :func:`fpga.synth.synthesize`: ``UsageError`` for a bad top or an
    unreadable file, one-line ``ToolError`` when Yosys is missing, fails or its output
    cannot be read.
    """
    text, yosys_path, tools = flow_inputs(verilog, top)
    cache_dir = Path(cache_dir)
    key = flow_cache_key(FLOW, FLOW_VERSION, netlist_script(top), text, top, config_hash=config_hash, tools=tools)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(cache_dir / ".lock"):
        data = _read_result(cache_dir / RESULT, key)
        if data is None or not (cache_dir / NETLIST).exists() or not (cache_dir / LOADS).exists():
            data = _build(text, top, yosys_path, cache_dir, config_hash=config_hash, tools=tools, key=key,
                          timeout=timeout)
        loads = json.loads((cache_dir / LOADS).read_text())
    return {**data, "netlist": str(cache_dir / NETLIST), "nets": loads}


def _build(text: bytes, top: str, yosys_path: str, cache_dir: Path, *, config_hash: str, tools: dict, key: str,
           timeout: float) -> dict:
    _forget_previous_run(cache_dir)
    for stale in (NETLIST, LOADS):
        (cache_dir / stale).unlink(missing_ok=True)
    started = time.monotonic()
    with yosys_run(text, netlist_script(top), yosys_path, cache_dir, timeout) as (scratch, log):
        try:
            loads = net_loads(json.loads((scratch / NETLIST_JSON).read_text()), top)
            stat_text = (scratch / yosys.STAT).read_text()
            stat = yosys.parse_stat(stat_text)
            transistors, _ = yosys.parse_cmos_transistors(stat_text)
        except (OSError, ValueError, KeyError, TypeError) as error:
            detail = error.strerror if isinstance(error, OSError) else str(error)
            raise ToolError(f"yosys: cannot read the netlist of {top} ({detail}); see {log}") from None
        (scratch / LOADS).write_text(json.dumps(loads))
        (scratch / LOADS).replace(cache_dir / LOADS)
        (scratch / NETLIST).replace(cache_dir / NETLIST)
    data = {"target": FLOW, "top": top, "config_hash": config_hash, "tools": tools,
            "seconds": round(time.monotonic() - started, 2), "cells": stat.cells, "transistors": transistors,
            "ff": stat.total(lambda name: name.startswith("$_DFF_")), "net_count": len(loads["loads"]),
            "verilog_sha256": hashlib.sha256(text).hexdigest(), "cache_key": key}
    _write_atomic(cache_dir / RESULT, data)
    return data
