"""``npuforge protect`` on a campaign of a ``cube`` 3x4x2 tile (signed 6-bit operands, ``out_width: 7``).

Its area measurement once died with a traceback: the residue check did not elaborate on
tiles of three or more rows. Here every variant the optimiser prices is generated for real
(one elaboration each); only the synthesis is replaced by a stand-in that reads the
generated design (no Yosys: the numbers only need to grow with the protection), and the
campaign is a small synthetic one over the tile's real manifest (as in
``tests/test_protect_optimizer.py``), so no simulator runs.
"""

import itertools
import json
import random
from pathlib import Path
from types import SimpleNamespace

import yaml

from gen.config import parse_config_data
from gen.elaborate import elaborate
from gen.manifest import build_manifest
from npuforge import cli
from sim.fault.model import Fault, FaultModel, InjectionResult, Outcome
from sim.fault.store import CampaignStore

DESIGN = {"kind": "npu_tile", "name": "cube_tile_3x4x2",
          "compute": {"arch": "cube", "rows": 3, "cols": 4, "depth": 2, "operand": {"width": 6, "signed": True},
                      "k_max": 4},
          "a_depth": 4, "b_depth": 4, "cmd_depth": 8, "out_width": 7}
WINDOW = 60


def _campaign(path: Path) -> None:
    """A campaign database over the tile's fault sites: per site a few injections, some of them SDC."""
    cfg = parse_config_data(DESIGN, "design")
    manifest = build_manifest(elaborate(cfg))
    sites = manifest["fault_sites"]
    bits = sum(site["width"] * (site.get("depth") or 1) for site in sites)
    meta = {"config": {"name": "cube_tile_seu", "faults": {"models": ["seu", "mem_seu"], "stratify": "none"}},
            "design": cfg.normalized(), "design_hash": manifest["config_hash"], "manifest": manifest,
            "reference": {"cycles": WINDOW}, "window": WINDOW, "population": bits * WINDOW,
            "fit_per_bit": {"register": 1e-4, "memory": 1e-3}, "target_asil": "D"}
    rng, index, results = random.Random(5), itertools.count(), []
    for site in sites:
        model = FaultModel.MEM_SEU if site["kind"] == "memory" else FaultModel.SEU
        for cycle in range(6):
            outcome = Outcome.SDC if rng.random() < 0.3 else Outcome.MASKED
            fault = Fault(index=next(index), model=model, site=site["path"], bit=rng.randrange(site["width"]),
                          cycle=cycle, word=0 if model is FaultModel.MEM_SEU else None)
            results.append(InjectionResult(fault, outcome, differing=int(outcome is Outcome.SDC)))
    with CampaignStore.open(path, create=meta) as store:
        store.add(results)


def _stand_in_synthesis(verilog, top, target, **kwargs):
    """Transistors grow with the Verilog, flip-flops are the design's register bits (from its manifest)."""
    manifest = json.loads((Path(verilog).parent / "manifest.json").read_text())
    ff = sum(site["width"] for site in manifest["fault_sites"] if site["kind"] == "register")
    size = len(Path(verilog).read_text())
    return SimpleNamespace(data={"transistors": size // 3, "cells": size // 40, "ff": ff, "logic_depth": 10})


def test_protect_on_a_cube_tile_campaign_completes(tmp_path, monkeypatch, capsys):
    import fpga.cost

    # Patched where it is called: fpga.cost binds the name at import (patching fpga.synth once let the
    # real Yosys run for every variant whenever another test had imported fpga.cost first: 7 minutes).
    monkeypatch.setattr(fpga.cost, "synthesize", _stand_in_synthesis)
    db, out = tmp_path / "cube.sqlite", tmp_path / "protected.yaml"
    _campaign(db)
    assert cli.main(["protect", str(db), "--target", "B", "-o", str(out), "--area-model", "measure",
                     "--build-dir", str(tmp_path / "build")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err, captured.err  # every variant built
    prediction = json.loads(out.with_name("protected.prediction.json").read_text())
    compute = next(row for row in prediction["blocks"] if row["name"] == "compute")
    assert {"dmr", "tmr", "residue", "abft"} <= set(compute["options"])  # each one elaborated and priced
    written = yaml.safe_load(out.read_text())
    assert written["protect"] == prediction["protect"]
    parse_config_data(written, "protected")  # the written config validates

