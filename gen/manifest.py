"""``manifest.json``: what was generated, from what, and where its state lives."""

import hashlib
import json
from dataclasses import asdict

from . import __version__
from .elaborate import Elaboration
from .toolchain import tool_versions

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def verilog_filename(top: str) -> str:
    return f"{top}.v"


def build_manifest(elab: Elaboration) -> dict:
    """The manifest of ``elab`` (JSON-able, with no machine-specific content)."""
    cfg = elab.config
    sites = []
    for site in elab.fault_sites:
        entry = asdict(site)
        entry["aliases"] = list(site.aliases)
        if site.depth is None:
            del entry["depth"]
        sites.append(entry)
    manifest = {
        "format": MANIFEST_FORMAT,
        "npuforge": __version__,
        "tools": tool_versions(),
        "kind": cfg.kind,
        "top": elab.top,
        "config": cfg.normalized(),
        "config_hash": cfg.config_hash(),
        "parameters": elab.parameters,
        "files": [{"path": name, "sha256": hashlib.sha256(text.encode()).hexdigest()}
                  for name, text in [(verilog_filename(elab.top), elab.verilog), *sorted(elab.files.items())]],
        "clock": {"port": "clk", "edge": "rising"},
        "reset": {"port": "rst", "active": "high", "synchronous": True},
        "ports": [asdict(port) for port in elab.ports],
        "interfaces": elab.interfaces,
        "fault_sites": sites,
        "fault_site_bits": sum(s.width * (s.depth or 1) for s in elab.fault_sites),
    }
    clash = set(elab.sections) & set(manifest)
    if clash:
        raise AssertionError(f"kind {cfg.kind}: manifest sections {sorted(clash)} would replace common entries")
    return manifest | elab.sections


def dump_manifest(manifest: dict) -> str:
    """Canonical text: sorted keys, two-space indent, trailing newline (byte-stable)."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
