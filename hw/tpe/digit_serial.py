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
* ``laconic`` (:class:`TermMac`): both operands as effectual terms (NAF), a
  :class:`TermIssuer` per row for ``A`` and per column for ``B``; per beat the
  grid walks every pair (an ``A`` term, then all ``B`` terms), so a beat takes
  ``max_i terms(A[i, k]) * max_j terms(B[k, j])`` cycles; a PE adds
  ``+-2**(p + q)`` for terms at positions ``p`` and ``q``.
"""

from amaranth.hdl import Cat, Const, Module, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..arith.csa import compress_3_2
from ..arith.digits import EntEncoder, TermEncoder, ent_digit_count, lowest_set, term_position_count
from .broadcast import step_result_bank
from .interface import accumulator_shape, engine_signature, operand_beat_layout
from .mac import check_formats, resolve

#: The ``mac`` options this module implements.
DIGIT_SERIAL = ("opt3", "opt4c", "laconic")
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

    def __init__(self, operand_shape, count: int, *, rewind: bool, outputs: dict):
        self._shape = Shape.cast(operand_shape)
        self._rewind = rewind
        self.count = count
        members = {
            "value": In(self._shape),
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


class DigitIssuer(_Issuer):
    """An :class:`_Issuer` of EN-T digits (``opt3``, ``opt4c``): ``two`` says the issued digit's magnitude is 2.

    ``position`` is the radix-4 position: the digit weighs ``4**position``.
    Registers: ``pending``, ``two_mask``, ``minus_mask`` and ``sign``.
    """

    def __init__(self, operand_shape):
        shape = Shape.cast(operand_shape)
        super().__init__(shape, ent_digit_count(shape.width, shape.signed), rewind=False, outputs={"two": Out(1)})

    def encode(self, m: Module):
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


class _SerialMac(wiring.Component):
    """A carry-save accumulator that adds one signed partial product per cycle, and its result pair.

    Contract, per clock cycle: the subclass forms ``term`` (an unsigned
    ``acc_width``-bit magnitude, already shifted to its weight) and
    ``negate``; the value added is ``-term`` when ``negate`` is set, else
    ``term``, and nothing when ``issue`` is low. One 3:2 compressor adds it to
    ``acc_sum``/``acc_carry``: the inverted term enters the compressor and the
    ``+1`` of the negation takes bit 0 of the carry, which a 3:2 compressor
    leaves free. At an edge with ``step``: with ``capture`` the new pair goes
    to ``result_sum``/``result_carry`` and the accumulator restarts at zero,
    otherwise, if ``issue``, into the accumulator. Without ``capture``, with
    ``drain``, ``result_*`` take ``result_*_in``. ``result_sum +
    result_carry`` modulo ``2**acc_width`` is the value.
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

    def elaborate(self, platform):
        m = Module()
        width = self._width
        term, negate, issue = self.term(m)
        negative = Signal(name="negative")
        added = Signal(unsigned(width), name="added")
        m.d.comb += [negative.eq(issue & negate), added.eq(term ^ negative.replicate(width))]
        acc_sum = Signal(unsigned(width), name="acc_sum")
        acc_carry = Signal(unsigned(width), name="acc_carry")
        total_sum, majority = compress_3_2(m, acc_sum, acc_carry, added, width, "csa")
        total_carry = Signal(unsigned(width), name="total_carry")
        m.d.comb += total_carry.eq(majority | negative)  # bit 0 of a compressor's carry is always 0
        with m.If(self.step):
            with m.If(self.capture):
                m.d.sync += [acc_sum.eq(0), acc_carry.eq(0)]
            with m.Elif(issue):
                m.d.sync += [acc_sum.eq(total_sum), acc_carry.eq(total_carry)]
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
    ``load``; ``b_in`` the held ``B`` element; ``final`` says this PE issues
    its last digit (or none) in this cycle. ``step``, ``capture``, ``drain``
    and the result pairs are :class:`DigitMac`'s.
    """

    def __init__(self, operand_shape, acc_width: int):
        self._shape = Shape.cast(operand_shape)
        self._width = acc_width
        members = {
            "a_in": In(self._shape), "load": In(1), "b_in": In(self._shape), "final": Out(1),
            "step": In(1), "capture": In(1), "drain": In(1),
        }
        for part in PARTS:
            members |= {f"result{part}_in": In(unsigned(acc_width)), f"result{part}": Out(unsigned(acc_width))}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.issuer = issuer = DigitIssuer(self._shape)
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

    ``A`` and ``B`` share one shape, ``a_shape`` (``b_shape``, if given, must equal it; see
    :func:`hw.tpe.mac.check_formats`).
    """

    def __init__(self, rows: int, cols: int, a_shape, acc_width: int, *, b_shape=None, mac: str):
        if min(rows, cols) < 1:
            raise ValueError(f"grid size must be at least 1x1, not {rows}x{cols}")
        if mac not in DIGIT_SERIAL:
            raise ValueError(f"mac: {mac!r} is not one of {DIGIT_SERIAL}")
        self.rows, self.cols, self.mac = rows, cols, mac
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = self.a_shape if b_shape is None else Shape.cast(b_shape)
        check_formats(mac, self.a_shape, self.b_shape)
        self.acc_width = acc_width
        super().__init__(engine_signature(operand_beat_layout(rows, cols, self.a_shape),
                                          cols, self.a_shape, acc_width))

    latency = 2
    timing = "data-dependent"

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

        if self.mac == "opt3":
            pes = [[SparseDigitPE(shape, width) for _ in range(cols)] for _ in range(rows)]
        elif self.mac == "opt4c":
            pes = [[DigitMac(shape, width) for _ in range(cols)] for _ in range(rows)]
        else:
            pes = [[TermMac(shape, width) for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]

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

        # Result bank: as BroadcastGrid, busy from a capture until its final row left.
        draining = Signal(name="draining")
        shift = Signal()      # a result beat moves at this edge
        final_row = Signal()  # the beat on offer carries the job's last row
        due = Signal()        # this cycle ends a job's last beat
        bank_free = Signal()  # results captured at this edge would overwrite nothing on offer
        capture = Signal()
        m.d.comb += [
            res.valid.eq(draining),
            res.p.last.eq(final_row),
            shift.eq(res.valid & res.ready),
            due.eq(held & beat_last & final),
            bank_free.eq(~draining | (shift & final_row)),
            advance.eq(~due | bank_free),
            capture.eq(due & bank_free),
        ]
        step_result_bank(m, rows, draining=draining, final_row=final_row, capture=capture, shift=shift)

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
                pe = pes[i][j]
                m.d.comb += [pe.step.eq(step), pe.capture.eq(capture), pe.drain.eq(shift)]
                if i + 1 < rows:  # the bottom row shifts in zeros
                    for part in PARTS:
                        m.d.comb += getattr(pe, f"result{part}_in").eq(getattr(pes[i + 1][j], f"result{part}"))
        acc_shape = accumulator_shape(width, shape.signed)
        for j in range(cols):
            total = Signal(acc_shape, name=f"c_{j}")
            m.d.comb += [total.eq(resolve([getattr(pes[0][j], f"result{part}") for part in PARTS])),
                         res.p.c[j].eq(total)]
        return m


def _all(bits):
    """AND of ``bits`` as one reduction (a balanced tree after synthesis; a chain of ``&``
    stays a chain: 268 cells deep at 16x16 for ``opt3``'s per-PE ``final``)."""
    return Cat(*bits).all()


def _any(bits):
    """OR of ``bits`` as one reduction (see :func:`_all`)."""
    return Cat(*bits).any()
