"""cocotb test that every fault site in the manifest is reachable and writable.

Fault campaigns address state by the manifest's paths; this test proves each
path resolves to a handle of the recorded width (and depth), and that a
deposited value reads back. Results: ``{"checked": n, "problems": [...]}``.
"""

import cocotb
from cocotb.triggers import ReadOnly, Timer

from .harness import RunFiles, as_unsigned, handle_at


@cocotb.test()
async def fault_sites_reachable(dut):
    run = RunFiles.from_env()
    # No clock runs, so nothing overwrites a deposit before it is read back.
    problems = []
    sites = run.manifest["fault_sites"]
    for site in sites:
        try:
            handle = handle_at(dut, site["path"])
        except AttributeError:
            problems.append(f"{site['path']}: no such handle")
            continue
        word = handle[0] if site["kind"] == "memory" else handle
        if site["kind"] == "memory" and len(handle) != site["depth"]:
            problems.append(f"{site['path']}: depth {len(handle)}, manifest says {site['depth']}")
        if len(word) != site["width"]:
            problems.append(f"{site['path']}: width {len(word)}, manifest says {site['width']}")
            continue
        pattern = (0b1011 << max(0, site["width"] - 4)) & ((1 << site["width"]) - 1) or 1
        word.value = pattern
        await ReadOnly()
        if as_unsigned(word.value) != pattern:
            problems.append(f"{site['path']}: wrote {pattern:#x}, read {as_unsigned(word.value):#x}")
        await Timer(1, unit="ns")
    run.write_results({"checked": len(sites), "problems": problems})
    assert not problems, problems[0]
