"""Area of protecting each block of a design with each mechanism: the optimiser's cost table.

Two ways to the table, both in transistors of Yosys' CMOS estimate (``npuforge synth
--target generic``: NOT 2, NAND/NOR 4, AND/OR 6, XOR/XNOR 12, MUX 12, D flip-flop 16):

* :func:`measure` -- for a design whose kind accepts a ``protect:`` section: one generic
  synthesis per (block, mechanism) with only that block protected; the area is its
  transistors minus the unprotected design's. Exact for the generator, slow (one synthesis
  per variant, each cached like ``npuforge synth``).
* :func:`estimate` -- for any design: an analytic per-bit model (:data:`COSTS`) calibrated
  by ONE synthesis of the unprotected design. Every block's own area is the design's
  transistors apportioned by its share of the state bits (a block's logic is taken to scale
  with its state); a mechanism adds its storage (check bits, replicas) and its encoder,
  checker and voter gates at the CMOS costs above. The table says ``estimated: true`` and
  everything that prints it labels it as an estimate.

A table is ``{"unit", "estimated", "source", "baseline", "blocks": {block: {mechanism:
added area}}, "lockstep": {"dmr", "tmr"}}``; ``baseline`` is the unprotected design's area,
``lockstep`` the added area of replicating the whole design (a copy and a comparator of the
outputs; two copies and a voter), what the optimiser's choice is compared with.
:func:`load_table` reads one from a JSON or YAML file (``npuforge protect --area FILE``) and
checks it.
"""

import json
import math
from collections.abc import Callable
from pathlib import Path

from gen.errors import ConfigError
from hw.protect import code_width

#: Transistors per cell of Yosys' CMOS estimate (``stat -tech cmos``), and a 6T SRAM cell.
COSTS = {"dff": 16, "xor": 12, "and": 6, "or": 6, "mux": 12, "sram_bit": 6}

#: Block kinds whose DMR / TMR is a second (third) instance of the whole block, not register copies.
WHOLE_COPY = ("compute", "activation")

#: Gates of one 2-bit mod-3 adder of a residue tree (two half adders and the end-around carry).
_MOD3_ADDER = 4 * COSTS["xor"] + 4 * COSTS["and"]


def _storage_bit(site: dict) -> int:
    return COSTS["sram_bit"] if site["kind"] == "memory" else COSTS["dff"]


def _or_tree(inputs: int) -> int:
    return max(inputs - 1, 0) * COSTS["or"]


def _xor_tree(inputs: int) -> int:
    return max(inputs - 1, 0) * COSTS["xor"]


def site_cost(site: dict, mechanism: str, own_area: float, abft_fraction: float, whole_copy: bool = False) -> float:
    """Transistors ``mechanism`` adds to one fault site; ``own_area``: the site's share of the design.

    Memories pay storage per word (``depth`` words) and one encoder and checker (one port);
    registers pay both per register. DMR and TMR copy the register (a flip-flop and its
    enable multiplexer per bit, as ``hw.protect.protected_register`` builds them), or, with
    ``whole_copy`` (compute and activation blocks: a second instance), the site's whole share
    of the design.
    """
    width, depth = site["width"], site.get("depth") or 1
    bit = _storage_bit(site)
    copy = own_area if whole_copy else width * depth * (bit + COSTS["mux"])
    if mechanism == "parity":      # a parity bit per word, its generator and its checker
        return depth * bit + _xor_tree(width) + _xor_tree(width + 1)
    if mechanism == "secded":      # check bits, encoder, syndrome, decoder (AND of p literals per bit), fix
        r = code_width(width) - width
        p = r - 1
        encoder = (p * math.ceil(width / 2) + width + p) * COSTS["xor"]
        decode = width * (p - 1) * COSTS["and"] + width * COSTS["xor"] + 4 * COSTS["and"]
        return depth * r * bit + 2 * encoder + r * COSTS["xor"] + decode
    if mechanism == "dmr":         # a copy, a comparator of the read word
        return copy + comparator(width)
    if mechanism == "tmr":         # two copies, a majority voter and a disagreement flag per bit
        return 2 * copy + voter(width)
    if mechanism == "residue":     # a 2-bit residue register, a residue tree of the value, a mod-3 check
        return 2 * COSTS["dff"] + math.ceil(width / 2) * _MOD3_ADDER + 2 * _MOD3_ADDER + 2 * COSTS["xor"]
    if mechanism == "abft":        # checksum row and column (a share of the array) and their comparators
        return own_area * abft_fraction + comparator(width)
    raise ValueError(f"mechanism: got {mechanism!r}; allowed: parity, secded, dmr, tmr, residue, abft")


def comparator(width: int) -> int:
    """DMR: an XOR per bit and an OR tree to one mismatch flag."""
    return width * COSTS["xor"] + _or_tree(width)


def voter(width: int) -> int:
    """TMR: a majority (three ANDs, two ORs) and a disagreement flag (two XORs, an OR) per bit."""
    return width * (3 * COSTS["and"] + 2 * COSTS["or"] + 2 * COSTS["xor"] + COSTS["or"])


def lockstep(baseline: float, output_bits: int) -> dict:
    """Whole-design replication: DMR = a copy and a comparator of the outputs; TMR = two copies and a voter."""
    return {"dmr": baseline + comparator(output_bits), "tmr": 2 * baseline + voter(output_bits)}


def _site_bits(site: dict) -> int:
    return site["width"] * (site.get("depth") or 1)


def estimate(blocks: list[dict], *, transistors: int, output_bits: int, abft_fraction: float = 0.25,
             source: str = "") -> dict:
    """The analytic area table of ``blocks`` (``{name, sites, mechanisms}``), calibrated by ``transistors``.

    ``transistors``: the unprotected design's generic synthesis; each site's own area is that
    times its share of the design's state bits. Per block and each of its ``mechanisms``,
    the costs of its sites plus an OR tree of their alarms and a sticky alarm flip-flop.
    """
    total_bits = sum(_site_bits(site) for block in blocks for site in block["sites"])
    if total_bits <= 0 or transistors <= 0:
        raise ValueError("estimate: the design has no state bits or no area")
    per_bit = transistors / total_bits
    table = {}
    for block in blocks:
        sites = block["sites"]
        alarm = _or_tree(len(sites) + 1) + COSTS["dff"]
        table[block["name"]] = {
            mechanism: round(sum(site_cost(site, mechanism, per_bit * _site_bits(site), abft_fraction,
                                           whole_copy=block.get("kind") in WHOLE_COPY)
                                 for site in sites) + alarm, 1)
            for mechanism in block["mechanisms"]}
    return {
        "unit": "transistors (Yosys CMOS estimate)",
        "estimated": True,
        "source": source or "analytic per-bit model calibrated by one generic synthesis of the unprotected "
                            "design (fpga/protect_area.py)",
        "baseline": transistors,
        "blocks": table,
        "lockstep": lockstep(transistors, output_bits),
    }


def measure(blocks: list[dict], *, baseline: dict, output_bits: int, synthesize_with: Callable[[list[dict]], dict],
            on_step: Callable[[str], object] = lambda message: None, abft_fraction: float = 0.25) -> dict:
    """The measured area table: ``synthesize_with(protect_section)`` -> ``{transistors, ff}``, per variant.

    ``blocks``: ``{name, kind, sites, mechanisms}`` (the variants the generator accepts);
    ``baseline``: the unprotected design's ``{transistors, ff}``; ``synthesize_with``
    generates the design with the given ``protect:`` section and runs the generic synthesis
    (the caller binds the design and the build directory).

    Yosys merges flip-flops with identical inputs, so a DMR or TMR variant can lose its
    replicas in synthesis. One whose flip-flop count grew by less than its replicas' bits
    takes the analytic cost of :func:`estimate` instead; the table's ``notes`` say which.

    A variant that fails to generate or synthesise (any exception of ``synthesize_with``)
    has no area, so it is no choice: the table's ``skipped`` (and ``notes``) hold one line
    per such variant, with the reason, and the other variants are measured as usual.
    """
    analytic = estimate(blocks, transistors=baseline["transistors"], output_bits=output_bits,
                        abft_fraction=abft_fraction)
    table, notes, skipped = {}, [], []
    for block in blocks:
        row = table.setdefault(block["name"], {})
        register_bits = sum(_site_bits(site) for site in block["sites"] if site["kind"] != "memory")
        for mechanism in block["mechanisms"]:
            on_step(f"synthesising {block['name']} with {mechanism}")
            try:
                result = synthesize_with([{"match": block["name"], "mechanism": mechanism}])
            except Exception as error:  # noqa: BLE001 -- a broken variant is reported and skipped, not fatal
                reason = (str(error).strip().splitlines() or [""])[0][:200]
                skipped.append(f"{block['name']} {mechanism}: the variant failed to build "
                               f"({type(error).__name__}: {reason}); not a choice")
                continue
            area = max(0, result["transistors"] - baseline["transistors"])
            replicas = {"dmr": 1, "tmr": 2}.get(mechanism, 0) * register_bits
            added_ff = result["ff"] - baseline["ff"]
            if added_ff < replicas:
                notes.append(f"{block['name']} {mechanism}: synthesis kept {added_ff:+,} flip-flops of its "
                             f"{replicas:,} replica bits (Yosys merges identical flip-flops), so it measured "
                             f"+{area:,}; the analytic cost {analytic['blocks'][block['name']][mechanism]:,.0f} "
                             "is used")
                area = analytic["blocks"][block["name"]][mechanism]
            row[mechanism] = area
    return {"unit": "transistors (Yosys CMOS estimate)", "estimated": False,
            "source": "npuforge synth --target generic of each protected variant"
                      + (" (DMR/TMR entries whose replicas synthesis merged: analytic, see notes)" if notes else ""),
            "baseline": baseline["transistors"], "blocks": table,
            "lockstep": lockstep(baseline["transistors"], output_bits), "notes": notes + skipped,
            "skipped": skipped}


def load_table(path: Path, blocks: list[str], mechanisms: list[str]) -> dict:
    """An area table from a JSON or YAML file, checked against the design's blocks and ``mechanisms``."""
    from gen.config.reader import parse_yaml_text, read_config_text

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--area: got '{path}'; allowed: an existing JSON or YAML area table")
    text = read_config_text(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else parse_yaml_text(text, str(path))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), dict):
        raise ConfigError(f"{path}: got no 'blocks' mapping; allowed: {{baseline: AREA, blocks: {{BLOCK: "
                          "{MECHANISM: AREA}}}, unit, estimated, coverage}")
    baseline = data.get("baseline")
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not baseline > 0:
        raise ConfigError(f"{path}: baseline: got {baseline!r}; allowed: the unprotected design's area, a number > 0")
    for name, row in data["blocks"].items():
        if name not in blocks:
            raise ConfigError(f"{path}: blocks.{name}: not a block of the design; allowed: {', '.join(blocks)}")
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: blocks.{name}: got {row!r}; allowed: a mapping mechanism -> area")
        for mechanism, value in row.items():
            if mechanism not in mechanisms:
                raise ConfigError(f"{path}: blocks.{name}.{mechanism}: not a mechanism; allowed: "
                                  f"{', '.join(mechanisms)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{path}: blocks.{name}.{mechanism}: got {value!r}; allowed: a number >= 0")
    coverage = data.get("coverage", {})
    good = isinstance(coverage, dict) and all(
        m in mechanisms and not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1
        for m, v in coverage.items())
    if not good:
        raise ConfigError(f"{path}: coverage: got {coverage!r}; allowed: a mapping mechanism -> number in [0, 1]")
    full = data.get("lockstep", {})
    if not isinstance(full, dict) or any(m not in ("dmr", "tmr") or isinstance(v, bool)
                                         or not isinstance(v, (int, float)) or v < 0 for m, v in full.items()):
        raise ConfigError(f"{path}: lockstep: got {full!r}; allowed: a mapping dmr/tmr -> added area of "
                          "replicating the whole design")
    return {"lockstep": dict(full),
            "unit": str(data.get("unit", "area units")), "estimated": bool(data.get("estimated", False)),
            "source": str(data.get("source", str(path))), "baseline": float(baseline),
            "blocks": {name: dict(row) for name, row in data["blocks"].items()}, "coverage": dict(coverage)}
