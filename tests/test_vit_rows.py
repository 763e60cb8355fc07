"""The accelerator's row engines (``LAYERNORM``, ``SOFTMAX``: ``hw/vit/rows.py``) and their regrouper in
Amaranth's simulator.

Each engine runs descriptors against the client-level DRAM model of ``tests/vit_memory.py``
(seeded random latency, gaps and back-pressure, or an instant memory); after every operator
the whole memory is compared with the golden: the output rows as
:func:`sim.golden.moevit.fixed.feature_layernorm` / :func:`~sim.golden.moevit.fixed.feature_softmax`
give them, every other byte (row padding, strides, the parameters, the rest of DRAM) as it was.
The engines cover memory beats wider and narrower than the unit's lanes (2 elements per beat
into 8 lanes, 8 into 3, 16 into 1), signed and unsigned activations, rounding and overflow
modes. Rows: random codes with many extremes, all-equal rows, rows of only the format's
extremes, rows of only codes beyond the unit's input range (saturating or wrapping), ``n = 1``, ``n`` = the unit's ``n_max``, ``n`` not a multiple of the lanes nor of
a beat, several rows back to back. Bad descriptors must end ``check_cycles + 1`` cycles after
``start`` with their code and no memory request; a reset in the middle of an operator must
leave the engine ready for a clean one; with an instant memory an operator must take about
as many cycles as it moves beats. :class:`hw.vit.regroup.Regroup` is checked alone against
a list model under random valid/ready, and both engines convert to Verilog that passes the
project's lint.
"""

import math
import random
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed
from amaranth.sim import Simulator
from test_vit_engines import (ADDR_WIDTH, MEMORY, Layout, container_bytes, fresh_memory, put_rows, row_beats,
                              row_stride)
from vit_memory import EngineBench, Timing, check_refused

from gen.config import parse_config_data
from gen.kinds import layernorm as layernorm_kind
from gen.kinds import softmax as softmax_kind
from gen.lint import lint
from hw.arith.fixed import FixedFormat, Overflow, Rounding
from hw.vit import descriptors
from hw.vit.descriptors import ERROR
from hw.vit.engine import TensorCheck
from hw.vit.regroup import Regroup
from hw.vit.rows import RowEngine, params_bytes
from sim.golden.moevit.fixed import feature_layernorm, feature_softmax
from sim.moevit.memory import norm_params

# ============================================================================ engines under test

MICRO_LN = {"input": {"width": 17, "frac": 10, "signed": True}, "output": {"width": 20, "frac": 14, "signed": True},
            "lanes": 8, "eps": 1.0e-6, "stat_frac": 20, "rstd": {"width": 26, "frac": 20, "signed": False},
            "gamma": {"width": 16, "frac": 11, "signed": True}, "beta": {"width": 16, "frac": 11, "signed": True}}
L3_LN = {"input": {"width": 8, "frac": 4, "signed": False}, "output": {"width": 10, "frac": 6, "signed": True},
         "lanes": 3, "gamma": {"width": 12, "frac": 8, "signed": True},
         "beta": {"width": 10, "frac": 6, "signed": True},
         "eps": 1.0e-3, "rounding": "truncate", "overflow": "wrap", "newton_steps": 1, "row_buffers": 3}
L1_LN = {"input": {"width": 10, "frac": 5, "signed": True}, "output": {"width": 12, "frac": 8, "signed": True},
         "lanes": 1}
MICRO_SM = {"input": {"width": 18, "frac": 11, "signed": True}, "output": {"width": 16, "frac": 15, "signed": False},
            "lanes": 4}
L3_SM = {"input": {"width": 10, "frac": 5, "signed": True}, "output": {"width": 12, "frac": 11, "signed": False},
         "lanes": 3, "row_buffers": 3, "rounding": "truncate", "exp_table_bits": 4, "newton_steps": 0}
L1_SM = {"input": {"width": 8, "frac": 4, "signed": True}, "output": {"width": 9, "frac": 8, "signed": False},
         "lanes": 1}


@dataclass(frozen=True)
class RowArch:
    name: str
    kind: str  # "layernorm" or "softmax"
    unit: dict  # the unit's kind config without kind, name
    n_max: int
    data_width: int
    act: FixedFormat
    act_bytes: int
    rounding: Rounding
    overflow: Overflow

    @property
    def spec(self):
        cfg = parse_config_data({"kind": self.kind, "name": "unit", "n_max": self.n_max, **self.unit}, "test")
        return (layernorm_kind if self.kind == "layernorm" else softmax_kind).spec(cfg)

    @property
    def opcode(self) -> str:
        return "LAYERNORM" if self.kind == "layernorm" else "SOFTMAX"

    def build(self) -> RowEngine:
        return RowEngine(spec=self.spec, addr_width=ADDR_WIDTH, data_width=self.data_width, act=self.act,
                         act_bytes=self.act_bytes, rounding=self.rounding, overflow=self.overflow)

    @property
    def lanes(self) -> int:
        return self.data_width // 8 // self.act_bytes

    def __str__(self):
        return self.name


S24 = FixedFormat(24, 16, True)
ARCHS = [
    # 2 elements per beat into 8 lanes: the micro network's formats
    RowArch("ln_d64_s7.16_l8", "layernorm", MICRO_LN, 40, 64, S24, 4, Rounding.HALF_EVEN, Overflow.SATURATE),
    # 8 per beat into 3 lanes, an unsigned LN input (negative activations saturate to 0), truncating wrap
    RowArch("ln_d128_s4.10_l3", "layernorm", L3_LN, 13, 128, FixedFormat(15, 10, True), 2, Rounding.TRUNCATE,
            Overflow.WRAP),
    # 16 per beat into 1 lane, unsigned activations
    RowArch("ln_d256_u8.8_l1", "layernorm", L1_LN, 20, 256, FixedFormat(16, 8, False), 2, Rounding.HALF_AWAY,
            Overflow.SATURATE),
    RowArch("sm_d64_s7.16_l4", "softmax", MICRO_SM, 21, 64, S24, 4, Rounding.HALF_EVEN, Overflow.SATURATE),
    RowArch("sm_d128_s4.10_l3", "softmax", L3_SM, 13, 128, FixedFormat(15, 10, True), 2, Rounding.TRUNCATE,
            Overflow.WRAP),
    RowArch("sm_d256_s15.16_l1", "softmax", L1_SM, 8, 256, FixedFormat(32, 16, True), 4, Rounding.HALF_EVEN,
            Overflow.SATURATE),
]


def golden_rows(arch: RowArch, x: np.ndarray, gamma=None, beta=None) -> np.ndarray:
    """The engine's output codes for input codes ``x`` (rows x n)."""
    cfg = SimpleNamespace(format=lambda _: arch.act, rounding=arch.rounding.value, overflow=arch.overflow.value)
    spec = arch.spec
    u = SimpleNamespace(layernorm=spec, softmax=spec, methods={"layernorm": "onepass", "softmax": "online"})
    if arch.kind == "layernorm":
        return feature_layernorm(x, gamma, beta, cfg, u)
    return feature_softmax(x, cfg, u)


def written_format(arch: RowArch) -> FixedFormat:
    return arch.act if arch.kind == "layernorm" else arch.spec.output


def outside_ranges(fmt: FixedFormat, inner: FixedFormat) -> list[tuple[int, int]]:
    """The ranges ``(first, last)`` of codes of ``fmt`` whose values lie outside ``inner``'s range
    (converting them saturates or wraps, or at most rounds onto the range's end)."""
    above = math.floor(inner.max_value / fmt.lsb) + 1
    below = math.ceil(inner.min_value / fmt.lsb) - 1
    ranges = [(fmt.min_code, min(below, fmt.max_code)), (max(above, fmt.min_code), fmt.max_code)]
    return [(first, last) for first, last in ranges if first <= last]


def edge_codes(fmt: FixedFormat, kind: str, rows: int, n: int, rng: np.random.Generator,
               inner: FixedFormat | None = None) -> np.ndarray:
    """Rows of one kind: ``random`` (uniform with many extremes), ``equal`` (one value per row), ``extremes``
    (only the format's min and max), ``small`` (a spread of a few codes around a value far from 0),
    ``outside`` (only codes beyond the range of ``inner``, the unit's input format: the conversions
    saturate or wrap)."""
    lo, hi = fmt.min_code, fmt.max_code
    if kind == "outside":
        ranges = outside_ranges(fmt, inner)
        assert ranges, f"every {fmt.describe()} code fits {inner.describe()}"
        which = rng.integers(0, len(ranges), (rows, n))
        return np.choose(which, [rng.integers(first, last, (rows, n), endpoint=True) for first, last in ranges])
    if kind == "equal":
        return np.repeat(rng.choice([lo, hi, 0, rng.integers(lo, hi + 1)], (rows, 1)), n, axis=1)
    if kind == "extremes":
        return rng.choice([lo, hi], (rows, n))
    if kind == "small":
        centre = rng.integers(lo + 8, hi - 8, (rows, 1), endpoint=True)
        return centre + rng.integers(-3, 4, (rows, n))
    extremes = np.array([lo, hi, lo + 1, hi - 1, 0, hi // 2 + 1, lo // 2 - 1, 1 << max(0, fmt.frac)])
    extremes = np.clip(extremes, lo, hi)
    return np.where(rng.random((rows, n)) < 0.3, rng.choice(extremes, (rows, n)), rng.integers(lo, hi + 1, (rows, n)))


@dataclass
class RowJob:
    fields: dict
    expected: np.ndarray  # the whole memory after the operator


def row_job(arch: RowArch, memory, rng: random.Random, *, rows: int, n: int, kind: str = "random", at: int = 0x100,
            spare_beats: int | None = None, dst_at: int | None = None) -> RowJob:
    """Input rows (and parameters) in memory and the fields of the operator; ``expected`` is the memory after it."""
    nbytes = arch.data_width // 8
    row_bytes = n * arch.act_bytes
    layout = Layout(nbytes, rng, at)
    npr = np.random.default_rng(rng.getrandbits(32))

    fields = {"rows": rows, "n": n, "src_stride": row_stride(rng, row_bytes, nbytes, spare_beats),
              "dst_stride": row_stride(rng, row_bytes, nbytes, spare_beats)}
    fields["src"] = layout.take((rows - 1) * fields["src_stride"] + row_bytes)
    x = edge_codes(arch.act, kind, rows, n, npr, inner=arch.spec.input)
    put_rows(memory.data, fields["src"], fields["src_stride"],
             container_bytes(x, arch.act_bytes, arch.act.signed).reshape(rows, row_bytes))
    gamma = beta = None
    if arch.kind == "layernorm":
        spec = arch.spec
        gamma = edge_codes(spec.gamma, "random", 1, n, npr)[0]
        beta = edge_codes(spec.beta, "random", 1, n, npr)[0]
        payload = norm_params(gamma, beta, container=params_bytes(spec.gamma, spec.beta), beat_bytes=nbytes)
        fields["params"] = layout.take(len(payload))
        memory.data[fields["params"]:fields["params"] + len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    fields["dst"] = dst_at if dst_at is not None else layout.take((rows - 1) * fields["dst_stride"] + row_bytes)
    y = golden_rows(arch, x, gamma, beta)
    out = written_format(arch)
    assert y.min() >= out.min_code and y.max() <= out.max_code
    expected = memory.data.copy()
    put_rows(expected, fields["dst"], fields["dst_stride"],
             container_bytes(y, arch.act_bytes, out.signed).reshape(rows, row_bytes))
    return RowJob(fields, expected)


def check_requests(arch: RowArch, job: RowJob, requests):
    """One read and one write request per row (whole rows, in order), and one read of the parameters."""
    nbytes = arch.data_width // 8
    f = job.fields
    beats = row_beats(f["n"] * arch.act_bytes, nbytes)
    want = [("read", 0, f["src"] + r * f["src_stride"], beats) for r in range(f["rows"])]
    want += [("write", 0, f["dst"] + r * f["dst_stride"], beats) for r in range(f["rows"])]
    if arch.kind == "layernorm":
        pair = 2 * params_bytes(arch.spec.gamma, arch.spec.beta)
        want.append(("read", 1, f["params"], row_beats(f["n"] * pair, nbytes)))
    got = [(q.kind, q.client, q.addr, q.beats) for q in requests]
    assert sorted(got) == sorted(want)
    for kind, client in (("read", 0), ("write", 0)):
        assert [g for g in got if g[:2] == (kind, client)] == [w for w in want if w[:2] == (kind, client)]


def desc(arch: RowArch, fields: dict, **kw) -> bytes:
    return descriptors.encode(arch.opcode, fields, **kw)


def different(after, expected) -> str:
    where = np.nonzero(after != expected)[0]
    return f"{len(where)} bytes differ, first at {where[:8]}"


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_rows_random_and_edge_rows_slow_memory(arch):
    """Random and edge rows back to back under a slow memory: DRAM equals the golden, requests as documented."""
    engine = arch.build()
    rng = random.Random(arch.data_width + arch.unit["lanes"] + len(arch.kind))
    memory = fresh_memory(engine, arch.data_width, rng.getrandbits(32), Timing.slow())
    bench = EngineBench(engine, memory)
    lanes, n_max, unit_lanes = arch.lanes, arch.n_max, arch.unit["lanes"]
    shapes = [(1, 1, "random"), (2, n_max, "random"), (3, min(n_max, unit_lanes + 1), "equal"),
              (2, min(n_max, lanes + 1), "extremes"), (2, n_max - 1, "small"), (2, n_max, "outside"),
              (rng.randint(3, 6), rng.randint(2, n_max), "random"), (4, rng.randint(1, n_max), "random")]
    results = []

    async def scenario(ctx):
        for rows, n, kind in shapes:
            job = row_job(arch, memory, rng, rows=rows, n=n, kind=kind)
            op = await bench.operator(ctx, desc(arch, job.fields))
            results.append((job, op, memory.data.copy()))

    bench.simulate(scenario)
    assert bench.problems == []
    for job, op, after in results:
        assert op.error == 0, job.fields
        assert np.array_equal(after, job.expected), (job.fields, different(after, job.expected))
        check_requests(arch, job, op.requests)
        assert op.mem_stall > 0


@pytest.mark.parametrize("arch", [ARCHS[0], ARCHS[1], ARCHS[3]], ids=str)
def test_rows_errors_touch_nothing(arch):
    """Every error path: its code, done ``check_cycles + 1`` cycles after start, no request, memory unchanged;
    a tensor ending exactly at ``2**addr_width`` runs."""
    engine = arch.build()
    rng = random.Random(7)
    memory = fresh_memory(engine, arch.data_width, 11, Timing.slow())
    bench = EngineBench(engine, memory)
    nbytes, n_max = arch.data_width // 8, arch.n_max
    good = row_job(arch, memory, rng, rows=2, n=n_max - 1, spare_beats=1).fields
    bad = [
        (ERROR["BAD_FORMAT"], good, {"fmt": 1}),
        (ERROR["BAD_SIZE"], dict(good, rows=0), {}),
        (ERROR["BAD_SIZE"], dict(good, n=0), {}),
        (ERROR["BAD_SIZE"], dict(good, n=n_max + 1), {}),
        (ERROR["BAD_SIZE"], dict(good, n=(1 << 32) - 1), {}),
        (ERROR["BAD_SIZE"], dict(good, n=0, src=3), {}),  # size before address
        (ERROR["BAD_FORMAT"], dict(good, rows=0, src=3), {"fmt": 2}),  # format before size
        (ERROR["BAD_ADDRESS"], dict(good, src=good["src"] + nbytes // 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=good["dst"] + 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src_stride=good["src_stride"] + 1), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst_stride=good["dst_stride"] - 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=MEMORY - good["dst_stride"]), {}),  # the last row past the end
        (ERROR["BAD_ADDRESS"], dict(good, src=1 << 40), {}),
        (ERROR["BAD_ADDRESS"], dict(good, rows=1 << 20), {}),
    ]
    if arch.kind == "layernorm":
        bad += [(ERROR["BAD_ADDRESS"], dict(good, params=good["params"] + 2), {}),
                (ERROR["BAD_ADDRESS"], dict(good, params=MEMORY - nbytes), {}),  # the pairs reach past the end
                (ERROR["BAD_ADDRESS"], dict(good, params=(1 << 64) - nbytes), {})]
    raw_flags = bytearray(desc(arch, good))
    raw_flags[1] = 0x01
    outcomes = []

    async def scenario(ctx):
        for code, fields, kw in bad:
            before = memory.data.copy()
            op = await bench.operator(ctx, desc(arch, fields, **kw), budget=40)
            outcomes.append((code, fields, before, memory.data.copy(), op))
        before = memory.data.copy()
        op = await bench.operator(ctx, bytes(raw_flags), budget=40)
        outcomes.append((ERROR["BAD_FORMAT"], "flags", before, memory.data.copy(), op))
        # the output ends exactly at the end of the address space: runs
        n = 2 * arch.lanes if 2 * arch.lanes <= n_max else arch.lanes
        job = row_job(arch, memory, rng, rows=2, n=n, spare_beats=0, dst_at=MEMORY - 2 * n * arch.act_bytes)
        op = await bench.operator(ctx, desc(arch, job.fields))
        outcomes.append(("edge", job.fields, job.expected, memory.data.copy(), op))

    bench.simulate(scenario)
    assert bench.problems == []
    check_refused(outcomes[:-1], TensorCheck.latency)
    _, fields, expected, after, op = outcomes[-1]
    assert op.error == 0 and np.array_equal(after, expected), different(after, expected)
    assert max(q.addr + q.beats * nbytes for q in op.requests if q.kind == "write") == MEMORY


@pytest.mark.parametrize("arch", [ARCHS[0], ARCHS[2], ARCHS[3], ARCHS[4]], ids=str)
def test_rows_throughput_stall_and_reset(arch):
    """Instant memory: many rows take about ``rows * ceil(n / min(E, lanes))`` cycles (plus the parameter
    load and the latencies) and mem_stall stays small. A reset in the middle of an operator (slow memory),
    then a clean operator: correct."""
    engine = arch.build()
    spec = engine.spec
    rng = random.Random(3)
    memory = fresh_memory(engine, arch.data_width, 5, Timing.instant())
    bench = EngineBench(engine, memory)
    rows, n = 12, arch.n_max
    runs = {}

    async def scenario(ctx):
        job = row_job(arch, memory, rng, rows=rows, n=n, spare_beats=0)
        runs["fast"] = (job, await bench.operator(ctx, desc(arch, job.fields)), memory.data.copy())
        memory.timing = Timing.slow()
        job = row_job(arch, memory, rng, rows=5, n=n - 1, at=0x8000)
        runs["reset"] = await bench.operator(ctx, desc(arch, job.fields), reset_after=rng.randint(20, 40))
        await bench.idle(ctx, 3)
        job = row_job(arch, memory, rng, rows=3, n=n - 2, at=0x10000)
        runs["clean"] = (job, await bench.operator(ctx, desc(arch, job.fields)), memory.data.copy())

    bench.simulate(scenario)
    assert bench.problems == []
    job, op, after = runs["fast"]
    assert op.error == 0 and np.array_equal(after, job.expected), different(after, job.expected)
    # Per row: its beats on the busier side, or, when the unit's row latency is not hidden, a bank's turn
    # (in, latency, out) shared by its banks.
    beats = max(row_beats(n * arch.act_bytes, arch.data_width // 8), -(-n // spec.lanes))
    pace = max(beats, (2 * beats + engine.unit_latency + 4) / spec.banks)
    params = -(-n // spec.lanes) if arch.kind == "layernorm" else 0
    floor, bound = rows * beats, rows * pace + params + engine.unit_latency + beats + 12
    assert floor <= op.cycles <= bound, (floor, op.cycles, bound)
    assert op.mem_stall <= 6, op.mem_stall
    assert runs["reset"].error is None and runs["reset"].requests  # stopped while it was working
    job, op, after = runs["clean"]
    assert op.error == 0 and np.array_equal(after, job.expected), different(after, job.expected)


# ============================================================================ Regroup alone

@pytest.mark.parametrize("in_lanes,out_lanes", [(2, 8), (8, 3), (1, 4), (4, 1), (3, 3), (5, 2)])
def test_regroup_keeps_rows_and_elements(in_lanes, out_lanes):
    """Random rows through the regrouper under random valid and ready: every output beat but a row's last is
    full, rows keep their elements and order; with both sides always ready it moves min(in, out) elements
    per cycle."""
    dut = Regroup(signed(12), in_lanes=in_lanes, out_lanes=out_lanes)
    rng = random.Random(in_lanes * 10 + out_lanes)
    rows = [[rng.randint(-2048, 2047) for _ in range(rng.choice([1, 2, in_lanes, out_lanes, rng.randint(1, 30)]))]
            for _ in range(40)]
    beats = []  # (elements, last) of the input stream
    for row in rows:
        for start in range(0, len(row), in_lanes):
            beats.append((row[start:start + in_lanes], start + in_lanes >= len(row)))
    got, problems, timing = [], [], {}

    def payload(port, lanes):
        return [port.payload.data[j] for j in range(lanes)]

    async def bench(ctx):
        for phase, (p_valid, p_ready) in (("random", (0.7, 0.6)), ("full", (1.0, 1.0))):
            queue = list(beats)
            out_rows, current, cycle, first = [], [], 0, None
            while len(out_rows) < len(rows):
                offer = queue and rng.random() < p_valid
                ctx.set(dut.inp.valid, int(bool(offer)))
                if offer:
                    elements, last = queue[0]
                    for j, value in enumerate(elements):
                        ctx.set(dut.inp.payload.data[j], value)
                    if in_lanes > 1:
                        ctx.set(dut.inp.payload.count, len(elements))
                    ctx.set(dut.inp.payload.last, int(last))
                ready = rng.random() < p_ready
                ctx.set(dut.out.ready, int(ready))
                if offer and ctx.get(dut.inp.ready):
                    queue.pop(0)
                    first = cycle if first is None else first
                if ready and ctx.get(dut.out.valid):
                    count = ctx.get(dut.out.payload.count) if out_lanes > 1 else 1
                    last = ctx.get(dut.out.payload.last)
                    if count != out_lanes and not last:
                        problems.append(f"cycle {cycle}: a beat of {count} elements not at a row's end")
                    current += [ctx.get(v) for v in payload(dut.out, out_lanes)[:count]]
                    if last:
                        out_rows.append(current)
                        current = []
                await ctx.tick()
                cycle += 1
                if cycle > 20 * len(beats) + 100:
                    problems.append("stuck")
                    break
            got.append(out_rows)
            timing[phase] = cycle - first

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert problems == []
    assert got == [rows, rows]
    out_beats = sum(-(-len(row) // out_lanes) for row in rows)
    in_beats = len(beats)
    assert timing["full"] <= max(in_beats, out_beats) + 3, (timing, in_beats, out_beats)


# ============================================================================ Verilog

@pytest.mark.parametrize("arch", [ARCHS[0], ARCHS[4]], ids=str)
def test_row_engines_pass_lint(tmp_path, arch):
    name = f"vit_rows_{arch.kind}"
    path = tmp_path / f"{name}.v"
    path.write_text(verilog.convert(arch.build(), name=name, emit_src=False))
    assert lint(path, name) == []
