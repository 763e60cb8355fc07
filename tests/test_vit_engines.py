"""The accelerator's element-wise (``ADD``) and patch-gather (``IM2COL``) engines in Amaranth's simulator.

Each engine runs descriptors against the client-level DRAM model of ``tests/vit_memory.py``
(seeded random latency, gaps and back-pressure, or an instant memory). After every
operator the whole memory is compared with the golden: the output rows as
:func:`sim.golden.moevit.fixed.add` or :func:`sim.golden.moevit.reference.patchify` give
them, every other byte (row padding, strides, the rest of DRAM) as it was. Random shapes
include one row, rows not a whole number of beats, patches smaller and larger than a
beat, images narrower than a beat; codes include the format's extremes so that sums
overflow both ways. Every error path must end ``check_cycles + 1`` cycles after
``start`` with its code and no memory request; a reset in the middle of an operator must
leave the engine ready for a clean one; ``mem_stall`` must count with a slow memory and
(almost) not with an instant one; with an instant memory an operator must take about as
many cycles as it moves beats on its busiest side. ``TensorCheck`` (``hw/vit/engine.py``)
is tested alone for its latency and the edges of its bound. Both engines convert to
Verilog that passes the project's lint.
"""

import random
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from vit_memory import EngineBench, Memory, Timing, check_refused

from gen.lint import lint
from hw.arith.fixed import FixedFormat, Overflow
from hw.vit import descriptors
from hw.vit.descriptors import ERROR
from hw.vit.engine import MAX_REQUEST_BEATS, TensorCheck
from hw.vit.im2col import PREP_CYCLES, Im2colEngine
from hw.vit.vector import VectorEngine
from sim.golden.moevit.fixed import add as golden_add
from sim.golden.moevit.reference import patchify

ADDR_WIDTH = 17  # the memory is all of the address space, so "past 2**addr_width" is testable
MEMORY = 1 << ADDR_WIDTH


class Layout:
    """Places tensors one after another in memory, aligned, with random gaps."""

    def __init__(self, align: int, rng: random.Random, start: int = 0x100):
        self.align, self.rng, self.next = align, rng, start

    def take(self, size: int) -> int:
        addr = -(-self.next // self.align) * self.align + self.align * self.rng.randint(0, 2)
        self.next = addr + size
        assert self.next <= MEMORY, "test layout larger than the memory"
        return addr


def fresh_memory(engine, dw: int, seed: int, timing: Timing) -> Memory:
    memory = Memory(MEMORY, data_width=dw, reads=engine.reads, writes=engine.writes, timing=timing, seed=seed)
    memory.data[:] = np.random.default_rng(seed).integers(0, 256, MEMORY, dtype=np.uint8)
    return memory


def container_bytes(codes: np.ndarray, nbytes: int, signed: bool) -> np.ndarray:
    """Codes as little-endian ``nbytes`` containers, sign- or zero-extended."""
    dtype = f"<{'i' if signed else 'u'}{nbytes}"
    return np.frombuffer(np.ascontiguousarray(codes, dtype=np.int64).astype(dtype).tobytes(), dtype=np.uint8)


def put_rows(data: np.ndarray, base: int, stride: int, rows: np.ndarray):
    """Write ``rows`` (2-D uint8) at ``base + r*stride``."""
    for r, row in enumerate(rows):
        data[base + r * stride:base + r * stride + row.size] = row


def row_beats(row_bytes: int, nbytes: int) -> int:
    return -(-row_bytes // nbytes)


def row_stride(rng: random.Random, row_bytes: int, nbytes: int, spare_beats: int | None) -> int:
    """Bytes from row to row: the row's beats and ``spare_beats`` more (0 to 2 at random when None)."""
    extra = rng.randint(0, 2) if spare_beats is None else spare_beats
    return (row_beats(row_bytes, nbytes) + extra) * nbytes


# ============================================================================ TensorCheck

@dataclass(frozen=True)
class Tensor:
    base: int
    rows: int
    stride: int
    row_bytes: int


def tensor_ok(t: Tensor, addr_width: int, align: int) -> bool:
    """The rule of TensorCheck's docstring."""
    return (t.rows >= 1 and t.base % align == 0 and t.stride % align == 0
            and t.base + (t.rows - 1) * t.stride + t.row_bytes <= 1 << addr_width)


def test_tensor_check_latency_and_bound():
    """``ok`` is the rule from ``latency`` cycles after ``start`` (one cycle earlier it is not always), holds
    until the next ``start`` although the inputs change, and the bound is exact: a tensor ending at
    ``2**addr_width`` passes, one byte more fails; misalignment of base or stride, rows 0 fail.
    ``row_bytes`` counts only ``row_bytes_delay`` cycles after ``start`` (random in every other cycle)."""
    aw, align = 16, 16
    top = 1 << aw
    edges = [
        (Tensor(0, 1, 0, top), True), (Tensor(0, 1, 0, top + 1), False),
        (Tensor(0, 4096, 16, 16), True), (Tensor(16, 4096, 16, 16), False),
        (Tensor(top - 16, 1, 0, 16), True), (Tensor(top - 16, 1, 0, 17), False),
        (Tensor(top - 48, 3, 16, 16), True), (Tensor(top - 48, 3, 16, 17), False),
        (Tensor(8, 1, 0, 8), False), (Tensor(0, 2, 8, 8), False), (Tensor(0, 0, 16, 16), False),
        (Tensor(top, 1, 0, 0), True), (Tensor(top + 16, 1, 0, 0), False),
        (Tensor(1 << 63, 1, 0, 16), False), (Tensor(0, (1 << 32) - 1, (1 << 32) - 16, 16), False),
        (Tensor((1 << 64) - 16, 2, 16, 16), False), (Tensor(0, 1, 0, (1 << 32) - 1), False),
    ]
    rng = random.Random(5)
    cases = list(edges)
    for _ in range(40):
        t = Tensor(rng.choice([0, rng.randrange(0, top, 16), rng.randrange(0, top)]), rng.randint(0, 40),
                   rng.choice([0, rng.randrange(0, 2048, 16), rng.randrange(0, 2048)]), rng.randint(0, 3000))
        cases.append((t, tensor_ok(t, aw, align)))
    # alternate the answers, so that reading ok a cycle early would show the previous case's answer
    passing, failing = [c for c in cases if c[1]], [c for c in cases if not c[1]]
    cases = [case for pair in zip(failing, passing) for case in pair] + failing[len(passing):] + passing[len(failing):]
    dut = TensorCheck(addr_width=aw, align=align)
    seen = []

    async def bench(ctx):
        for t, expected in cases:
            assert tensor_ok(t, aw, align) == expected, t
            for name in ("base", "rows", "stride"):
                ctx.set(getattr(dut, name), getattr(t, name))
            ctx.set(dut.row_bytes, rng.getrandbits(32))
            ctx.set(dut.sample, 1)
            await ctx.tick()
            ctx.set(dut.sample, 0)
            for name in ("base", "rows", "stride"):  # sampled at start: later inputs do not count
                ctx.set(getattr(dut, name), rng.getrandbits(len(getattr(dut, name))))
            history = []
            for cycle in range(1, TensorCheck.latency + 4):
                late = cycle == TensorCheck.row_bytes_delay
                ctx.set(dut.row_bytes, t.row_bytes if late else rng.getrandbits(32))
                history.append(ctx.get(dut.ok))  # history[k]: k + 1 cycles after start
                await ctx.tick()
            seen.append((t, expected, history))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    early = 0  # cases whose ok was still wrong one cycle before the latency: the latency is not too long
    for t, expected, history in seen:
        ready = history[TensorCheck.latency - 1:]
        assert ready == [int(expected)] * len(ready), (t, expected, history)
        early += history[TensorCheck.latency - 2] != int(expected)
    assert early > 5


# ============================================================================ ADD

@dataclass(frozen=True)
class VectorArch:
    name: str
    data_width: int
    act: FixedFormat
    act_bytes: int
    overflow: Overflow

    def build(self) -> VectorEngine:
        return VectorEngine(addr_width=ADDR_WIDTH, data_width=self.data_width, act=self.act,
                            act_bytes=self.act_bytes, overflow=self.overflow)

    @property
    def lanes(self) -> int:
        return self.data_width // 8 // self.act_bytes

    def __str__(self):
        return self.name


VECTOR_ARCHS = [
    VectorArch("d64_s8.16x4_saturate", 64, FixedFormat(24, 16, True), 4, Overflow.SATURATE),
    VectorArch("d128_s5.10x2_wrap", 128, FixedFormat(15, 10, True), 2, Overflow.WRAP),
    VectorArch("d256_s8.16x4_wrap", 256, FixedFormat(24, 16, True), 4, Overflow.WRAP),
    VectorArch("d256_u8.8x2_saturate", 256, FixedFormat(16, 8, False), 2, Overflow.SATURATE),
]


def random_codes(act: FixedFormat, shape, rng: np.random.Generator) -> np.ndarray:
    """Codes with many extremes (sums overflow both ways) among uniform ones."""
    extremes = np.array([act.min_code, act.max_code, act.min_code + 1, act.max_code - 1, 0,
                         act.max_code // 2 + 1, act.min_code // 2 - 1])
    extremes = np.clip(extremes, act.min_code, act.max_code)
    uniform = rng.integers(act.min_code, act.max_code + 1, shape)
    return np.where(rng.random(shape) < 0.4, rng.choice(extremes, shape), uniform)


@dataclass
class AddJob:
    fields: dict
    expected: np.ndarray  # the whole memory after the operator


def add_job(arch: VectorArch, memory: Memory, rng: random.Random, *, rows: int, n: int, at: int = 0x100,
            spare_beats: int | None = None, dst_at: int | None = None) -> AddJob:
    """Random x, x2 in memory and the descriptor fields of y = x + x2 (y at ``dst_at`` if given, rows
    ``spare_beats`` beats apart if given); ``expected`` is the memory afterwards."""
    nbytes = arch.data_width // 8
    row_bytes = n * arch.act_bytes
    layout = Layout(nbytes, rng, at)
    npr = np.random.default_rng(rng.getrandbits(32))

    fields = {"rows": rows, "n": n}
    codes = {}
    for name, key in (("src", "src_stride"), ("src2", "src2_stride"), ("dst", "dst_stride")):
        fields[key] = row_stride(rng, row_bytes, nbytes, spare_beats)
        size = (rows - 1) * fields[key] + row_bytes
        fields[name] = dst_at if name == "dst" and dst_at is not None else layout.take(size)
        codes[name] = random_codes(arch.act, (rows, n), npr)
    for name in ("src", "src2"):
        put_rows(memory.data, fields[name], fields[name + "_stride"],
                 container_bytes(codes[name], arch.act_bytes, arch.act.signed).reshape(rows, row_bytes))
    config = SimpleNamespace(format=lambda _: arch.act, overflow=arch.overflow.value)  # what add() reads
    y = golden_add(codes["src"], codes["src2"], config)
    assert y.min() >= arch.act.min_code and y.max() <= arch.act.max_code
    expected = memory.data.copy()
    put_rows(expected, fields["dst"], fields["dst_stride"],
             container_bytes(y, arch.act_bytes, arch.act.signed).reshape(rows, row_bytes))
    return AddJob(fields, expected)


def add_desc(fields: dict, **kw) -> bytes:
    return descriptors.encode("ADD", fields, **kw)


def check_add_requests(arch: VectorArch, job: AddJob, requests):
    nbytes = arch.data_width // 8
    f = job.fields
    beats = row_beats(f["n"] * arch.act_bytes, nbytes)
    want = sorted([("read", 0, f["src"] + r * f["src_stride"], beats) for r in range(f["rows"])]
                  + [("read", 1, f["src2"] + r * f["src2_stride"], beats) for r in range(f["rows"])]
                  + [("write", 0, f["dst"] + r * f["dst_stride"], beats) for r in range(f["rows"])])
    got = sorted((q.kind, q.client, q.addr, q.beats) for q in requests)
    assert got == want
    for kind, client in (("read", 0), ("read", 1), ("write", 0)):  # rows in order
        addrs = [q.addr for q in requests if (q.kind, q.client) == (kind, client)]
        assert addrs == sorted(addrs) or f["rows"] == 1


@pytest.mark.parametrize("arch", VECTOR_ARCHS, ids=str)
def test_add_random_slow_memory_back_to_back(arch):
    """Random shapes back to back (the second reads the first's output), slow memory: DRAM equals the golden."""
    engine = arch.build()
    rng = random.Random(arch.data_width + arch.act_bytes)
    memory = fresh_memory(engine, arch.data_width, rng.getrandbits(32), Timing.slow())
    bench = EngineBench(engine, memory)
    lanes = arch.lanes
    shapes = [(1, 1), (1, lanes), (3, lanes - 1), (2, lanes + 1), (rng.randint(2, 5), rng.randint(1, 4 * lanes + 3)),
              (rng.randint(2, 4), rng.randint(2 * lanes, 5 * lanes))]
    results = []

    async def scenario(ctx):
        for rows, n in shapes:
            job = add_job(arch, memory, rng, rows=rows, n=n)
            op = await bench.operator(ctx, add_desc(job.fields))
            results.append((job, op, memory.data.copy()))
        # a chain: y2 = y1 + x of the last job, where y1 was written just before
        last = results[-1][0].fields
        chained = dict(last, src=last["dst"], src_stride=last["dst_stride"], dst=last["src2"],
                       dst_stride=last["src2_stride"])
        before = memory.data.copy()
        op = await bench.operator(ctx, add_desc(chained))
        results.append((chained, op, memory.data.copy(), before))

    bench.simulate(scenario)
    assert bench.problems == []
    for job, op, after in results[:-1]:
        assert op.error == 0, job.fields
        assert np.array_equal(after, job.expected), (job.fields, np.nonzero(after != job.expected)[0][:8])
        check_add_requests(arch, job, op.requests)
        assert op.mem_stall > 0
    chained, op, after, before = results[-1]
    rows, n, ab, signed = chained["rows"], chained["n"], arch.act_bytes, arch.act.signed

    def read_codes(data, base, stride):
        raw = np.stack([data[base + r * stride:base + (r + 1) * stride][:n * ab] for r in range(rows)])
        return np.frombuffer(raw.tobytes(), dtype=f"<{'i' if signed else 'u'}{ab}").reshape(rows, n).astype(np.int64)

    y1, x = read_codes(before, chained["src"], chained["src_stride"]), read_codes(before, chained["src2"],
                                                                                 chained["src2_stride"])
    config = SimpleNamespace(format=lambda _: arch.act, overflow=arch.overflow.value)
    assert op.error == 0
    assert np.array_equal(read_codes(after, chained["dst"], chained["dst_stride"]), golden_add(y1, x, config))


@pytest.mark.parametrize("arch", VECTOR_ARCHS[:2], ids=str)
def test_add_errors_touch_nothing(arch):
    """Every error path: its code, done ``check_cycles + 1`` cycles after start, no request, memory unchanged;
    the edges of the checks that pass (a tensor ending at ``2**addr_width``) run."""
    engine = arch.build()
    rng = random.Random(7)
    memory = fresh_memory(engine, arch.data_width, 11, Timing.slow())
    bench = EngineBench(engine, memory)
    nbytes, lanes = arch.data_width // 8, arch.lanes
    good = add_job(arch, memory, rng, rows=2, n=lanes + 1, spare_beats=1).fields
    stride = good["src_stride"]
    bad = [
        (ERROR["BAD_FORMAT"], good, {"fmt": 1}),
        (ERROR["BAD_SIZE"], dict(good, rows=0), {}),
        (ERROR["BAD_SIZE"], dict(good, n=0), {}),
        (ERROR["BAD_SIZE"], dict(good, n=MAX_REQUEST_BEATS * lanes + 1), {}),  # a row of 65536 beats
        (ERROR["BAD_SIZE"], dict(good, n=(1 << 32) - 1), {}),  # n * act_bytes beyond 32 bits
        (ERROR["BAD_SIZE"], dict(good, rows=0, src=3), {"fmt": 0}),  # size before address
        (ERROR["BAD_FORMAT"], dict(good, rows=0, src=3), {"fmt": 2}),  # format before size
        (ERROR["BAD_ADDRESS"], dict(good, n=MAX_REQUEST_BEATS * lanes), {}),  # size fine, past the memory
        (ERROR["BAD_ADDRESS"], dict(good, src=good["src"] + nbytes // 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src2=good["src2"] + 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=good["dst"] + nbytes - 1), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src_stride=stride + 1), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src2_stride=stride + nbytes // 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst_stride=stride - 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=MEMORY - good["dst_stride"]), {}),  # the last row past the end
        (ERROR["BAD_ADDRESS"], dict(good, src=1 << 40), {}),
        (ERROR["BAD_ADDRESS"], dict(good, rows=1 << 20), {}),
    ]
    # a flag bit set by hand (encode refuses flags ADD does not take)
    raw_flags = bytearray(add_desc(good))
    raw_flags[1] = 0x80
    outcomes = []

    async def scenario(ctx):
        for code, fields, kw in bad:
            before = memory.data.copy()
            op = await bench.operator(ctx, add_desc(fields, **kw), budget=40)
            outcomes.append((code, fields, before, memory.data.copy(), op))
        before = memory.data.copy()
        op = await bench.operator(ctx, bytes(raw_flags), budget=40)
        outcomes.append((ERROR["BAD_FORMAT"], "flags", before, memory.data.copy(), op))
        # y ends exactly at the end of the address space: runs
        n = 2 * lanes
        job = add_job(arch, memory, rng, rows=2, n=n, spare_beats=0, dst_at=MEMORY - 2 * n * arch.act_bytes)
        op = await bench.operator(ctx, add_desc(job.fields))
        outcomes.append(("edge", job.fields, job.expected, memory.data.copy(), op))

    bench.simulate(scenario)
    assert bench.problems == []
    check_refused(outcomes[:-1], TensorCheck.latency)
    _, fields, expected, after, op = outcomes[-1]
    assert op.error == 0 and np.array_equal(after, expected)
    assert max(q.addr + q.beats * nbytes for q in op.requests) == MEMORY


@pytest.mark.parametrize("arch", [VECTOR_ARCHS[1], VECTOR_ARCHS[3]], ids=str)
def test_add_throughput_stall_and_reset(arch):
    """Instant memory: a large ADD takes its beats plus a few cycles and mem_stall stays tiny. A reset in the
    middle of an operator (slow memory), then a clean operator: correct."""
    engine = arch.build()
    rng = random.Random(3)
    memory = fresh_memory(engine, arch.data_width, 5, Timing.instant())
    bench = EngineBench(engine, memory)
    nbytes, lanes = arch.data_width // 8, arch.lanes
    rows, n = 6, 40 * lanes - 3  # 240 beats of x, x2 and y
    runs = {}

    async def scenario(ctx):
        job = add_job(arch, memory, rng, rows=rows, n=n, spare_beats=0)
        runs["fast"] = (job, await bench.operator(ctx, add_desc(job.fields)), memory.data.copy())
        memory.timing = Timing.slow()
        job = add_job(arch, memory, rng, rows=4, n=3 * lanes + 1, at=0x8000)
        runs["reset"] = await bench.operator(ctx, add_desc(job.fields), reset_after=rng.randint(15, 30))
        await bench.idle(ctx, 3)
        job = add_job(arch, memory, rng, rows=3, n=2 * lanes + 3, at=0x10000)
        runs["clean"] = (job, await bench.operator(ctx, add_desc(job.fields)), memory.data.copy())

    bench.simulate(scenario)
    assert bench.problems == []
    job, op, after = runs["fast"]
    beats = rows * row_beats(n * arch.act_bytes, nbytes)
    assert op.error == 0 and np.array_equal(after, job.expected)
    assert beats <= op.cycles <= beats + 10, (beats, op.cycles)
    assert op.mem_stall <= 5
    assert runs["reset"].error is None and runs["reset"].requests  # stopped while it was working
    job, op, after = runs["clean"]
    assert op.error == 0 and np.array_equal(after, job.expected)


# ============================================================================ IM2COL

@dataclass(frozen=True)
class Im2colArch:
    name: str
    data_width: int
    act_bytes: int

    def build(self) -> Im2colEngine:
        return Im2colEngine(addr_width=ADDR_WIDTH, data_width=self.data_width, act_bytes=self.act_bytes)

    def __str__(self):
        return self.name


IM2COL_ARCHS = [Im2colArch("d64_x2", 64, 2), Im2colArch("d128_x4", 128, 4), Im2colArch("d256_x2", 256, 2)]
CHECK_CYCLES = PREP_CYCLES + TensorCheck.latency


@dataclass
class Im2colJob:
    fields: dict
    expected: np.ndarray


def im2col_job(arch: Im2colArch, memory: Memory, rng: random.Random, *, channels: int, patch: int, grid: tuple,
               at: int = 0x100, spare_beats: int | None = None, dst_at: int | None = None) -> Im2colJob:
    """A random image in memory and the fields of its IM2COL (patch rows at ``dst_at`` if given);
    ``expected`` is the memory afterwards."""
    nbytes = arch.data_width // 8
    height, width = grid[0] * patch, grid[1] * patch
    layout = Layout(nbytes, rng, at)
    extra = (lambda: rng.randint(0, 2)) if spare_beats is None else (lambda: spare_beats)
    src_stride = (row_beats(width, nbytes) + extra()) * nbytes
    row_bytes = channels * patch * patch * arch.act_bytes
    dst_stride = (row_beats(row_bytes, nbytes) + extra()) * nbytes
    src = layout.take((channels * height - 1) * src_stride + width)
    dst = layout.take((grid[0] * grid[1] - 1) * dst_stride + row_bytes) if dst_at is None else dst_at
    image = np.random.default_rng(rng.getrandbits(32)).integers(0, 256, (1, channels, height, width))
    image[0, 0, 0, :2] = [0, 255]
    put_rows(memory.data, src, src_stride, image.reshape(channels * height, width).astype(np.uint8))
    expected = memory.data.copy()
    patches = patchify(image, patch)[0]
    put_rows(expected, dst, dst_stride,
             container_bytes(patches, arch.act_bytes, False).reshape(patches.shape[0], row_bytes))
    fields = {"channels": channels, "height": height, "width": width, "src": src, "dst": dst,
              "src_stride": src_stride, "dst_stride": dst_stride, "patch": patch}
    return Im2colJob(fields, expected)


def check_im2col_requests(arch: Im2colArch, fields: dict, requests):
    """One read per image row (whole beats), one write per segment (its beats or one beat), in image order."""
    nbytes = arch.data_width // 8
    c, h, w, p = fields["channels"], fields["height"], fields["width"], fields["patch"]
    reads = [(q.addr, q.beats) for q in requests if q.kind == "read"]
    assert reads == [(fields["src"] + r * fields["src_stride"], row_beats(w, nbytes)) for r in range(c * h)]
    seg = p * arch.act_bytes
    want = []
    for ch in range(c):
        for y in range(h):
            for gx in range(w // p):
                m = (y // p) * (w // p) + gx
                k = (ch * p + y % p) * p
                addr = fields["dst"] + m * fields["dst_stride"] + k * arch.act_bytes
                want.append((addr - addr % nbytes, max(1, seg // nbytes)))
    assert [(q.addr, q.beats) for q in requests if q.kind == "write"] == want


def write_beats(arch: Im2colArch, fields: dict) -> int:
    nbytes = arch.data_width // 8
    segments = fields["channels"] * fields["height"] * fields["width"] // fields["patch"]
    return segments * max(1, fields["patch"] * arch.act_bytes // nbytes)


@pytest.mark.parametrize("arch", IM2COL_ARCHS, ids=str)
def test_im2col_random_slow_memory_back_to_back(arch):
    """Patch sizes below, at and above a beat, images narrower than a beat and not whole beats, 1 to 3
    channels, back to back under a slow memory: DRAM equals patchify, requests as documented."""
    engine = arch.build()
    rng = random.Random(arch.data_width * 3 + arch.act_bytes)
    memory = fresh_memory(engine, arch.data_width, rng.getrandbits(32), Timing.slow())
    bench = EngineBench(engine, memory)
    nbytes = arch.data_width // 8
    shapes = [(1, 1, (2, 3)), (3, 2, (2, 3)), (2, 4, (1, 3)), (1, nbytes // arch.act_bytes, (2, 1)),
              (2, 2 * nbytes // arch.act_bytes, (1, 2)), (3, 8, (2, 1)), (1, 16, (1, 2)),
              (rng.randint(1, 3), rng.choice([1, 2, 4]), (rng.randint(1, 3), rng.randint(1, 5)))]
    results = []

    async def scenario(ctx):
        for channels, patch, grid in shapes:
            job = im2col_job(arch, memory, rng, channels=channels, patch=patch, grid=grid)
            op = await bench.operator(ctx, descriptors.encode("IM2COL", job.fields))
            results.append((job, op, memory.data.copy()))

    bench.simulate(scenario)
    assert bench.problems == []
    for job, op, after in results:
        assert op.error == 0, job.fields
        assert np.array_equal(after, job.expected), (job.fields, np.nonzero(after != job.expected)[0][:8])
        check_im2col_requests(arch, job.fields, op.requests)
        assert op.mem_stall > 0


@pytest.mark.parametrize("arch", IM2COL_ARCHS[:2], ids=str)
def test_im2col_errors_touch_nothing(arch):
    """Every error path: its code, done ``check_cycles + 1`` cycles after start, no request, memory unchanged;
    a patch matrix ending exactly at ``2**addr_width`` runs."""
    engine = arch.build()
    rng = random.Random(9)
    memory = fresh_memory(engine, arch.data_width, 13, Timing.slow())
    bench = EngineBench(engine, memory)
    nbytes = arch.data_width // 8
    good = im2col_job(arch, memory, rng, channels=2, patch=2, grid=(2, 2), spare_beats=1).fields
    big = 1 << 16
    bad = [
        (ERROR["BAD_FORMAT"], good, {"fmt": 3}),
        (ERROR["BAD_SIZE"], dict(good, patch=0), {}),
        (ERROR["BAD_SIZE"], dict(good, patch=3, height=6, width=6), {}),
        (ERROR["BAD_SIZE"], dict(good, patch=6, height=6, width=6), {}),
        (ERROR["BAD_SIZE"], dict(good, height=good["height"] + 1), {}),
        (ERROR["BAD_SIZE"], dict(good, width=good["width"] + 1), {}),
        (ERROR["BAD_SIZE"], dict(good, channels=0), {}),
        (ERROR["BAD_SIZE"], dict(good, height=0), {}),
        (ERROR["BAD_SIZE"], dict(good, width=0), {}),
        (ERROR["BAD_SIZE"], dict(good, channels=big, height=big, patch=1), {}),  # channels*height = 2**32
        (ERROR["BAD_SIZE"], dict(good, channels=1, height=big, width=big, patch=1), {}),  # 2**32 patches
        (ERROR["BAD_SIZE"], dict(good, channels=8 // arch.act_bytes, height=1 << 15, width=1 << 15,
                                 patch=1 << 15), {}),  # patch row of 2**32 bytes
        (ERROR["BAD_SIZE"], dict(good, channels=1, height=1, width=(MAX_REQUEST_BEATS + 1) * nbytes, patch=1),
         {}),  # image row of 65536 beats
        (ERROR["BAD_SIZE"], dict(good, patch=1 << 31), {}),
        (ERROR["BAD_ADDRESS"], dict(good, channels=1, height=1, width=MAX_REQUEST_BEATS * nbytes, patch=1), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src=good["src"] + 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=good["dst"] + nbytes // 2), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src_stride=good["src_stride"] + 1), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst_stride=good["dst_stride"] - 4), {}),
        (ERROR["BAD_ADDRESS"], dict(good, dst=MEMORY - good["dst_stride"]), {}),
        (ERROR["BAD_ADDRESS"], dict(good, src=(1 << 64) - nbytes), {}),
    ]
    raw_flags = bytearray(descriptors.encode("IM2COL", good))
    raw_flags[1] = 0x01
    outcomes = []

    async def scenario(ctx):
        for code, fields, kw in bad:
            before = memory.data.copy()
            op = await bench.operator(ctx, descriptors.encode("IM2COL", fields, **kw), budget=40)
            outcomes.append((code, fields, before, memory.data.copy(), op))
        before = memory.data.copy()
        op = await bench.operator(ctx, bytes(raw_flags), budget=40)
        outcomes.append((ERROR["BAD_FORMAT"], "flags", before, memory.data.copy(), op))
        # the patch matrix ends exactly at the end of the address space: runs
        job = im2col_job(arch, memory, rng, channels=1, patch=4, grid=(2, 2), spare_beats=0,
                         dst_at=MEMORY - 4 * 16 * arch.act_bytes)
        op = await bench.operator(ctx, descriptors.encode("IM2COL", job.fields))
        outcomes.append(("edge", job.fields, job.expected, memory.data.copy(), op))

    bench.simulate(scenario)
    assert bench.problems == []
    check_refused(outcomes[:-1], CHECK_CYCLES)
    _, fields, expected, after, op = outcomes[-1]
    assert op.error == 0 and np.array_equal(after, expected)
    assert max(q.addr + q.beats * nbytes for q in op.requests if q.kind == "write") == MEMORY


@pytest.mark.parametrize("arch", IM2COL_ARCHS, ids=str)
def test_im2col_throughput_stall_and_reset(arch):
    """Instant memory: the write side moves a beat every cycle (cycles ~ write beats) for small segments
    (several strobed beats per input beat) and whole-beat segments, mem_stall stays tiny. A reset in the
    middle of an operator, then a clean one: correct."""
    engine = arch.build()
    rng = random.Random(21)
    memory = fresh_memory(engine, arch.data_width, 17, Timing.instant())
    bench = EngineBench(engine, memory)
    nbytes = arch.data_width // 8
    fast = [dict(channels=3, patch=2, grid=(2, 2 * nbytes)),  # small segments: nbytes/2 write beats per read beat
            dict(channels=2, patch=2 * nbytes // arch.act_bytes, grid=(1, 2))]  # two beats per segment
    runs = {}

    async def scenario(ctx):
        for i, shape in enumerate(fast):
            job = im2col_job(arch, memory, rng, spare_beats=0, **shape)
            runs[i] = (job, await bench.operator(ctx, descriptors.encode("IM2COL", job.fields)), memory.data.copy())
        memory.timing = Timing.slow()
        job = im2col_job(arch, memory, rng, channels=2, patch=4, grid=(2, 3), at=0x8000)
        runs["reset"] = await bench.operator(ctx, descriptors.encode("IM2COL", job.fields),
                                             reset_after=rng.randint(20, 40))
        job = im2col_job(arch, memory, rng, channels=3, patch=2, grid=(2, 2), at=0x10000)
        runs["clean"] = (job, await bench.operator(ctx, descriptors.encode("IM2COL", job.fields)),
                         memory.data.copy())

    bench.simulate(scenario)
    assert bench.problems == []
    for i in range(len(fast)):
        job, op, after = runs[i]
        beats = write_beats(arch, job.fields)
        assert op.error == 0 and np.array_equal(after, job.expected)
        assert beats <= op.cycles <= beats + CHECK_CYCLES + 6, (job.fields, beats, op.cycles)
        assert op.mem_stall <= 5
    assert runs["reset"].error is None and runs["reset"].requests
    job, op, after = runs["clean"]
    assert op.error == 0 and np.array_equal(after, job.expected)


# ============================================================================ Verilog

@pytest.mark.parametrize("name, build", [
    ("vit_vector", lambda: VECTOR_ARCHS[1].build()),
    ("vit_im2col", lambda: IM2COL_ARCHS[1].build()),
])
def test_engines_pass_lint(tmp_path, name, build):
    path = tmp_path / f"{name}.v"
    path.write_text(verilog.convert(build(), name=name, emit_src=False))
    assert lint(path, name) == []
