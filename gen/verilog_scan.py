"""Read ports, registers and memories back from the Verilog that Yosys wrote.

Amaranth merges signals that carry the same net, so a register may end up named
after the port it drives (``draining`` becomes ``results__valid``), and a named
wire in the output may be a mere alias of the real flip-flop. Writing to an alias
from a testbench changes nothing, so fault sites are taken from what Yosys
actually emitted: every ``reg`` assigned in an ``always @(posedge ...)`` block,
and every ``reg`` array (a memory).

The parser only needs to understand Yosys ``write_verilog`` output, which is
regular: one declaration per line, one flip-flop per ``always`` block.
"""

import re
from dataclasses import dataclass, field

_IDENT = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE = re.compile(rf"^module\s+({_IDENT})\s*\(", re.M)
_DECL = re.compile(
    rf"^\s*(input|output|inout|reg|wire)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?({_IDENT})\s*"
    rf"(?:\[(\d+):(\d+)\])?\s*(?:=[^;]*)?;\s*$")
# A flip-flop is written either as "always @(posedge clk)\n  q <= d;" or, for memory
# read ports, as "always @(posedge clk) begin\n  q <= mem[addr];\n end".
_FLOP = re.compile(
    rf"^\s*always\s+@\(\s*(?:posedge|negedge)\s+{_IDENT}\s*\)\s*(?:begin\s*)?\n\s*({_IDENT})\s*<=", re.M)
_ALIAS = re.compile(rf"^\s*assign\s+({_IDENT})\s*=\s*({_IDENT})\s*;\s*$", re.M)


def _plain(name: str) -> str:
    """Yosys escapes odd identifiers as ``\\name `` (backslash, trailing space)."""
    return name[1:] if name.startswith("\\") else name


@dataclass
class ScannedModule:
    """One Verilog module as emitted."""

    name: str
    ports: list[tuple[str, str, int]] = field(default_factory=list)  # (name, direction, width)
    widths: dict[str, int] = field(default_factory=dict)
    memories: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (width, depth)
    flops: list[str] = field(default_factory=list)
    aliases: dict[str, list[str]] = field(default_factory=dict)  # driver -> names that copy it


def scan_modules(verilog: str) -> list[ScannedModule]:
    """Every module in ``verilog``, in file order."""
    starts = list(_MODULE.finditer(verilog))
    modules = []
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(verilog)
        body = verilog[match.end():end]
        module = ScannedModule(name=_plain(match.group(1)))
        for line in body.splitlines():
            decl = _DECL.match(line)
            if not decl:
                continue
            kind, msb, lsb, name, first, last = decl.groups()
            name = _plain(name)
            width = abs(int(msb) - int(lsb)) + 1 if msb is not None else 1
            if kind in ("input", "output", "inout"):
                module.ports.append((name, kind, width))
            elif first is not None:
                module.memories[name] = (width, abs(int(last) - int(first)) + 1)
            else:
                module.widths.setdefault(name, width)
        module.flops = [_plain(m.group(1)) for m in _FLOP.finditer(body)]
        for alias in _ALIAS.finditer(body):
            module.aliases.setdefault(_plain(alias.group(2)), []).append(_plain(alias.group(1)))
        modules.append(module)
    return modules
