"""LayerNorm: golden model against float and its own invariants; RTL bit-exact with gamma/beta loaded by stream."""

import numpy as np
import pytest
from conftest import per_config
from test_softmax import FLOWS, run_rows

from gen.config import parse_config_data
from gen.errors import ConfigError
from sim.golden import layernorm as golden
from sim.runner import check_fault_sites

LAYERNORM_CONFIGS = ("layernorm_l1_n8", "layernorm_l3_n13", "layernorm_w32_n24")


def _cfg(**fields):
    data = {"kind": "layernorm", "name": "ln", "input": {"width": 16, "frac": 10, "signed": True},
            "output": {"width": 16, "frac": 10, "signed": True}, "lanes": 8, "n_max": 192}
    data.update(fields)
    return parse_config_data(data, "test")


# --------------------------------------------------------------------------- golden model

def test_constant_rows_give_beta_exactly():
    cfg = _cfg(n_max=32, lanes=4)
    rng = np.random.default_rng(1)
    context = golden.context(cfg, rng)
    spec = golden.spec_for(cfg)
    for value in (0, 1, -1, 1 << 10, spec.input.max_code, spec.input.min_code, 12345):
        for n in (1, 2, 17, 32):
            row = np.full(n, value)
            mean, _ = golden.statistics(spec, row)
            assert mean == value << (spec.stat_frac - spec.input.frac)
            out = golden.golden_rows(cfg, [row], **context)[0]
            beta = cfg.beta.format.to_float(np.array(context["beta"][:n]))
            assert np.array_equal(cfg.output.format.to_float(out), cfg.output.format.to_float(
                cfg.output.format.from_float(beta)))


def _errors(cfg, rows, context):
    got = golden.golden_rows(cfg, rows, **context)
    want = golden.float_rows(cfg, rows, **context)
    return np.concatenate([np.abs(cfg.output.format.to_float(g) - w) for g, w in zip(got, want)])


def test_golden_error_against_float_on_vit_like_rows():
    """192 channels, s6.10 in and out: within two output LSBs (plus the rstd format's share) of float."""
    cfg = _cfg()
    rng = np.random.default_rng(2)
    context = golden.context(cfg, rng)
    rows = [golden.random_row(cfg, rng, int(rng.integers(1, 193))) for _ in range(60)]
    errors = _errors(cfg, rows, context)
    assert errors.max() <= 3 * 2.0 ** -10, errors.max()


def test_small_spread_far_from_zero_does_not_cancel():
    """Rows at +-20 with a spread of a few LSBs: the shifted sums keep the variance accurate."""
    cfg = _cfg(n_max=64, lanes=4)
    rng = np.random.default_rng(3)
    context = golden.context(cfg, rng)
    rows = [cfg.input.format.from_float(rng.normal(centre, 0.01, size=64)) for centre in (20.0, -20.0, 31.0)]
    errors = _errors(cfg, rows, context)
    assert errors.max() <= 0.02, errors.max()  # the input's own 2**-10 steps over a 0.01 spread dominate


def test_lanes_do_not_change_results():
    """Exact sums: the statistics and outputs do not depend on how many elements a beat carries."""
    rng = np.random.default_rng(4)
    configs = [_cfg(n_max=40, lanes=lanes) for lanes in (1, 3, 8)]
    context = golden.context(configs[0], rng)
    rows = [golden.random_row(configs[0], rng, int(rng.integers(1, 41))) for _ in range(20)]
    outputs = [golden.golden_rows(cfg, rows, **context) for cfg in configs]
    for other in outputs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(outputs[0], other))


@pytest.mark.parametrize("fields, message", [
    ({"stat_frac": 4}, "stat_frac .* must be at least input.frac"),
    ({"rstd": {"width": 30, "frac": 20, "signed": False}}, "rstd must be unsigned with at most 26 bits"),
    ({"input": {"width": 32, "frac": 10, "signed": True}, "n_max": 4096}, "intermediates fit the hardware"),
    ({"input": {"width": 24, "frac": 16, "signed": True}}, "intermediate products would need 66 bits .*use fewer stat_frac"),
])
def test_config_errors_name_the_problem(fields, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**fields)


# --------------------------------------------------------------------------- RTL

@per_config(*LAYERNORM_CONFIGS)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_rows_bit_exact(built, config_name, flow, tmp_path):
    needed = ("zero variance", "one outlier", "halves at the extremes")
    cfg, vectors, measured, latency = run_rows(built, config_name, flow, tmp_path, seed=21, needed=needed)
    assert len(vectors["preload"]["params"]) == -(-cfg.n_max // cfg.lanes)  # gamma/beta went in by stream
    if flow == "full_rate":
        assert measured[0] == latency


@per_config("layernorm_l3_n13")
def test_every_fault_site_takes_a_deposit(built, config_name, tmp_path):
    """Registers, the row memory and the gamma/beta memory named in the manifest resolve in the model."""
    model = built(config_name)
    sites = {site["path"]: site["kind"] for site in model.manifest["fault_sites"]}
    assert sites.get("core.store.rows") == "memory" and sites.get("core.parameters") == "memory"
    assert check_fault_sites(model, tmp_path) == []
