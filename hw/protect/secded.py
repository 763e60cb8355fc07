"""Extended Hamming SECDED code for any data width >= 2.

Single error correction, double error detection. A word of ``k`` data bits gets
``r`` Hamming check bits, the smallest ``r`` with ``2**r >= k + r + 1``, and one
overall parity bit: ``code_width(k) = k + r + 1`` (8 -> 13, 16 -> 22, 32 -> 39,
64 -> 72).

Code word layout (systematic, so the data bits can be read without decoding):

* bits ``[0, k)``: the data, unchanged;
* bits ``[k, k + r)``: check bit ``j`` = XOR of the data bits whose Hamming
  position has bit ``j`` set;
* bit ``k + r``: overall parity, XOR of all other code bits.

Hamming positions (1-based, the classic numbering): check bit ``j`` sits at
``2**j``; data bits take the other positions ``3, 5, 6, 7, 9, ...`` in order. So
the positions of all ``k + r`` bits are exactly ``1 .. k + r``, and the
syndrome of a single flipped bit is its position.

Decoding: ``s`` = recomputed check bits XOR stored check bits, ``p`` = XOR of all
code bits (0 for a valid word).

| ``p`` | ``s`` | meaning |
|---|---|---|
| 0 | 0 | no error |
| 1 | 0 | the overall parity bit flipped: single, data intact |
| 1 | 1 .. k+r | one bit flipped at position ``s``: single, flip it back |
| 1 | > k+r | not a single error: uncorrectable (three or more flips) |
| 0 | != 0 | two bits flipped: uncorrectable, data passed through unchanged |

The plain-Python functions :func:`encode` and :func:`decode` compute the same
code; models and tests call them.
"""

from functools import lru_cache
from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

MIN_DATA_WIDTH = 2


def _check_width(data_width: int) -> int:
    if not isinstance(data_width, int) or data_width < MIN_DATA_WIDTH:
        raise ValueError(f"data_width: {data_width!r} must be an integer >= {MIN_DATA_WIDTH}")
    return data_width


def check_bits(data_width: int) -> int:
    """Hamming check bits ``r`` for ``data_width`` data bits (without the overall parity bit)."""
    _check_width(data_width)
    r = 1
    while (1 << r) < data_width + r + 1:
        r += 1
    return r


def code_width(data_width: int) -> int:
    """Bits of a code word: data, Hamming check bits and the overall parity bit."""
    return data_width + check_bits(data_width) + 1


@lru_cache(maxsize=None)
def data_positions(data_width: int) -> tuple[int, ...]:
    """Hamming position of every data bit: the positions from 3 up that are not powers of two."""
    positions = []
    position = 3
    while len(positions) < _check_width(data_width):
        if position & (position - 1):
            positions.append(position)
        position += 1
    return tuple(positions)


@lru_cache(maxsize=None)
def _check_masks(data_width: int) -> tuple[int, ...]:
    """Per check bit ``j``: the mask of data bits it covers."""
    positions = data_positions(data_width)
    return tuple(sum(1 << i for i, p in enumerate(positions) if p >> j & 1)
                 for j in range(check_bits(data_width)))


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


def encode(data: int, data_width: int) -> int:
    """The code word of ``data`` (an unsigned ``data_width``-bit integer)."""
    k, r = data_width, check_bits(data_width)
    if not 0 <= data < 1 << k:
        raise ValueError(f"data: {data!r} does not fit in {k} unsigned bits")
    word = data
    for j, mask in enumerate(_check_masks(k)):
        word |= _parity(data & mask) << (k + j)
    return word | _parity(word) << (k + r)


def decode(code: int, data_width: int) -> tuple[int, int, bool, bool]:
    """``(data, syndrome, single_error, double_error)`` of a received code word, as :class:`SecdedDecoder` outputs them."""
    k, r = data_width, check_bits(data_width)
    if not 0 <= code < 1 << (k + r + 1):
        raise ValueError(f"code: {code!r} does not fit in {k + r + 1} unsigned bits")
    data = code & ((1 << k) - 1)
    s = 0
    for j, mask in enumerate(_check_masks(k)):
        s |= (_parity(data & mask) ^ (code >> (k + j) & 1)) << j
    p = _parity(code)
    single = bool(p) and s <= k + r
    double = (not p and s != 0) or (bool(p) and s > k + r)
    if single and s:
        positions = data_positions(k)
        if s in positions:
            data ^= 1 << positions.index(s)
    return data, s | p << r, single, double


class SecdedEncoder(wiring.Component):
    """Code word of a data word (layout in the module docstring).

    Combinational. Ports: ``data`` In(data_width), ``code`` Out(code_width(data_width)).
    About ``r`` XOR trees over roughly half the data bits each, plus one over all.
    """

    def __init__(self, data_width: int):
        self._k = _check_width(data_width)
        self._r = check_bits(data_width)
        super().__init__({"data": In(data_width), "code": Out(code_width(data_width))})

    def elaborate(self, platform):
        m = Module()
        checks = Signal(self._r, name="checks")
        for j, mask in enumerate(_check_masks(self._k)):
            m.d.comb += checks[j].eq(Cat(self.data[i] for i in range(self._k) if mask >> i & 1).xor())
        body = Cat(self.data, checks)
        m.d.comb += self.code.eq(Cat(body, body.xor()))
        return m


class SecdedDecoder(wiring.Component):
    """Corrects a single-bit error and detects a double-bit error of a code word.

    Combinational. Ports:

    * ``code`` In(code_width): the received code word;
    * ``data`` Out(data_width): the data, corrected when ``single``; passed through
      unchanged otherwise (never miscorrected on a double error);
    * ``syndrome`` Out(r + 1): bits ``[0, r)`` the Hamming syndrome ``s``, bit ``r``
      the overall parity ``p`` (zero for a valid word);
    * ``single_error`` Out(1): exactly one bit (data, check or parity bit) was
      wrong and is corrected in ``data``;
    * ``double_error`` Out(1): an uncorrectable error was detected (every
      double-bit error; some errors of three or more bits).

    (Not ``single``/``double``: Verilator rejects C++ keywords as port names.)
    """

    def __init__(self, data_width: int):
        self._k = _check_width(data_width)
        self._r = check_bits(data_width)
        super().__init__({
            "code": In(code_width(data_width)),
            "data": Out(data_width),
            "syndrome": Out(self._r + 1),
            "single_error": Out(1),
            "double_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        checked = add_decoder_logic(m, self.code, self._k)
        m.d.comb += [
            self.data.eq(checked.data),
            self.syndrome.eq(checked.syndrome),
            self.single_error.eq(checked.single_error),
            self.double_error.eq(checked.double_error),
        ]
        return m


class SecdedChecked(NamedTuple):
    """Signals :func:`add_decoder_logic` adds; same meaning as :class:`SecdedDecoder`'s outputs."""

    data: Signal
    syndrome: Signal
    single_error: Signal
    double_error: Signal


def add_decoder_logic(m: Module, code, data_width: int, prefix: str = "") -> SecdedChecked:
    """Add :class:`SecdedDecoder`'s logic for ``code`` to ``m``; its signals are named ``<prefix><what>``.

    For callers whose code word is a register: a register that drives a
    submodule's input port is renamed after that port in the emitted Verilog,
    whereas logic added in place keeps the register's own (fault-site) name.
    """
    k, r = _check_width(data_width), check_bits(data_width)
    code = Value.cast(code)
    if len(code) != k + r + 1:
        raise ValueError(f"code: {len(code)} bits, a {k}-bit SECDED word has {k + r + 1}")
    received = code[:k]
    s = Signal(r, name=f"{prefix}hamming_syndrome")
    p = Signal(name=f"{prefix}parity_error")
    for j, mask in enumerate(_check_masks(k)):
        covered = Cat(received[i] for i in range(k) if mask >> i & 1)
        m.d.comb += s[j].eq(covered.xor() ^ code[k + j])
    m.d.comb += p.eq(code.xor())
    # Syndromes above k + r name no bit: with p set they mean three or more flips.
    in_range = Signal(name=f"{prefix}syndrome_in_range")
    if k + r < (1 << r) - 1:
        m.d.comb += in_range.eq(s <= k + r)
    else:  # every syndrome names a bit; a constant compare would trip lint (CMPCONST)
        m.d.comb += in_range.eq(1)
    checked = SecdedChecked(
        data=Signal(k, name=f"{prefix}corrected_data"),
        syndrome=Signal(r + 1, name=f"{prefix}syndrome"),
        single_error=Signal(name=f"{prefix}single_error"),
        double_error=Signal(name=f"{prefix}double_error"),
    )
    flips = Cat((p & (s == Const(position, r))) for position in data_positions(k))
    m.d.comb += [
        checked.syndrome.eq(Cat(s, p)),
        checked.single_error.eq(p & in_range),
        checked.double_error.eq((~p & s.any()) | (p & ~in_range)),
        checked.data.eq(received ^ flips),
    ]
    return checked
