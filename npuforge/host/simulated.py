"""The host driver's simulation backend: the Verilated accelerator in the fast harness, one access at a time.

:class:`HarnessSession` runs the accelerator's fast harness (``sim/fault/harness/accel.cpp``, the
same binary ``npuforge run`` uses) in its interactive mode (``accel -``: script commands on stdin,
each answered as soon as it is done) and hands the driver the three objects the board gives it:
:class:`HarnessMmio` (an AXI4-Lite read or write per call), :class:`HarnessMemory` (the DRAM model
behind the AXI masters: buffers, ``load`` and ``dump`` through files) and :class:`HarnessInterrupt`
(clock the design until ``irq`` rises). Every register access and every DMA beat of a driver
run goes through the RTL, with the DRAM model checking the AXI rules.
"""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gen.errors import ToolError
from sim.moevit.accel_run import MemoryTiming
from sim.moevit.memory import REGION_ALIGN

from .driver import AcceleratorError


@dataclass
class SessionEnd:
    """What the harness reports when a session closes."""

    violations: list = field(default_factory=list)  # AXI rules the accelerator broke
    port_bytes: list = field(default_factory=list)  # (read, written) per master port
    total_cycles: int = 0


class HarnessSession:
    """One harness process: ``memory_size`` bytes of DRAM model from address 0, ``timing`` on every port.

    ``timeout_cycles`` bounds every wait for ``irq``. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, harness: Path, manifest: dict, *, memory_size: int = 1 << 24,
                 timing: MemoryTiming = MemoryTiming(), timeout_cycles: int = 50_000_000):
        params = manifest["parameters"]
        if memory_size > 1 << params["addr_width"]:
            raise AcceleratorError(f"memory_size {memory_size}; allowed: at most 2**{params['addr_width']} (the "
                                   "accelerator's address width)")
        self.memory_size = memory_size
        self.work = Path(tempfile.mkdtemp(prefix="accel-host-"))
        self._files = 0
        self._stderr = self.work / "stderr.log"
        self.proc = subprocess.Popen([str(harness), "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr.open("w"), text=True, bufsize=1)
        self.end: SessionEnd | None = None
        self._send("npuforge-accel-spec 1", f"memory 0 {memory_size}",
                   timing.line(params["max_reads"], params["max_writes"]), f"timeout {timeout_cycles}")
        self.mmio, self.memory, self.interrupt = HarnessMmio(self), HarnessMemory(self), HarnessInterrupt(self)

    # ------------------------------------------------------------------ the pipe
    def _send(self, *lines: str) -> None:
        try:
            self.proc.stdin.write("".join(line + "\n" for line in lines))
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._died()

    def _answer(self, word: str) -> list[str]:
        """The fields of the next output line, which must start with ``word``."""
        line = self.proc.stdout.readline()
        if not line:
            self._died()
        got, *rest = line.split()
        if got != word:
            raise ToolError(f"accel harness: expected a '{word}' line, got {line.strip()!r} (log {self._stderr})")
        return rest

    def _died(self):
        self.proc.wait()
        message = self._stderr.read_text().strip().splitlines()
        raise ToolError(f"accel harness: {message[-1] if message else 'exit code ' + str(self.proc.returncode)} "
                        f"(log {self._stderr})")

    def command(self, line: str, answer: str | None = None) -> list[str]:
        """Send one script command (``sim/fault/harness/accel.cpp``); with ``answer``, its reply's fields."""
        self._send(line)
        return self._answer(answer) if answer else []

    def scratch(self) -> Path:
        self._files += 1
        return self.work / f"block{self._files}.bin"

    # ------------------------------------------------------------------ the end
    def close(self) -> SessionEnd:
        """End the harness; what it reported (AXI violations, bytes per port, cycles)."""
        if self.end is not None:
            return self.end
        out, _ = self.proc.communicate()
        end = SessionEnd()
        for line in out.splitlines():
            word, *rest = line.split()
            if word == "violation":
                end.violations.append(" ".join(rest))
            elif word == "port":
                end.port_bytes.append((int(rest[1]), int(rest[2])))
            elif word == "total_cycles":
                end.total_cycles = int(rest[0])
        if self.proc.returncode not in (0, 1):
            self._died()
        shutil.rmtree(self.work, ignore_errors=True)
        self.end = end
        return end

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.end is None:
            if exc[0] is not None:
                self.proc.kill()
            self.close()


class HarnessMmio:
    """``pynq.MMIO``'s ``read``/``write`` on the register block: one AXI4-Lite transaction each."""

    def __init__(self, session: HarnessSession):
        self.session = session

    def read(self, offset: int) -> int:
        addr, value, resp = self.session.command(f"read {offset}", "csr")
        if int(resp):
            raise AcceleratorError(f"register read at {offset:#x} answered {'SLVERR' if int(resp) == 2 else resp}")
        return int(value)

    def write(self, offset: int, value: int) -> None:
        self.session.command(f"write {offset} {value & 0xFFFFFFFF}")


class HarnessMemory:
    """The DRAM model: buffers from a bump allocator (4 KB aligned, from 4 KB up), bytes in and out."""

    def __init__(self, session: HarnessSession):
        self.session = session
        self._next = REGION_ALIGN

    def allocate(self, nbytes: int) -> int:
        address = self._next
        if address + nbytes > self.session.memory_size:
            raise AcceleratorError(f"a buffer of {nbytes} bytes does not fit the simulated DRAM of "
                                   f"{self.session.memory_size} bytes")
        self._next = -(-(address + max(nbytes, 1)) // REGION_ALIGN) * REGION_ALIGN
        return address

    def write(self, address: int, data: bytes) -> None:
        path = self.session.scratch()
        path.write_bytes(data)
        self.session.command(f"load {address} {path}")
        self.session.command("sync", "sync")  # the harness read the file: it may go
        path.unlink()

    def read(self, address: int, nbytes: int) -> bytes:
        path = self.session.scratch()
        self.session.command(f"dump {address} {nbytes} {path}")
        self.session.command("sync", "sync")
        data = path.read_bytes()
        path.unlink()
        return data


class HarnessInterrupt:
    """``wait()``: clock the design until ``irq`` is high (the harness's ``run``)."""

    def __init__(self, session: HarnessSession):
        self.session = session
        self.cycles = 0  # cycles waited in all

    def wait(self) -> None:
        cycles, irq = self.session.command("run", "run")
        self.cycles += int(cycles)
        if not int(irq):
            raise AcceleratorError(f"no irq within {cycles} cycles (the session's timeout)")


def simulated(cfg, build_root: Path, **session_args) -> tuple[HarnessSession, dict]:
    """Generate ``cfg``'s accelerator, build (or reuse) its fast harness, start a session; the session
    and the manifest (``Accelerator(session.mmio, session.memory, manifest, interrupt=session.interrupt)``)."""
    from sim.moevit.accel_run import prepare

    prepared = prepare(cfg, build_root)
    return HarnessSession(prepared.harness, prepared.manifest, **session_args), prepared.manifest
