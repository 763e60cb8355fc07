"""The host driver's board backend: PYNQ on a ZCU102/ZCU104 with the bitstream of ``npuforge fpga``.

``pynq`` is imported only when a board is opened (it exists only on the board's image). The
overlay is the ``.bit`` with its ``.hwh`` beside it (``build.sh`` copies both into
``DIR/overlay/``); the accelerator is the block design's cell ``accel_0`` and its interrupt
``accel_0/irq`` (names from ``fpga/vivado.py``).
"""

import asyncio
from pathlib import Path

from fpga.vivado import CELL
from sim.moevit.memory import REGION_ALIGN

from .driver import AcceleratorError

#: The accelerator's interrupt pin in the block design (fpga/vivado.py).
IRQ = f"{CELL}/irq"


class PynqMemory:
    """Device memory from ``pynq.allocate`` (contiguous, cache-coherent by explicit syncs)."""

    def __init__(self, allocate):
        self._allocate = allocate
        self.buffers: list = []

    def allocate(self, nbytes: int) -> int:
        import numpy as np

        buffer = self._allocate(shape=(nbytes,), dtype=np.uint8)
        if buffer.physical_address % REGION_ALIGN:
            raise AcceleratorError(f"pynq.allocate gave {buffer.physical_address:#x}; allowed: a 4 KB-aligned buffer")
        self.buffers.append(buffer)
        return buffer.physical_address

    def _find(self, address: int, nbytes: int):
        for buffer in self.buffers:
            start = buffer.physical_address
            if start <= address and address + nbytes <= start + buffer.nbytes:
                return buffer, address - start
        raise AcceleratorError(f"[{address:#x}, {address + nbytes:#x}) is in no buffer of this driver")

    def write(self, address: int, data: bytes) -> None:
        import numpy as np

        buffer, offset = self._find(address, len(data))
        buffer[offset:offset + len(data)] = np.frombuffer(data, dtype=np.uint8)
        buffer.sync_to_device()

    def read(self, address: int, nbytes: int) -> bytes:
        buffer, offset = self._find(address, nbytes)
        buffer.sync_from_device()
        return bytes(buffer[offset:offset + nbytes])

    def free(self) -> None:
        for buffer in self.buffers:
            buffer.freebuffer()
        self.buffers.clear()


class PynqInterrupt:
    """``wait()`` on the accelerator's ``irq`` through ``pynq.Interrupt`` (an asyncio event)."""

    def __init__(self, interrupt):
        self._interrupt = interrupt

    def wait(self) -> None:
        asyncio.run(self._interrupt.wait())


def open_board(bitfile: Path, manifest: Path | None = None, *, use_interrupt: bool = True):
    """Load the overlay and return ``Accelerator`` for it. ``manifest`` defaults to ``manifest.json``
    beside the bitstream's folder (``DIR/manifest.json`` for ``DIR/overlay/<top>.bit``)."""
    import pynq  # noqa: PLC0415 -- only on the board

    from .driver import Accelerator

    bitfile = Path(bitfile)
    manifest = Path(manifest) if manifest else bitfile.parent.parent / "manifest.json"
    overlay = pynq.Overlay(str(bitfile))
    ip = overlay.ip_dict.get(CELL)
    if ip is None:
        raise AcceleratorError(f"{bitfile}: no IP {CELL!r} in the overlay; found {', '.join(overlay.ip_dict)}")
    mmio = pynq.MMIO(ip["phys_addr"], ip["addr_range"])
    interrupt = PynqInterrupt(pynq.Interrupt(IRQ)) if use_interrupt else None
    return Accelerator(mmio, PynqMemory(pynq.allocate), manifest, interrupt=interrupt)
