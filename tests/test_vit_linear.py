"""The accelerator's unified linear engine (``LINEAR``) in Amaranth's simulator.

Each engine (a TPE of the family behind ``hw/vit/linear.py``) runs descriptors against the
client-level DRAM model of ``tests/vit_memory.py`` (seeded random latency, gaps and
back-pressure). Every operator's output is compared with the golden's matmul of the same
formats (``sim/golden/moevit/fixed.py``: bias, accumulator fit, requantisation, GELU,
residual add), and every byte outside the output tensor must be as it was. Shapes cover
``M``, ``N`` and ``K`` of 1, not a multiple of the tile, more than one tile, M in several
chunks; codes include the formats' extremes (saturation both ways). Every descriptor check
ends with its code and no request; a reset in the middle leaves the engine ready; with an
instant memory a long operator keeps the TPE busy nearly every cycle.
"""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed
from vit_memory import EngineBench, Memory, Timing

from gen.config.moevit import load_moevit, matmul_specs
from gen.lint import lint
from hw.arith import accumulator_width
from hw.tpe import BroadcastGrid, DigitSerialGrid, SystolicOS  # noqa: F401 -- engines under test
from hw.vit import descriptors
from hw.vit.descriptors import ERROR
from hw.vit.epilogue import EpilogueFormat
from hw.vit.linear import LinearEngine
from sim.golden.moevit import fixed as golden
from sim.moevit.memory import MemoryImage, tensor_codes, weight_tiles

from conftest import ROOT

MODEL = load_moevit(ROOT / "configs" / "moevit" / "tiny.yaml")
SPECS = matmul_specs(MODEL)
UNITS = golden.units(MODEL)
ACT = MODEL.format("activation")
#: Three rows of the format table: activations x weights (qkv/fc1 formats) and pixels x patch weights.
OPS = ("qkv", "fc1", "patch_embed")
FORMATS = [EpilogueFormat((op,), SPECS[op].a, SPECS[op].b, SPECS[op].acc, SPECS[op].out, SPECS[op].rounding,
                          SPECS[op].overflow, SPECS[op].bias) for op in OPS]
ADDR_WIDTH = 18
K_MAX = 40


def make_engine(arch: str, data_width: int, *, a_rows: int = 10):
    acc = accumulator_width(24, True, K_MAX)
    tpe = {"os": lambda: SystolicOS(3, 4, signed(24), acc),
           "os1": lambda: SystolicOS(2, 4, signed(24), acc, result_buffers=1),
           "cube": lambda: BroadcastGrid(2, 4, 2, signed(24), acc, tree_register=True),
           "tree": lambda: BroadcastGrid(1, 4, 4, signed(24), acc, tree_register=True),
           "m2d": lambda: BroadcastGrid(3, 2, 1, signed(24), acc, tree_register=False)}[arch]()
    return LinearEngine(engine=tpe, addr_width=ADDR_WIDTH, data_width=data_width, act=ACT, act_bytes=4, w_bytes=2,
                        a_rows=a_rows, a_k=K_MAX, k_max=K_MAX, formats=FORMATS, gelu=UNITS.gelu)


def random_case(rng: np.random.Generator, m: int, k: int, n: int, fmt: int, flags: tuple, extreme: bool = False):
    spec = SPECS[OPS[fmt]]

    def draw(f, shape):
        if extreme:
            return rng.choice([f.min_code, f.max_code], size=shape)
        return rng.integers(f.min_code, f.max_code + 1, size=shape) >> rng.integers(0, 8)

    a, w = draw(spec.a, (m, k)), draw(spec.b, (k, n))
    bias = draw(spec.bias, (n,)) if "bias" in flags else None
    res = draw(ACT, (m, n))
    y = golden.matmul(spec, a, w, bias)
    if "gelu" in flags:
        y = golden.feature_gelu(y, MODEL, UNITS)
    if "residual" in flags:
        y = golden.add(y, res, MODEL)
    return a, w, bias, res, y


def layout(engine, cases, data_width: int):
    """The cases' tensors in one image; returns (image, descriptors, output regions, expected outputs)."""
    image = MemoryImage(beat_bytes=data_width // 8, base=0x1000)
    ops = []
    for index, (m, k, n, fmt, flags, (a, w, bias, res, y)) in enumerate(cases):
        spec = SPECS[OPS[fmt]]
        ra = image.tensor(f"a{index}", m, k, spec.a, 4)
        image.put(ra, a)
        rw = image.raw(f"w{index}", weight_tiles(w, bias, cols=engine.cols, container=2, beat_bytes=data_width // 8))
        rr = image.tensor(f"r{index}", m, n, ACT, 4)
        image.put(rr, res)
        ro = image.tensor(f"o{index}", m, n, ACT, 4)
        desc = descriptors.encode("LINEAR", dict(m=m, k=k, n=n, src=ra.addr, weights=rw.addr, dst=ro.addr,
                                                 residual=rr.addr, src_stride=ra.stride, dst_stride=ro.stride,
                                                 res_stride=rr.stride), flags=flags, fmt=fmt)
        ops.append((desc, ro, y))
    return image, ops


def run(engine, data_width: int, cases, timing: Timing, seed: int):
    image, ops = layout(engine, cases, data_width)
    memory = Memory(1 << ADDR_WIDTH, data_width=data_width, reads=engine.reads, writes=engine.writes, timing=timing,
                    seed=seed)
    memory.data[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    bench = EngineBench(engine, memory)
    results = []

    async def scenario(ctx):
        for desc, _, _ in ops:
            results.append(await bench.operator(ctx, desc, budget=30_000))

    bench.simulate(scenario)
    return image, ops, memory, bench, results


def check_outputs(image, ops, memory, results, before: bytes):
    dump = memory.data.tobytes()
    written = np.zeros(len(dump), dtype=bool)
    for (desc, region, y), result in zip(ops, results):
        assert result.error == 0, descriptors.decode(desc)
        got = tensor_codes(region, dump, 0)
        np.testing.assert_array_equal(got, y, err_msg=f"{descriptors.decode(desc)}")
        for r in range(region.rows):  # the bytes of the output elements
            start = region.addr + r * region.stride
            written[start:start + region.n * region.container] = True
    untouched = np.frombuffer(dump, dtype=np.uint8)[~written]
    assert np.array_equal(untouched, np.frombuffer(before, dtype=np.uint8)[~written]), "bytes outside outputs changed"


SHAPES = [  # (M, K, N, fmt, flags)
    (5, 13, 9, 0, ("bias",)),
    (10, 40, 4, 1, ("bias", "gelu")),
    (1, 1, 1, 2, ("bias", "residual")),
    (7, 8, 11, 1, ("bias", "residual", "no_prefetch")),
    (3, 20, 6, 0, ()),
    (4, 3, 8, 1, ("bias", "gelu", "residual")),
]


@pytest.mark.parametrize("arch,data_width", [("os", 64), ("os", 256), ("cube", 128), ("m2d", 64), ("tree", 128),
                                             ("os1", 128)])
def test_linear_matches_golden(arch, data_width):
    seed = hash((arch, data_width)) & 0xFFFF
    rng = np.random.default_rng(seed)
    engine = make_engine(arch, data_width)
    cases = [(m, k, n, f, fl, random_case(rng, m, k, n, f, fl, extreme=(i == 4))) for i, (m, k, n, f, fl)
             in enumerate(SHAPES)]
    image, ops, memory, bench, results = run(engine, data_width, cases, Timing.slow(), seed)
    before = np.zeros(1 << ADDR_WIDTH, dtype=np.uint8)
    before[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    check_outputs(image, ops, memory, results, before.tobytes())
    assert bench.problems == []
    assert all(r.mem_stall > 0 for r in results[:2]), "a slow memory shows as mem_stall"


def test_weight_half_fed_once_while_results_wait():
    """Regression: results held back by a slow writer (a full output queue, the epilogue stalled) must not let the
    feeder reuse a weight half whose old tile is still waiting for its last result row: it waits for the half's
    next tile. Fast reads, very slow writes, many tiles (more result rows than the output path buffers)."""
    rng = np.random.default_rng(11)
    engine = make_engine("os", 64)
    cases = [(m, k, n, f, fl, random_case(rng, m, k, n, f, fl))
             for (m, k, n, f, fl) in [(3, 8, 40, 0, ("bias",)), (3, 5, 33, 1, ("bias", "residual"))]]
    image, ops, memory, bench, results = run(engine, 64, cases, Timing(read_latency=(1, 3), write_ready=0.05), 3)
    before = np.zeros(1 << ADDR_WIDTH, dtype=np.uint8)
    before[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    check_outputs(image, ops, memory, results, before.tobytes())
    assert bench.problems == []


def test_a_buffer_rows_and_instant_throughput():
    """M = a_rows exactly; with an instant memory the TPE takes a beat nearly every cycle of a long operator."""
    engine = make_engine("os", 256, a_rows=12)
    rng = np.random.default_rng(5)
    m, k, n = 12, 40, 16
    case = (m, k, n, 0, ("bias",), random_case(rng, m, k, n, 0, ("bias",)))
    image, ops, memory, bench, results = run(engine, 256, [case], Timing.instant(), 5)
    before = np.zeros(1 << ADDR_WIDTH, dtype=np.uint8)
    before[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    check_outputs(image, ops, memory, results, before.tobytes())
    beats = -(-m // 3) * -(-n // 4) * k  # jobs x K
    assert results[0].cycles < beats * 1.25 + 80, (results[0].cycles, beats)


BAD = [  # (change to a good descriptor, expected error)
    ({"m": 0}, "BAD_SIZE"),
    ({"k": 0}, "BAD_SIZE"),
    ({"n": 0}, "BAD_SIZE"),
    ({"k": K_MAX + 1}, "BAD_SIZE"),
    ({"m": 11}, "BAD_SIZE"),  # beyond a_rows = 10
    ({"src": 0x1004}, "BAD_ADDRESS"),
    ({"dst_stride": 36}, "BAD_ADDRESS"),
    ({"weights": (1 << ADDR_WIDTH) - 64}, "BAD_ADDRESS"),
    ({"fmt": 3}, "BAD_FORMAT"),
    ({"flags_byte": 0x80}, "BAD_FORMAT"),
]


def test_bad_descriptors_touch_nothing():
    engine = make_engine("os", 64)
    rng = np.random.default_rng(9)
    case = (5, 13, 9, 0, ("bias", "residual"), random_case(rng, 5, 13, 9, 0, ("bias", "residual")))
    image, ops = layout(engine, [case], 64)
    good = int.from_bytes(ops[0][0], "little")
    decoded = descriptors.decode(ops[0][0])
    memory = Memory(1 << ADDR_WIDTH, data_width=64, reads=engine.reads, writes=engine.writes, timing=Timing.slow(),
                    seed=3)
    memory.data[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    bench = EngineBench(engine, memory)
    outcomes = []

    async def scenario(ctx):
        for change, _ in BAD:
            fields = {k: v for k, v in decoded.items() if k not in ("opcode", "flags", "fmt")}
            fields.update({k: v for k, v in change.items() if k not in ("fmt", "flags_byte")})
            desc = bytearray(descriptors.encode("LINEAR", fields, flags=tuple(decoded["flags"]),
                                                fmt=change.get("fmt", decoded["fmt"])))
            desc[1] |= change.get("flags_byte", 0)
            outcomes.append(await bench.operator(ctx, bytes(desc), budget=200))
        # Reset in the middle of a good operator, then the operator again to its end.
        interrupted = await bench.operator(ctx, ops[0][0], reset_after=60)
        outcomes.append(interrupted)
        outcomes.append(await bench.operator(ctx, ops[0][0], budget=30_000))

    bench.simulate(scenario)
    del good
    for (change, name), outcome in zip(BAD, outcomes):
        assert outcome.error == ERROR[name], (change, outcome.error)
        assert outcome.requests == [], change
        assert outcome.cycles <= 8, (change, outcome.cycles)
    assert outcomes[-2].error is None
    assert outcomes[-1].error == 0
    np.testing.assert_array_equal(tensor_codes(ops[0][1], memory.data.tobytes(), 0), ops[0][2])
    assert bench.problems == []


def test_linear_engine_lints(tmp_path):
    engine = make_engine("cube", 128)
    path = tmp_path / "linear.v"
    path.write_text(verilog.convert(engine, name="linear", emit_src=False))
    assert lint(path, "linear") == []


# --------------------------------------------------------------------------- unified attention

QK, AV = SPECS["qk"], SPECS["av"]
SCALE = MODEL.score_scale()
ATTENTION_FORMATS = FORMATS + [
    EpilogueFormat(("qk",), QK.a, QK.b, QK.acc, QK.out, QK.rounding, QK.overflow, None, (SCALE[0], SCALE[1].frac)),
    EpilogueFormat(("av",), AV.a, AV.b, AV.acc, AV.out, AV.rounding, AV.overflow)]


@pytest.mark.parametrize("arch,data_width", [("os", 64), ("cube", 256)])
def test_unified_attention_matmuls(arch, data_width):
    """Q K^T with K's rows as B^T (``b_transposed``) and the score scale; P V with V's rows as B (``b_rows``);
    q, k, v at their column offsets in one qkv tensor, the output at a column offset of the heads tensor."""
    acc = accumulator_width(24, True, K_MAX)
    tpe = {"os": lambda: SystolicOS(3, 4, signed(24), acc),
           "cube": lambda: BroadcastGrid(2, 4, 2, signed(24), acc, tree_register=True)}[arch]()
    engine = LinearEngine(engine=tpe, addr_width=ADDR_WIDTH, data_width=data_width, act=ACT, act_bytes=4,
                          w_bytes=2, a_rows=16, a_k=K_MAX, k_max=K_MAX, formats=ATTENTION_FORMATS,
                          gelu=UNITS.gelu, attention=True)
    rng = np.random.default_rng(21)
    tokens, hd, heads = 11, 8, 2
    qkv_codes = rng.integers(ACT.min_code, ACT.max_code + 1, size=(tokens, 3 * heads * hd)) >> rng.integers(0, 9)
    qkv_codes[0, :] = ACT.max_code  # saturating scores
    prob_fmt = AV.a
    probs = rng.integers(0, prob_fmt.max_code + 1, size=(tokens, tokens)) >> 3
    image = MemoryImage(beat_bytes=data_width // 8, base=0x1000)
    qkv = image.tensor("qkv", tokens, 3 * heads * hd, ACT, 4)
    image.put(qkv, qkv_codes)
    p = image.tensor("p", tokens, tokens, prob_fmt, 4)
    image.put(p, probs)
    scores = image.tensor("scores", tokens, tokens, ACT, 4)
    out = image.tensor("heads", tokens, heads * hd, ACT, 4)
    h = 1
    q = qkv_codes[:, h * hd:(h + 1) * hd]
    k = qkv_codes[:, heads * hd + h * hd:heads * hd + (h + 1) * hd]
    v = qkv_codes[:, 2 * heads * hd + h * hd:2 * heads * hd + (h + 1) * hd]
    want_scores = golden.attention_scores(q, k, MODEL, SPECS)
    want_out = golden.matmul(AV, probs, v)
    qk = descriptors.encode("LINEAR", dict(
        m=tokens, k=hd, n=tokens, src=qkv.addr + h * hd * 4, weights=qkv.addr + (heads + h) * hd * 4,
        dst=scores.addr, src_stride=qkv.stride, dst_stride=scores.stride, b_stride=qkv.stride),
        flags=("b_transposed",), fmt=3)
    av = descriptors.encode("LINEAR", dict(
        m=tokens, k=tokens, n=hd, src=p.addr, weights=qkv.addr + (2 * heads + h) * hd * 4,
        dst=out.addr + h * hd * 4, src_stride=p.stride, dst_stride=out.stride, b_stride=qkv.stride),
        flags=("b_rows",), fmt=4)
    memory = Memory(1 << ADDR_WIDTH, data_width=data_width, reads=engine.reads, writes=engine.writes,
                    timing=Timing.slow(), seed=4)
    memory.data[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    bench = EngineBench(engine, memory)
    results = []

    async def scenario(ctx):
        for desc in (qk, av):
            results.append(await bench.operator(ctx, desc, budget=40_000))

    bench.simulate(scenario)
    assert [r.error for r in results] == [0, 0]
    dump = memory.data.tobytes()
    np.testing.assert_array_equal(tensor_codes(scores, dump, 0), want_scores)
    got = tensor_codes(out, dump, 0)
    np.testing.assert_array_equal(got[:, h * hd:(h + 1) * hd], want_out)
    assert not got[:, :h * hd].any(), "the other head's columns are untouched"
    assert bench.problems == []
