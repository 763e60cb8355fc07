"""MoE-ViT reference models: config, weights, float model, bit-accurate fixed-point operators, attention orders.

Error bounds of the fixed-point operators against the float model (derived in docs/moevit.md):
a matmul with ``K`` products is within ``(K + 1) * r_acc * 2**-acc.frac + r_out * 2**-out.frac``
of the exact result of its input codes (``r`` = 1 for truncation, 1/2 for rounding to nearest);
the softmax unit within 4 output LSB, the GELU table within its documented bound, LayerNorm
within the measured bound stated at its test; "exact" nonlinearities within half an output LSB
(one for truncation).
"""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT

from gen.config.moevit import MoevitConfig, load_moevit, load_moevit_hw
from gen.errors import ConfigError
from hw.arith.fixed import FixedFormat, Overflow, Rounding
from sim.golden import gelu as gelu_golden
from sim.golden import layernorm as layernorm_golden
from sim.golden.moevit import attention as attn
from sim.golden.moevit import fixed, reference
from sim.golden.moevit.params import check_params, init_params, load_params, save_params, shapes

CONFIGS = ROOT / "configs" / "moevit"


def small(name: str, **overrides) -> MoevitConfig:
    """A shipped config shrunk to a test size (its formats and units kept)."""
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    data.update(height=8, width=8, patch=4, dim=16, heads=2, layers=2, experts=4, top_k=2, expert_hidden=8,
                weights=None)
    data.update(overrides)
    return MoevitConfig.model_validate(data)


@pytest.fixture(scope="module")
def tiny():
    return load_moevit(CONFIGS / "tiny.yaml")


@pytest.fixture(scope="module")
def edge():
    return load_moevit(CONFIGS / "edge_moe.yaml")


# ------------------------------------------------------------------ config

def test_shipped_configs(tiny, edge):
    assert (edge.tokens, edge.dim, edge.heads, edge.head_dim, edge.layers) == (129, 192, 3, 64, 12)
    assert (edge.hidden, edge.experts, edge.top_k, edge.expert_hidden) == (768, 16, 2, 384)
    assert [edge.is_moe(layer) for layer in range(4)] == [False, True, False, True]
    assert edge.format("activation") == FixedFormat(32, 22, True)  # ap_fixed<32,10>
    assert edge.format("weight") == FixedFormat(16, 14, True)  # ap_fixed<16,2>
    assert edge.format("attn_bias") == FixedFormat(16, 9, True)  # ap_fixed<16,7>
    assert edge.format("patch_weight") == FixedFormat(16, 16, True)  # ap_fixed<16,0>
    assert edge.format("pixel") == FixedFormat(8, 8, False)  # ap_ufixed<8,0>
    assert (edge.rounding, edge.overflow) == ("truncate", "wrap")
    assert edge.units["gate"].experts == 16 and edge.units["gate"].top_k == 2
    assert edge.units["softmax"].n_max == 129 and edge.units["layernorm"].n_max == 192
    assert (tiny.tokens, tiny.dim, tiny.heads, tiny.layers, tiny.experts, tiny.expert_hidden) == (65, 64, 4, 4, 8, 128)
    assert [t.outputs for t in tiny.tasks] == [5, 1]
    assert load_moevit_hw(CONFIGS / "edge_moe_hw.yaml").bytes_per_cycle == 64


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("change, expected", [
    ({"height": 30}, "patch: got 4; allowed: a divisor of height (30) and width (32)"),
    ({"heads": 3}, "heads: got 3; allowed: a divisor of dim (64)"),
    ({"top_k": 9}, "top_k: got 9; allowed: at most experts (8)"),
    ({"tasks": [{"name": "a", "type": "depth"}, {"name": "a", "type": "depth"}]}, "tasks with distinct names"),
    ({"moe_layers": "some"}, "moe_layers: got 'some'"),
    ({"tasks": [{"name": "a", "type": "segmentation"}]}, "needs classes"),
    ({"tasks": [{"name": "a", "type": "depth", "classes": 3}]}, "a depth task has no classes"),
    ({"formats": {"pixel": {"width": 8, "frac": 8, "signed": False}}}, "formats.activation: missing required key"),
    ({"colour": 1}, "colour: unknown key"),
])
def test_config_errors_are_one_line(tmp_path, change, expected):
    data = yaml.safe_load((CONFIGS / "tiny.yaml").read_text()) | change
    with pytest.raises(ConfigError) as error:
        load_moevit(_write(tmp_path, data))
    message = str(error.value)
    assert expected in message and "\n" not in message and message.startswith(str(tmp_path))


@pytest.mark.parametrize("unit, change, expected", [
    ("softmax", {"n_max": 7}, "nonlinear: got a mapping; allowed: no n_max in nonlinear.softmax"),
    ("gate", {"experts": 4}, "allowed: no experts in nonlinear.gate"),
    ("layernorm", {"gamma": {"width": 8, "frac": 4, "signed": True}}, "no gamma in nonlinear.layernorm"),
    ("gelu", {"method": "cubic"}, "nonlinear.gelu.method: got 'cubic'"),
    ("softmax", {"exp_frac": 99}, "nonlinear.softmax.exp_frac: got 99"),
    ("layernorm", {"input": {"width": 32, "frac": 26, "signed": True}}, "nonlinear.layernorm.stat_frac (24) must be at least"),
])
def test_unit_errors_name_the_unit(tmp_path, unit, change, expected):
    data = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    data["nonlinear"][unit] |= change
    with pytest.raises(ConfigError) as error:
        load_moevit(_write(tmp_path, data))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_missing_unit_and_bad_alternative(tmp_path):
    data = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    del data["nonlinear"]["gate"]
    with pytest.raises(ConfigError, match=r"nonlinear: got a mapping; allowed: exactly the units .* \(missing gate\)"):
        load_moevit(_write(tmp_path, data))
    data = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    data["gelu_alternatives"] = {"poly": {"segments": 4}}
    with pytest.raises(ConfigError, match="gelu_alternatives.poly.segments"):
        load_moevit(_write(tmp_path, data))


def test_hardware_commands_refuse_model_configs(capsys):
    from npuforge.cli import main

    assert main(["generate", str(CONFIGS / "tiny.yaml")]) == 2
    assert main(["sim", str(CONFIGS / "edge_moe_hw.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "'moevit' is a model config, read by 'npuforge eval' and 'npuforge perf'" in err[0]
    assert "'npuforge perf --hw'" in err[1]


# ----------------------------------------------------------------- weights

def test_params_init_save_load(tmp_path, tiny):
    params = init_params(tiny, seed=3)
    assert {k: v.shape for k, v in params.items()} == shapes(tiny)
    assert all(v.dtype == np.float32 for v in params.values())
    assert np.array_equal(init_params(tiny, seed=3)["pos"], params["pos"])
    assert not np.array_equal(init_params(tiny, seed=4)["pos"], params["pos"])
    assert shapes(tiny)["blocks.1.moe.fc1.w"] == (8, 64, 128) and "blocks.0.mlp.fc1.w" in params
    assert shapes(tiny)["heads.seg.w"] == (64, 5 * 16) and "blocks.1.moe.gate.depth" in params
    path = tmp_path / "w.npz"
    save_params(params, path)
    loaded = load_params(tiny, path)
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    del params["norm.g"]
    with pytest.raises(ConfigError, match="missing key 'norm.g'"):
        check_params(tiny, params)
    params["norm.g"] = np.ones(3, dtype=np.float32)
    with pytest.raises(ConfigError, match=r"norm.g: shape \(3,\); allowed: \(64,\)"):
        check_params(tiny, params)
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tiny, tmp_path / "none.npz")


# -------------------------------------------------------------- float model

def test_patchify_and_pixel_shuffle_orders():
    images = np.arange(2 * 3 * 8 * 12, dtype=float).reshape(2, 3, 8, 12)
    patches = reference.patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    # patch 4 = grid (1, 1); element c*16 + py*4 + px is pixel (c, 4 + py, 4 + px)
    assert patches[1, 4, 2 * 16 + 3 * 4 + 1] == images[1, 2, 4 + 3, 4 + 1]
    tokens = np.random.default_rng(0).normal(size=(2, 6, 3 * 16))
    shuffled = reference.unpatchify(tokens, 3, 4, (2, 3))
    assert shuffled[0, 1, 1 * 4 + 2, 2 * 4 + 3] == tokens[0, 1 * 3 + 2, 1 * 16 + 2 * 4 + 3]
    assert np.array_equal(reference.unpatchify(reference.patchify(images, 4), 3, 4, (2, 3)), images)


def test_gate_top_k_ties_and_no_renormalisation():
    logits = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    chosen, scores = reference.gate_top_k(logits, 2)
    assert chosen.tolist() == [[1, 2], [0, 1]]
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert np.allclose(scores[0], p[[1, 2]]) and scores[1].sum() == pytest.approx(0.5)


def test_float_operators_against_loops():
    rng = np.random.default_rng(1)
    cfg = small("tiny")
    params = init_params(cfg, seed=1, std=0.3)
    y = rng.normal(size=(2, cfg.tokens, cfg.dim))
    # attention, head by head with explicit loops
    p = "blocks.0.attn."
    qkv = y @ params[p + "qkv.w"] + params[p + "qkv.b"]
    hd = cfg.head_dim
    out = np.zeros_like(y)
    for n in range(2):
        for h in range(cfg.heads):
            q, k, v = (qkv[n, :, i * cfg.dim + h * hd: i * cfg.dim + (h + 1) * hd] for i in range(3))
            for t in range(cfg.tokens):
                s = q[t] @ k.T / math.sqrt(hd)
                w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                out[n, t, h * hd:(h + 1) * hd] = w @ v
    expected = out @ params[p + "proj.w"] + params[p + "proj.b"]
    got = reference.attention(y, params[p + "qkv.w"], params[p + "qkv.b"], params[p + "proj.w"],
                              params[p + "proj.b"], cfg.heads)
    assert np.allclose(got, expected, atol=1e-12)
    # MoE, token by token
    m = "blocks.1.moe."
    got = reference.moe(y, params[m + "gate.seg"], params[m + "fc1.w"], params[m + "fc1.b"], params[m + "fc2.w"],
                        params[m + "fc2.b"], cfg.top_k)
    for n in range(2):
        for t in range(cfg.tokens):
            logits = y[n, t] @ params[m + "gate.seg"]
            prob = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            best = sorted(range(cfg.experts), key=lambda e: (-prob[e], e))[:cfg.top_k]
            want = sum(prob[e] * (reference.gelu(y[n, t] @ params[m + "fc1.w"][e] + params[m + "fc1.b"][e])
                                  @ params[m + "fc2.w"][e] + params[m + "fc2.b"][e]) for e in best)
            assert np.allclose(got[n, t], want, atol=1e-12)
    ln = reference.layernorm(y, params["norm.g"], params["norm.b"])
    assert np.allclose(ln.mean(-1), 0, atol=1e-9) and np.allclose(ln.std(-1), 1, atol=1e-5)


def test_forward_shapes(tiny):
    cfg = small("tiny")
    images = np.random.default_rng(2).random((3, 3, 8, 8))
    outputs = reference.forward_all(init_params(cfg, 0), images, cfg)
    assert outputs["seg"].shape == (3, 5, 8, 8) and outputs["depth"].shape == (3, 1, 8, 8)
    with pytest.raises(KeyError):
        reference.forward(init_params(cfg, 0), images, "normals", cfg)


def test_activated_macs(edge, tiny):
    macs = reference.activated_macs(edge)
    # top-2 of 16 experts of hidden 384 = a dense MLP of 768, plus the gate; heads included
    for task in ("seg", "depth"):
        assert macs[task]["moe"] - macs[task]["dense_mlp"] == 6 * 129 * 192 * 16
        assert macs[task]["ratio_all_experts"] < 0.4
    assert macs["seg"]["moe"] - macs["depth"]["moe"] == 128 * 192 * 18 * 256  # 19 vs 1 head outputs
    tiny_macs = reference.activated_macs(tiny)["seg"]
    assert tiny_macs["moe"] < tiny_macs["all_experts"]


# --------------------------------------------------- fixed-point operators

def _bound(rounding: Rounding) -> float:
    return 1.0 if rounding is Rounding.TRUNCATE else 0.5


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
@pytest.mark.parametrize("matmul", ["qkv", "fc2", "gate", "patch_embed", "av", "head"])
def test_matmul_against_float(name, matmul):
    cfg = small(name)
    spec = fixed.matmul_specs(cfg)[matmul]
    rng = np.random.default_rng(hash((name, matmul)) % 2**32)
    k = 24
    a = rng.integers(spec.a.min_code, spec.a.max_code + 1, (5, k)) // (1 if spec.a.width <= 16 else 1 << 12)
    b = rng.integers(spec.b.min_code, spec.b.max_code + 1, (k, 7)) // (1 if spec.b.width <= 16 else 1 << 12)
    bias = rng.integers(spec.bias.min_code, spec.bias.max_code + 1, 7) if spec.bias else None
    out = fixed.matmul(spec, a, b, bias)
    assert out.dtype == np.int64 and out.shape == (5, 7)
    assert out.min() >= spec.out.min_code and out.max() <= spec.out.max_code
    exact = spec.a.to_float(a) @ spec.b.to_float(b) + (spec.bias.to_float(bias) if spec.bias else 0)
    r = _bound(spec.rounding)
    acc_error = 0 if spec.product_shift <= 0 else k * r * 2.0 ** -spec.acc.frac
    if spec.bias and spec.bias.frac > spec.acc.frac:
        acc_error += r * 2.0 ** -spec.acc.frac
    bound = acc_error + r * 2.0 ** -spec.out.frac
    fits = np.abs(exact) < float(spec.out.max_value)
    assert fits.any()
    assert np.abs(spec.out.to_float(out) - exact)[fits].max() <= bound
    if spec.rounding is Rounding.TRUNCATE:  # truncation only ever rounds down
        assert (spec.out.to_float(out) <= exact + 1e-12)[fits].all()


def test_matmul_overflow_rules():
    fmt = FixedFormat(8, 0, True)
    for overflow, expected in ((Overflow.WRAP, (100 * 3 + 20) - 256), (Overflow.SATURATE, 127)):
        spec = fixed.MatmulSpec("t", fmt, fmt, FixedFormat(10, 0, True), fmt, Rounding.TRUNCATE, overflow, fmt)
        assert fixed.matmul(spec, np.array([[100, 100, 100]]), np.array([[1], [1], [1]]), np.array([20]))[0, 0] \
            == expected
    # products requantised one by one: three products of 0.75 truncate to 0 each, not 2 in sum
    half = FixedFormat(8, 1, True)
    spec = fixed.MatmulSpec("t", half, half, FixedFormat(16, 0, True), FixedFormat(16, 0, True),
                            Rounding.TRUNCATE, Overflow.WRAP)
    assert fixed.matmul(spec, np.array([[3, 3, 3]]), np.array([[1], [1], [1]]))[0, 0] == 0
    spec = fixed.MatmulSpec("t", half, half, FixedFormat(16, 2, True), FixedFormat(16, 0, True),
                            Rounding.TRUNCATE, Overflow.WRAP)
    assert fixed.matmul(spec, np.array([[3, 3, 3]]), np.array([[1], [1], [1]]))[0, 0] == 2
    with pytest.raises(ValueError, match="codes outside s7.1"):
        fixed.matmul(spec, np.array([[300]]), np.array([[1]]))


def test_wide_products_match_python_integers():
    rng = np.random.default_rng(5)
    a = rng.integers(-2**31, 2**31, (3, 6))
    b = rng.integers(-2**31, 2**31, (6, 4))
    for rounding in Rounding:
        got = fixed.product_sum(a, b, 22, rounding)
        for i in range(3):
            for j in range(4):
                terms = [int(a[i, k]) * int(b[k, j]) for k in range(6)]
                if rounding is Rounding.TRUNCATE:
                    want = sum(t >> 22 for t in terms)
                else:
                    want = sum(round(t / 2**22) if rounding is Rounding.HALF_EVEN
                               else int(math.floor(abs(t) / 2**22 + 0.5)) * (1 if t >= 0 else -1) for t in terms)
                assert got[i, j] == want


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
@pytest.mark.parametrize("heads", [1, 2])
def test_attention_scores_against_float(name, heads):
    cfg = small(name, heads=heads)
    specs = fixed.matmul_specs(cfg)
    act = cfg.format("activation")
    rng = np.random.default_rng(7)
    q, k = (act.from_float(rng.normal(0, 2, (2, cfg.tokens, cfg.head_dim))) for _ in range(2))
    scores = fixed.attention_scores(q, k, cfg, specs)
    exact = act.to_float(q) @ np.swapaxes(act.to_float(k), -1, -2) / math.sqrt(cfg.head_dim)
    r = _bound(Rounding(cfg.rounding))
    raw = 0 if specs["qk"].product_shift <= 0 else cfg.head_dim * r * 2.0 ** -specs["qk"].acc.frac
    code, fmt = fixed.score_scale(cfg)  # 1/sqrt(hd) in the weight format: exact for hd a power of 4
    scale_error = abs(fmt.to_float(code) - 1 / math.sqrt(cfg.head_dim))
    assert (scale_error == 0) == (math.log(cfg.head_dim, 4) % 1 == 0)
    bound = raw + np.abs(exact).max() * math.sqrt(cfg.head_dim) * scale_error + r * 2.0 ** -act.frac
    assert np.abs(act.to_float(scores) - exact).max() <= bound


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_softmax_unit_against_float(name):
    cfg = small(name)
    u = fixed.units(cfg)
    spec = u.softmax
    rng = np.random.default_rng(8)
    x = spec.input.from_float(rng.normal(0, 3, (40, cfg.tokens)))
    exact = reference.softmax(spec.input.to_float(x))
    lsb = 2.0 ** -spec.output.frac
    hardware = fixed.softmax(x, u)
    assert np.abs(spec.output.to_float(hardware) - exact).max() <= 4 * lsb
    rounded = fixed.softmax(x, u, "exact")
    assert np.abs(spec.output.to_float(rounded) - exact).max() <= _bound(spec.rounding) * lsb + 1e-12
    assert np.array_equal(fixed.softmax(x, u), hardware)  # deterministic


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_gate_against_float(name):
    cfg = small(name)
    u = fixed.units(cfg)
    spec = u.gate
    rng = np.random.default_rng(9)
    x = spec.input.from_float(rng.normal(0, 2, (200, cfg.experts)))
    prob = reference.softmax(spec.input.to_float(x))
    for method in ("online", "exact"):
        chosen, scores = fixed.gate(x, u, cfg.top_k, method)
        assert chosen.shape == (200, cfg.top_k)
        true_top = -np.sort(-prob, axis=-1)[:, cfg.top_k - 1]
        agree = (np.take_along_axis(prob, chosen, -1) >= true_top[:, None] - 1e-3).all(-1)
        assert agree.mean() >= 0.97
        error = np.abs(spec.output.to_float(scores) - np.take_along_axis(prob, chosen, -1)).max()
        assert error <= 4 * 2.0 ** -spec.output.frac
    # ties go to the lower index
    tied = np.zeros((1, cfg.experts), dtype=np.int64)
    assert fixed.gate(tied, u, cfg.top_k)[0].tolist() == [list(range(cfg.top_k))]


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
@pytest.mark.parametrize("method", ["table", "poly", "pwl", "exact"])
def test_gelu_against_float(name, method):
    cfg = small(name)
    u = fixed.units(cfg, {"gelu": method})
    spec = u.gelu
    x = spec.input.from_float(np.linspace(-7, 7, 3001))
    got = spec.output.to_float(fixed.gelu(x, u))
    exact = gelu_golden.gelu_float(spec, x)
    r = _bound(spec.rounding) * 2.0 ** -spec.output.frac
    delta = lambda t: t * 0.5 * math.erfc(t / math.sqrt(2))  # noqa: E731 -- ReLU - GELU at t >= 0
    bound = {"table": lambda: 2.0 ** (-2 * spec.step_bits) * 0.8 / 8 + 2.0 ** -(spec.entry_frac + 1)
             + delta(spec.range) + r,
             "poly": lambda: 0.0182 + 7 / 2 * (1.15 * 2.0 ** -(spec.erf_frac + 1) + 6.3 * 2.0 ** -(spec.coeff_frac + 1)
                                               + 0.75 * 2.0 ** -spec.input.frac) + r,
             "pwl": lambda: (2 * spec.range / spec.segments) ** 2 * 0.8 / 8 + 2.0 ** -(spec.coeff_frac + 1) * 8
             + delta(spec.range) + r,
             "exact": lambda: r}[method]()
    assert np.abs(got - exact).max() <= bound + 1e-12


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_layernorm_against_float(name):
    """Bound per element: ``1.5 * 2**-rstd.frac * |x - mean| * |gamma|`` (1/sqrt(var + eps) is held to
    ``rstd.frac`` fraction bits: Edge-MoE's default u11.13, the tiny config's u6.20) plus 8 output LSB."""
    cfg = small(name)
    u = fixed.units(cfg)
    spec = u.layernorm
    rng = np.random.default_rng(10)
    x = spec.input.from_float(rng.normal(rng.normal(0, 3, (100, 1)), rng.uniform(0.05, 5, (100, 1)), (100, cfg.dim)))
    gamma = spec.gamma.from_float(rng.normal(1, 0.3, cfg.dim))
    beta = spec.beta.from_float(rng.normal(0, 0.3, cfg.dim))
    exact = np.stack([layernorm_golden.layernorm_float(spec, u.eps, row, gamma, beta) for row in x])
    lsb = 2.0 ** -spec.output.frac
    values = spec.input.to_float(x)
    bound = (1.5 * 2.0 ** -spec.rsqrt.output.frac * np.abs(values - values.mean(-1, keepdims=True))
             * np.abs(spec.gamma.to_float(gamma)) + 8 * lsb)
    assert (np.abs(spec.output.to_float(fixed.layernorm(x, gamma, beta, u)) - exact) <= bound).all()
    rounded = fixed.layernorm(x, gamma, beta, u, "exact")
    assert np.abs(spec.output.to_float(rounded) - exact).max() <= _bound(spec.rounding) * lsb + 1e-9


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_moe_operator_against_float(name):
    """With exact nonlinearities and features far from their range limits, the MoE of feature codes is
    within 2e-3 of the float MoE of the same (decoded) inputs and weights (measured: 2.3e-4 tiny, 1.2e-4 edge)."""
    cfg = small(name)
    u = fixed.units(cfg, {f: "exact" for f in fixed.FUNCTIONS})
    specs = fixed.matmul_specs(cfg)
    params = init_params(cfg, seed=11, std=0.3)
    codes = fixed.quantize_params(params, cfg)
    decoded = {k: fixed.param_format(k, cfg).to_float(v) for k, v in codes.items()}
    act = cfg.format("activation")
    y = act.from_float(np.random.default_rng(12).normal(0, 1, (20, cfg.dim)))
    m = "blocks.1.moe."
    got = fixed.moe(y, codes[m + "gate.seg"], codes[m + "fc1.w"], codes[m + "fc1.b"], codes[m + "fc2.w"],
                    codes[m + "fc2.b"], cfg, u, specs)
    want = reference.moe(act.to_float(y), decoded[m + "gate.seg"], decoded[m + "fc1.w"], decoded[m + "fc1.b"],
                         decoded[m + "fc2.w"], decoded[m + "fc2.b"], cfg.top_k)
    assert np.abs(act.to_float(got) - want).max() <= 2e-3


@pytest.mark.parametrize("name, bound", [("tiny", 0.02), ("edge_moe", 0.05)])
def test_network_fixed_against_float(name, bound):
    """End to end on random weights (std 0.1): the fixed-point network with exact nonlinearities and with
    the hardware units stays within ``bound`` of the float network (measured: tiny 5e-3, edge 1e-2)."""
    cfg = small(name)
    params = init_params(cfg, seed=13, std=0.1)
    images = np.random.default_rng(14).random((2, 3, 8, 8))
    want = reference.forward(params, images, "seg", cfg)
    variants = fixed.VARIANTS(cfg)
    assert {"fixed-exact", "fixed-hw", "fixed-softmax", "fixed-gate", "fixed-layernorm", "fixed-gelu-table",
            "fixed-gelu-poly", "fixed-gelu-pwl"} <= set(variants)
    for variant in ("fixed-exact", "fixed-hw"):
        got = fixed.forward(params, images, "seg", cfg, variants[variant])
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= bound, variant
        assert np.array_equal(got, fixed.forward(params, images, "seg", cfg, variants[variant]))  # deterministic
    pixels = fixed.quantize(images, cfg.format("pixel"))
    codes = fixed.forward_codes(fixed.quantize_params(params, cfg), pixels, "depth", cfg)
    assert codes.dtype == np.int64 and codes.shape == (2, 1, 8, 8)


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_embedding_and_residual_add(name):
    """Patch embedding + cls + pos of pixel codes within the patch matmul's bound (48 products) plus the
    embedding's conversion to features; residual adds are exact or wrap/saturate."""
    cfg = small(name)
    specs = fixed.matmul_specs(cfg)
    params = init_params(cfg, seed=15, std=0.1)
    codes = fixed.quantize_params(params, cfg)
    decoded = {k: fixed.param_format(k, cfg).to_float(v) for k, v in codes.items()}
    pixels = fixed.quantize(np.random.default_rng(16).random((2, 3, 8, 8)), cfg.format("pixel"))
    got = cfg.format("activation").to_float(fixed.embed(codes, pixels, cfg, specs))
    want = reference.embed(decoded, cfg.format("pixel").to_float(pixels), cfg)
    spec, r = specs["patch_embed"], _bound(Rounding(cfg.rounding))
    bound = ((cfg.patch_inputs + 1) * r * 2.0 ** -spec.acc.frac * (spec.product_shift > 0)
             + 2 * r * 2.0 ** -spec.out.frac)
    assert np.abs(got - want).max() <= bound
    act = cfg.format("activation")
    top = np.array([act.max_code])
    assert fixed.add(np.array([5]), np.array([-7]), cfg)[0] == -2
    assert fixed.add(top, np.array([1]), cfg)[0] == (act.min_code if cfg.overflow == "wrap" else act.max_code)


def test_approx_names_are_checked(tiny):
    with pytest.raises(ConfigError, match="approx.gelu: 'cubic'; allowed: exact, table, poly, pwl"):
        fixed.units(tiny, {"gelu": "cubic"})
    with pytest.raises(ConfigError, match="approx: 'relu'"):
        fixed.units(tiny, {"relu": "exact"})


# ------------------------------------------------------- attention orders

@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
@pytest.mark.parametrize("n, p", [(1, 4), (5, 1), (7, 3), (8, 4), (9, 4), (11, 5), (12, 2)])
def test_attention_orders_are_bit_identical(name, n, p):
    cfg = small(name)
    specs = fixed.matmul_specs(cfg)
    act, prob = cfg.format("activation"), specs["av"].a
    rng = np.random.default_rng(n * 31 + p)
    hd = 4 if name == "edge_moe" else cfg.head_dim  # Edge-MoE's 64-bit products run on Python integers
    q, k, v = (rng.integers(act.min_code, act.max_code + 1, (n, hd)) for _ in range(3))
    vectorised = fixed.accumulate(specs["qk"], q, k.T)
    direct, reordered = (attn.qk(specs["qk"], q, k, p, order) for order in attn.ORDERS)
    assert np.array_equal(direct.acc, vectorised) and np.array_equal(reordered.acc, vectorised)
    probabilities = rng.integers(0, prob.max_code + 1, (n, n))
    vectorised = fixed.accumulate(specs["av"], probabilities, v)
    direct_av, reordered_av = (attn.av(specs["av"], probabilities, v, p, order) for order in attn.ORDERS)
    assert np.array_equal(direct_av.acc, vectorised) and np.array_equal(reordered_av.acc, vectorised)
    assert np.array_equal(attn.output(specs["av"], reordered_av.acc), fixed.matmul(specs["av"], probabilities, v))
    for schedule in (direct, direct_av):
        assert schedule.rows_loaded == n * n + n and schedule.steps == n * -(-n // p)
        assert schedule.max_rows_per_step == min(p, n) + 1 and schedule.query_rows_loaded == n
    for schedule in (reordered, reordered_av):
        assert schedule.max_rows_per_step <= 2 and schedule.query_rows_loaded == n
        limit = n + p - 1
        assert schedule.steps == limit // p * n + limit % p  # Edge-MoE's loop count (sim/perf/moevit.py)
        if n % p == 0:
            assert schedule.rows_loaded == n * n // p + n + p - 1
            assert schedule.steps == n * n // p + p - 1


def test_attention_table_for_edge_moe():
    counts = attn.table(128, 4)
    assert counts["direct"] == {"rows_loaded": 128 * 128 + 128, "steps": 4096, "peak_rows_per_step": 5,
                                "on_chip_rows": 5}
    assert counts["reordered"] == {"rows_loaded": 4096 + 128 + 3, "steps": 4099, "peak_rows_per_step": 2,
                                   "on_chip_rows": 5}
    assert attn.table(129, 4)["reordered"]["steps"] == 33 * 129
