"""What every cocotb testbench shares: run files, clock, reset and the cycle loop.

The runner passes three paths in the environment: the design's manifest, the
test vectors (inputs and golden outputs) and where to write the results. The
testbench writes its results before it asserts, so the runner can report the
first mismatch even when the cocotb test fails.
"""

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

ENV_MANIFEST = "NPUFORGE_MANIFEST"
ENV_VECTORS = "NPUFORGE_VECTORS"
ENV_RESULTS = "NPUFORGE_RESULTS"

CLOCK_PERIOD_NS = 10


@dataclass
class RunFiles:
    manifest: dict
    vectors: dict
    results_path: Path

    @classmethod
    def from_env(cls) -> "RunFiles":
        try:
            paths = {name: os.environ[name] for name in (ENV_MANIFEST, ENV_VECTORS, ENV_RESULTS)}
        except KeyError as missing:
            raise RuntimeError(f"{missing.args[0]} is not set: start this testbench with "
                               "'npuforge sim' or sim.runner, which pass the run files") from None
        return cls(
            manifest=json.loads(Path(paths[ENV_MANIFEST]).read_text()),
            vectors=json.loads(Path(paths[ENV_VECTORS]).read_text()),
            results_path=Path(paths[ENV_RESULTS]),
        )

    def write_results(self, results: dict) -> None:
        self.results_path.write_text(json.dumps(results) + "\n")

    def interface(self, name: str) -> dict:
        for interface in self.manifest["interfaces"]:
            if interface["name"] == name:
                return interface
        raise KeyError(f"manifest has no interface {name!r}")

    def rng(self) -> random.Random:
        """Flow-control randomness, reproducible from the vectors' seed."""
        return random.Random(self.vectors["seed"])


def start_clock(dut, manifest: dict) -> None:
    Clock(getattr(dut, manifest["clock"]["port"]), CLOCK_PERIOD_NS, unit="ns").start()


async def reset(dut, manifest: dict, cycles: int = 2) -> None:
    """Hold the (synchronous, active-high) reset for ``cycles`` rising edges; return at a falling edge."""
    clock = getattr(dut, manifest["clock"]["port"])
    rst = getattr(dut, manifest["reset"]["port"])
    rst.value = 1
    for _ in range(cycles):
        await RisingEdge(clock)
    await FallingEdge(clock)
    rst.value = 0


async def start_and_reset(dut, manifest: dict, cycles: int = 2) -> None:
    """Start the clock, then reset (see :func:`reset`)."""
    start_clock(dut, manifest)
    await reset(dut, manifest, cycles)


class CycleLoop:
    """Steps stream drivers once per clock cycle (see :mod:`sim.tb.stream`).

    Cycle 0 is the first cycle after reset was released.
    """

    def __init__(self, dut, manifest: dict, agents):
        self.clock = getattr(dut, manifest["clock"]["port"])
        self.agents = list(agents)
        self.cycle = 0

    async def run(self, until, max_cycles: int) -> bool:
        """Run until ``until()`` is true (returns True) or ``max_cycles`` have passed (False)."""
        start = self.cycle
        while not until():
            if self.cycle - start >= max_cycles:
                return False
            for agent in self.agents:
                agent.drive(self.cycle)
            await ReadOnly()
            for agent in self.agents:
                agent.sample(self.cycle)
            await FallingEdge(self.clock)
            self.cycle += 1
        return True


def as_unsigned(value) -> int:
    """Integer of a handle's value; 1-bit signals give a ``Logic``, wider ones a ``LogicArray``."""
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def handle_at(dut, path: str):
    """The cocotb handle of a manifest path such as ``pe_1_2.acc``."""
    handle = dut
    for part in path.split("."):
        handle = getattr(handle, part)
    return handle


class BitFlips:
    """Injects single-event upsets: at the start of cycle ``c``, invert bit ``b`` of register ``path``.

    ``flips`` is a list of ``{"path", "bit", "cycle"}`` (the vectors' ``inject``
    list). A flipped register keeps the wrong value until the logic next writes
    it, like a particle strike. Memories are addressed as ``path`` plus ``word``.
    """

    def __init__(self, dut, flips: list[dict]):
        self.dut = dut
        self.pending = sorted(flips, key=lambda f: f["cycle"])
        self.done: list[dict] = []

    def drive(self, cycle: int) -> None:
        while self.pending and self.pending[0]["cycle"] <= cycle:
            flip = self.pending.pop(0)
            handle = handle_at(self.dut, flip["path"])
            if "word" in flip:
                handle = handle[flip["word"]]
            handle.value = as_unsigned(handle.value) ^ (1 << flip["bit"])
            self.done.append({**flip, "applied_at": cycle})

    def sample(self, cycle: int) -> None:
        pass
