"""Yosys (the system one, not Amaranth's built-in): locating it, the synthesis scripts, the parsers.

Scripts are text with fixed relative file names (``design.v`` in, ``stat.json``,
``ltp.txt``, ``top.json`` out), run with the working directory set to a scratch
directory, so the same design and target always give the same script; its text is
part of the cache key.

Parsers take the text Yosys wrote and return plain numbers; they raise
``ValueError`` when the text is not what they expect (the caller turns that into a
one-line ``ToolError`` naming the log). They were written against Yosys 0.23
(Debian) and tested on its real output.
"""

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from gen.errors import ToolError

DESIGN = "design.v"      # the Verilog, copied into the scratch directory
STAT = "stat.json"       # `stat -json` of the final netlist
LTP = "ltp.txt"          # `ltp -noff` report (generic only)
NETLIST = "top.json"     # the ECP5 netlist handed to nextpnr

#: Cell types ``stat -tech cmos`` gives a transistor cost in Yosys 0.23 (kernel/cost.h and
#: passes/cmds/stat.cc): the simple gates, and 16 for ``$_DFF_P_``/``$_DFF_N_``.
#: Anything else counts zero and turns the estimate into "N+".
CMOS_COSTED = frozenset({
    "$_BUF_", "$_NOT_", "$_AND_", "$_NAND_", "$_OR_", "$_NOR_", "$_ANDNOT_", "$_ORNOT_", "$_XOR_",
    "$_XNOR_", "$_AOI3_", "$_OAI3_", "$_AOI4_", "$_OAI4_", "$_MUX_", "$_NMUX_", "$_DFF_P_", "$_DFF_N_",
})

MISSING = "yosys: not found on PATH; install it with: apt-get install -y yosys"


def find_yosys() -> str:
    """Path of the ``yosys`` on PATH, or ToolError with the install command."""
    path = shutil.which("yosys")
    if path is None:
        raise ToolError(MISSING)
    return path


def yosys_version(path: str) -> str:
    """``yosys -V`` without the leading name, e.g. ``0.23 (git sha1 7ce5011c24b)``."""
    try:
        out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise ToolError(f"yosys: '{path} -V' failed ({error.__class__.__name__}); "
                        "is the installation broken?") from None
    text = out.strip().splitlines()[0] if out.strip() else ""
    return text.removeprefix("Yosys ").strip() or "unknown"


# --- scripts -------------------------------------------------------------------------

#: Where a design marks flip-flops ``keep`` (the DMR/TMR replicas of ``hw/protect/registers.py``):
#: Amaranth puts the attribute on the register's wire only, and ``opt_merge`` merges flip-flops
#: with identical inputs, so the replicas (and the voter or comparator) would vanish from the
#: count. After ``proc`` the attribute is copied to the flip-flop cells driving those wires.
KEEP_FLOPS = ("proc", "setattr -set keep 1 w:* a:keep %i %ci1:+[Q]")


def wants_kept_flops(verilog: bytes) -> bool:
    """True when the Verilog marks registers ``keep``; only then do the scripts add :data:`KEEP_FLOPS`
    (so every other design's script, and its cached result, stays as it was)."""
    return b"(* keep" in verilog


def _read(keep_flops: bool) -> list[str]:
    return [f"read_verilog {DESIGN}", *(KEEP_FLOPS if keep_flops else ())]


def generic_script(top: str, keep_flops: bool = False) -> str:
    """Technology-independent gates, a CMOS transistor estimate and the longest path in cells.

    ``synth`` leaves flip-flops with enable and synchronous reset (``$_SDFFE_*``), which
    ``stat -tech cmos`` gives no cost: its total would silently leave out every
    register (and print ``2436+``). ``dfflegalize`` rewrites them as plain ``$_DFF_P_``
    (16 transistors in Yosys' table) plus the enable multiplexer and reset gate in
    logic, so every cell has a cost and the count is exact for this netlist.
    ``ltp`` only follows paths inside one module, hence ``-flatten``; ``-noff`` cuts
    paths at flip-flops, so the length is the combinational depth between registers
    and ports.
    """
    return "\n".join([
        *_read(keep_flops),
        f"synth -flatten -top {top}",
        "dfflegalize -cell $_DFF_P_ 01",
        f"tee -q -o {STAT} stat -json -tech cmos",
        "stat -tech cmos",
        f"tee -o {LTP} ltp -noff",
        "",
    ])


def xcup_script(top: str, keep_flops: bool = False) -> str:
    """UltraScale+ cells. Out of context: no I/O or clock buffers (the core sits inside a larger design)."""
    return "\n".join([
        *_read(keep_flops),
        f"synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top {top}",
        f"tee -q -o {STAT} stat -json",
        "",
    ])


def ecp5_script(top: str, keep_flops: bool = False) -> str:
    """ECP5 cells and the JSON netlist for nextpnr (``synth_ecp5`` flattens by default)."""
    return "\n".join([
        *_read(keep_flops),
        f"synth_ecp5 -top {top} -json {NETLIST}",
        f"tee -q -o {STAT} stat -json",
        "",
    ])


# --- parsers -------------------------------------------------------------------------

@dataclass(frozen=True)
class Stat:
    cells: int                  # all cells of the design
    cell_types: dict[str, int]  # cell type -> count

    def total(self, wanted: Callable[[str], bool]) -> int:
        """Number of cells whose type satisfies ``wanted``."""
        return sum(n for name, n in self.cell_types.items() if wanted(name))


def parse_stat(text: str) -> Stat:
    """Cell counts from ``stat -json`` of a flattened design.

    Uses the ``design`` section (the whole design) when present, else the only module.
    """
    data = json.loads(text)
    section = data.get("design")
    if section is None:
        modules = data.get("modules", {})
        if len(modules) != 1:
            raise ValueError(f"stat -json: expected one (flattened) module, got {len(modules)}")
        section = next(iter(modules.values()))
    types = {str(name): int(count) for name, count in section.get("num_cells_by_type", {}).items()}
    return Stat(cells=int(section["num_cells"]), cell_types=types)


_TRANSISTORS = re.compile(r'(?:"estimated_num_transistors":\s*"|Estimated number of transistors:\s*)(\d+)(\+?)')


def parse_cmos_transistors(text: str) -> tuple[int, bool]:
    """``(count, exact)`` from ``stat -tech cmos`` output, text or ``-json``.

    Yosys appends ``+`` when some cell types have no CMOS cost (they count zero);
    ``exact`` is False then and the count is only a lower bound. The last estimate in
    the text wins (the design total comes after the per-module ones).
    """
    found = _TRANSISTORS.findall(text)
    if not found:
        raise ValueError("stat -tech cmos: no transistor estimate found")
    count, plus = found[-1]
    return int(count), plus != "+"


_LTP = re.compile(r"Longest topological path in \S+ \(length=(-?\d+)\)")


def parse_ltp(text: str) -> int:
    """Cells on the longest path reported by ``ltp``: the ``length`` (edges, i.e. cells, not wires).

    Several modules (an unflattened design) give several reports; the largest is
    returned. An empty design reports -1, returned as 0.
    """
    lengths = [int(n) for n in _LTP.findall(text)]
    if not lengths:
        raise ValueError("ltp: no 'Longest topological path' line found")
    return max(0, max(lengths))
