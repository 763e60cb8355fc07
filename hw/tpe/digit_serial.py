"""Digit-serial ``matrix2d`` engines: ``mac: opt3``, ``opt4c`` and ``laconic``; cycles follow the data.

A beat (one reduction step ``k``: ``A[:, k]`` and ``B[k, :]``) is not
multiplied in one cycle: one operand is encoded into signed digits
(:mod:`hw.arith.digits`) and only the nonzero ones are issued, one per cycle,
each adding one shifted partial product into a carry-save accumulator. The
grid stays in lockstep: a beat takes as many cycles as its busiest PE needs,
at least one. ``sim/golden/tpe_cycles.py`` predicts every job's cycles.

* ``opt3`` (:class:`SparseDigitPE`): every PE encodes its own ``A`` operand
  into EN-T digits and issues them itself.
* ``opt4c``: one :class:`DigitIssuer` per PE row encodes ``A[i, k]`` once and
  broadcasts the current digit; each PE (:class:`DigitMac`) keeps only a
  partial-product select, a 3:2 compressor and its sum/carry registers (the
  ``B`` operand register is the grid's, one per column).
* ``row_queue: n`` (``opt3``, ``opt4c``): the rows are decoupled. Beats enter a
  queue of ``n`` slots shared by the rows; each row loads its next beat (its
  ``A`` element and the whole ``B`` row, into a register of its own) when its
  own digits are done, so a beat costs the row's own nonzero digits, not the
  busiest row's. Each row captures its own results; the bank drains once all
  have.
* ``laconic`` (:class:`TermMac`): both operands as effectual terms (NAF), a
  :class:`TermIssuer` per row for ``A`` and per column for ``B``; per beat the
  grid walks every pair (an ``A`` term, then all ``B`` terms), so a beat takes
  ``max_i terms(A[i, k]) * max_j terms(B[k, j])`` cycles; a PE adds
  ``+-2**(p + q)`` for terms at positions ``p`` and ``q``.
"""

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.csa import compress_3_2
from ..arith.digits import EntEncoder, TermEncoder, ent_digit_count, lowest_set, term_position_count
from ..arith.tree import balanced
from .broadcast import result_port
from .interface import accumulator_shape, engine_signature, operand_beat_layout
from .mac import check_formats, resolve

#: The ``mac`` options this module implements.
DIGIT_SERIAL = ("opt3", "opt4c", "laconic")
#: The options whose rows can run decoupled (``row_queue``); ``laconic``'s column
#: issuers walk ``B``'s terms once for all rows, so its rows stay in lockstep.
DECOUPLED = ("opt3", "opt4c")
PARTS = ("_sum", "_carry")


class _Issuer(wiring.Component):
    """Registers an encoded operand and issues its nonzero digits, lowest first, one per cycle.

    Contract, per clock cycle:

    * outputs describe the digit issued in this cycle: ``issue`` (a digit is
      pending), ``position`` (one-hot), ``negative`` (its value, with the
      operand's sign, is negative), and the subclass's magnitude outputs; all
      zero when nothing is pending. ``final``: at most one digit is pending
      (this cycle issues the operand's last digit, or there is none).
    * at an edge with ``load``: ``pending``, the digit masks (``<name>_mask``)
      and ``sign`` (signed operands only) take the encoding of ``value``;
      otherwise, with ``rewind``, ``pending`` starts over from ``terms`` (all
      the operand's nonzero digits, kept only when ``rewind`` exists);
      otherwise, with ``step``, the issued digit leaves ``pending``. ``any``
      says the operand has a nonzero digit (with ``rewind``).
    """

    def __init__(self, operand_shape, count: int, *, rewind: bool, outputs: dict, value_shape=None):
        self._shape = Shape.cast(operand_shape)
        self._rewind = rewind
        self.count = count
        members = {
            "value": In(self._shape if value_shape is None else value_shape),
            "load": In(1),
            "step": In(1),
            "issue": Out(1),
            "position": Out(count),
            "negative": Out(1),
            "final": Out(1),
        } | outputs
        if rewind:
            members |= {"rewind": In(1), "any": Out(1)}
        super().__init__(members)

    def encode(self, m: Module):
        """``(nonzero, {mask name: mask}, negative)`` of ``value``, combinationally."""
        raise NotImplementedError

    def issued(self, m: Module, held: dict, onehot) -> None:
        """Drive the subclass's outputs from the held masks and the issued digit's one-hot position."""

    def elaborate(self, platform):
        m = Module()
        nonzero, masks, negative = self.encode(m)
        pending = Signal(self.count, name="pending")
        held = {name: Signal(self.count, name=f"{name}_mask") for name in masks}
        onehot, single = lowest_set(m, pending, "pick")
        sign = Signal(name="sign") if self._shape.signed else Const(0, 1)
        terms = Signal(self.count, name="terms") if self._rewind else None
        with m.If(self.load):
            m.d.sync += [pending.eq(nonzero)] + [held[name].eq(mask) for name, mask in masks.items()]
            if self._shape.signed:
                m.d.sync += sign.eq(negative)
            if self._rewind:
                m.d.sync += terms.eq(nonzero)
        if self._rewind:
            with m.Elif(self.rewind):
                m.d.sync += pending.eq(terms)
        with m.Elif(self.step):
            m.d.sync += pending.eq(pending & ~onehot)
        if self._rewind:
            m.d.comb += self.any.eq(terms.any())
        m.d.comb += [
            self.issue.eq(pending.any()),
            self.position.eq(onehot),
            self.negative.eq(sign ^ (held["minus"] & onehot).any()),
            self.final.eq(single),
        ]
        self.issued(m, held, onehot)
        return m


def ent_layout(operand_shape) -> data.StructLayout:
    """An operand's EN-T encoding as :class:`~hw.arith.digits.EntEncoder` gives it: the digit masks
    ``nonzero``, ``two``, ``minus`` and, for signed operands, ``negative``."""
    shape = Shape.cast(operand_shape)
    count = ent_digit_count(shape.width, shape.signed)
    fields = {"nonzero": count, "two": count, "minus": count}
    return data.StructLayout(fields | ({"negative": 1} if shape.signed else {}))


def encode_ent(m: Module, value, operand_shape, name: str):
    """``value`` EN-T encoded (an :class:`~hw.arith.digits.EntEncoder` as submodule ``name``), as an
    :func:`ent_layout` view."""
    shape = Shape.cast(operand_shape)
    m.submodules[name] = encoder = EntEncoder(shape)
    encoded = Signal(ent_layout(shape), name=f"{name}_digits")
    m.d.comb += [encoder.value.eq(value), encoded.nonzero.eq(encoder.nonzero), encoded.two.eq(encoder.two),
                 encoded.minus.eq(encoder.minus)]
    if shape.signed:
        m.d.comb += encoded.negative.eq(encoder.negative)
    return encoded


class DigitIssuer(_Issuer):
    """An :class:`_Issuer` of EN-T digits (``opt3``, ``opt4c``): ``two`` says the issued digit's magnitude is 2.

    ``position`` is the radix-4 position: the digit weighs ``4**position``.
    Registers: ``pending``, ``two_mask``, ``minus_mask`` and ``sign``. With ``encoded``,
    ``value`` is the operand already encoded (an :func:`ent_layout`), and the issuer has no
    encoder of its own.
    """

    def __init__(self, operand_shape, *, encoded: bool = False):
        shape = Shape.cast(operand_shape)
        self._encoded = encoded
        super().__init__(shape, ent_digit_count(shape.width, shape.signed), rewind=False, outputs={"two": Out(1)},
                         value_shape=ent_layout(shape) if encoded else None)

    def encode(self, m: Module):
        if self._encoded:
            negative = self.value.negative if self._shape.signed else Const(0, 1)
            return self.value.nonzero, {"two": self.value.two, "minus": self.value.minus}, negative
        m.submodules.encoder = encoder = EntEncoder(self._shape)
        m.d.comb += encoder.value.eq(self.value)
        return encoder.nonzero, {"two": encoder.two, "minus": encoder.minus}, encoder.negative

    def issued(self, m: Module, held: dict, onehot) -> None:
        m.d.comb += self.two.eq((held["two"] & onehot).any())


class TermIssuer(_Issuer):
    """An :class:`_Issuer` of effectual terms (NAF, ``laconic``): the term weighs ``2**position``.

    With ``rewind`` (the ``B`` side, which walks its terms once per ``A``
    term) it also keeps ``terms``. Registers: ``pending``, ``minus_mask``,
    ``sign``, ``terms``.
    """

    def __init__(self, operand_shape, *, rewind: bool):
        shape = Shape.cast(operand_shape)
        super().__init__(shape, term_position_count(shape.width, shape.signed), rewind=rewind, outputs={})

    def encode(self, m: Module):
        m.submodules.encoder = encoder = TermEncoder(self._shape)
        m.d.comb += encoder.value.eq(self.value)
        return encoder.plus | encoder.minus, {"minus": encoder.minus}, encoder.negative


def low_width(max_term: int, acc_width: int) -> int:
    """Bits of a serial accumulator kept in carry-save (:class:`_SerialMac`): enough for a term of
    magnitude up to ``max_term`` with its sign, at most ``acc_width``."""
    return min(acc_width, max_term.bit_length() + 1)


class _SerialMac(wiring.Component):
    """A carry-save accumulator that adds one signed partial product per cycle, and its result pair.

    Contract, per clock cycle: the subclass forms ``term`` (an ``acc_width``-bit
    two's complement value, already shifted to its weight, of magnitude at most
    :meth:`max_term`) and ``negate``; the value added is ``-term`` when ``negate`` is
    set, else ``term``, and nothing when ``issue`` is low. At an edge with ``step``:
    with ``capture`` the new value goes to ``result_sum``/``result_carry`` and the
    accumulator restarts at zero, otherwise, if ``issue``, into the accumulator.
    Without ``capture``, with ``drain``, ``result_*`` take ``result_*_in``.
    ``result_sum + result_carry`` modulo ``2**acc_width`` is the value.

    **Split accumulator.** Only the low ``L`` bits (:func:`low_width`: a term and its
    sign fit) are carry-save, ``acc_sum``/``acc_carry``; the bits above are one
    resolved register, ``acc_high``. Why: a negative term sign-extended over the whole
    width made every upper bit of the sum and carry registers toggle at each add (a
    carry-save pair has no stable sign bits), though the value's upper bits barely
    move. Per add, one 3:2 compressor row adds the term's low ``L`` bits (inverted
    when ``negate``; the ``+1`` of the negation takes bit 0 of the carry, which a 3:2
    compressor leaves free) and ``acc_high`` adds the compressor's carry out of bit
    ``L - 1`` and subtracts bit ``L - 1`` of the added vector: that vector fits in ``L``
    bits with its sign, so its extension above bit ``L - 1`` is that bit repeated,
    worth ``-2**L`` when set. So
    ``value = acc_high * 2**L + acc_sum + acc_carry``, and the result pair is
    ``result_sum = {acc_high, sum}``, ``result_carry = carry`` (upper bits zero).
    ``acc_high`` changes only when the low part wraps.
    """

    def __init__(self, operand_shape, acc_width: int, members: dict):
        self._shape = Shape.cast(operand_shape)
        self._width = acc_width
        members = dict(members) | {"step": In(1), "capture": In(1), "drain": In(1)}
        for part in PARTS:
            members |= {f"result{part}_in": In(unsigned(acc_width)), f"result{part}": Out(unsigned(acc_width))}
        super().__init__(members)

    def term(self, m: Module):
        """``(term, negate, issue)`` of this cycle."""
        raise NotImplementedError

    def max_term(self) -> int:
        """The largest magnitude :meth:`term` gives."""
        raise NotImplementedError

    @property
    def low_width(self) -> int:
        return low_width(self.max_term(), self._width)

    def elaborate(self, platform):
        m = Module()
        width, low = self._width, self.low_width
        term, negate, issue = self.term(m)
        negative = Signal(name="negative")
        added = Signal(unsigned(low), name="added")
        m.d.comb += [negative.eq(issue & negate), added.eq(term[:low] ^ negative.replicate(low))]
        acc_sum = Signal(unsigned(low), name="acc_sum")
        acc_carry = Signal(unsigned(low), name="acc_carry")
        csa_sum, majority = compress_3_2(m, acc_sum, acc_carry, added, low + 1, "csa")
        total_sum = Signal(unsigned(width), name="total_sum")
        total_carry = Signal(unsigned(width), name="total_carry")
        # bit 0 of a compressor's carry is always 0: the negation's +1 goes there
        m.d.comb += total_carry.eq(majority[:low] | negative)
        accumulators = [(acc_sum, csa_sum[:low]), (acc_carry, total_carry[:low])]
        if low < width:
            acc_high = Signal(unsigned(width - low), name="acc_high")
            high_next = Signal(unsigned(width - low), name="high_next")
            # the added vector's extension above bit L - 1 is its bit L - 1 repeated: -2**L if set
            m.d.comb += high_next.eq(acc_high + majority[low] - added[low - 1])
            accumulators.append((acc_high, high_next))
            m.d.comb += total_sum.eq(Cat(csa_sum[:low], high_next))
        else:
            m.d.comb += total_sum.eq(csa_sum[:low])
        with m.If(self.step):
            with m.If(self.capture):
                m.d.sync += [register.eq(0) for register, _ in accumulators]
            with m.Elif(issue):
                m.d.sync += [register.eq(value) for register, value in accumulators]
        for part, total in zip(PARTS, (total_sum, total_carry)):
            result = getattr(self, f"result{part}")
            with m.If(self.step & self.capture):
                m.d.sync += result.eq(total)
            with m.Elif(self.drain):
                m.d.sync += result.eq(getattr(self, f"result{part}_in"))
        return m


class DigitMac(_SerialMac):
    """The ``opt4c`` PE: ``B`` times one issued EN-T digit of ``A`` per cycle into a carry-save accumulator.

    Inputs ``issue``, ``position``, ``two``, ``negative`` come from a
    :class:`DigitIssuer` (see there); ``b_in`` is the multiplicand, held for
    the whole beat. The term is ``B`` or ``2B`` (sign- or zero-extended to
    ``acc_width`` bits) shifted by ``2 * position`` -- a select, no
    multiplier -- and the accumulator and results are :class:`_SerialMac`'s.
    """

    def __init__(self, operand_shape, acc_width: int):
        shape = Shape.cast(operand_shape)
        digits = ent_digit_count(shape.width, shape.signed)
        super().__init__(operand_shape, acc_width, {
            "b_in": In(operand_shape),
            "issue": In(1),
            "position": In(digits),
            "two": In(1),
            "negative": In(1),
        })
        self._digits = digits

    def max_term(self) -> int:
        # B (or 2B) at the top digit's weight, 4 ** (digits - 1)
        most = 2 ** (self._shape.width - 1) if self._shape.signed else 2 ** self._shape.width - 1
        return 2 * most * 4 ** (self._digits - 1)

    def term(self, m: Module):
        width = self._width
        once = Signal(unsigned(width), name="once")  # B extended by its shape
        m.d.comb += once.eq(self.b_in)
        selected = Signal(unsigned(width), name="selected")
        m.d.comb += selected.eq(((once << 1) & self.two.replicate(width)) | (once & ~self.two.replicate(width)))
        shifted = Signal(unsigned(width), name="shifted")
        weights = [(selected << (2 * i))[:width] & self.position[i].replicate(width) for i in range(self._digits)]
        combined = weights[0]
        for weight in weights[1:]:
            combined = combined | weight
        m.d.comb += shifted.eq(combined)
        return shifted, self.negative, self.issue


class SparseDigitPE(wiring.Component):
    """The ``opt3`` PE: its own :class:`DigitIssuer` for ``a_in`` feeding its own :class:`DigitMac`.

    ``a_in`` is the incoming beat's ``A`` element, encoded at an edge with
    ``load`` (with ``encoded``, it comes encoded: an :func:`ent_layout`);
    ``b_in`` the held ``B`` element; ``final`` says this PE issues
    its last digit (or none) in this cycle. ``step``, ``capture``, ``drain``
    and the result pairs are :class:`DigitMac`'s.
    """

    def __init__(self, operand_shape, acc_width: int, *, encoded: bool = False):
        self._shape = Shape.cast(operand_shape)
        self._width = acc_width
        self._encoded = encoded
        members = {
            "a_in": In(ent_layout(self._shape) if encoded else self._shape), "load": In(1), "b_in": In(self._shape),
            "final": Out(1),
            "step": In(1), "capture": In(1), "drain": In(1),
        }
        for part in PARTS:
            members |= {f"result{part}_in": In(unsigned(acc_width)), f"result{part}": Out(unsigned(acc_width))}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.issuer = issuer = DigitIssuer(self._shape, encoded=self._encoded)
        m.submodules.mac = mac = DigitMac(self._shape, self._width)
        m.d.comb += [
            issuer.value.eq(self.a_in), issuer.load.eq(self.load), issuer.step.eq(self.step),
            self.final.eq(issuer.final),
            mac.issue.eq(issuer.issue), mac.position.eq(issuer.position), mac.two.eq(issuer.two),
            mac.negative.eq(issuer.negative), mac.b_in.eq(self.b_in),
            mac.step.eq(self.step), mac.capture.eq(self.capture), mac.drain.eq(self.drain),
        ]
        for part in PARTS:
            m.d.comb += [getattr(mac, f"result{part}_in").eq(getattr(self, f"result{part}_in")),
                         getattr(self, f"result{part}").eq(getattr(mac, f"result{part}"))]
        return m


class TermMac(_SerialMac):
    """The ``laconic`` PE: one pair of effectual terms per cycle, ``+-2**(p + q)``, into a carry-save accumulator.

    ``a_*`` come from the row's :class:`TermIssuer`, ``b_*`` from the
    column's. Bit ``n`` of the term is set when ``a_position[p]`` and
    ``b_position[q]`` with ``p + q = n`` (both one-hot: a diagonal OR of
    ANDs, the exponent sum without an adder); negated when exactly one term
    is negative; nothing unless both issue.
    """

    def __init__(self, operand_shape, acc_width: int):
        shape = Shape.cast(operand_shape)
        positions = term_position_count(shape.width, shape.signed)
        super().__init__(operand_shape, acc_width, {
            f"{side}_{name}": In(shape) for side in ("a", "b")
            for name, shape in (("issue", 1), ("position", positions), ("negative", 1))})
        self._positions = positions

    def max_term(self) -> int:
        return 2 ** min(self._width - 1, 2 * self._positions - 2)

    def term(self, m: Module):
        width, count = self._width, self._positions
        power = Signal(unsigned(width), name="power")
        for n in range(min(width, 2 * count - 1)):
            pairs = [self.a_position[p] & self.b_position[n - p] for p in range(count) if 0 <= n - p < count]
            bit = pairs[0]
            for pair in pairs[1:]:
                bit = bit | pair
            m.d.comb += power[n].eq(bit)
        issue = Signal(name="issue")
        m.d.comb += issue.eq(self.a_issue & self.b_issue)
        return power, self.a_negative ^ self.b_negative, issue


class DigitSerialGrid(wiring.Component):
    """``matrix2d`` with digit-serial PEs (``mac`` one of :data:`DIGIT_SERIAL`) behind the engine interface.

    Beats use the ``k_steps`` format with one step per beat (see
    :mod:`hw.tpe.interface`); results are ``rows`` beats per job, row 0 first,
    as for :class:`hw.tpe.broadcast.BroadcastGrid`.

    Pipeline, per clock cycle:

    1. An accepted beat is encoded at once: ``A[i, k]`` into the row issuers
       (``opt4c``, ``laconic``) or every PE's own issuer (``opt3``); ``B[k, j]``
       into ``b_reg`` (``opt3``, ``opt4c``) or the column term issuers
       (``laconic``). ``beat_valid`` and ``beat_last`` mark the held beat.
    2. While a beat is held, every cycle issues one digit (or term pair) per
       PE row; the beat ends in the cycle in which every issuer is ``final``
       (``laconic``: every ``A`` and ``B`` issuer final, or no term on one
       side), and the next beat is accepted at that edge. So beat ``k`` takes
       ``max(1, max_i nonzero EN-T digits of A[i, k])`` cycles, or for
       ``laconic`` ``max(1, max_i terms(A[i, k]) * max_j terms(B[k, j]))``.
    3. In the cycle that ends a job's last beat (``due``), every PE's final
       sum and carry go to its result registers and the accumulators restart
       at zero (so no ``first`` tag is needed).

    Result bank, drain and the stall (``advance`` low while ``due`` and the
    bank is busy, holding every register but the bank) are the
    ``BroadcastGrid``'s. The spacing rule differs: a job's last beat is not
    accepted in the cycle of a capture (``rows >= 2``) nor in the ``rows - 2``
    cycles after it (``gap``, ``rows >= 3``), so with the sink ready the bank is always free when the
    next capture comes and nothing ever stalls.

    Timing (sink always ready): a job's first result beat is valid ``latency
    + (c - 1)`` cycles after its last beat moved, ``c`` the cycles of that
    beat (``latency = 2``, as ``matrix2d`` baseline). Back to back at full
    rate, a job occupies ``max(sum of its beats' cycles, rows - 1 + c)``
    cycles from the previous job's capture to its own; the first job after
    reset or an idle spell takes the plain sum from its first beat's
    transfer to its capture (``sim/golden/tpe_cycles.py``).

    With ``row_queue = n >= 1`` (``opt3``, ``opt4c``) the issue stage is per row
    instead (:meth:`_decoupled_rows`):

    1. An accepted beat is written into the next of ``n`` queue slots
       (``queue_a_<s>``, ``queue_b_<s>``, ``queue_last``); ``operands.ready``
       is high while no row has all ``n`` slots still to load
       (``queue_count_<i> < n``). ``queue_open`` is the one-hot slot that is
       free for the next beat, or zero: a register, computed from the counts'
       next values, so ``ready`` and the slots' enables come from registers.
    2. Row ``i`` loads the oldest slot it has not loaded (``queue_read_<i>``)
       when it holds no beat or ends the one it holds: its issuer (or its
       PEs' issuers) takes ``A[i, k]``, ``b_row_<i>`` takes ``B[k, :]`` and
       ``row_at_last_<i>`` the ``last`` flag. The beat ends in the cycle the
       row's issuer is ``final`` (but see 3.); so row ``i`` spends
       ``max(1, nonzero digits of A[i, k])`` cycles on it, whatever the other
       rows do, and runs at most ``n`` beats ahead of the slowest row.
    3. When the beat a row ends is a job's last, the row's PEs also move their
       sums into their result registers and restart at zero (``row_held_<i>``
       rises), unless those registers still hold the previous job's row: then
       the row waits on the beat, its issuer empty. Once every row holds its
       result the bank drains as in lockstep (``draining``), and every
       ``row_held_<i>`` falls when the final row leaves. A capture depends on
       its own row only, never on ``results.ready``.

    Nothing stalls inside, and a row runs at most ``n`` beats ahead of the
    slowest, across job boundaries too. A beat's first digit issues two cycles
    after the beat moved (latency 3). ``sim.golden.tpe_cycles.capture_cycles``
    gives every job's capture cycle.

    ``A`` and ``B`` share one shape, ``a_shape`` (``b_shape``, if given, must equal it; see
    :func:`hw.tpe.mac.check_formats`).
    """

    def __init__(self, rows: int, cols: int, a_shape, acc_width: int, *, b_shape=None, mac: str,
                 row_queue: int = 0):
        if min(rows, cols) < 1:
            raise ValueError(f"grid size must be at least 1x1, not {rows}x{cols}")
        if mac not in DIGIT_SERIAL:
            raise ValueError(f"mac: {mac!r} is not one of {DIGIT_SERIAL}")
        if row_queue < 0 or (row_queue and mac not in DECOUPLED):
            raise ValueError(f"row_queue: {row_queue} with mac {mac!r}; decoupled rows take {DECOUPLED}, "
                             "and a queue of at least one slot")
        self.rows, self.cols, self.mac, self.row_queue = rows, cols, mac, row_queue
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = self.a_shape if b_shape is None else Shape.cast(b_shape)
        check_formats(mac, self.a_shape, self.b_shape)
        self.acc_width = acc_width
        super().__init__(engine_signature(operand_beat_layout(rows, cols, self.a_shape),
                                          cols, self.a_shape, acc_width))

    timing = "data-dependent"

    @property
    def latency(self) -> int:
        """2 in lockstep; 3 with decoupled rows (a beat waits one cycle in the queue)."""
        return 3 if self.row_queue else 2

    @property
    def job_interval(self) -> int:
        """Fewest cycles a job occupies back to back: ``rows`` (the bank drains one row per cycle)."""
        return self.rows

    @property
    def mac_units(self) -> int:
        return self.rows * self.cols

    @property
    def job(self) -> dict:
        return {"format": "k_steps", "steps_per_beat": 1, "c_rows": self.rows}

    @property
    def flow_control(self) -> str:
        return "stall"

    def elaborate(self, platform):
        if self.row_queue:
            return self._decoupled_rows()
        m = Module()
        ops, res = self.operands, self.results
        rows, cols, shape, width = self.rows, self.cols, self.a_shape, self.acc_width

        advance = Signal()   # the held beat may step at this edge
        accept = Signal()    # an operand beat moves at this edge
        gap_ok = Signal()    # a job's last beat may be accepted now
        final = Signal()     # this cycle ends the held beat
        step = Signal()      # the held beat issues at this edge
        beat_valid = Signal(name="beat_valid")  # a beat is held in the issue stage
        beat_last = Signal(name="beat_last")    # ... and it is a job's last (no "first": captures restart)
        held = beat_valid
        m.d.comb += [
            step.eq(held & advance),
            ops.ready.eq(advance & (~held | final) & (gap_ok | ~ops.p.last)),
            accept.eq(ops.valid & ops.ready),
        ]
        with m.If(accept):
            m.d.sync += [beat_valid.eq(1), beat_last.eq(ops.p.last)]
        with m.Elif(step & final):
            m.d.sync += beat_valid.eq(0)

        pes = self._pes(m)

        finals = []
        if self.mac in ("opt3", "opt4c"):
            b_reg = Signal.like(ops.p.b, name="b_reg")
            with m.If(accept):
                m.d.sync += b_reg.eq(ops.p.b)
        if self.mac == "opt3":
            for i in range(rows):
                for j in range(cols):
                    pe = pes[i][j]
                    m.d.comb += [pe.a_in.eq(ops.p.a[i]), pe.load.eq(accept), pe.b_in.eq(b_reg[j])]
                    finals.append(pe.final)
            m.d.comb += final.eq(_all(finals))
        elif self.mac == "opt4c":
            for i in range(rows):
                m.submodules[f"row_{i}"] = issuer = DigitIssuer(shape)
                m.d.comb += [issuer.value.eq(ops.p.a[i]), issuer.load.eq(accept), issuer.step.eq(step)]
                finals.append(issuer.final)
                for j in range(cols):
                    pe = pes[i][j]
                    m.d.comb += [pe.issue.eq(issuer.issue), pe.position.eq(issuer.position), pe.two.eq(issuer.two),
                                 pe.negative.eq(issuer.negative), pe.b_in.eq(b_reg[j])]
            m.d.comb += final.eq(_all(finals))
        else:
            a_side = [TermIssuer(shape, rewind=False) for _ in range(rows)]
            b_side = [TermIssuer(shape, rewind=True) for _ in range(cols)]
            a_final, b_final, a_any, b_any = Signal(), Signal(), Signal(), Signal()
            for i, issuer in enumerate(a_side):
                m.submodules[f"row_{i}"] = issuer
                m.d.comb += [issuer.value.eq(ops.p.a[i]), issuer.load.eq(accept),
                             issuer.step.eq(step & b_final)]  # the next A term once every B term went by
            for j, issuer in enumerate(b_side):
                m.submodules[f"col_{j}"] = issuer
                m.d.comb += [issuer.value.eq(ops.p.b[j]), issuer.load.eq(accept),
                             issuer.step.eq(step & ~b_final), issuer.rewind.eq(step & b_final)]
            m.d.comb += [
                a_final.eq(_all([issuer.final for issuer in a_side])),
                b_final.eq(_all([issuer.final for issuer in b_side])),
                a_any.eq(_any([issuer.issue for issuer in a_side])),
                b_any.eq(_any([issuer.any for issuer in b_side])),
                final.eq((a_final & b_final) | ~a_any | ~b_any),
            ]
            for i in range(rows):
                for j in range(cols):
                    pe, a, b = pes[i][j], a_side[i], b_side[j]
                    m.d.comb += [pe.a_issue.eq(a.issue), pe.a_position.eq(a.position), pe.a_negative.eq(a.negative),
                                 pe.b_issue.eq(b.issue), pe.b_position.eq(b.position), pe.b_negative.eq(b.negative)]

        due = Signal()        # this cycle ends a job's last beat
        capture, bank_free = self._result_bank(m, pes, due)
        m.d.comb += [due.eq(held & beat_last & final), advance.eq(~due | bank_free)]

        # Spacing of last beats: the next capture comes at least rows cycles after this one.
        if rows > 2:
            gap = Signal(range(rows - 1), name="gap")  # cycles still to wait after a capture
            m.d.comb += gap_ok.eq(~gap.any() & ~due)
            with m.If(capture):
                m.d.sync += gap.eq(rows - 2)
            with m.Elif(gap.any()):
                m.d.sync += gap.eq(gap - 1)
        elif rows == 2:
            m.d.comb += gap_ok.eq(~due)
        else:
            m.d.comb += gap_ok.eq(1)

        for i in range(rows):
            for j in range(cols):
                m.d.comb += pes[i][j].step.eq(step)
        return m

    def _pes(self, m: Module) -> list:
        """The grid's PEs, ``pes[i][j]`` as submodule ``pe_<i>_<j>`` (``opt3`` with decoupled rows: their
        ``A`` comes encoded)."""
        if self.mac == "opt3":
            def kind(shape, width):
                return SparseDigitPE(shape, width, encoded=bool(self.row_queue))
        else:
            kind = {"opt4c": DigitMac, "laconic": TermMac}[self.mac]
        pes = [[kind(self.a_shape, self.acc_width) for _ in range(self.cols)] for _ in range(self.rows)]
        for i in range(self.rows):
            for j in range(self.cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]
        return pes

    def _result_bank(self, m: Module, pes: list, due):
        """The result bank (as :class:`~hw.tpe.broadcast.BroadcastGrid`'s, busy from a capture until its
        final row left), the PEs' ``capture``/``drain`` and result chain, and the result port.

        ``due``: this cycle ends a job's last beat. Returns ``(capture, bank_free)``.
        """
        rows, cols = self.rows, self.cols
        bank_free = Signal()  # results captured at this edge would overwrite nothing on offer
        capture = Signal()
        draining, shift, final_row = result_port(m, self.results, rows, capture)
        m.d.comb += [
            bank_free.eq(~draining | (shift & final_row)),
            capture.eq(due & bank_free),
        ]
        for i in range(rows):
            for j in range(cols):
                m.d.comb += pes[i][j].capture.eq(capture)
        self._result_chain(m, pes, shift)
        return capture, bank_free

    def _result_chain(self, m: Module, pes: list, shift) -> None:
        """The result registers as a shift chain (``drain`` on ``shift``, row 0 on offer) and ``results.p.c``."""
        rows, cols = self.rows, self.cols
        for i in range(rows):
            for j in range(cols):
                pe = pes[i][j]
                m.d.comb += pe.drain.eq(shift)
                if i + 1 < rows:  # the bottom row shifts in zeros
                    for part in PARTS:
                        m.d.comb += getattr(pe, f"result{part}_in").eq(getattr(pes[i + 1][j], f"result{part}"))
        acc_shape = accumulator_shape(self.acc_width, self.a_shape.signed)
        for j in range(cols):
            total = Signal(acc_shape, name=f"c_{j}")
            m.d.comb += [total.eq(resolve([getattr(pes[0][j], f"result{part}") for part in PARTS])),
                         self.results.p.c[j].eq(total)]

    def _decoupled_rows(self) -> Module:
        """The grid with decoupled rows (``row_queue >= 1``); see the class docstring."""
        m = Module()
        ops, rows, cols, shape, slots = self.operands, self.rows, self.cols, self.a_shape, self.row_queue
        pes = self._pes(m)

        # A is encoded once per row before the queue, so a row's load is a select, not an encoder.
        encoded_a = data.ArrayLayout(ent_layout(shape), rows)
        incoming = Signal(encoded_a, name="incoming_a")
        for i in range(rows):
            m.d.comb += incoming[i].eq(encode_ent(m, ops.p.a[i], shape, f"encode_{i}"))
        queue_a = [Signal(encoded_a, name=f"queue_a_{s}") for s in range(slots)]
        queue_b = [Signal(data.ArrayLayout(shape, cols), name=f"queue_b_{s}") for s in range(slots)]
        queue_last = Signal(slots, name="queue_last")
        write = Signal(slots, init=1, name="queue_write")  # one-hot: the slot the next beat goes to
        counts = [Signal(range(slots + 1), name=f"queue_count_{i}") for i in range(rows)]  # slots row i has to load
        counts_next = [Signal(range(slots + 1), name=f"queue_count_next_{i}") for i in range(rows)]
        # The slot that ``write`` points to, if no row still has to load it (no count is n): a register,
        # so neither the rows nor ``operands.valid`` reach the slots' enables. The slot is written in
        # every cycle it is open, with or without a beat; without one nothing counts it, so it stays free.
        open_slot = Signal(slots, init=1, name="queue_open")
        accept = Signal()
        m.d.comb += [
            ops.ready.eq(open_slot.any()),
            accept.eq(ops.valid & ops.ready),
        ]
        for s in range(slots):
            with m.If(open_slot[s]):
                m.d.sync += [queue_a[s].eq(incoming), queue_b[s].eq(ops.p.b), queue_last[s].eq(ops.p.last)]
        write_next = Signal(slots)
        m.d.comb += write_next.eq(Mux(accept, write.rotate_left(1), write))
        m.d.sync += [
            write.eq(write_next),
            open_slot.eq(Mux(_all([count != slots for count in counts_next]), write_next, 0)),
        ]

        # Result bank: each row captures into its own result registers when it ends a job's last beat, if
        # they are free (``row_held_<i>`` low); the bank drains once every row has captured, and frees every
        # row when its final row leaves. So a capture never depends on results.ready or on other rows.
        start = Signal()      # every row holds or captures its result now, and the bank is not draining
        drained = Signal()    # the job's final result row leaves at this edge
        draining, shift, final_row = result_port(m, self.results, rows, start)
        m.d.comb += drained.eq(shift & final_row)
        self._result_chain(m, pes, shift)
        complete = []
        for i in range(rows):
            read = Signal(slots, init=1, name=f"queue_read_{i}")  # one-hot: the oldest slot row i has not loaded
            busy = Signal(name=f"row_busy_{i}")          # row i holds a beat
            at_last = Signal(name=f"row_at_last_{i}")    # ... and it is a job's last
            b_row = Signal(data.ArrayLayout(shape, cols), name=f"b_row_{i}")  # B[k, :] of that beat
            next_a = Signal(ent_layout(shape), name=f"next_a_{i}")  # A[i, k] (encoded) of the slot it loads next
            next_b = Signal(data.ArrayLayout(shape, cols), name=f"next_b_{i}")
            next_last = Signal(name=f"next_last_{i}")
            m.d.comb += [next_a.eq(_select(read, [queue_a[s][i] for s in range(slots)])),
                         next_b.eq(_select(read, queue_b)), next_last.eq((read & queue_last).any())]
            row_final = Signal(name=f"row_final_{i}")  # the row issues its beat's last digit (or none) now
            held = Signal(name=f"row_held_{i}")         # the row's result registers hold a result not drained
            capture = Signal(name=f"row_capture_{i}")   # the row ends a job's last beat at this edge
            ends = Signal(name=f"row_ends_{i}")        # the row leaves its beat at this edge
            load = Signal(name=f"row_load_{i}")        # ... and loads its next one
            m.d.comb += [
                capture.eq(busy & at_last & row_final & ~held),
                ends.eq((busy & row_final & ~at_last) | capture),
                load.eq((~busy | ends) & counts[i].any()),
            ]
            complete.append(held | capture)
            with m.If(capture):
                m.d.sync += held.eq(1)
            with m.Elif(drained):
                m.d.sync += held.eq(0)
            for j in range(cols):
                m.d.comb += pes[i][j].capture.eq(capture)
            with m.If(load):
                m.d.sync += [busy.eq(1), at_last.eq(next_last), b_row.eq(next_b), read.eq(read.rotate_left(1))]
            with m.Elif(ends):
                m.d.sync += busy.eq(0)
            m.d.comb += counts_next[i].eq(counts[i] + accept - load)
            m.d.sync += counts[i].eq(counts_next[i])

            if self.mac == "opt3":
                finals = []
                for j in range(cols):
                    pe = pes[i][j]
                    m.d.comb += [pe.a_in.eq(next_a), pe.load.eq(load), pe.b_in.eq(b_row[j]), pe.step.eq(busy)]
                    finals.append(pe.final)
                m.d.comb += row_final.eq(_all(finals))
            else:
                m.submodules[f"row_{i}"] = issuer = DigitIssuer(shape, encoded=True)
                m.d.comb += [issuer.value.eq(next_a), issuer.load.eq(load), issuer.step.eq(busy),
                             row_final.eq(issuer.final)]
                for j in range(cols):
                    pe = pes[i][j]
                    m.d.comb += [pe.issue.eq(issuer.issue), pe.position.eq(issuer.position), pe.two.eq(issuer.two),
                                 pe.negative.eq(issuer.negative), pe.b_in.eq(b_row[j]), pe.step.eq(busy)]
        m.d.comb += start.eq(~draining & _all(complete))
        return m


def _select(onehot, values):
    """The element of ``values`` that the one-hot ``onehot`` picks, as an AND-OR (no comparator)."""
    return balanced(operator.or_, [Value.cast(value) & onehot[s].replicate(len(Value.cast(value)))
                                   for s, value in enumerate(values)])


def _all(bits):
    """AND of ``bits`` as one reduction (a balanced tree after synthesis; a chain of ``&``
    stays a chain: 268 cells deep at 16x16 for ``opt3``'s per-PE ``final``)."""
    return Cat(*bits).all()


def _any(bits):
    """OR of ``bits`` as one reduction (see :func:`_all`)."""
    return Cat(*bits).any()
