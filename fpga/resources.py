"""The generated accelerator's resources (Yosys ``synth_xilinx -family xcup``) beside a board's capacity.

:func:`resource_table` turns an ``xcup`` synthesis result (:func:`fpga.synth.synthesize`) into rows
``resource, used, available, percent``; :func:`check_fit` refuses, in one line, a design that needs
more of any resource than the board has. Yosys's counts are a pre-placement estimate (docs/fpga.md):
Vivado's own synthesis will differ, but a design over a board's capacity here does not fit there.
"""

from gen.errors import ConfigError

from .boards import Board

#: LUTs a distributed-RAM or shift-register primitive occupies (UltraScale+ CLB user guide, UG574).
LUTS_PER_PRIMITIVE = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1,
}


def resource_table(synth: dict, board: Board) -> list[dict]:
    """Rows of ``{resource, used, available, percent}``: LUTs (logic plus distributed RAM and shift
    registers), flip-flops, carry cells (one CARRY8 per 8 LUTs of a CLB; Yosys 0.23 maps CARRY4, each
    counted as a CARRY8: an upper bound), DSP48E2, 18 Kb block RAMs."""
    types = synth.get("cell_types", {})
    lutram = sum(count * LUTS_PER_PRIMITIVE[name] for name, count in types.items() if name in LUTS_PER_PRIMITIVE)
    rows = [("LUT", synth["lut"] + lutram, board.lut), ("FF", synth["ff"], board.ff),
            ("CARRY8", synth["carry"], board.lut // 8), ("DSP48E2", synth["dsp"], board.dsp),
            ("BRAM18", synth["bram"], board.bram18)]
    return [{"resource": name, "used": used, "available": available,
             "percent": round(100.0 * used / available, 2) if available else (0.0 if not used else float("inf"))}
            for name, used, available in rows]


def check_fit(table: list[dict], design: str, board: Board) -> None:
    """``ConfigError`` (one line) naming the first resource the design needs more of than ``board`` has."""
    for row in table:
        if row["used"] > row["available"]:
            raise ConfigError(f"{design}: needs {row['used']:,} {row['resource']} (Yosys synth_xilinx); allowed: at "
                              f"most {row['available']:,} on {board.describe()}")


def format_table(table: list[dict]) -> list[str]:
    lines = [f"{'resource':<10} {'used':>10} {'available':>10} {'use':>8}"]
    lines += [f"{r['resource']:<10} {r['used']:>10,} {r['available']:>10,} {r['percent']:>7.2f}%" for r in table]
    return lines
