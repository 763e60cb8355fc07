"""The FPGA device the ``ecp5`` target places and routes on, with the capacities nextpnr reports for it.

Every number here was read from nextpnr-ecp5's own utilisation report
(``available`` in ``--report``, the ``Device utilisation`` table in the log) for
``--85k``; ``tests/test_synth.py`` checks them against a captured report. The
``xcup`` target has no device: Yosys maps to the UltraScale+ cell library and knows
no part's capacity.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    name: str
    package: str
    nextpnr_args: tuple[str, ...]
    lut4: int        # TRELLIS_COMB sites (one LUT4 each)
    ff: int          # TRELLIS_FF
    mult18: int      # MULT18X18D
    alu54: int       # ALU54B
    bram: int        # DP16KD (18 Kb block RAM)
    io_sites: int    # TRELLIS_IO: nextpnr offers this many for unconstrained ports, whatever the package

    @property
    def label(self) -> str:
        return f"{self.name} {self.package}"


#: LFE5U-85F. The package changes nothing while no LPF pins ports: nextpnr then uses any
#: of the die's 365 I/O sites (measured: 312 port bits placed with the default CABGA381).
#: CABGA756 is named because Lattice's ECP5 data sheet lists 365 user I/O for the 85K in
#: that package, so a design that places is one the package could hold.
ECP5_85F = Device(name="LFE5U-85F", package="CABGA756",
                  nextpnr_args=("--85k", "--package", "CABGA756"),
                  lut4=83640, ff=83640, mult18=156, alu54=78, bram=208, io_sites=365)

#: nextpnr's bel type -> the Device field holding its capacity.
REPORT_BELS = {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ff", "MULT18X18D": "mult18", "ALU54B": "alu54",
               "DP16KD": "bram", "TRELLIS_IO": "io_sites"}
