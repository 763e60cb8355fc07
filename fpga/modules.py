"""Per-module gate counts of a generated design (the ``generic`` flow without flattening), cached.

Amaranth emits one Verilog module per elaborated instance, named by its hierarchical
path (``top.core.pe_0_1``), so the cells of each module are the cells of one instance
of the design. :func:`module_cells` synthesises the design with Yosys ``synth``
*without* ``-flatten`` (each module on its own, so logic is not optimised across
module boundaries), legalises the flip-flops as the ``generic`` target does, and
reads ``stat -json -tech cmos`` per module:

```
read_verilog design.v
synth -top TOP
dfflegalize -cell $_DFF_P_ 01
tee -q -o stat.json stat -json -tech cmos
```

The numbers of a module count its own gates only, not those of the instances inside
it. They weight the toggle activity of ``sim.energy``; the area figures of a design
stay those of :func:`fpga.synth.synthesize` (flattened).

The cache follows ``fpga.synth`` (one ``result.json`` per ``cache_dir``, keyed by the
Verilog bytes, top, config hash, Yosys version, script and :data:`FLOW_VERSION`,
written last through a rename, a lock against parallel runs); it lives in its own
directory, so the ``generic``/``xcup``/``ecp5`` results and their keys are untouched.
"""

import hashlib
import json
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from gen.errors import ToolError, UsageError
from gen.locking import locked

from . import yosys
from .process import DEFAULT_TIMEOUT, run_logged
from .synth import RESULT, YOSYS_LOG, _forget_previous_run, _read_result, _write_atomic, read_verilog

#: The name of this flow in results and cache keys (not an ``npuforge synth`` target).
FLOW = "generic_modules"
#: Bump when the numbers are derived differently from the same Yosys output.
FLOW_VERSION = 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def modules_script(top: str) -> str:
    """The generic gates of every module, hierarchy kept (``synth`` without ``-flatten``)."""
    return "\n".join([
        f"read_verilog {yosys.DESIGN}",
        f"synth -top {top}",
        "dfflegalize -cell $_DFF_P_ 01",
        f"tee -q -o {yosys.STAT} stat -json -tech cmos",
        "",
    ])


def parse_module_stat(text: str) -> dict[str, dict]:
    """``{module: {"cells", "transistors", "ff"}}`` from ``stat -json -tech cmos`` of a hierarchical design.

    Module names lose Yosys' leading backslash. ``cells`` leaves out instances of other
    modules. Yosys 0.23 writes a text table of the hierarchy into the ``design``
    section, which makes the file invalid JSON after ``modules``; only the
    ``modules`` object is decoded. A leaf gate without a CMOS cost raises ValueError
    (a partial transistor count would look like a small module).
    """
    start = text.find('"modules"')
    if start < 0:
        raise ValueError("stat -json: no 'modules' section")
    brace = text.index("{", start)
    modules, _ = json.JSONDecoder().raw_decode(text, brace)
    names = {name.removeprefix("\\") for name in modules}
    out = {}
    for raw, section in modules.items():
        types = {str(t).removeprefix("\\"): int(n) for t, n in section.get("num_cells_by_type", {}).items()}
        uncosted = sorted(t for t in types if t not in yosys.CMOS_COSTED and t not in names)
        if uncosted:
            raise ValueError(f"module {raw}: no CMOS cost for cell types {', '.join(uncosted)}")
        estimate = str(section.get("estimated_num_transistors", "0"))
        out[raw.removeprefix("\\")] = {
            "cells": sum(n for t, n in types.items() if t not in names),
            "transistors": int(estimate.rstrip("+")),
            "ff": sum(n for t, n in types.items() if t.startswith("$_DFF_")),
        }
    return out


def flow_cache_key(flow: str, version: int, script: str, verilog: bytes, top: str, *, config_hash: str,
                   tools: dict[str, str]) -> str:
    """The cache key of one of these Yosys flows (``flow`` at ``version``, running ``script``) on ``verilog``."""
    facts = {
        "flow": flow,
        "flow_version": version,
        "verilog_sha256": hashlib.sha256(verilog).hexdigest(),
        "top": top,
        "config_hash": config_hash,
        "tools": tools,
        "yosys_script": script,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def flow_inputs(verilog: Path, top: str) -> tuple[bytes, str, dict[str, str]]:
    """``(Verilog bytes, yosys path, tool versions)`` for a flow on ``verilog`` with top ``top``;
    ``UsageError`` for a top that is no plain identifier or an unreadable file, ``ToolError``
    without Yosys."""
    if not _IDENTIFIER.fullmatch(top):
        raise UsageError(f"top: got '{top}'; allowed: a plain Verilog identifier (letters, digits, _)")
    text = read_verilog(verilog)
    yosys_path = yosys.find_yosys()
    return text, yosys_path, {"yosys": yosys.yosys_version(yosys_path)}


@contextmanager
def yosys_run(text: bytes, script: str, yosys_path: str, cache_dir: Path, timeout: float):
    """Run ``script`` on ``text`` in a scratch directory under ``cache_dir`` (removed afterwards), the
    log in ``cache_dir``; yields ``(scratch, log)`` for reading the outputs."""
    scratch = Path(tempfile.mkdtemp(prefix=".run-", dir=cache_dir))
    try:
        (scratch / yosys.DESIGN).write_bytes(text)
        (scratch / "flow.ys").write_text(script)
        log = cache_dir / YOSYS_LOG
        run_logged("yosys", [yosys_path, "-s", "flow.ys"], cwd=scratch, log=log, timeout=timeout)
        yield scratch, log
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cache_key(verilog: bytes, top: str, *, config_hash: str, tools: dict[str, str]) -> str:
    return flow_cache_key(FLOW, FLOW_VERSION, modules_script(top), verilog, top, config_hash=config_hash,
                          tools=tools)


def module_cells(verilog: Path, top: str, *, config_hash: str, cache_dir: Path,
                 timeout: float = DEFAULT_TIMEOUT) -> dict:
    """The result dict of the per-module flow (``modules``: name -> cells, transistors, ff), cached.

    Same errors as :func:`fpga.synth.synthesize`: ``UsageError`` for a bad top or an
    unreadable file, one-line ``ToolError`` when Yosys is missing, fails or its output
    cannot be read.
    """
    text, yosys_path, tools = flow_inputs(verilog, top)
    cache_dir = Path(cache_dir)
    key = cache_key(text, top, config_hash=config_hash, tools=tools)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with locked(cache_dir / ".lock"):
        data = _read_result(cache_dir / RESULT, key)
        if data is not None:
            return data
        _forget_previous_run(cache_dir)
        started = time.monotonic()
        with yosys_run(text, modules_script(top), yosys_path, cache_dir, timeout) as (scratch, log):
            try:
                modules = parse_module_stat((scratch / yosys.STAT).read_text())
            except (OSError, ValueError, KeyError, TypeError) as error:
                detail = error.strerror if isinstance(error, OSError) else str(error)
                raise ToolError(f"yosys: cannot read {yosys.STAT} ({detail}); see {log}") from None
        data = {"target": FLOW, "top": top, "config_hash": config_hash, "tools": tools,
                "seconds": round(time.monotonic() - started, 2), "modules": modules,
                "verilog_sha256": hashlib.sha256(text).hexdigest(), "cache_key": key}
        _write_atomic(cache_dir / RESULT, data)
    return data
