"""The mixture of experts on the accelerator's engines in Amaranth's simulator: GATE, the route table and the
linear engine's gather and scatter.

A small wrapper joins the GATE engine, the route table and the linear engine the way the top does, and
runs against the client-level DRAM model of ``tests/vit_memory.py`` (seeded random latency, gaps and
back-pressure): the gate's logits (``LINEAR``), ``GATE``, then per expert fc1 + GELU gathered through
its queue and fc2 scattered with score weighting, in as many queue parts as the A buffer needs. The
expert outputs are compared with the golden's ``moe`` (``sim/golden/moevit/fixed.py``) of the same
inputs, the hidden rows with its fc1 + GELU of the routed tokens. Cases: random codes; every token to one
expert (a queue of all tokens, in three parts, two experts empty); all logits equal (ties to the lower
index); bad descriptors end with their code and no request.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.hdl import signed
from amaranth.lib import wiring
from vit_memory import EngineBench, Memory, Timing

from gen.config.moevit import load_moevit, matmul_specs
from hw.arith import accumulator_width
from hw.arith.fixed import Rounding
from hw.nonlinear.gate import GateSpec
from hw.tpe import SystolicOS
from hw.vit import descriptors
from hw.vit.descriptors import ERROR
from hw.vit.engine import engine_members
from hw.vit.epilogue import EpilogueFormat
from hw.vit.gate import GateEngine
from hw.vit.linear import ROUTE_READERS, LinearEngine, MoeSpec
from hw.vit.router import RouteTable
from sim.golden.moevit import fixed as golden
from sim.moevit.memory import MemoryImage, tensor_codes, weight_tiles

from conftest import ROOT

MODEL = load_moevit(ROOT / "tests" / "configs" / "moevit" / "micro.yaml")
SPECS = matmul_specs(MODEL)
UNITS = golden.units(MODEL)
ACT = MODEL.format("activation")
FC, GATE = SPECS["fc1"], SPECS["gate"]
FORMATS = [EpilogueFormat(("fc1", "fc2"), FC.a, FC.b, FC.acc, FC.out, FC.rounding, FC.overflow, FC.bias),
           EpilogueFormat(("gate",), GATE.a, GATE.b, GATE.acc, GATE.out, GATE.rounding, GATE.overflow)]
ADDR_WIDTH = 18
TOKENS = 11  # the route table's queues (more than the micro model's 5 tokens: longer queues)
A_ROWS = 4  # queues longer than the A buffer run in parts
DATA_WIDTH = 64
PARTS = -(-TOKENS // A_ROWS)  # LINEARs of the gate's logits, and parts of an expert's queue


class MoeUnit(wiring.Component):
    """GATE, the route table and the linear engine behind one command interface (the opcode picks the engine):
    read clients 0-2 the linear engine's, 3 the gate's; write client 0 the linear engine's."""

    def __init__(self):
        acc = accumulator_width(24, True, 16)
        self.spec = GateSpec(UNITS.gate, MODEL.top_k)
        self.moe = MoeSpec(experts=MODEL.experts, tokens=TOKENS, score=UNITS.gate.output)
        self.linear = LinearEngine(engine=SystolicOS(3, 4, signed(24), acc), addr_width=ADDR_WIDTH,
                                   data_width=DATA_WIDTH, act=ACT, act_bytes=4, w_bytes=2, a_rows=A_ROWS, a_k=16,
                                   k_max=16, formats=FORMATS, gelu=UNITS.gelu, moe=self.moe)
        self.gate = GateEngine(addr_width=ADDR_WIDTH, data_width=DATA_WIDTH, act=ACT, act_bytes=4,
                               rounding=Rounding(MODEL.rounding), overflow=FC.overflow, spec=self.spec, tokens=TOKENS)
        super().__init__(engine_members(addr_width=ADDR_WIDTH, data_width=DATA_WIDTH, read_clients=4,
                                        write_clients=1))

    def elaborate(self, platform):
        m = Module()
        lin, gate = self.linear, self.gate
        m.submodules.linear, m.submodules.gate = lin, gate
        table = m.submodules.table = RouteTable(experts=self.moe.experts, tokens=TOKENS, score=self.moe.score,
                                                readers=ROUTE_READERS)
        wiring.connect(m, gate.push, table.push)
        m.d.comb += [table.clear.eq(gate.clear), lin.route_counts.eq(table.counts), lin.route_tokens.eq(gate.routed)]
        for i in range(ROUTE_READERS):
            wiring.connect(m, lin.route[i], table.reads[i])
        for i in range(3):
            wiring.connect(m, wiring.flipped(self.reads[i]), lin.reads[i])
        wiring.connect(m, wiring.flipped(self.reads[3]), gate.reads[0])
        wiring.connect(m, wiring.flipped(self.writes[0]), lin.writes[0])
        is_gate = self.desc[:8] == descriptors.OPCODES["GATE"]
        last_gate = Signal()
        with m.If(self.start):
            m.d.sync += last_gate.eq(is_gate)
        m.d.comb += [lin.desc.eq(self.desc), gate.desc.eq(self.desc), lin.start.eq(self.start & ~is_gate),
                     gate.start.eq(self.start & is_gate), self.busy.eq(lin.busy | gate.busy),
                     self.done.eq(lin.done | gate.done), self.error.eq(Mux(last_gate, gate.error, lin.error)),
                     self.mem_stall.eq(lin.mem_stall | gate.mem_stall)]
        return m


def layer(rng, *, case: str):
    """Codes of one MoE layer: y (TOKENS x dim), the gate's weights, the experts' weights and biases."""
    d, h, e = MODEL.dim, MODEL.expert_hidden, MODEL.experts
    w = MODEL.format("weight")
    bias = MODEL.format("bias")

    def draw(f, shape, shift=0):
        return rng.integers(f.min_code, f.max_code + 1, size=shape) >> shift

    y = draw(ACT, (TOKENS, d), 3)
    gate_w = draw(w, (d, e), 1)
    if case == "one_expert":  # a large first feature and only expert 2's gate weight on it: all tokens to 2
        y[:, 0] = ACT.max_code >> 2
        gate_w[:] = 0
        gate_w[0, 2] = w.max_code
    elif case == "ties":  # every logit equal: the lower indices win (experts 0 and 1)
        gate_w[:] = 0
    fc1_w, fc1_b = draw(w, (e, d, h), 2), draw(bias, (e, h), 2)
    fc2_w, fc2_b = draw(w, (e, h, d), 2), draw(bias, (e, d), 2)
    if case == "random":
        y[0, :] = ACT.max_code  # saturation in the accumulation of a token's experts
        fc2_w[:, :, :] = np.abs(fc2_w)
    return y, gate_w, fc1_w, fc1_b, fc2_w, fc2_b


def program(unit: MoeUnit, codes):
    """The image and the descriptors of the layer; the regions to check and their golden codes."""
    y, gate_w, fc1_w, fc1_b, fc2_w, fc2_b = codes
    image = MemoryImage(beat_bytes=DATA_WIDTH // 8, base=0x1000)
    ry = image.tensor("y", TOKENS, MODEL.dim, ACT, 4)
    image.put(ry, y)
    tiles = lambda name, w, b=None: image.raw(name, weight_tiles(w, b, cols=unit.linear.cols, container=2,  # noqa
                                                                   beat_bytes=DATA_WIDTH // 8))
    logits = image.tensor("logits", TOKENS, MODEL.experts, ACT, 4)
    ffn = image.tensor("ffn", TOKENS, MODEL.dim, ACT, 4)
    want_logits = golden.matmul(GATE, y, gate_w)
    chosen, _ = golden.gate(golden.convert(want_logits, ACT, UNITS.gate.input, MODEL), UNITS, MODEL.top_k)
    gate_tiles = tiles("gate", gate_w)
    ops = [descriptors.encode("LINEAR", dict(m=min(A_ROWS, TOKENS - start), k=MODEL.dim, n=MODEL.experts,
                                             src=ry.addr + start * ry.stride, weights=gate_tiles.addr,
                                             dst=logits.addr + start * logits.stride, src_stride=ry.stride,
                                             dst_stride=logits.stride), fmt=1)
           for start in range(0, TOKENS, A_ROWS)]
    ops.append(descriptors.encode("GATE", dict(rows=TOKENS, n=MODEL.experts, src=logits.addr,
                                               src_stride=logits.stride)))
    checks = [(logits, want_logits)]
    for e in range(MODEL.experts):
        hidden = image.tensor(f"hidden{e}", A_ROWS, MODEL.expert_hidden, ACT, 4)
        w1, w2 = tiles(f"w1_{e}", fc1_w[e], fc1_b[e]), tiles(f"w2_{e}", fc2_w[e], fc2_b[e])
        rows = np.nonzero((chosen == e).any(axis=-1))[0]
        for start in range(0, TOKENS, A_ROWS):
            common = dict(k=MODEL.dim, n=MODEL.expert_hidden, expert=e, queue_from=start)
            ops.append(descriptors.encode("LINEAR", dict(common, m=TOKENS, src=ry.addr, weights=w1.addr,
                                                         dst=hidden.addr, src_stride=ry.stride,
                                                         dst_stride=hidden.stride),
                                          flags=("bias", "gelu", "gather"), fmt=0))
            ops.append(descriptors.encode("LINEAR", dict(common, m=TOKENS, k=MODEL.expert_hidden, n=MODEL.dim,
                                                         src=hidden.addr, weights=w2.addr, dst=ffn.addr,
                                                         residual=ffn.addr, src_stride=hidden.stride,
                                                         dst_stride=ffn.stride, res_stride=ffn.stride),
                                          flags=("bias", "residual", "scatter"), fmt=0))
        want = np.zeros((A_ROWS, MODEL.expert_hidden), dtype=np.int64)  # each part overwrites the first rows
        for start in range(0, rows.size, A_ROWS):
            part = rows[start:start + A_ROWS]
            want[:part.size] = golden.feature_gelu(golden.matmul(FC, y[part], fc1_w[e], fc1_b[e]), MODEL, UNITS)
        checks.append((hidden, want))
    checks.append((ffn, golden.moe(y, gate_w, fc1_w, fc1_b, fc2_w, fc2_b, MODEL, UNITS, SPECS)))
    return image, ops, checks, chosen


def run(unit, image, ops, *, timing, seed, budget=20_000):
    memory = Memory(1 << ADDR_WIDTH, data_width=DATA_WIDTH, reads=unit.reads, writes=unit.writes, timing=timing,
                    seed=seed)
    memory.data[image.base:image.end] = np.frombuffer(image.image(), dtype=np.uint8)
    bench = EngineBench(unit, memory)
    results = []

    async def scenario(ctx):
        for desc in ops:
            results.append(await bench.operator(ctx, desc, budget=budget))

    bench.simulate(scenario)
    return memory, bench, results


@pytest.mark.parametrize("case,seed,timing", [("random", 3, Timing.slow()), ("one_expert", 4, Timing.instant()),
                                               ("ties", 5, Timing.instant())], ids=["random", "one_expert", "ties"])
def test_moe_layer_matches_golden(case, seed, timing):
    """The routing cases on an instant memory (what they check is the routing; the slow memory's cycles are
    the random case's)."""
    rng = np.random.default_rng(seed)
    unit = MoeUnit()
    codes = layer(rng, case=case)
    image, ops, checks, chosen = program(unit, codes)
    memory, bench, results = run(unit, image, ops, timing=timing, seed=seed)
    assert [r.error for r in results] == [0] * len(ops)
    assert bench.problems == []
    dump = memory.data.tobytes()
    for region, want in checks:
        np.testing.assert_array_equal(tensor_codes(region, dump, 0), want, err_msg=f"{case}: {region.name}")
    counts = [(chosen == e).any(axis=-1).sum() for e in range(MODEL.experts)]
    experts = results[PARTS + 1:]
    for e, count in enumerate(counts):  # an empty queue part reads and writes nothing
        for part, start in enumerate(range(0, TOKENS, A_ROWS)):
            fc1, fc2 = experts[2 * (e * PARTS + part)], experts[2 * (e * PARTS + part) + 1]
            if count <= start:
                assert fc1.requests == [] and fc2.requests == [] and fc1.cycles < 10, (e, start)
            else:
                assert fc1.requests and fc2.requests
    if case == "one_expert":
        assert counts[2] == TOKENS and counts.count(0) == 2
    if case == "ties":
        assert counts == [TOKENS, TOKENS, 0, 0]


BAD = [  # (opcode, change to a good descriptor, flags, expected error)
    ("GATE", {"rows": 0}, (), "BAD_SIZE"),
    ("GATE", {"rows": TOKENS + 1}, (), "BAD_SIZE"),
    ("GATE", {"n": MODEL.top_k - 1}, (), "BAD_SIZE"),
    ("GATE", {"n": MODEL.experts + 1}, (), "BAD_SIZE"),
    ("GATE", {"src": 0x1004}, (), "BAD_ADDRESS"),
    ("GATE", {"fmt": 1}, (), "BAD_FORMAT"),
    ("LINEAR", {"expert": MODEL.experts}, ("bias", "gather"), "BAD_SIZE"),
    ("LINEAR", {"m": TOKENS - 1}, ("bias", "gather"), "BAD_SIZE"),  # fewer rows than the routed tokens
    ("LINEAR", {}, ("bias", "gather", "b_rows"), "BAD_FORMAT"),
    ("LINEAR", {"dst_stride": 12}, ("bias", "scatter"), "BAD_ADDRESS"),
]


def test_bad_descriptors_end_with_their_code():
    rng = np.random.default_rng(8)
    unit = MoeUnit()
    image, ops, _, _ = program(unit, layer(rng, case="random"))
    gate_fields = {k: v for k, v in descriptors.decode(ops[PARTS]).items() if k not in ("opcode", "flags", "fmt")}
    lin_fields = {k: v for k, v in descriptors.decode(ops[PARTS + 1]).items()
                  if k not in ("opcode", "flags", "fmt", "b_stride")}
    bad = []
    for opcode, change, flags, _ in BAD:
        fields = dict(gate_fields if opcode == "GATE" else lin_fields)
        fields.update({k: v for k, v in change.items() if k != "fmt"})
        bad.append(descriptors.encode(opcode, fields, flags=flags, fmt=change.get("fmt", 0)))
    # The good gate first (the checks of gather and scatter need a routing), then the bad ones, then a good expert.
    memory, bench, results = run(unit, image, [*ops[:PARTS + 1], *bad, ops[PARTS + 1]], timing=Timing.slow(), seed=8)
    assert [r.error for r in results[:PARTS + 1]] == [0] * (PARTS + 1) and results[-1].error == 0
    for (opcode, change, flags, name), outcome in zip(BAD, results[PARTS + 1:-1]):
        assert outcome.error == ERROR[name], (opcode, change, flags, outcome.error)
        assert outcome.requests == [], (opcode, change)
        assert outcome.cycles <= 8, (opcode, change, outcome.cycles)
    assert bench.problems == []
