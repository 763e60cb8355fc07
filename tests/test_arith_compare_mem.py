"""Comparisons that fold when the shape decides them (``hw/arith/compare.py``) and one-word memories
(``hw/mem/one_word.py``): the shapes of config-dependent edge cases that once made lint fail."""

import itertools

import pytest
from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.lib import memory
from amaranth.sim import Simulator

from hw.arith import compare
from hw.mem import Buffer, Skid, address_shape, one_word_memory

RULES = {"below": lambda x, b: x < b, "above": lambda x, b: x > b, "at_least": lambda x, b: x >= b,
         "at_most": lambda x, b: x <= b}


@pytest.mark.parametrize("shape", [unsigned(1), unsigned(3), signed(2), signed(4)], ids=str)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_comparison_folds_exactly_when_the_shape_decides_it(shape, rule):
    """Folded to a constant iff every value of the shape gives the same answer, and then that answer;
    otherwise the plain comparison, which an exhaustive simulation checks against Python's."""
    lo, hi = compare.value_range(Signal(shape))
    for bound in range(lo - 2, hi + 3):
        for as_const in (False, True):
            x = Signal(shape)
            given = Const(bound, signed(8)) if as_const else bound
            got = getattr(compare, rule)(x, given)
            answers = {RULES[rule](value, bound) for value in range(lo, hi + 1)}
            if isinstance(got, Const):
                assert len(answers) == 1 and got.value == int(answers.pop()), (rule, bound)
                continue
            assert len(answers) == 2, (rule, bound)  # a constant comparison must have folded
            outcomes = _evaluate(x, got, range(lo, hi + 1))
            assert outcomes == [int(RULES[rule](value, bound)) for value in range(lo, hi + 1)]


def _evaluate(x, expression, values) -> list[int]:
    m = Module()
    y = Signal()
    m.d.comb += y.eq(expression)
    seen = []

    async def bench(ctx):
        for value in values:
            ctx.set(x, value)
            seen.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_address_shapes_never_have_zero_bits():
    assert [len(Signal(address_shape(depth))) for depth in (1, 2, 3, 4, 5, 16, 17)] == [1, 1, 2, 2, 3, 4, 5]


@pytest.mark.parametrize("read_domain", ["comb", "sync"])
def test_one_word_memory_behaves_like_a_lib_memory_of_one_word(read_domain):
    """Random writes and reads (read enable toggling): the one-word memory and a two-word ``lib.memory``
    used at address 0 give the same read data every cycle."""
    import random

    m = Module()
    write, read = one_word_memory(m, "one", unsigned(6), read_domain=read_domain)
    m.submodules.ref = ref = memory.Memory(shape=unsigned(6), depth=2, init=[])
    ref_write, ref_read = ref.write_port(), ref.read_port(domain=read_domain)
    w_en, w_data, r_en = Signal(), Signal(6), Signal(init=1)
    m.d.comb += [write.en.eq(w_en), write.data.eq(w_data), ref_write.en.eq(w_en), ref_write.data.eq(w_data),
                 ref_write.addr.eq(0), ref_read.addr.eq(0), write.addr.eq(0), read.addr.eq(0)]
    if read_domain == "sync":
        m.d.comb += [read.en.eq(r_en), ref_read.en.eq(r_en)]
    rng = random.Random(3)
    pairs = []

    async def bench(ctx):
        for _ in range(60):
            ctx.set(w_en, rng.random() < 0.5)
            ctx.set(w_data, rng.randrange(64))
            ctx.set(r_en, rng.random() < 0.7)
            await ctx.tick()
            pairs.append((ctx.get(read.data), ctx.get(ref_read.data)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert all(ours == theirs for ours, theirs in pairs) and len({theirs for _, theirs in pairs}) > 5


def test_a_one_word_buffer_stores_and_reads_back():
    buffer = Buffer(8, 1)
    assert len(buffer.w_addr) == 1 and len(buffer.r_addr) == 1
    got = []

    async def bench(ctx):
        for value, read in itertools.product((0x5A, 0xC3), (0, 1)):
            ctx.set(buffer.w_en, 1)
            ctx.set(buffer.w_data, value)
            await ctx.tick()
            ctx.set(buffer.w_en, 0)
            ctx.set(buffer.r_en, read)
            await ctx.tick()
            got.append(ctx.get(buffer.r_data))
            ctx.set(buffer.r_en, 0)

    sim = Simulator(buffer)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [0, 0x5A, 0x5A, 0xC3]  # the read register loads only with r_en


@pytest.mark.parametrize("pattern", ["random", "always", "stall_bursts"])
def test_a_skid_passes_every_beat_in_order_with_a_registered_ready(pattern):
    """Random producer and consumer: every beat arrives once and in order; ``i.ready`` never follows
    ``o.ready`` in the same cycle (it is a register); with both sides always willing, one beat per cycle."""
    import random

    skid = Skid(unsigned(12))
    rng = random.Random(pattern)
    beats = [rng.getrandbits(12) for _ in range(300)]
    got, readies = [], []
    cycles = 0

    def willing(cycle):
        if pattern == "always":
            return 1
        if pattern == "stall_bursts":
            return int(cycle % 7 not in (3, 4, 5))
        return rng.getrandbits(1)

    async def bench(ctx):
        nonlocal cycles
        sent = 0
        cycle = 0
        while len(got) < len(beats):
            assert cycle < 3000, "the skid stopped moving"
            offer = sent < len(beats) and (pattern == "always" or rng.random() < 0.7)
            ctx.set(skid.i.valid, offer)
            ctx.set(skid.i.payload, beats[sent] if offer else 0)
            ready_before = ctx.get(skid.i.ready)
            ctx.set(skid.o.ready, willing(cycle))
            readies.append((ready_before, ctx.get(skid.i.ready)))
            if offer and ctx.get(skid.i.ready):
                sent += 1
            if ctx.get(skid.o.valid) and ctx.get(skid.o.ready):
                got.append(ctx.get(skid.o.payload))
            await ctx.tick()
            cycle += 1
        cycles = cycle

    sim = Simulator(skid)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == beats
    assert all(before == after for before, after in readies)  # o.ready does not reach i.ready combinationally
    if pattern == "always":
        assert cycles == len(beats) + 1  # one cycle of latency, then a beat per cycle
