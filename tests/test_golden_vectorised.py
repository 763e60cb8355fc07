"""The softmax, gate, LayerNorm and GELU goldens and the MoE-ViT fixed-point model, vectorised over rows,
against the row-by-row models they replaced -- bit for bit.

The ``_ref_*`` functions below are the row-by-row goldens as they were before the vectorisation
(commit 703993f: ``sim/golden/softmax.py``, ``layernorm.py``, ``gelu.py`` and
``sim/golden/moevit/fixed.py``), kept here, and only here, as an independent reference: Python
ints for the softmax merge, one row at a time, the GELU segment found by a loop over the ends,
matmul products summed one ``k`` at a time. They share only the element-wise exp, reciprocal and
rsqrt goldens and the rules of ``hw/arith/fixed.py`` (tested on their own) with the code under test.
"""

import numpy as np
import pytest
import yaml
from conftest import ROOT

from gen.config import load_config, parse_config_data
from gen.config.moevit import MoevitConfig, load_moevit
from hw.arith.fixed import MAX_INTERMEDIATE_BITS, Overflow, Rounding, fit, requantize, shift_round
from sim.golden import gelu as gelu_golden
from sim.golden import layernorm as layernorm_golden
from sim.golden import softmax as softmax_golden
from sim.golden.exp import exp
from sim.golden.intmath import multiply
from sim.golden.moevit import fixed
from sim.golden.moevit.params import init_params, load_params
from sim.golden.reciprocal import reciprocal
from sim.golden.rsqrt import rsqrt
from sim.moevit.data import HELD_OUT_SEED, make_dataset

CONFIG_DIRS = (ROOT / "configs" / "nonlinear", ROOT / "tests" / "configs")
MOEVIT = ROOT / "configs" / "moevit"
ROUNDINGS = [r.value for r in Rounding]
OVERFLOWS = [o.value for o in Overflow]


# ------------------------------------------------------------ the row-by-row reference (commit 703993f)

def _ref_exp0(spec, args):
    args = np.asarray(args, dtype=np.int64)
    return np.where(args == 0, np.int64(spec.one), exp(spec.exp, args))


def _ref_softmax_statistics(spec, x):
    x = np.asarray(x, dtype=np.int64)
    lanes = spec.lanes
    starts = np.arange(0, x.size, lanes)
    beat_max = np.maximum.reduceat(x, starts)
    running = np.maximum.accumulate(beat_max)
    beat_of = np.arange(x.size) // lanes
    beat_sum = np.add.reduceat(_ref_exp0(spec, x - beat_max[beat_of]), starts)
    gap = running[:-1] - beat_max[1:]
    scale = _ref_exp0(spec, -np.abs(gap))
    frac = spec.exp_format.frac
    s = int(beat_sum[0])
    for k in range(1, len(starts)):
        t, r = int(beat_sum[k]), int(scale[k - 1])
        if gap[k - 1] < 0:
            s = int(shift_round(s * r, frac, spec.rounding)) + t
        else:
            s = s + int(shift_round(t * r, frac, spec.rounding))
    return int(running[-1]), s


def _ref_softmax_row(spec, x):
    x = np.asarray(x, dtype=np.int64)
    maximum, total = _ref_softmax_statistics(spec, x)
    inv = int(reciprocal(spec.reciprocal, np.array([total], dtype=np.int64))[0])
    product = _ref_exp0(spec, x - maximum) * np.int64(inv)
    return np.asarray(requantize(product, spec.exp_format.frac + spec.reciprocal.output.frac, spec.output,
                                 spec.rounding, spec.overflow), dtype=np.int64)


def _ref_top_k_pairs(scores, k):
    scores = np.asarray(scores, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")[:k]
    return np.stack([order, scores[order]], axis=1).astype(np.int64)


def _ref_gate_row(spec, top_k, x):
    return _ref_top_k_pairs(_ref_softmax_row(spec, x), top_k)


def _ref_layernorm_statistics(spec, x):
    x = np.asarray(x, dtype=np.int64)
    reference = int(x[0])
    d = [int(v) - reference for v in x]  # Python integers: the statistics may pass 64 bits (32-bit inputs)
    total, squares = sum(d), sum(v * v for v in d)
    inv_n = int(reciprocal(spec.reciprocal, np.array([x.size], dtype=np.int64))[0])
    f, fi, fm = spec.input.frac, spec.inv_n_format.frac, spec.stat_frac
    sat = Overflow.SATURATE
    offset = int(requantize(total * inv_n, f + fi, spec.offset_format, spec.rounding, sat))
    mean = int(fit((reference << (fm - f)) + offset, spec.mean_format, sat))
    ex2 = int(requantize(squares * inv_n, 2 * f + fi, spec.var_format, spec.rounding, sat))
    squared_mean = int(requantize(offset * offset, 2 * fm, spec.var_format, spec.rounding, sat))
    var_eps = max(0, ex2 - squared_mean) + spec.eps
    rstd = int(rsqrt(spec.rsqrt, np.array([var_eps], dtype=np.int64))[0])
    return mean, rstd


def _ref_layernorm_row(spec, x, gamma, beta):
    x = np.asarray(x, dtype=np.int64)
    n = x.size
    mean, rstd = _ref_layernorm_statistics(spec, x)
    centered = (x << (spec.stat_frac - spec.input.frac)) - mean
    y = requantize(centered * np.int64(rstd), spec.stat_frac + spec.rsqrt.output.frac, spec.norm, spec.rounding,
                   Overflow.SATURATE)
    g = np.asarray(gamma, dtype=np.int64)[:n]
    b = np.asarray(beta, dtype=np.int64)[:n]
    product_shift = spec.scaled_frac - spec.norm.frac - spec.gamma.frac
    beta_shift = spec.scaled_frac - spec.beta.frac
    scaled = ((y * g) << product_shift) + (b << beta_shift)
    return np.asarray(requantize(scaled, spec.scaled_frac, spec.output, spec.rounding, spec.overflow), dtype=np.int64)


def _ref_pwl(spec, x):
    fmt = spec.input
    ends = spec.breakpoints
    slopes, intercepts = (np.array(c, dtype=np.int64) for c in zip(*spec.pwl_coefficients))
    segment = np.zeros(x.shape, dtype=np.int64)
    for code in ends[1:-1]:
        segment += x >= code
    line = slopes[segment] * x + (intercepts[segment] << fmt.frac)
    value = np.where(x < ends[0], 0, np.where(x >= ends[-1], x << spec.coeff_frac, line))
    return requantize(value, fmt.frac + spec.coeff_frac, spec.output, spec.rounding, spec.overflow)


def _ref_product_sum(a, b, shift, rounding, widths):
    k = a.shape[-1]
    if shift <= 0 and widths + max(1, k - 1).bit_length() + 1 - shift <= MAX_INTERMEDIATE_BITS:
        return np.matmul(a, b) << -shift
    if widths <= MAX_INTERMEDIATE_BITS and shift > 0:
        total = None
        for i in range(k):
            term = shift_round(a[..., :, i, None] * b[..., i, None, :], shift, rounding)
            total = term if total is None else total + term
        return total
    a_obj, b_obj = a.astype(object), b.astype(object)
    total = None
    for i in range(k):
        term = shift_round(a_obj[..., :, i, None] * b_obj[..., i, None, :], shift, rounding)
        total = term if total is None else total + term
    return total


def _ref_accumulate(spec, a, b, bias=None):
    a = fixed._checked(a, spec.a, f"{spec.name}: a")
    b = fixed._checked(b, spec.b, f"{spec.name}: b")
    total = _ref_product_sum(a, b, spec.product_shift, spec.rounding, spec.a.width + spec.b.width)
    if bias is not None:
        bias = fixed._checked(bias, spec.bias, f"{spec.name}: bias")
        total = total + shift_round(bias, spec.bias.frac - spec.acc.frac, spec.rounding)
    return fit(total, spec.acc, spec.overflow)


def _ref_scale_scores(raw, cfg, code=None):
    acc, act = cfg.format("accumulator"), cfg.format("activation")
    default, fmt = fixed.score_scale(cfg)
    code = default if code is None else code
    raw = np.asarray(raw)
    if raw.dtype != object and acc.width + fmt.width > MAX_INTERMEDIATE_BITS:
        raw = raw.astype(object)
    return np.asarray(requantize(raw * code, acc.frac + fmt.frac, act, Rounding(cfg.rounding), Overflow(cfg.overflow)),
                      dtype=np.int64)


def _ref_fixed_softmax(codes, u, method=None):
    spec, method = u.softmax, method or u.methods["softmax"]
    x = fixed._checked(codes, spec.input, "softmax")
    rows = x.reshape(-1, x.shape[-1])
    if method == fixed.EXACT:
        return fixed._exact_softmax(spec, rows).reshape(x.shape)
    return np.stack([_ref_softmax_row(spec, row) for row in rows]).reshape(x.shape)


def _ref_fixed_gate(codes, u, top_k, method=None):
    spec, method = u.gate, method or u.methods["gate"]
    x = fixed._checked(codes, spec.input, "gate")
    rows = x.reshape(-1, x.shape[-1])
    if method == fixed.EXACT:
        pairs = [_ref_top_k_pairs(row, top_k) for row in fixed._exact_softmax(spec, rows)]
    else:
        pairs = [_ref_gate_row(spec, top_k, row) for row in rows]
    pairs = np.stack(pairs)
    shape = x.shape[:-1] + (top_k,)
    return pairs[..., 0].reshape(shape), pairs[..., 1].reshape(shape)


def _ref_fixed_layernorm(codes, gamma, beta, u, method=None):
    spec, method = u.layernorm, method or u.methods["layernorm"]
    x = fixed._checked(codes, spec.input, "layernorm")
    rows = x.reshape(-1, x.shape[-1])
    if method == fixed.EXACT:
        values = spec.input.to_float(rows)
        mean = values.mean(axis=-1, keepdims=True)
        var = ((values - mean) ** 2).mean(axis=-1, keepdims=True)
        exact = (values - mean) / np.sqrt(var + u.eps) * spec.gamma.to_float(gamma) + spec.beta.to_float(beta)
        return fixed._exact_out(exact, spec).reshape(x.shape)
    return np.stack([_ref_layernorm_row(spec, row, gamma, beta) for row in rows]).reshape(x.shape)


def use_row_by_row_model(monkeypatch) -> None:
    """Make ``sim.golden.moevit.fixed`` the row-by-row model of commit 703993f (inside one test)."""
    monkeypatch.setattr(fixed, "softmax", _ref_fixed_softmax)
    monkeypatch.setattr(fixed, "gate", _ref_fixed_gate)
    monkeypatch.setattr(fixed, "layernorm", _ref_fixed_layernorm)
    monkeypatch.setattr(fixed, "accumulate", _ref_accumulate)
    monkeypatch.setattr(fixed, "scale_scores", _ref_scale_scores)
    monkeypatch.setitem(gelu_golden._METHODS, "pwl", _ref_pwl)


# ------------------------------------------------------------------ specs

def _shipped(kind: str) -> list:
    """Every config of ``kind`` in configs/nonlinear/ and tests/configs/."""
    paths = sorted(p for d in CONFIG_DIRS for p in d.glob("*.yaml"))
    return [load_config(p) for p in paths if (yaml.safe_load(p.read_text()) or {}).get("kind") == kind]


def _moevit(unit: str) -> list:
    """The ``unit`` config of configs/moevit/tiny.yaml and edge_moe.yaml."""
    return [load_moevit(MOEVIT / f"{name}.yaml").units[unit] for name in ("tiny", "edge_moe")]


#: The synthetic configs' defaults, by kind (fields given to :func:`_config` replace them).
DEFAULTS = {
    "softmax": {"name": "sm", "input": {"width": 9, "frac": 4, "signed": True},
                "output": {"width": 10, "frac": 9, "signed": False}, "lanes": 3, "n_max": 11},
    "layernorm": {"name": "ln", "input": {"width": 10, "frac": 5, "signed": True},
                  "output": {"width": 12, "frac": 8, "signed": True}, "lanes": 3, "n_max": 17},
}


def _config(kind: str, **fields):
    return parse_config_data({"kind": kind, **DEFAULTS[kind], **fields}, "test")


def _softmax_cfg(**fields):
    return _config("softmax", **fields)


def _softmax_configs() -> list:
    configs = _shipped("softmax") + _moevit("softmax") + _moevit("gate")
    # Every rounding and overflow; an output that cannot hold 1.0 (u0.8), so overflow matters.
    for index, (rounding, overflow) in enumerate((r, o) for r in ROUNDINGS for o in OVERFLOWS):
        configs.append(_softmax_cfg(rounding=rounding, overflow=overflow, lanes=1 + index % 5,
                                    output={"width": 8, "frac": 8, "signed": False}))
    configs += [
        _softmax_cfg(lanes=4, n_max=23, exp_interpolate=False, exp_table_bits=3, newton_steps=0),
        _softmax_cfg(lanes=2, n_max=9, newton_steps=3, recip_table_bits=2, rounding="round_half_away"),
        _softmax_cfg(experts=7, top_k=3, n_max=None, lanes=3, rounding="truncate", overflow="wrap"),
        _softmax_cfg(experts=5, top_k=5, n_max=None, lanes=1),
        WIDE_SOFTMAX,
    ]
    return configs


#: Sums and merge products wider than int64: exp_frac 28 and rows of up to 300 (sum 37 bits, s * E 66 bits).
WIDE_SOFTMAX = _softmax_cfg(lanes=3, n_max=300, exp_frac=28, recip_frac=12,
                            input={"width": 16, "frac": 10, "signed": True},
                            output={"width": 16, "frac": 15, "signed": False})


def _layernorm_cfg(**fields):
    return _config("layernorm", **fields)


def _layernorm_configs() -> list:
    configs = _shipped("layernorm") + _moevit("layernorm")
    # Every rounding and overflow; a narrow output (s1.4) that large gamma and beta overflow.
    for index, (rounding, overflow) in enumerate((r, o) for r in ROUNDINGS for o in OVERFLOWS):
        configs.append(_layernorm_cfg(rounding=rounding, overflow=overflow, lanes=1 + index % 4,
                                      output={"width": 6, "frac": 4, "signed": True}))
    configs += [
        _layernorm_cfg(input={"width": 9, "frac": 3, "signed": False}, lanes=5, n_max=31, newton_steps=0,
                       table_bits=3, eps=0.5),
        _layernorm_cfg(lanes=2, n_max=64, newton_steps=3, rounding="round_half_away", overflow="wrap"),
    ]
    return configs


def _id(cfg) -> str:
    return f"{cfg.name}-{cfg.lanes}l-{cfg.n_max}-{cfg.rounding}-{cfg.overflow}"


SOFTMAX_CONFIGS = _softmax_configs()
LAYERNORM_CONFIGS = _layernorm_configs()


# ------------------------------------------------------------------ inputs

def _lengths(cfg) -> list[int]:
    lanes, n = cfg.lanes, cfg.n_max
    wanted = {1, 2, lanes - 1, lanes, lanes + 1, 2 * lanes + 1, n // 2, n - 1, n}
    return sorted(length for length in wanted if 1 <= length <= n)


def _batches(cfg, rng, edge_rows) -> dict[int, np.ndarray]:
    """Rows by length: random over the whole range and near 0, the extremes, all equal, alternating
    extremes, few distinct values (ties), ramps (a new max every beat), and the kind's edge rows."""
    fmt = cfg.input.format
    lo, hi = fmt.min_code, fmt.max_code
    batches = {}
    for n in _lengths(cfg):
        rows = [rng.integers(lo, hi + 1, n) for _ in range(3)]
        rows += [fmt.from_float(rng.normal(0.0, sigma, n)) for sigma in (0.5, 3.0)]
        rows += [np.full(n, lo), np.full(n, hi), np.full(n, rng.integers(lo, hi + 1)),
                 np.where(np.arange(n) % 2 == 0, lo, hi), np.where(np.arange(n) % 2 == 0, hi, lo),
                 rng.choice(rng.integers(lo, hi + 1, 3), n), rng.choice([hi, hi, hi - 1], n),
                 np.linspace(lo, hi, n).astype(np.int64), np.linspace(hi, lo, n).astype(np.int64)]
        batches[n] = np.stack([np.asarray(row, dtype=np.int64) for row in rows])
    for _, row in edge_rows:
        row = np.asarray(row, dtype=np.int64)
        batches[row.size] = np.concatenate([batches.get(row.size, np.zeros((0, row.size), np.int64)), row[None]])
    return batches


# ------------------------------------------------------------------ softmax and gate

@pytest.mark.parametrize("cfg", SOFTMAX_CONFIGS, ids=_id)
def test_softmax_and_gate_equal_the_row_by_row_model(cfg):
    spec = softmax_golden.spec_for(cfg)
    rng = np.random.default_rng(hash(_id(cfg)) % 2**32)
    for n, batch in _batches(cfg, rng, softmax_golden.edge_rows(cfg)).items():
        maximum, total = softmax_golden.statistics(spec, batch)
        assert [(int(m), int(s)) for m, s in zip(maximum, total)] == [_ref_softmax_statistics(spec, r) for r in batch]
        got = softmax_golden.softmax(spec, batch)
        want = np.stack([_ref_softmax_row(spec, row) for row in batch])
        assert got.dtype == np.int64 and np.array_equal(got, want), n
        # Any leading shape: a 3-D array of rows gives the same rows.
        if len(batch) % 2 == 0:
            assert np.array_equal(softmax_golden.softmax(spec, batch.reshape(2, -1, n)), got.reshape(2, -1, n))
        assert np.array_equal(softmax_golden.softmax(spec, batch[0]), want[0])  # one row (1-D)
        for k in sorted({1, 2, cfg.top_k or 1, n}):
            pairs = softmax_golden.top_k_pairs(got, k)
            assert np.array_equal(pairs, np.stack([_ref_top_k_pairs(row, k) for row in want]))
        if cfg.top_k is not None:
            pairs = softmax_golden.gate(spec, cfg.top_k, batch)
            assert np.array_equal(pairs, np.stack([_ref_gate_row(spec, cfg.top_k, row) for row in batch]))


@pytest.mark.parametrize("cfg", [c for c in SOFTMAX_CONFIGS if c.name in ("softmax_l3_n13", "gate_e6_k2_l2")],
                         ids=_id)
def test_softmax_hooks_take_rows_of_mixed_lengths_in_order(cfg):
    """The testbench's rows come in any order of lengths; ``golden_rows`` answers each in place."""
    spec = softmax_golden.spec_for(cfg)
    rng = np.random.default_rng(7)
    rows = [rng.integers(cfg.input.format.min_code, cfg.input.format.max_code + 1, int(rng.integers(1, cfg.n_max + 1)))
            for _ in range(40)]
    want = [_ref_softmax_row(spec, row) if cfg.top_k is None else _ref_gate_row(spec, cfg.top_k, row) for row in rows]
    got = softmax_golden.golden_rows(cfg, rows)
    assert len(got) == len(rows) and all(np.array_equal(g, w) for g, w in zip(got, want))
    with pytest.raises(ValueError, match=f"a row has 1..{cfg.n_max} elements, not {cfg.n_max + 1}"):
        softmax_golden.golden_rows(cfg, rows + [np.zeros(cfg.n_max + 1, dtype=np.int64)])


def test_top_k_ties_go_to_the_lower_index_on_every_row():
    """Scores of three values (ties everywhere), many rows at once, every k."""
    rng = np.random.default_rng(8)
    scores = rng.integers(0, 3, (50, 9))
    scores[0] = 1
    for k in range(1, 11):
        got = softmax_golden.top_k_pairs(scores, k)
        assert got.shape == (50, min(k, 9), 2)
        assert np.array_equal(got, np.stack([_ref_top_k_pairs(row, k) for row in scores]))
        assert np.array_equal(softmax_golden.top_k_pairs(scores.reshape(5, 10, 9), k), got.reshape(5, 10, -1, 2))
    assert softmax_golden.top_k_pairs(scores[0], 3).tolist() == [[0, 1], [1, 1], [2, 1]]


def test_wide_merge_products_take_python_integers(monkeypatch):
    """``WIDE_SOFTMAX``'s running sum times an exp needs 66 bits: the merge multiplies exactly (object
    arrays) and still equals the row-by-row model's Python ints, on all-equal rows of 300 (largest sum)."""
    spec = softmax_golden.spec_for(WIDE_SOFTMAX)
    wide = []

    def spy(a, b):
        product = multiply(a, b)
        wide.append(product.dtype == object)
        return product

    monkeypatch.setattr(softmax_golden, "multiply", spy)
    rng = np.random.default_rng(9)
    batch = np.stack([np.full(300, 5), np.full(300, -3000), rng.integers(-20, 20, 300), np.arange(300) - 150])
    got = softmax_golden.softmax(spec, batch)
    assert any(wide)
    assert np.array_equal(got, np.stack([_ref_softmax_row(spec, row) for row in batch]))
    assert [int(s) for s in softmax_golden.statistics(spec, batch)[1]][:2] == \
        [_ref_softmax_statistics(spec, row)[1] for row in batch[:2]]


def test_multiply_is_exact_at_any_width():
    a = np.array([3, -(1 << 40), 1 << 30], dtype=np.int64)
    b = np.array([1 << 30, 1 << 30, -(1 << 31)], dtype=np.int64)
    product = multiply(a, b)
    assert product.dtype == object and product.tolist() == [int(x) * int(y) for x, y in zip(a, b)]
    small = multiply(a[:1], b[:1])
    assert small.dtype == np.int64 and small.tolist() == [3 << 30]
    assert multiply(np.zeros(0, np.int64), np.zeros(0, np.int64)).dtype == np.int64


# ------------------------------------------------------------------ LayerNorm

def _parameter_sets(cfg, rng):
    """Random gamma/beta around 1 and 0, and the extremes (the largest gamma, the smallest beta)."""
    n = cfg.n_max
    gamma, beta = cfg.gamma.format, cfg.beta.format
    yield layernorm_golden.context(cfg, rng)
    yield {"gamma": [gamma.max_code] * n, "beta": [beta.min_code] * n}
    yield {"gamma": list(rng.integers(gamma.min_code, gamma.max_code + 1, n)),
           "beta": list(rng.integers(beta.min_code, beta.max_code + 1, n))}


@pytest.mark.parametrize("cfg", LAYERNORM_CONFIGS, ids=_id)
def test_layernorm_equals_the_row_by_row_model(cfg):
    spec = layernorm_golden.spec_for(cfg)
    rng = np.random.default_rng(hash(_id(cfg)) % 2**32)
    edge = layernorm_golden.edge_rows(cfg) + [("random", layernorm_golden.random_row(cfg, rng, cfg.n_max))]
    batches = _batches(cfg, rng, edge)
    for index, context in enumerate(_parameter_sets(cfg, rng)):
        gamma, beta = context["gamma"], context["beta"]
        # Every row with random parameters; the rows of the longest and shortest lengths with the others.
        for n, batch in batches.items() if index == 0 else [(n, batches[n]) for n in (min(batches), cfg.n_max)]:
            mean, rstd = layernorm_golden.statistics(spec, batch)
            assert [(int(m), int(r)) for m, r in zip(mean, rstd)] == \
                [_ref_layernorm_statistics(spec, row) for row in batch]
            got = layernorm_golden.layernorm(spec, batch, gamma, beta)
            want = np.stack([_ref_layernorm_row(spec, row, gamma, beta) for row in batch])
            assert got.dtype == np.int64 and np.array_equal(got, want), n
            if len(batch) % 2 == 0:
                assert np.array_equal(layernorm_golden.layernorm(spec, batch.reshape(2, -1, n), gamma, beta),
                                      got.reshape(2, -1, n))
        rows = [row for batch in batches.values() for row in batch][::3]
        got = layernorm_golden.golden_rows(cfg, rows, gamma, beta)  # mixed lengths, in order
        assert all(np.array_equal(g, _ref_layernorm_row(spec, row, gamma, beta)) for g, row in zip(got, rows))


def test_layernorm_refuses_rows_of_a_bad_length():
    cfg = _layernorm_cfg()
    spec = layernorm_golden.spec_for(cfg)
    for bad in (np.zeros((2, 0), np.int64), np.zeros((1, cfg.n_max + 1), np.int64)):
        with pytest.raises(ValueError, match=f"a row has 1..{cfg.n_max} elements, not {bad.shape[-1]}"):
            layernorm_golden.layernorm(spec, bad, [0] * 20, [0] * 20)


# ------------------------------------------------------------------ GELU pwl

def _gelu_pwl_configs() -> list:
    configs = [c for c in _shipped("gelu") if c.method == "pwl"]
    configs += [load_moevit(MOEVIT / f"{name}.yaml").gelu_unit("pwl") for name in ("tiny", "edge_moe")]
    return configs


@pytest.mark.parametrize("cfg", _gelu_pwl_configs(), ids=lambda cfg: cfg.name)
def test_gelu_pwl_segments_equal_the_loop_over_the_ends(cfg):
    """Every input code when there are at most 2**20, else random codes, the extremes and every end +-1."""
    spec = gelu_golden.spec_for(cfg)
    fmt = spec.input
    if fmt.width <= 20:
        codes = fmt.codes()
    else:
        ends = np.array(spec.breakpoints, dtype=np.int64)
        codes = np.concatenate([np.random.default_rng(10).integers(fmt.min_code, fmt.max_code + 1, 200_000),
                                ends - 1, ends, ends + 1, [fmt.min_code, fmt.max_code, 0]])
        codes = np.clip(codes, fmt.min_code, fmt.max_code)
    assert np.array_equal(gelu_golden.gelu(spec, codes), _ref_pwl(spec, codes))


# ------------------------------------------------------------------ the MoE-ViT fixed-point model

@pytest.mark.parametrize("a_bits, b_bits, k, shift, rounding, drawn", [
    (24, 16, 256, -2, "round_half_even", 24),  # tiny's fc2: float path
    (24, 24, 16, 0, "round_half_even", 24),    # tiny's qk
    (30, 24, 40, -1, "truncate", 30),          # beyond 2**53: int64 matmul
    (32, 16, 192, 14, "truncate", 32),         # Edge-MoE's fc: rounded products, int64
    (16, 16, 50, 3, "round_half_away", 16),
    (32, 32, 64, 22, "round_half_even", 32),   # Edge-MoE's qk at full scale: Python ints
    (32, 32, 64, 22, "truncate", 24),          # ... with features of 24 bits: int64
    (32, 32, 5, -1, "truncate", 32),           # exact products wider than int64
])
def test_product_sum_equals_the_loop_over_k(monkeypatch, a_bits, b_bits, k, shift, rounding, drawn):
    """Codes of ``drawn`` bits in formats of ``a_bits`` and ``b_bits`` (the reference picks its arithmetic
    from the formats, the model from the codes' magnitudes), the extremes included."""
    rng = np.random.default_rng(a_bits * 1000 + k + drawn)
    a = rng.integers(-(1 << (drawn - 1)), 1 << (drawn - 1), (2, 3, k))
    b = rng.integers(-(1 << (min(drawn, b_bits) - 1)), 1 << (min(drawn, b_bits) - 1), (2, k, 5))
    a[0, 0] = a.min()
    b[0, :, 0] = b.min()
    want = _ref_product_sum(a, b, shift, Rounding(rounding), a_bits + b_bits)
    got = fixed.product_sum(a, b, shift, Rounding(rounding))
    assert np.array_equal(np.asarray(got, dtype=object), np.asarray(want, dtype=object))
    monkeypatch.setattr(fixed, "CHUNK_ELEMENTS", 7)  # several chunks of k, and chunks of one
    again = fixed.product_sum(a, b, shift, Rounding(rounding))
    assert np.array_equal(np.asarray(again, dtype=object), np.asarray(want, dtype=object))
    assert np.array_equal(fixed.product_sum(a[0, :1], b[0], shift, Rounding(rounding)),
                          np.asarray(want, dtype=object)[0, :1])  # 2-D operands


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_scale_scores_equal_the_python_integer_product(name):
    """The ``qk`` accumulator times the scale: int64 when the scores allow it, exact always (the extremes
    of the 56-bit and 32-bit accumulators need Python ints)."""
    cfg = load_moevit(MOEVIT / f"{name}.yaml")
    acc = cfg.format("accumulator")
    rng = np.random.default_rng(11)
    for raw in (rng.integers(-(1 << 40), 1 << 40, (3, 7)), np.array([[acc.min_code, acc.max_code, 0, -1, 1]])):
        assert np.array_equal(fixed.scale_scores(raw, cfg), _ref_scale_scores(raw, cfg))


def small(name: str) -> MoevitConfig:
    """A shipped MoE-ViT config shrunk to a test size (formats and units kept), as in test_moevit_model."""
    data = yaml.safe_load((MOEVIT / f"{name}.yaml").read_text())
    data.update(height=8, width=8, patch=4, dim=16, heads=2, layers=2, experts=4, top_k=2, expert_hidden=8,
                weights=None)
    return MoevitConfig.model_validate(data)


@pytest.mark.parametrize("name", ["tiny", "edge_moe"])
def test_forward_codes_equal_the_row_by_row_model_on_every_variant(monkeypatch, name):
    """Small networks of both configs, random weights, 3 images: every variant, both tasks, bit for bit."""
    cfg = small(name)
    codes = fixed.quantize_params(init_params(cfg, seed=21, std=0.3), cfg)
    pixels = fixed.quantize(np.random.default_rng(22).random((3, 3, 8, 8)), cfg.format("pixel"))
    runs = [(variant, task.name, approx) for variant, approx in fixed.VARIANTS(cfg).items() for task in cfg.tasks]
    got = {(variant, task): fixed.forward_codes(codes, pixels, task, cfg, approx) for variant, task, approx in runs}
    use_row_by_row_model(monkeypatch)
    for variant, task, approx in runs:
        assert np.array_equal(got[variant, task], fixed.forward_codes(codes, pixels, task, cfg, approx)), \
            (variant, task)


def test_forward_codes_of_the_trained_tiny_model_equal_the_row_by_row_model(monkeypatch):
    """The trained tiny model on a held-out scene with every hardware unit, both tasks (the other variants
    on 32 scenes: bench/golden_speed.py)."""
    cfg = load_moevit(MOEVIT / "tiny.yaml")
    codes = fixed.quantize_params(load_params(cfg), cfg)
    images = make_dataset(1, HELD_OUT_SEED, height=cfg.height, width=cfg.width, classes=5).images
    pixels = fixed.quantize(images, cfg.format("pixel"))
    approx = fixed.VARIANTS(cfg)["fixed-hw"]
    got = {task.name: fixed.forward_codes(codes, pixels, task.name, cfg, approx) for task in cfg.tasks}
    use_row_by_row_model(monkeypatch)
    for task in cfg.tasks:
        assert np.array_equal(got[task.name], fixed.forward_codes(codes, pixels, task.name, cfg, approx)), task.name

