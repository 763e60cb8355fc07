"""The accelerator's host driver: one class for the board (PYNQ) and the simulation (the fast harness).

:class:`Accelerator` needs three things from its backend and nothing else:

* ``mmio``: ``read(offset) -> int`` and ``write(offset, value)``, 32-bit accesses to the register
  block (``pynq.MMIO``, or :class:`npuforge.host.simulated.HarnessMmio`);
* ``memory``: ``allocate(nbytes) -> address`` (a zeroed buffer on a 4 KB boundary the accelerator
  reaches at that bus address), ``write(address, data)`` and ``read(address, nbytes) -> bytes``
  (:class:`npuforge.host.pynq_board.PynqMemory`, :class:`npuforge.host.simulated.HarnessMemory`);
* optionally ``interrupt``: ``wait()`` returning when ``irq`` is high (without one the driver polls
  ``STATUS``).

Registers are found by name in the manifest's register map (:class:`sim.moevit.registers.Registers`),
the hardware's facts by :meth:`Target.from_manifest`; programs come from the descriptor compiler
(:mod:`sim.moevit.compiler`), unchanged. Numpy only at run time.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.errors import NpuforgeError
from hw.vit import descriptors
from sim.moevit.compiler import CompileError, Program, Target, network_program
from sim.moevit.memory import REGION_ALIGN, tensor_codes
from sim.moevit.registers import Registers

#: The ``ID`` register's value of every npuforge accelerator ("NPUV").
ACCEL_ID = 0x4E505556
#: Bytes uploaded per write when only changed parts of the image go to the device.
PAGE = REGION_ALIGN


class AcceleratorError(NpuforgeError):
    """The accelerator refused a program, timed out, or is not the design of the manifest."""

    exit_code = 1


@dataclass
class Outputs:
    """One image's result: the head's codes per pixel and what they mean for the task."""

    task: str
    kind: str  # "segmentation" or "depth"
    codes: np.ndarray  # (outputs, H, W) activation codes (the golden's forward_codes for one image)
    values: np.ndarray  # the same as floats
    map: np.ndarray  # segmentation: (H, W) class index (argmax); depth: (H, W) depth
    counters: dict = field(default_factory=dict)  # the performance counters of the run


@dataclass
class _Loaded:
    model: object
    codes: dict


class Accelerator:
    """A ``kind: moevit_accel`` accelerator behind ``mmio`` and ``memory`` (see the module doc).

    ``manifest`` is the design's ``manifest.json`` (dict or path). The constructor reads ``ID`` and
    ``VERSION`` and refuses a device that is not the manifest's design.
    """

    def __init__(self, mmio, memory, manifest, *, interrupt=None, timeout: float = 60.0,
                 poll_interval: float = 0.0):
        if not isinstance(manifest, dict):
            import json

            manifest = json.loads(Path(manifest).read_text())
        if manifest.get("kind") != "moevit_accel":
            raise AcceleratorError(f"manifest: kind: got {manifest.get('kind')!r}; allowed: 'moevit_accel'")
        self.mmio, self.memory, self.interrupt = mmio, memory, interrupt
        self.manifest = manifest
        self.regs = Registers(manifest)
        self.target = Target.from_manifest(manifest)
        self.timeout, self.poll_interval = timeout, poll_interval
        self._loaded: _Loaded | None = None
        self._buffer: tuple[int, int] | None = None  # (address, size) of the image buffer
        self._uploaded: bytes | None = None  # what the buffer holds now
        self._check_identity()

    # ------------------------------------------------------------------ registers
    def read(self, name: str) -> int:
        """A register by name; a 64-bit one as two reads, low word first (the low read latches the high)."""
        offset, width = self.regs.offset(name), self.regs.map[name]["width"]
        value = self.mmio.read(offset)
        if width == 64:
            value |= self.mmio.read(offset + 4) << 32
        return value

    def write(self, name: str, value: int) -> None:
        offset, width = self.regs.offset(name), self.regs.map[name]["width"]
        self.mmio.write(offset, value & 0xFFFFFFFF)
        if width == 64:
            self.mmio.write(offset + 4, value >> 32)

    def _reset_value(self, register: str) -> int:
        return sum(f["reset"] << f["lsb"] for f in self.regs.map[register]["fields"] if f.get("reset") is not None)

    def _check_identity(self) -> None:
        found = self.read("ID")
        if found != ACCEL_ID:
            raise AcceleratorError(f"register ID: got {found:#010x}; allowed: {ACCEL_ID:#010x} (an npuforge "
                                   "accelerator; is the bitstream loaded and the register address right?)")
        version, expected = self.read("VERSION"), self._reset_value("VERSION")
        if version != expected:
            raise AcceleratorError(f"register VERSION: got {version:#010x}; allowed: {expected:#010x} (the manifest's "
                                   f"design {self.manifest['top']}, config hash {self.manifest['config_hash'][:12]})")

    def status(self) -> dict:
        value = self.read("STATUS")
        return {name: self.regs.extract(value, "STATUS", name) for name in ("busy", "done", "error", "code")}

    def counters(self) -> dict:
        """Every performance counter by name (``CYCLES``, ``BUSY_<ENGINE>``, ``MAC_ACTIVE``, ...)."""
        return {name: self.read(name) for name in self.regs.counters()}

    # ------------------------------------------------------------------ runs
    def start(self, desc_addr: int) -> None:
        """Start the descriptor list at ``desc_addr`` with both interrupts enabled and cleared."""
        self.write("DESC_BASE", desc_addr)
        self.write("IRQ_ENABLE", 3)
        self.write("IRQ_STATUS", 3)
        self.write("CTRL", 1 << self.regs.field("CTRL", "start")[0])

    def wait(self) -> dict:
        """Wait for the end of the run (the interrupt, else polling ``STATUS``); the status. An error of the
        run raises :class:`AcceleratorError` naming the code and the descriptor."""
        if self.interrupt is not None:
            self.interrupt.wait()
            state = self.status()
        else:
            deadline = time.monotonic() + self.timeout
            state = self.status()
            while not (state["done"] or state["error"]):
                if time.monotonic() > deadline:
                    raise AcceleratorError(f"no done or error within {self.timeout} s (STATUS busy "
                                           f"{state['busy']})")
                if self.poll_interval:
                    time.sleep(self.poll_interval)
                state = self.status()
        self.write("IRQ_STATUS", 3)
        if state["error"] or not state["done"]:
            names = {e.code: e.name for e in descriptors.ERRORS}
            raise AcceleratorError(f"the run stopped with error {names.get(state['code'], state['code'])} at "
                                   f"descriptor {self.read('ERROR_DESC')}")
        return state

    def execute(self, program: Program) -> bytes:
        """Run a compiled program whose image starts at the driver's buffer: upload what changed since the
        last run, start the whole descriptor list, wait; the buffer's bytes afterwards."""
        address, size = self._ensure_buffer(program.image.end - program.image.base)
        if program.image.base != address:
            raise AcceleratorError(f"program base {program.image.base:#x}; allowed: the buffer at {address:#x}")
        image = program.image.image()
        self._upload(address, image)
        self.start(program.desc.addr)
        self.wait()
        data = self.memory.read(address, len(image))
        self._uploaded = data
        return data

    # ------------------------------------------------------------------ the network
    def load(self, model, weights=None) -> None:
        """The network: ``model`` a ``kind: moevit`` config (path or loaded), ``weights`` a dict of float
        parameters, a ``.npz`` path, or None (the config's weights; seeded random ones if it has none).
        Weights are quantised once here with the golden's rules."""
        from gen.config.moevit import MoevitConfig, load_moevit
        from sim.golden.moevit.fixed import quantize_params
        from sim.golden.moevit.params import load_params, seeded_params

        cfg = model if isinstance(model, MoevitConfig) else load_moevit(model)
        if cfg.format("activation") != self.target.act:
            raise AcceleratorError(f"{cfg.source_name}: formats.activation: got {cfg.format('activation').describe()}; "
                                   f"allowed: {self.target.act.describe()} (the accelerator's)")
        if weights is None:
            params = seeded_params(cfg)
        elif isinstance(weights, (str, Path)):
            params = load_params(cfg, weights)
        else:
            params = weights
        self._loaded = _Loaded(model=cfg, codes=quantize_params(params, cfg))

    def compile(self, pixels: np.ndarray, task: str, base: int = REGION_ALIGN) -> Program:
        """The whole network for one image (pixel codes ``(C, H, W)``) and task, one descriptor list at ``base``
        (:func:`~sim.moevit.compiler.network_program`; it also runs the golden, whose tensors are the
        program's expectations: on a board that is the slowest step, see docs/fpga.md)."""
        if self._loaded is None:
            raise AcceleratorError("no network: call load(model, weights) first")
        try:
            return network_program(self.target, self._loaded.model, self._loaded.codes, pixels, task, base=base)
        except CompileError as error:
            raise AcceleratorError(str(error)) from None

    def run(self, image: np.ndarray, task: str) -> Outputs:
        """One image through the network: ``image`` float ``(C, H, W)`` in [0, 1] (or uint8 pixel codes);
        the task head's output decoded, with the run's counters."""
        from sim.golden.moevit.fixed import quantize
        from sim.golden.moevit.reference import unpatchify

        if self._loaded is None:
            raise AcceleratorError("no network: call load(model, weights) first")
        model = self._loaded.model
        if task not in model.task_names:
            raise AcceleratorError(f"task: got {task!r}; allowed: one of {', '.join(model.task_names)}")
        image = np.asarray(image)
        shape = (model.channels, model.height, model.width)
        if image.shape != shape:
            raise AcceleratorError(f"image: got shape {image.shape}; allowed: {shape} (channels, height, width)")
        pixels = image.astype(np.int64) if image.dtype == np.uint8 else quantize(image, model.format("pixel"))
        base = self._buffer[0] if self._buffer else REGION_ALIGN
        program = self.compile(pixels, task, base)
        if self._buffer is None:  # the first run decides the buffer; compile again if it lies elsewhere
            address, _ = self._ensure_buffer(program.image.end - program.image.base)
            if address != program.image.base:
                program = self.compile(pixels, task, address)
        data = self.execute(program)
        head = tensor_codes(program.image.regions[f"head.{task}"], data, program.image.base)
        kind = model.task(task).type
        codes = unpatchify(head[None], model.task(task).outputs, model.patch, model.grid)[0]
        values = model.format("activation").to_float(codes)
        decoded = np.argmax(values, axis=0) if kind == "segmentation" else values[0]
        return Outputs(task=task, kind=kind, codes=codes, values=values, map=decoded, counters=self.counters())

    # ------------------------------------------------------------------ memory
    def _ensure_buffer(self, size: int) -> tuple[int, int]:
        if self._buffer is not None and self._buffer[1] >= size:
            return self._buffer
        if self._buffer is not None:
            raise AcceleratorError(f"a program of {size} bytes; allowed: at most {self._buffer[1]} (the buffer "
                                   "allocated by the first run)")
        address = self.memory.allocate(size)
        if address % REGION_ALIGN:
            raise AcceleratorError(f"buffer address {address:#x}; allowed: a multiple of {REGION_ALIGN}")
        if address + size > 1 << self.target.addr_width:
            raise AcceleratorError(f"buffer [{address:#x}, {address + size:#x}) lies beyond the accelerator's "
                                   f"{self.target.addr_width}-bit addresses")
        self._buffer = (address, size)
        return self._buffer

    def _upload(self, address: int, image: bytes) -> None:
        """Write ``image`` at ``address``: the whole of it the first time, then only the pages that differ."""
        old = self._uploaded
        if old is None or len(old) != len(image):
            self.memory.write(address, image)
            return
        pages = -(-len(image) // PAGE)
        new_pages = np.frombuffer(image.ljust(pages * PAGE, b"\0"), np.uint8).reshape(pages, PAGE)
        old_pages = np.frombuffer(old.ljust(pages * PAGE, b"\0"), np.uint8).reshape(pages, PAGE)
        changed = np.any(new_pages != old_pages, axis=1)
        page = 0
        while page < pages:  # contiguous runs of changed pages, one write each
            if not changed[page]:
                page += 1
                continue
            end = page
            while end < pages and changed[end]:
                end += 1
            self.memory.write(address + page * PAGE, image[page * PAGE:end * PAGE])
            page = end
