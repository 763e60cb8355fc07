"""Synthesise one generated Verilog file with open tools and return area and timing numbers, cached.

:func:`synthesize` runs one of three flows (see ``docs/synth.md`` for the exact
commands and what each number means):

* ``generic`` -- Yosys ``synth``: ``transistors`` (CMOS estimate), ``cells``,
  ``logic_depth`` (cells on the longest combinational path), ``ff``.
* ``xcup`` -- Yosys ``synth_xilinx -family xcup``: ``lut``, ``ff``, ``carry``, ``dsp``,
  ``bram``, ``cells``.
* ``ecp5`` -- Yosys ``synth_ecp5``, then nextpnr-ecp5 on an LFE5U-85F: ``fmax_mhz``,
  ``lut``, ``ff``, ``dsp``, ``carry``, ``bram``, ``cells``, ``seed``.

Every result also has ``target``, ``top``, ``config_hash``, ``tools`` (name ->
version), ``seconds`` (wall time of the run), ``cell_types`` (Yosys cell counts by
type), ``verilog_sha256`` and ``cache_key``. Counts are ints; ``fmax_mhz`` is a float
with two decimals.

Cache: ``cache_dir`` holds one result (``result.json``) and the logs and reports of
the run that made it. The result is reused while its key matches: the sha256 of the
Verilog bytes, the target, top, config hash, tool versions, the exact Yosys script
and nextpnr arguments (so the seed, for ``ecp5``). A run with another key first
deletes the old result, so ``result.json`` and the logs beside it always belong
together; ``result.json`` is written last, through a temporary file and a rename,
so a killed run leaves no result (and its scratch directory is removed by the next
run). Runs on one ``cache_dir`` from several processes are serialised by a lock.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gen.errors import ToolError, UsageError
from gen.locking import locked

from . import nextpnr, yosys
from .devices import ECP5_85F
from .process import DEFAULT_TIMEOUT, run_logged

TARGETS = ("generic", "xcup", "ecp5")

RESULT = "result.json"
YOSYS_LOG = "yosys.log"
NEXTPNR_LOG = "nextpnr.log"
#: Files of a run kept in ``cache_dir`` next to the result (the netlist for nextpnr is not).
KEPT = (yosys.STAT, yosys.LTP, nextpnr.REPORT)

#: Part of the cache key: bump it when the numbers are derived differently from the
#: same tool output (the scripts and tool versions are in the key already).
FLOW_VERSION = 1

_SCRIPTS = {"generic": yosys.generic_script, "xcup": yosys.xcup_script, "ecp5": yosys.ecp5_script}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class SynthResult:
    """What :func:`synthesize` returns: the result and where it is stored."""

    data: dict        # the JSON-able result (the content of result.json)
    cached: bool      # True when read from the cache, nothing was run
    path: Path        # cache_dir / "result.json"
    log: Path         # the directory holding yosys.log (and nextpnr.log, report.json, stat.json)


def cache_key(verilog: bytes, target: str, top: str, *, config_hash: str, seed: int, tools: dict[str, str],
              out_of_context: bool = False) -> str:
    """sha256 over everything a result depends on. ``seed`` only counts for ``ecp5``."""
    facts = {
        "flow_version": FLOW_VERSION,
        "verilog_sha256": hashlib.sha256(verilog).hexdigest(),
        "target": target,
        "top": top,
        "config_hash": config_hash,
        "tools": tools,
        "yosys_script": _SCRIPTS[target](top, yosys.wants_kept_flops(verilog)),
        "nextpnr_args": (nextpnr.arguments(yosys.NETLIST, seed, out_of_context=out_of_context)
                         if target == "ecp5" else None),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def synthesize(verilog: Path, top: str, target: str, *, config_hash: str, cache_dir: Path,
               seed: int = 1, on_step: Callable[[str], object] = lambda message: None,
               timeout: float = DEFAULT_TIMEOUT, out_of_context: bool = False) -> SynthResult:
    """Synthesise module ``top`` of the Verilog file ``verilog`` for ``target``, or return the cached result.

    Raises ``UsageError`` for an unknown target, a bad top name or seed, or an unreadable
    Verilog file; ``ToolError`` (one line, naming the log) when a tool is missing, fails,
    runs longer than ``timeout`` seconds, or its output cannot be read.
    ``on_step`` receives a short message before each tool runs. ``out_of_context``
    (ecp5 only) places the design without I/O cells, for cores with more port bits
    than the device has I/O sites.
    """
    if target not in TARGETS:
        raise UsageError(f"--target: got '{target}'; allowed: {', '.join(TARGETS)}")
    if not _IDENTIFIER.fullmatch(top):
        raise UsageError(f"top: got '{top}'; allowed: a plain Verilog identifier (letters, digits, _)")
    if target == "ecp5" and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31):
        raise UsageError(f"--seed: got {seed!r}; allowed: an integer from 0 to {2**31 - 1}")
    cache_dir = Path(cache_dir)
    text = read_verilog(verilog)

    yosys_path = yosys.find_yosys()
    tools = {"yosys": yosys.yosys_version(yosys_path)}
    if target == "ecp5":
        tools["nextpnr-ecp5"] = nextpnr.nextpnr_version()
    out_of_context = out_of_context and target == "ecp5"
    key = cache_key(text, target, top, config_hash=config_hash, seed=seed, tools=tools,
                    out_of_context=out_of_context)
    path = cache_dir / RESULT

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cache_dir: got '{cache_dir}'; cannot create it: {error.strerror}") from None
    with locked(cache_dir / ".lock"):
        data = _read_result(path, key)
        if data is not None:
            on_step(f"{target}: cached result for {top}")
            return SynthResult(data=data, cached=True, path=path, log=cache_dir)

        _forget_previous_run(cache_dir)
        scratch = Path(tempfile.mkdtemp(prefix=".run-", dir=cache_dir))
        try:
            started = time.monotonic()
            (scratch / yosys.DESIGN).write_bytes(text)  # exactly the bytes that were hashed
            run = _Run(yosys_path, top, scratch, cache_dir, timeout, on_step, yosys.wants_kept_flops(text))
            numbers = {"generic": run.generic, "xcup": run.xcup, "ecp5": lambda: run.ecp5(seed, out_of_context)}[target]()
            data = {
                "target": target,
                "top": top,
                "config_hash": config_hash,
                "tools": tools,
                "seconds": round(time.monotonic() - started, 2),
                **numbers,
                "verilog_sha256": hashlib.sha256(text).hexdigest(),
                "cache_key": key,
            }
            data = json.loads(json.dumps(data))  # the fresh result equals what a cache hit returns
            for name in KEPT:
                if (scratch / name).exists():
                    os.replace(scratch / name, cache_dir / name)
            _write_atomic(path, data)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return SynthResult(data=data, cached=False, path=path, log=cache_dir)


def read_verilog(verilog: Path) -> bytes:
    """The bytes of the Verilog file (what the cache key hashes); one-line UsageError if unreadable."""
    try:
        return Path(verilog).read_bytes()
    except OSError as error:
        raise UsageError(f"verilog: got '{verilog}'; cannot read it: {error.strerror}") from None


class _Run:
    """One synthesis run: tools execute in ``scratch``, logs go straight to ``cache_dir``."""

    def __init__(self, yosys_path: str, top: str, scratch: Path, cache_dir: Path, timeout: float, on_step,
                 keep_flops: bool = False):
        self.yosys_path, self.top, self.scratch, self.cache_dir = yosys_path, top, scratch, cache_dir
        self.timeout, self.on_step, self.keep_flops = timeout, on_step, keep_flops

    @property
    def yosys_log(self) -> Path:
        return self.cache_dir / YOSYS_LOG

    def yosys(self, target: str) -> yosys.Stat:
        """Run the target's Yosys script; return the cell counts of its ``stat -json``."""
        script = self.scratch / "synth.ys"
        script.write_text(_SCRIPTS[target](self.top, self.keep_flops))
        self.on_step(f"yosys: {target} synthesis of {self.top}")
        run_logged("yosys", [self.yosys_path, "-s", script.name], cwd=self.scratch, log=self.yosys_log,
                   timeout=self.timeout)
        return self.parse("yosys", yosys.parse_stat, self.scratch / yosys.STAT, self.yosys_log)

    @staticmethod
    def parse(tool: str, parser, source: Path, log: Path):
        """``parser(source text)``; a missing file or unexpected text is a one-line ToolError."""
        try:
            return parser(source.read_text())
        except (OSError, ValueError, KeyError, TypeError) as error:
            detail = error.strerror if isinstance(error, OSError) else str(error)
            raise ToolError(f"{tool}: cannot read {source.name} ({detail}); see {log}") from None

    def generic(self) -> dict:
        stat = self.yosys("generic")
        transistors, exact = self.parse("yosys", yosys.parse_cmos_transistors, self.scratch / yosys.STAT,
                                        self.yosys_log)
        if not exact:
            # A partial count would look like a small design: refuse it rather than mislead.
            uncosted = sorted(t for t in stat.cell_types if t not in yosys.CMOS_COSTED)
            raise ToolError(f"yosys: the CMOS estimate has no cost for cell types {', '.join(uncosted)}; "
                            f"see {self.yosys_log}")
        return {
            "transistors": transistors,
            "cells": stat.cells,
            "logic_depth": self.parse("yosys", yosys.parse_ltp, self.scratch / yosys.LTP, self.yosys_log),
            "ff": stat.total(lambda t: t.startswith("$_DFF_")),
            "cell_types": stat.cell_types,
        }

    def xcup(self) -> dict:
        return xcup_numbers(self.yosys("xcup"))

    def ecp5(self, seed: int, out_of_context: bool) -> dict:
        stat = self.yosys("ecp5")
        log = self.cache_dir / NEXTPNR_LOG
        self.on_step(f"nextpnr-ecp5: place and route on {ECP5_85F.label}, seed {seed}")
        args = nextpnr.arguments(yosys.NETLIST, seed, out_of_context=out_of_context)
        run_logged("nextpnr-ecp5", nextpnr.command() + args,
                   cwd=self.scratch, log=log, timeout=self.timeout)
        report = self.parse("nextpnr-ecp5", nextpnr.parse_report, self.scratch / nextpnr.REPORT, log)
        fmax = report["fmax"] or self.parse("nextpnr-ecp5", nextpnr.parse_log_fmax, log, log)
        if not fmax:
            raise ToolError(f"nextpnr-ecp5: no clock in the timing report (a design without registers "
                            f"has no Fmax); see {log}")
        return {"fmax_mhz": round(min(fmax.values()), 2),  # the slowest clock limits the design
                **ecp5_numbers(stat), "seed": seed, "device": ECP5_85F.label, "out_of_context": out_of_context}


def xcup_numbers(stat: yosys.Stat) -> dict:
    """The ``xcup`` result numbers from :func:`fpga.yosys.parse_stat` of the ``synth_xilinx`` netlist."""
    return {
        # INV is counted as a LUT: UltraScale+ has no separate inverter, an INV cell
        # becomes a LUT1 (Yosys 0.23 leaves many, e.g. on flip-flop clock enables).
        "lut": stat.total(lambda t: t in {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"}),
        "ff": stat.total(lambda t: t.startswith("FD")),            # FDRE, FDSE, FDCE, FDPE
        # Yosys 0.23 maps adders to CARRY4 even for xcup (newer versions use CARRY8).
        "carry": stat.total(lambda t: t in {"CARRY4", "CARRY8"}),
        "dsp": stat.total(lambda t: t.startswith("DSP48")),
        "bram": stat.cell_types.get("RAMB18E2", 0) + 2 * stat.cell_types.get("RAMB36E2", 0),  # 18 Kb blocks
        "cells": stat.cells,
        "cell_types": stat.cell_types,
    }


def ecp5_numbers(stat: yosys.Stat) -> dict:
    """The ``ecp5`` cell numbers from :func:`fpga.yosys.parse_stat` of the ``synth_ecp5`` netlist."""
    return {
        "lut": stat.cell_types.get("LUT4", 0),
        "ff": stat.cell_types.get("TRELLIS_FF", 0),
        "dsp": stat.cell_types.get("MULT18X18D", 0),
        "carry": stat.cell_types.get("CCU2C", 0),
        "bram": stat.cell_types.get("DP16KD", 0),
        "cells": stat.cells,
        "cell_types": stat.cell_types,
    }


def _read_result(path: Path, key: str) -> dict | None:
    """The stored result if it exists, parses and has this key; else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("cache_key") == key else None


def _forget_previous_run(cache_dir: Path) -> None:
    """Delete the old result, its files and scratch directories of killed runs (we hold the lock)."""
    for name in (RESULT, YOSYS_LOG, NEXTPNR_LOG, *KEPT):
        (cache_dir / name).unlink(missing_ok=True)
    for stale in cache_dir.glob(".run-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in cache_dir.glob(f".{RESULT}.*"):
        stale.unlink(missing_ok=True)


def _write_atomic(path: Path, data: dict) -> None:
    """Write ``path`` whole or not at all: a temporary sibling (unique while we hold the lock), then a rename."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        with open(temp, "w") as out:  # open(), unlike mkstemp, gives the usual permissions
            out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
