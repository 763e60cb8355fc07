"""Radix-4 Booth recoding and carry-save compressors (``hw/arith``) in Amaranth's simulator.

Every pair of 4-bit and of 6-bit operands, signed and unsigned, goes through
Booth partial products and a carry-save tree; the pair's sum must equal the
Python product modulo ``2**width`` (the width of the exact product, and a
narrower one where bits are dropped). The compressors are checked exhaustively
over small vectors against Python integer addition.
"""

import itertools
import random

import pytest
from amaranth.hdl import Module, Shape, Signal
from amaranth.sim import Simulator

from hw.arith.booth import BoothPartialProducts, booth_digit_count, booth_digits
from hw.arith.csa import CarrySaveTree, compress_3_2, compress_4_2
from hw.arith.widths import operand_range


def _run(module, bench):
    sim = Simulator(module)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [4, 5, 6, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_python_booth_digits_rebuild_every_value(width, signed):
    lo, hi = operand_range(width, signed)
    count = booth_digit_count(width, signed)
    assert count == ((width + 1) // 2 if signed else (width + 2) // 2)
    for value in range(lo, hi + 1):
        digits = booth_digits(value, width, signed)
        assert len(digits) == count and set(digits) <= {-2, -1, 0, 1, 2}
        assert sum(d * 4 ** i for i, d in enumerate(digits)) == value


def test_unsigned_top_bit_needs_the_extra_digit():
    assert booth_digits(15, 4, signed=False) == [-1, 0, 1]
    assert booth_digits(-8, 4, signed=True) == [0, -2]
    assert booth_digits(7, 4, signed=True) == [-1, 2]


@pytest.mark.parametrize("width", [4, 6])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [False, True], ids=["exact", "wrapped"])
def test_booth_products_through_a_tree_are_exact(width, signed, narrow):
    """Every operand pair: terms -> carry-save tree -> one add equals a*b mod 2**out."""
    shape = Shape(width, signed)
    out = 2 * width - (3 if narrow else 0)  # narrow: the top product bits wrap away
    m = Module()
    m.submodules.pp = pp = BoothPartialProducts(shape, shape, out)
    m.submodules.tree = tree = CarrySaveTree(pp.digit_count + 1, out)
    for i in range(pp.digit_count + 1):
        m.d.comb += tree.terms[i].eq(pp.terms[i])
    lo, hi = operand_range(width, signed)
    mask = (1 << out) - 1

    async def bench(ctx):
        for a, b in itertools.product(range(lo, hi + 1), repeat=2):
            ctx.set(pp.multiplicand, a)
            ctx.set(pp.multiplier, b)
            terms = [ctx.get(t) for t in pp.terms]
            assert sum(terms) & mask == (a * b) & mask, (a, b, terms)
            assert (ctx.get(tree.sum) + ctx.get(tree.carry)) & mask == (a * b) & mask, (a, b)

    _run(m, bench)


@pytest.mark.parametrize("multiplicand,multiplier", [((6, False), (4, True)), ((4, True), (6, False)),
                                                     ((5, True), (3, True)), ((3, False), (5, False))],
                         ids=["u6xs4", "s4xu6", "s5xs3", "u3xu5"])
def test_booth_products_of_two_shapes_are_exact(multiplicand, multiplier):
    """Two operand formats (``mac: opt1`` with operand_a and operand_b): every pair, exact product."""
    m_shape, r_shape = Shape(*multiplicand), Shape(*multiplier)
    out = multiplicand[0] + multiplier[0] + 1  # room for the sign of a mixed product
    m = Module()
    m.submodules.pp = pp = BoothPartialProducts(m_shape, r_shape, out)
    m.submodules.tree = tree = CarrySaveTree(pp.digit_count + 1, out)
    for i in range(pp.digit_count + 1):
        m.d.comb += tree.terms[i].eq(pp.terms[i])
    mask = (1 << out) - 1

    async def bench(ctx):
        for a in range(operand_range(*multiplicand)[0], operand_range(*multiplicand)[1] + 1):
            for b in range(operand_range(*multiplier)[0], operand_range(*multiplier)[1] + 1):
                ctx.set(pp.multiplicand, a)
                ctx.set(pp.multiplier, b)
                assert (ctx.get(tree.sum) + ctx.get(tree.carry)) & mask == (a * b) & mask, (a, b)

    _run(m, bench)


def test_compressors_exhaustive_over_3_bit_vectors():
    width = 3
    m = Module()
    inputs = [Signal(width, name=f"in{n}") for n in range(4)]
    s3, c3 = compress_3_2(m, *inputs[:3], width, "three")
    s4, c4 = compress_4_2(m, *inputs, width, "four")

    async def bench(ctx):
        for values in itertools.product(range(1 << width), repeat=4):
            for signal, value in zip(inputs, values):
                ctx.set(signal, value)
            assert (ctx.get(s3) + ctx.get(c3)) % 8 == sum(values[:3]) % 8
            assert ctx.get(s3) == values[0] ^ values[1] ^ values[2]  # no carry moved sideways
            assert (ctx.get(s4) + ctx.get(c4)) % 8 == sum(values) % 8

    _run(m, bench)


@pytest.mark.parametrize("terms", [1, 2, 3, 5, 7, 9])
def test_tree_of_any_size_keeps_the_total(terms):
    width = 6
    m = Module()
    m.submodules.tree = tree = CarrySaveTree(terms, width)
    rng = random.Random(terms)

    async def bench(ctx):
        for _ in range(300):
            values = [rng.randrange(1 << width) for _ in range(terms)]
            for n, value in enumerate(values):
                ctx.set(tree.terms[n], value)
            assert (ctx.get(tree.sum) + ctx.get(tree.carry)) % (1 << width) == sum(values) % (1 << width)

    _run(m, bench)
    assert CarrySaveTree.levels(2) == 0 and CarrySaveTree.levels(4) == 1 and CarrySaveTree.levels(7) == 2


# ---------------------------------------------------------------- CompressedMac's split accumulation

@pytest.mark.parametrize("depth, a, b, width, split", [
    (1, (8, True), (8, True), 24, (16, 4)),     # systolic opt1 at the paper's size
    (2, (8, True), (8, True), 28, None),        # a cube: never split (its guard bits take the width back)
    (1, (4, True), (4, True), 14, (8, 4)),      # small enough for every operand pair
    (1, (7, False), (10, True), 30, (18, 4)),   # two formats (A unsigned 7-bit, B signed 10-bit)
    (1, (8, True), (8, True), 20, None),        # no bits left above the tree: not split
], ids=["s8_d1_w24", "s8_d2_w28_unsplit", "s4_d1_w14", "u7xs10_w30", "s8_w20_unsplit"])
def test_compressed_mac_split_keeps_the_total_and_a_zero_carry_above_the_tree(depth, a, b, width, split):
    """``sum + carry == sum(a*b) + addends`` mod ``2**width`` for edge and random operands and
    addends of any width, split or not; split, the carry has no bit above ``L`` and, fed back as a
    running sum of Gaussian products, ``sum``'s bits above ``L`` change only when the low part wraps."""
    from hw.tpe.mac import CompressedMac, split_widths

    a_shape, b_shape = Shape(*a), Shape(*b)
    assert split_widths(depth, a_shape, b_shape, width) == split
    mac = CompressedMac(depth, a_shape, width, 2, b_shape=b_shape)
    assert mac.split == split
    mask = (1 << width) - 1
    (a_lo, a_hi), (b_lo, b_hi) = operand_range(*a), operand_range(*b)
    rng = random.Random(depth * 1000 + width)
    cases = [([a_lo] * depth, [b_lo] * depth), ([a_hi] * depth, [b_lo] * depth), ([a_lo] * depth, [b_hi] * depth),
             ([0] * depth, [b_lo] * depth), ([-1 if a[1] else a_hi] * depth, [b_hi] * depth)]
    if a == b == (4, True):
        cases += [([x] * depth, [y] * depth) for x, y in itertools.product(range(a_lo, a_hi + 1), repeat=2)]
    cases += [([rng.randint(a_lo, a_hi) for _ in range(depth)], [rng.randint(b_lo, b_hi) for _ in range(depth)])
              for _ in range(200)]
    addends = [(0, 0), (mask, mask), (mask, 1), (1 << (width - 1), 1 << (width - 1))]

    async def bench(ctx):
        for n, (xs, ys) in enumerate(cases):
            pair = addends[n % len(addends)] if n < 2 * len(addends) else (rng.getrandbits(width),
                                                                             rng.getrandbits(width))
            for s in range(depth):
                ctx.set(mac.a[s], xs[s])
                ctx.set(mac.b[s], ys[s])
            ctx.set(mac.addends[0], pair[0])
            ctx.set(mac.addends[1], pair[1])
            expected = (sum(x * y for x, y in zip(xs, ys)) + sum(pair)) & mask
            assert (ctx.get(mac.sum) + ctx.get(mac.carry)) & mask == expected, (xs, ys, pair)
            if split:
                assert ctx.get(mac.carry) >> split[0] == 0
        if not split:
            return
        # Fed back: a running sum of Gaussian products, as an accumulator would hold it.
        low = split[0]
        held, total, moves = (0, 0), 0, 0
        gauss = random.Random(7)
        for _ in range(300):
            xs = [max(a_lo, min(a_hi, round(gauss.gauss(0, 30)))) for _ in range(depth)]
            ys = [max(b_lo, min(b_hi, round(gauss.gauss(0, 30)))) for _ in range(depth)]
            for s in range(depth):
                ctx.set(mac.a[s], xs[s])
                ctx.set(mac.b[s], ys[s])
            ctx.set(mac.addends[0], held[0])
            ctx.set(mac.addends[1], held[1])
            new = ctx.get(mac.sum), ctx.get(mac.carry)
            total = (total + sum(x * y for x, y in zip(xs, ys))) & mask
            assert (new[0] + new[1]) & mask == total
            moves += bin((new[0] ^ held[0]) >> low).count("1") + bin((new[1] ^ held[1]) >> low).count("1")
            held = new
        # Unsplit (the whole width in the tree), s8_d1_w24 moved 496 times in these 300 steps, split 104
        # with each term's sign at bit L - 1, 8 with narrowed terms (their constant moved where the low
        # part wraps); s4_d1_w14 moves 85.
        assert moves < 300 * (width - low) / 8, moves

    _run(mac, bench)


@pytest.mark.parametrize("a, b, width", [((8, True), (8, True), 24), ((4, True), (4, True), 14),
                                         ((7, False), (10, True), 30)], ids=["s8_w24", "s4_w14", "u7xs10_w30"])
def test_compressed_mac_deferred_top_is_exact(a, b, width):
    """Deferred: ``sum + carry + (top_sum + top_carry - constants) * 2**L`` is exactly ``a*b`` plus the
    ``L``-bit addends (no modulo: the caller adds the top to its resolved upper bits a cycle later), for
    every 4-bit pair, edge operands and addends (all ones), and random ones."""
    from hw.tpe.mac import CompressedMac

    a_shape, b_shape = Shape(*a), Shape(*b)
    mac = CompressedMac(1, a_shape, width, 2, b_shape=b_shape, deferred=True)
    low, guard = mac.split
    assert len(mac.sum) == len(mac.carry) == len(mac.addends[0]) == low and len(mac.top_sum) == guard
    mask = (1 << low) - 1
    (a_lo, a_hi), (b_lo, b_hi) = operand_range(*a), operand_range(*b)
    rng = random.Random(width)
    cases = [(x, y) for x in (a_lo, a_hi, 0, -1 if a[1] else 1) for y in (b_lo, b_hi, 0)]
    if a == b == (4, True):
        cases += list(itertools.product(range(a_lo, a_hi + 1), repeat=2))
    cases += [(rng.randint(a_lo, a_hi), rng.randint(b_lo, b_hi)) for _ in range(200)]
    addends = [(0, 0), (mask, mask), (mask, 0), (1 << (low - 1), 1 << (low - 1))]

    async def bench(ctx):
        for n, (x, y) in enumerate(cases):
            pair = addends[n % len(addends)] if n < 3 * len(addends) else (rng.getrandbits(low), rng.getrandbits(low))
            ctx.set(mac.a[0], x)
            ctx.set(mac.b[0], y)
            ctx.set(mac.addends[0], pair[0])
            ctx.set(mac.addends[1], pair[1])
            top = ctx.get(mac.top_sum) + ctx.get(mac.top_carry) - mac.constants
            assert ctx.get(mac.sum) + ctx.get(mac.carry) + (top << low) == x * y + sum(pair), (x, y, pair)

    _run(mac, bench)
    with pytest.raises(ValueError, match="deferred: a 20-bit tree of 1 product.*does not split"):
        CompressedMac(1, Shape(8, True), 20, 2, deferred=True)


def test_compressed_mac_worked_example_of_the_docs():
    """docs/tpe.md's opt1 worked example, bit by bit: signed 4-bit, 9 bits, not split;
    A = -5, B = 6, then A = 6, B = -7; narrowed partial products with the constant -80."""
    from hw.tpe.mac import CompressedMac

    mac = CompressedMac(1, Shape(4, True), 9, 2)
    assert mac.split is None and mac._offset(9) == 2 ** 4 + 2 ** 6

    async def bench(ctx):
        ctx.set(mac.a[0], -5)
        ctx.set(mac.b[0], 6)
        ctx.set(mac.addends[0], 0)
        ctx.set(mac.addends[1], 0)
        first = ctx.get(mac.sum), ctx.get(mac.carry)
        assert first == (0b110000010, 0b001100000)
        ctx.set(mac.a[0], 6)
        ctx.set(mac.b[0], -7)
        ctx.set(mac.addends[0], first[0])
        ctx.set(mac.addends[1], first[1])
        assert (ctx.get(mac.sum), ctx.get(mac.carry)) == (0b000111000, 0b110000000)

    _run(mac, bench)
