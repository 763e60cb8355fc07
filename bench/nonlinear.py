"""Nonlinear units at equal bit widths: GELU table vs poly vs pwl, the exp options, the softmax options.

Usage (in the venv): ``python bench/nonlinear.py``

Every unit has a 16-bit input and a 16-bit output and one lane (the cost is that of
one element per cycle):

* GELU, s4.12 -> s4.12 (``x`` in [-8, 8)): ``table`` at Edge-MoE's step 1/32 over
  [0, 5.5] and at step 1/16; ``poly`` (I-BERT); ``pwl`` with 16 and 64 segments;
* exp, s6.10 -> u1.15 (``x <= 0``): nearest table entry vs linear interpolation,
  64-entry table;
* softmax, s6.10 logits -> u1.15 probabilities, rows of up to 32: the exp inside
  by nearest entry vs interpolation (skipped with a note when ``kind: softmax`` is
  not registered).

For each: max and mean abs error against float over every input code (rows of
several lengths and distributions for softmax; ``sim/characterize.py``), the max
error in output LSBs, and the Yosys ``generic`` cost (transistors, cells) of the
generated unit. Edge-MoE's GELU (ROM of 177 entries, step 1/32, linear
interpolation; about 1e-4 max error as reported, no cost published) is the
reference line.

Writes ``bench/results/nonlinear.json`` and ``bench/results/nonlinear_gelu.png``
(error against the input for each GELU method).
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fpga.cost import generic_cost  # noqa: E402
from gen.config import parse_config_data  # noqa: E402
from gen.errors import ConfigError  # noqa: E402
from gen.registry import KINDS  # noqa: E402
from npuforge.registry import golden_for  # noqa: E402
from sim.characterize import characterize  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / "build" / "bench"

S12 = {"width": 16, "frac": 12, "signed": True}
S10 = {"width": 16, "frac": 10, "signed": True}
U15 = {"width": 16, "frac": 15, "signed": False}
EDGE_MOE_GELU_MAX_ERROR = 1e-4  # reported (../shared/reference/edge-moe.md), not measured here

#: label -> config (without kind and name): the units compared.
UNITS = {
    "gelu table step 1/32 (Edge-MoE)": {"kind": "gelu", "input": S12, "output": S12, "method": "table",
                                        "step_bits": 5, "range": 5.5},
    "gelu table step 1/16": {"kind": "gelu", "input": S12, "output": S12, "method": "table",
                             "step_bits": 4, "range": 5.5},
    "gelu poly (I-BERT)": {"kind": "gelu", "input": S12, "output": S12, "method": "poly"},
    "gelu pwl 16 segments": {"kind": "gelu", "input": S12, "output": S12, "method": "pwl", "segments": 16,
                             "range": 4.0},
    "gelu pwl 64 segments": {"kind": "gelu", "input": S12, "output": S12, "method": "pwl", "segments": 64,
                             "range": 6.0},
    "exp nearest entry": {"kind": "exp", "input": S10, "output": U15, "method": "table", "table_bits": 6},
    "exp linear": {"kind": "exp", "input": S10, "output": U15, "method": "linear", "table_bits": 6},
    "softmax exp nearest": {"kind": "softmax", "input": S10, "output": U15, "n_max": 32,
                            "exp_interpolate": False},
    "softmax exp linear": {"kind": "softmax", "input": S10, "output": U15, "n_max": 32,
                           "exp_interpolate": True},
}


def config(label: str, data: dict):
    name = "bench_" + "".join(c if c.isalnum() else "_" for c in label.split(" (")[0]).strip("_")
    return parse_config_data({"name": name, "lanes": 1, **data}, f"bench unit '{label}'")


def measure(label: str, data: dict) -> dict | None:
    kinds = {kind.name for kind in KINDS}
    if data["kind"] not in kinds:
        print(f"note: kind '{data['kind']}' is not registered yet; '{label}' skipped", flush=True)
        return None
    try:
        cfg = config(label, data)
    except ConfigError as error:
        print(f"note: {error}; '{label}' skipped", flush=True)
        return None
    started = time.monotonic()
    cost = generic_cost(cfg, BUILD)
    report = characterize(cfg, golden_for(cfg), cost=cost, keep_samples=cfg.kind == "gelu")
    report["seconds"] = round(time.monotonic() - started, 1)
    print(f"{label}: max {report['max_abs_error']:.3g}, {cost['transistors']:,} transistors "
          f"({report['seconds']} s)", flush=True)
    return report


def table(rows: dict) -> str:
    lines = ["| unit | formats | inputs | max abs error | mean abs error | max error (LSB) | transistors | cells |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        inputs = f"{r['inputs_tested']:,}" + (" (all codes)" if r["exhaustive"] else f" in {r['rows_tested']:,} rows")
        lines.append(f"| {label} | {r['input']} -> {r['output']} | {inputs} | {r['max_abs_error']:.3g} | "
                     f"{r['mean_abs_error']:.3g} | {r['max_error_lsb']:.2f} | {r['cost']['transistors']:,} | "
                     f"{r['cost']['cells']:,} |")
    lines.append(f"| Edge-MoE GELU (reported) | ap_fixed, 22-bit ROM entries | - | ~{EDGE_MOE_GELU_MAX_ERROR:g} | - | - "
                 f"| - | - |")
    return "\n".join(lines)


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gelu = {label: r for label, r in rows.items() if r["kind"] == "gelu"}
    figure, axes = plt.subplots(len(gelu), 1, figsize=(9, 2.2 * len(gelu)), sharex=True)
    for axis, (label, r) in zip(axes, gelu.items()):
        samples = r["samples"]
        axis.plot(samples["input_values"], samples["errors"], linewidth=0.6)
        axis.axhline(EDGE_MOE_GELU_MAX_ERROR, color="red", linestyle="--", linewidth=0.8)
        axis.axhline(-EDGE_MOE_GELU_MAX_ERROR, color="red", linestyle="--", linewidth=0.8,
                     label="Edge-MoE GELU, about 1e-4 (reported)")
        axis.set_title(f"{label}: max {r['max_abs_error']:.2g}, {r['cost']['transistors']:,} transistors",
                       fontsize=9)
        axis.set_ylabel("output - GELU(x)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("x (every code of s4.12)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    rows = {}
    for label, data in UNITS.items():
        report = measure(label, data)
        if report is not None:
            rows[label] = report
    print()
    print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "nonlinear_gelu.png")
    stored = {label: {k: v for k, v in r.items() if k != "samples"} for label, r in rows.items()}
    stored["Edge-MoE GELU (reported)"] = {"max_abs_error": EDGE_MOE_GELU_MAX_ERROR, "source": "edge-moe.md"}
    (RESULTS / "nonlinear.json").write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {RESULTS / 'nonlinear.json'} and {RESULTS / 'nonlinear_gelu.png'}")


if __name__ == "__main__":
    main()
