"""The Zynq UltraScale+ boards ``npuforge fpga`` integrates the accelerator on, with their capacities.

Capacities from AMD's Zynq UltraScale+ product tables (docs/fpga.md cites them); the PS-PL port
names from the Zynq UltraScale+ TRM and the PS IP's configuration names (HP ``n`` is
``S_AXI_GP{n + 2}`` there, HPM0 FPD is ``M_AXI_GP0``).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    board_part: str  # Vivado's board part (the board files ship with Vivado)
    lut: int
    ff: int
    dsp: int  # DSP48E2
    bram36: int  # 36 Kb block RAMs (two 18 Kb halves each)
    uram: int  # 288 Kb UltraRAM
    hp_ports: int = 4  # S_AXI_HP0..3_FPD

    @property
    def bram18(self) -> int:
        return 2 * self.bram36

    def describe(self) -> str:
        return f"{self.name} ({self.part})"


BOARDS = {
    "zcu102": Board("zcu102", "xczu9eg-ffvb1156-2-e", "xilinx.com:zcu102:part0:3.4",
                    lut=274_080, ff=548_160, dsp=2_520, bram36=912, uram=0),
    "zcu104": Board("zcu104", "xczu7ev-ffvc1156-2-e", "xilinx.com:zcu104:part0:1.1",
                    lut=230_400, ff=460_800, dsp=1_728, bram36=312, uram=96),
}

#: The PS's HP slave port ``n`` in the PS IP's configuration names and its pins.
def hp_config(n: int) -> str:
    return f"PSU__USE__S_AXI_GP{n + 2}"


def hp_width_config(n: int) -> str:
    return f"PSU__SAXIGP{n + 2}__DATA_WIDTH"


#: Widest data path of an HP port; wider accelerator masters go through a SmartConnect's width converter.
HP_MAX_DATA_WIDTH = 128
#: The PL's window of the HPM0 FPD master (the CSRs live here) and the DDR the HP ports reach.
HPM0_FPD_BASE = 0xA000_0000
DDR_LOW = (0x0, 0x8000_0000)  # 2 GB from 0: HPn_DDR_LOW
