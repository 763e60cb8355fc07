"""The dedicated attention engine (``ATTENTION``, ``hw/vit/attention.py``) in Amaranth's simulator.

The engine runs heads against the client-level DRAM model of ``tests/vit_memory.py`` (seeded random
latency, gaps and back-pressure, or an instant memory). After every operator the whole memory is
compared with the golden (:func:`sim.golden.moevit.fixed.head_attention`): the output rows bit-exact,
every other byte as it was. The memory requests are held to the reference order of
:mod:`sim.golden.moevit.attention` (the key and value rows of every step of the reordered schedule,
the query rows in row order, the output rows in row order).

Engines: small models (the micro network, one with 13 tokens and heads of 12, one with 16-bit
activations, a narrow wrapping accumulator, truncation and a 3-lane softmax), ``p`` of 1, 2, 3, 4
and 8 (more slots than tokens), lanes fewer than, equal to and more than a memory beat's
activations. Heads: T not a multiple of p, T < p, T = 1, head_dim 1 and odd, several heads of one
qkv tensor, extreme codes (saturated and wrapped scores), another scale code. The step order
(:class:`hw.vit.skew.SkewWalk`) is checked alone against the reference for many (T, p), and the
regrouping of beats into chunks (:class:`hw.vit.chunks.Rechunk`) alone under random stalls.
Every error path ends ``check_cycles + 1`` cycles after ``start`` with its code and no request; a
reset in the middle of a head leaves the engine ready for a clean one; with an instant memory a
head takes its MAC steps plus the softmax's and the pipelines' latency.
"""

import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import yaml
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.sim import Simulator
from test_vit_engines import MEMORY, Layout, container_bytes, fresh_memory, random_codes
from vit_memory import EngineBench, Memory, Timing

from gen.config.moevit import load_moevit
from gen.kinds.moevit_accel import AttentionFacts, attention_engine
from gen.lint import lint
from hw.vit import descriptors
from hw.vit.descriptors import ERROR
from hw.vit.engine import TensorCheck
from hw.vit.chunks import Rechunk
from hw.vit.skew import SkewWalk
from sim.golden.moevit import fixed
from sim.golden.moevit.attention import _reordered_steps

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "tests" / "configs" / "moevit" / "micro.yaml"
ADDR_WIDTH = 17  # MEMORY is all of the address space

#: Model variants (changes to the micro network's YAML): tokens, head size, formats.
MODELS = {
    "micro": {},  # 5 tokens, heads of 8, s8.16 activations in 4 bytes, 56-bit accumulator, half-even, saturate
    "t13": {"height": 16, "width": 12, "dim": 24},  # 13 tokens, heads of 12
    "narrow": {"height": 12, "width": 12, "dim": 12,  # 10 tokens, heads of 6, 2-byte activations, wrap, truncate
               "formats": {"activation": {"width": 16, "frac": 8, "signed": True},
                           "accumulator": {"width": 40, "frac": 24, "signed": True}},
               "rounding": "truncate", "overflow": "wrap",
               "nonlinear": {"softmax": {"input": {"width": 18, "frac": 11, "signed": True},
                                         "output": {"width": 16, "frac": 15, "signed": False}, "lanes": 3}}},
}


@cache
def model(name: str):
    data = yaml.safe_load(MICRO.read_text())
    for key, value in MODELS[name].items():
        if isinstance(value, dict):
            for sub, item in value.items():
                data[key][sub] = item if not isinstance(item, dict) or sub not in data[key] else {**data[key][sub],
                                                                                                  **item}
        else:
            data[key] = value
    data["name"] = f"attention_{name}"
    path = ROOT / "build" / "tests" / "attention_models" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_moevit(path)


@dataclass(frozen=True)
class Arch:
    name: str
    model: str
    p: int
    macs: int
    data_width: int

    @property
    def net(self):
        return model(self.model)

    @property
    def act_bytes(self) -> int:
        return 4 if self.net.format("activation").width > 16 else 2

    def build(self):
        net = self.net
        facts = AttentionFacts("dedicated", self.p, self.macs, self.macs // self.p, net.tokens, net.head_dim)
        return attention_engine(net, facts, addr_width=ADDR_WIDTH, data_width=self.data_width,
                                act_bytes=self.act_bytes)

    def __str__(self):
        return self.name


ARCHS = [
    Arch("micro_p2_l4_d64", "micro", 2, 8, 64),  # lanes > beat
    Arch("micro_p1_l1_d64", "micro", 1, 1, 64),  # lanes < beat, one slot
    Arch("t13_p4_l8_d128", "t13", 4, 32, 128),  # lanes > beat, a partial chunk (12 of 16)
    Arch("narrow_p3_l2_d128", "narrow", 3, 6, 128),  # lanes < beat, 2-byte containers, wrap, 3-lane softmax
    Arch("t13_p8_l1_d256", "t13", 8, 8, 256),
    Arch("micro_p8_l2_d64", "micro", 8, 16, 64),  # more slots than the model's tokens
]


# ============================================================================ the step order

def walk_trace(tokens: int, p: int, t_max: int) -> list:
    """Run a SkewWalk (one step per cycle) and record every step as the reference's steps look."""
    m = Module()
    go, step, t = Signal(), Signal(), Signal(range(t_max + 1))
    walk = SkewWalk(m, "w", p=p, t_max=t_max, tokens=t, start=go, step=step, word=3)
    flags = walk.slots()
    steps = []

    async def bench(ctx):
        ctx.set(t, tokens)
        ctx.set(go, 1)
        await ctx.tick()
        ctx.set(go, 0)
        assert ctx.get(walk.key) == 0
        for _ in range(4 * t_max * t_max + 10):
            if ctx.get(walk.end):
                break
            key, base = ctx.get(walk.key), ctx.get(walk.base)
            assert (ctx.get(walk.key_word), ctx.get(walk.key_lane)) == divmod(key, 3)
            live = [(i, base + i if ctx.get(flags["new"][i]) else base - p + i) for i in range(p)
                    if ctx.get(flags["live"][i])]
            loads = [base + i for i in range(p) if ctx.get(flags["load"][i])]
            done = [base + i if ctx.get(flags["new"][i]) else base - p + i for i in range(p)
                    if ctx.get(flags["complete"][i])]
            steps.append((key, live, loads[0] if loads else None, done, len(loads)))
            ctx.set(step, 1)
            await ctx.tick()
            ctx.set(step, 0)
            await ctx.tick()  # a cycle without a step: the walk holds

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return steps


@pytest.mark.parametrize("p", [1, 2, 3, 4, 8])
def test_walk_follows_the_reference_order(p):
    """Every step of the reordered order, live slots and their rows, the query loaded and the rows completed, as
    ``sim.golden.moevit.attention`` schedules them, for T below, at, between and above multiples of p; each row
    completes once, at its last key, in row order."""
    t_max = 13
    for tokens in sorted({1, 2, p - 1, p, p + 1, 2 * p, 2 * p + 1, 7, t_max} - {0}):
        if tokens > t_max:
            continue
        got = walk_trace(tokens, p, t_max)
        want = list(_reordered_steps(tokens, tokens, p))
        assert [(k, live, loaded) for k, live, loaded, _, _ in got] == want, (tokens, p)
        assert all(count <= 1 for *_, count in got)
        completed = [row for *_, done, _ in got for row in done]
        assert completed == list(range(tokens)), (tokens, p)
        last_key = {}
        for index, (_, live, _, _, _) in enumerate(got):
            for _, row in live:
                last_key[row] = index
        for index, (*_, done, _) in enumerate(got):
            for row in done:
                assert last_key[row] == index


# ============================================================================ regrouping

@pytest.mark.parametrize("a, b", [(4, 1), (4, 2), (2, 2), (1, 4), (2, 8)])
def test_regroup_rows_under_random_stalls(a, b):
    """Rows of random lengths regrouped from groups of a into groups of b, random valid and ready: every output
    group is the row's next b elements, 0 past the row, with its mask and last."""
    length_max = 11
    dut = Rechunk(shape=8, a=a, b=b, length_max=length_max)
    rng = random.Random(a * 10 + b)
    rows = [[rng.randrange(1, 256) for _ in range(rng.randint(1, length_max))] for _ in range(12)]
    length = len(rows[0])
    rows = [[rng.randrange(1, 256) for _ in range(length)] for _ in range(12)]  # length is fixed while rows pass
    groups_in = []
    for row in rows:
        beats = -(-len(row) // a)
        padded = row + [rng.randrange(256) for _ in range(beats * a - len(row))]
        groups_in += [(padded[g * a:(g + 1) * a], g == beats - 1) for g in range(beats)]
    want = []
    for row in rows:
        groups = -(-len(row) // b)
        for g in range(groups):
            part = row[g * b:(g + 1) * b]
            want.append((part + [0] * (b - len(part)), [1] * len(part) + [0] * (b - len(part)), g == groups - 1))
    got = []

    async def bench(ctx):
        ctx.set(dut.length, length)
        pending = list(groups_in)
        offered = False
        for _ in range(2000):
            offered = bool(pending) and (offered or rng.random() < 0.7)
            ctx.set(dut.inp.valid, int(offered))
            if offered:
                ctx.set(dut.inp.payload, {"data": pending[0][0], "last": int(pending[0][1])})
            ready = rng.random() < 0.6
            ctx.set(dut.out.ready, int(ready))
            took = offered and ctx.get(dut.inp.ready)
            if ctx.get(dut.out.valid) and ready:
                payload = ctx.get(dut.out.payload)
                got.append(([int(x) for x in payload.data], [int(payload.mask) >> l & 1 for l in range(b)],
                            bool(payload.last)))
            await ctx.tick()
            if took:
                pending.pop(0)
                offered = False
            if not pending and len(got) == len(want):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want


# ============================================================================ heads

@dataclass
class Head:
    fields: dict
    requests: list  # (kind, client, addr, beats) in order per client


@dataclass
class Job:
    heads: list
    expected: np.ndarray  # the memory after every head of the job


def scale_code(net, head_dim: int) -> int:
    return int(fixed.quantize(1.0 / np.sqrt(head_dim), net.format("weight")))


def head_requests(arch: Arch, f: dict) -> list:
    nbytes = arch.data_width // 8
    beats = -(-f["head_dim"] * arch.act_bytes // nbytes)
    t = f["tokens"]
    keys = [key for key, _, _ in _reordered_steps(t, t, arch.p)]
    return ([("read", 0, f["q"] + r * f["src_stride"], beats) for r in range(t)]
            + [("read", 1, f["k"] + key * f["src_stride"], beats) for key in keys]
            + [("read", 2, f["v"] + key * f["src_stride"], beats) for key in keys]
            + [("write", 0, f["dst"] + r * f["dst_stride"], beats) for r in range(t)])


def job(arch: Arch, memory: Memory, rng: random.Random, *, tokens: int, head_dim: int, heads: int = 1,
        codes: str = "moderate", scale: int | None = None, at: int = 0x100, dst_at: int | None = None,
        dst_stride: int | None = None) -> Job:
    """``heads`` heads of one qkv tensor (rows [q | k | v], each ``heads * head_dim`` codes from a beat boundary,
    the heads' columns beat-aligned) into one heads tensor; ``codes``: ``moderate`` (varied scores) or ``extreme`` (many extreme
    codes: saturated or wrapped scores)."""
    net = arch.net
    act, ab, nbytes = net.format("activation"), arch.act_bytes, arch.data_width // 8
    assert heads == 1 or (head_dim * ab) % nbytes == 0
    width = heads * head_dim
    layout = Layout(nbytes, rng, at)
    npr = np.random.default_rng(rng.getrandbits(32))
    if codes == "extreme":
        qkv = random_codes(act, (tokens, 3 * width), npr)
    else:
        qkv = npr.integers(act.min_code, act.max_code + 1, (tokens, 3 * width)) >> (act.width // 3)
    part = -(-width * ab // nbytes) * nbytes  # q, k and v of a row each start on a beat (padding: old bytes)
    src_stride = (3 * part // nbytes + rng.randint(0, 2)) * nbytes
    dst_stride = dst_stride or (-(-width * ab // nbytes) + rng.randint(0, 2)) * nbytes
    src = layout.take((tokens - 1) * src_stride + 3 * part)
    dst = dst_at if dst_at is not None else layout.take((tokens - 1) * dst_stride + width * ab)
    raw = container_bytes(qkv, ab, act.signed).reshape(tokens, 3, width * ab)
    for r in range(tokens):
        for index in range(3):
            at_row = src + r * src_stride + index * part
            memory.data[at_row:at_row + width * ab] = raw[r, index]
    code = scale if scale is not None else scale_code(net, head_dim)
    u, specs = fixed.units(net), fixed.matmul_specs(net)
    expected = memory.data.copy()
    out_heads = []
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        q, k, v = (qkv[:, part * width:(part + 1) * width][:, cols] for part in range(3))
        _, _, out = fixed.head_attention(q, k, v, net, u, specs, scale=code)
        assert out.min() >= act.min_code and out.max() <= act.max_code
        column = h * head_dim * ab
        fields = {"tokens": tokens, "head_dim": head_dim, "scale": code & 0xFFFFFFFF, "q": src + column,
                  "k": src + part + column, "v": src + 2 * part + column, "dst": dst + column,
                  "src_stride": src_stride, "dst_stride": dst_stride}
        out_bytes = container_bytes(out, ab, act.signed).reshape(tokens, head_dim * ab)
        for r in range(tokens):
            expected[dst + column + r * dst_stride:dst + column + r * dst_stride + head_dim * ab] = out_bytes[r]
        out_heads.append(Head(fields, head_requests(arch, fields)))
    return Job(out_heads, expected)


def attention_desc(fields: dict, **kw) -> bytes:
    return descriptors.encode("ATTENTION", fields, **kw)


def check_requests(head: Head, requests):
    got = [(q.kind, q.client, q.addr, q.beats) for q in requests]
    for kind, client in (("read", 0), ("read", 1), ("read", 2), ("write", 0)):
        assert ([r for r in got if r[:2] == (kind, client)]
                == [r for r in head.requests if r[:2] == (kind, client)]), (kind, client, head.fields)
    assert len(got) == len(head.requests)


#: Per arch: the heads run back to back (tokens, head_dim, heads, codes, scale: None or "other").
HEAD_CASES = {
    "micro_p2_l4_d64": [(5, 8, 2, "moderate", None), (1, 3, 1, "extreme", None), (4, 8, 1, "extreme", "other")],
    "micro_p1_l1_d64": [(4, 3, 1, "moderate", None), (5, 1, 1, "extreme", None)],
    "t13_p4_l8_d128": [(13, 12, 1, "moderate", None), (3, 5, 1, "extreme", None), (8, 12, 1, "extreme", None)],
    "narrow_p3_l2_d128": [(10, 6, 1, "moderate", None), (7, 1, 1, "extreme", "other"), (2, 6, 1, "extreme", None)],
    "t13_p8_l1_d256": [(13, 4, 1, "moderate", None), (5, 2, 1, "extreme", None)],
    "micro_p8_l2_d64": [(5, 8, 2, "extreme", None), (3, 8, 1, "moderate", None)],
}


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_heads_bit_exact_slow_memory(arch):
    """Heads back to back on a slow memory: DRAM equals the golden (outputs bit-exact, nothing else touched) and the
    requests follow the reference order; the stream waits for memory (mem_stall)."""
    engine = arch.build()
    rng = random.Random(arch.p * 100 + arch.macs)
    memory = fresh_memory(engine, arch.data_width, rng.getrandbits(32), Timing.slow())
    bench = EngineBench(engine, memory)
    results = []

    async def scenario(ctx):
        for tokens, head_dim, heads, codes, scale in HEAD_CASES[arch.name]:
            other = rng.choice([-(1 << 15), (1 << 15) - 1, -3, 12345]) if scale else None
            work = job(arch, memory, rng, tokens=tokens, head_dim=head_dim, heads=heads, codes=codes, scale=other)
            ops = [await bench.operator(ctx, attention_desc(head.fields), budget=60_000) for head in work.heads]
            results.append((work, ops, memory.data.copy()))

    bench.simulate(scenario)
    assert bench.problems == []
    for work, ops, after in results:
        for head, op in zip(work.heads, ops):
            assert op.error == 0, head.fields
            check_requests(head, op.requests)
        diff = np.nonzero(after != work.expected)[0]
        assert diff.size == 0, (work.heads[0].fields, diff[:8])
    assert sum(op.mem_stall for _, ops, _ in results for op in ops) > 0


@pytest.mark.parametrize("arch", ARCHS[:1] + ARCHS[3:4], ids=str)
def test_errors_touch_nothing(arch):
    """Every error path: its code, done ``check_cycles + 1`` cycles after start, no request, memory unchanged; the
    edge that passes (the output ending at ``2**addr_width``) runs."""
    engine = arch.build()
    rng = random.Random(9)
    memory = fresh_memory(engine, arch.data_width, 13, Timing.slow())
    bench = EngineBench(engine, memory)
    nbytes = arch.data_width // 8
    net = arch.net
    good = job(arch, memory, rng, tokens=3, head_dim=net.head_dim).heads[0].fields
    stride = good["src_stride"]
    bad = [
        (ERROR["BAD_FORMAT"], good, {"fmt": 1}),
        (ERROR["BAD_SIZE"], dict(good, tokens=0), {}),
        (ERROR["BAD_SIZE"], dict(good, tokens=net.tokens + 1), {}),
        (ERROR["BAD_SIZE"], dict(good, tokens=(1 << 32) - 1), {}),
        (ERROR["BAD_SIZE"], dict(good, head_dim=0), {}),
        (ERROR["BAD_SIZE"], dict(good, head_dim=net.head_dim + 1), {}),
        (ERROR["BAD_SIZE"], dict(good, head_dim=(1 << 31) + net.head_dim), {}),  # the low bits alone would pass
        (ERROR["BAD_SIZE"], dict(good, tokens=0, q=3), {}),  # size before address
        (ERROR["BAD_FORMAT"], dict(good, tokens=0, q=3), {"fmt": 2}),  # format before size
        (ERROR["BAD_ADDRESS"], dict(good, q=good["q"] + nbytes // 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, k=good["k"] + 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, v=good["v"] + nbytes - 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=good["dst"] + 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src_stride=stride + 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst_stride=good["dst_stride"] - 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, v=MEMORY - stride), {}),  # the last row past the end
        (ERROR["BAD_ADDRESS"], dict(good, k=1 << 40), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=MEMORY - nbytes), {}),
    ]
    raw_flags = bytearray(attention_desc(good))
    raw_flags[1] = 0x01  # a flag bit by hand (encode refuses flags ATTENTION does not take)
    outcomes = []

    async def scenario(ctx):
        for code, fields, kw in bad:
            before = memory.data.copy()
            op = await bench.operator(ctx, attention_desc(fields, **kw), budget=40)
            outcomes.append((code, fields, before, memory.data.copy(), op))
        before = memory.data.copy()
        op = await bench.operator(ctx, bytes(raw_flags), budget=40)
        outcomes.append((ERROR["BAD_FORMAT"], "flags", before, memory.data.copy(), op))
        # the output rows end exactly at the end of the address space: runs
        tokens, hd = 2, net.head_dim
        row = -(-hd * arch.act_bytes // nbytes) * nbytes
        work = job(arch, memory, rng, tokens=tokens, head_dim=hd, dst_at=MEMORY - tokens * row, dst_stride=row)
        op = await bench.operator(ctx, attention_desc(work.heads[0].fields), budget=20_000)
        outcomes.append(("edge", work.heads[0].fields, work.expected, memory.data.copy(), op))

    bench.simulate(scenario)
    assert bench.problems == []
    for code, fields, before, after, op in outcomes[:-1]:
        assert op.error == code, fields
        assert op.cycles == TensorCheck.latency + 1, fields
        assert op.requests == [], fields
        assert np.array_equal(before, after), fields
    _, fields, expected, after, op = outcomes[-1]
    assert op.error == 0 and np.array_equal(after, expected)
    assert max(q.addr + q.beats * nbytes for q in op.requests if q.kind == "write") == MEMORY


def mac_steps(arch: Arch, tokens: int, head_dim: int) -> int:
    """Chunks the MACs take for one head: both matmuls, every step of the reordered order."""
    steps = len(list(_reordered_steps(tokens, tokens, arch.p)))
    return 2 * steps * -(-head_dim // (arch.macs // arch.p))


@pytest.mark.parametrize("arch", [ARCHS[2], ARCHS[3]], ids=str)
def test_throughput_mac_beats_and_reset(arch):
    """Instant memory: a head takes its MAC steps plus a bounded overhead (checks, pipelines, the softmax unit's
    latency on the last row, the writer's tail), ``mac_beat`` counts every chunk, mem_stall stays small. A reset in
    the middle of a head (slow memory), then a clean head: correct."""
    engine = arch.build()
    rng = random.Random(4)
    memory = fresh_memory(engine, arch.data_width, 6, Timing.instant())
    bench = EngineBench(engine, memory)
    net = arch.net
    runs = {}
    beats = []

    async def count_macs(ctx):
        async for _, _, beat in ctx.tick().sample(engine.mac_beat):
            beats.append(beat)

    async def scenario(ctx):
        work = job(arch, memory, rng, tokens=net.tokens, head_dim=net.head_dim)
        start = len(beats)
        runs["fast"] = (work, await bench.operator(ctx, attention_desc(work.heads[0].fields)), memory.data.copy(),
                        sum(beats[start:]))
        memory.timing = Timing.slow()
        work = job(arch, memory, rng, tokens=net.tokens, head_dim=net.head_dim, at=0x8000)
        runs["reset"] = await bench.operator(ctx, attention_desc(work.heads[0].fields),
                                             reset_after=rng.randint(60, 120))
        await bench.idle(ctx, 3)
        work = job(arch, memory, rng, tokens=net.tokens - 1, head_dim=net.head_dim - 1, at=0x10000)
        runs["clean"] = (work, await bench.operator(ctx, attention_desc(work.heads[0].fields), budget=60_000),
                         memory.data.copy())

    sim = Simulator(bench.top)
    sim.add_clock(1e-8)
    sim.add_testbench(scenario)
    sim.add_process(count_macs)
    sim.run()
    assert bench.problems == []
    work, op, after, macs = runs["fast"]
    chunks = mac_steps(arch, net.tokens, net.head_dim)
    assert op.error == 0 and np.array_equal(after, work.expected)
    assert macs == chunks
    # a step takes its chunks, or its key row's beats when a chunk is more than a beat
    row_beats = -(-net.head_dim * arch.act_bytes // (arch.data_width // 8))
    per_step = max(-(-net.head_dim // engine.lanes), row_beats)
    stream = chunks // -(-net.head_dim // engine.lanes) * per_step
    softmax = engine.softmax_unit
    words = -(-net.tokens // engine.softmax.lanes)
    # at least the last row through the softmax unit; at most the last p rows one after another, the checks, the
    # MAC and score pipelines and the writer's last row
    assert stream + softmax.latency <= op.cycles <= (stream + TensorCheck.latency + 16 + 2 * (per_step + row_beats)
                                                     + arch.p * (softmax.latency + 2 * words)), (stream, op.cycles)
    assert op.mem_stall <= stream - chunks + 12, op.mem_stall  # waits for memory only when chunks exceed beats
    assert runs["reset"].error is None and runs["reset"].requests  # stopped while it was working
    work, op, after = runs["clean"]
    assert op.error == 0 and np.array_equal(after, work.expected)


# ============================================================================ Verilog

def test_engine_passes_lint(tmp_path):
    path = tmp_path / "vit_attention.v"
    path.write_text(verilog.convert(ARCHS[3].build(), name="vit_attention", emit_src=False))
    assert lint(path, "vit_attention") == []
