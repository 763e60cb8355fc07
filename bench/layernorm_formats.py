"""LayerNorm fed the features as they are, against the narrowed inputs it took before issue 18.

Usage (in the venv): ``python bench/layernorm_formats.py [--rows N] [--seed S]``

Part 1, the unit's own error (the golden model against float64 LayerNorm of the same input
codes with the configured ``eps``; gamma ~ N(1, 0.5), beta ~ N(0, 0.5); half the rows of length
``n_max``, the rest random lengths; values normal with a random centre and a spread from 1e-4 to
0.2 of the input range; float results clamped to the output range) for the standalone configs.

Part 2, what the narrowing cost the models: rows of activation codes (ViT-like: centre N(0, 2),
spread 0.05..5) through the model's ``feature_layernorm`` (activation -> the unit's input format
-> LayerNorm -> activation) against the float LayerNorm of the activation values, once with the
model's current unit (the activation format as it is) and once with the narrowed input it had
before (the same unit config with the old input format and ``stat_frac``).

Writes ``bench/results/layernorm_formats.json``.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen.config import load_config  # noqa: E402
from gen.config.moevit import MoevitConfig, load_moevit  # noqa: E402
from sim.golden import layernorm as golden  # noqa: E402
from sim.golden.moevit import fixed  # noqa: E402

STANDALONE = ("configs/nonlinear/layernorm_vit.yaml", "tests/configs/layernorm_l1_n8.yaml",
              "tests/configs/layernorm_l3_n13.yaml", "tests/configs/layernorm_w32_n24.yaml")
#: model -> the LayerNorm input and stat_frac its config had before issue 18 (narrowed features).
MODELS = {"configs/moevit/tiny.yaml": ({"width": 17, "frac": 10, "signed": True}, 20),
          "configs/moevit/edge_moe_exact.yaml": ({"width": 16, "frac": 10, "signed": True}, None),
          "configs/moevit/edge_moe.yaml": ({"width": 16, "frac": 10, "signed": True}, None)}


def unit_error(path: str, rows: int, rng: np.random.Generator) -> dict:
    cfg = load_config(ROOT / path)
    context = golden.context(cfg, rng)
    lengths = [cfg.n_max if i % 2 == 0 else int(rng.integers(1, cfg.n_max + 1)) for i in range(rows)]
    data = [golden.random_row(cfg, rng, n) for n in lengths]
    out = cfg.output.format
    got = golden.golden_rows(cfg, data, **context)
    want = golden.float_rows(cfg, data, **context)
    lo, hi = float(out.min_value), float(out.max_value)
    errors = np.concatenate([np.abs(out.to_float(g) - np.clip(w, lo, hi)) for g, w in zip(got, want)])
    return {"config": path, "formats": f"{cfg.input.format.describe()} -> {out.describe()}", "n_max": cfg.n_max,
            "elements": int(errors.size), "max_abs_error": float(errors.max()),
            "mean_abs_error": float(errors.mean()), "max_error_lsb": float(errors.max() / 2.0 ** -out.frac)}


def _narrowed(cfg: MoevitConfig, old_input: dict, old_stat_frac: int | None) -> MoevitConfig:
    data = copy.deepcopy(cfg.model_dump(mode="json"))
    unit = data["nonlinear"]["layernorm"]
    unit["input"] = old_input
    for key in ("stat_frac", "rstd"):  # the defaults of the old config, or its own values
        unit.pop(key, None)
    if old_stat_frac is not None:
        unit["stat_frac"] = old_stat_frac
        unit["rstd"] = cfg.nonlinear["layernorm"]["rstd"]
    return MoevitConfig.model_validate(data)


def model_error(path: str, rows: int, rng: np.random.Generator) -> dict:
    cfg = load_moevit(ROOT / path)
    act = cfg.format("activation")
    norm = cfg.format("norm")
    values = rng.normal(rng.normal(0, 2, (rows, 1)), rng.uniform(0.05, 5, (rows, 1)), (rows, cfg.dim))
    x = act.from_float(values)
    gamma = norm.from_float(rng.normal(1, 0.3, cfg.dim))
    beta = norm.from_float(rng.normal(0, 0.3, cfg.dim))
    exact = None
    result = {"model": path, "activation": act.describe(), "dim": cfg.dim}
    for label, model in (("direct", cfg), ("narrowed (before)", _narrowed(cfg, *MODELS[path]))):
        u = fixed.units(model)
        if exact is None:
            g, b = norm.to_float(gamma), norm.to_float(beta)
            a = act.to_float(x)
            exact = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + u.eps) * g + b
        got = act.to_float(fixed.feature_layernorm(x, gamma, beta, model, u))
        errors = np.abs(got - exact)
        result[label] = {"unit_input": u.layernorm.input.describe(), "stat_frac": u.layernorm.stat_frac,
                         "statistics_bits": u.layernorm.statistics_width,
                         "max_abs_error": float(errors.max()), "mean_abs_error": float(errors.mean()),
                         "max_error_activation_lsb": float(errors.max() / 2.0 ** -act.frac)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    units = [unit_error(path, args.rows, rng) for path in STANDALONE]
    print("unit error (golden against float64, same input codes):")
    print(f"  {'config':40} {'formats':20} {'elements':>9} {'max abs':>10} {'mean abs':>10} {'max LSB':>8}")
    for r in units:
        print(f"  {r['config']:40} {r['formats']:20} {r['elements']:9,} {r['max_abs_error']:10.3g} "
              f"{r['mean_abs_error']:10.3g} {r['max_error_lsb']:8.2f}")
    models = [model_error(path, args.rows, rng) for path in MODELS]
    print("\nmodel LayerNorm, activation codes in and out, against float LayerNorm of the activation values:")
    for r in models:
        for label in ("direct", "narrowed (before)"):
            e = r[label]
            print(f"  {r['model']:38} {label:18} unit input {e['unit_input']:7} stat_frac {e['stat_frac']:2} "
                  f"statistics {e['statistics_bits']:3} bits: max {e['max_abs_error']:9.3g} "
                  f"({e['max_error_activation_lsb']:8.1f} LSB), mean {e['mean_abs_error']:9.3g}")
    out = ROOT / "bench" / "results" / "layernorm_formats.json"
    out.write_text(json.dumps({"rows": args.rows, "seed": args.seed, "units": units, "models": models,
                               "seconds": round(time.monotonic() - started, 1)}, indent=1) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
