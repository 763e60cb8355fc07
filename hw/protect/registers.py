"""THE hook generators call to build a register group or a stored word with a protection mechanism.

Public API (stable; the tile generator and the protection step build on it)::

    REGISTER_MECHANISMS = ("none", "parity", "secded", "dmr", "tmr")
    WORD_MECHANISMS = ("none", "parity", "secded")

    protected_register(m, name, shape, mechanism="none", *, init=None, domain="sync")
        -> ProtectedRegister(q, d, en, detected, corrected, registers, mechanism)
    register_names(name, mechanism) -> tuple[str, ...]    # the flip-flops, i.e. the fault sites
    stored_width(width, mechanism) -> int                 # bits actually stored per value
    WordEncoder(width, mechanism)   # data -> stored       (for memory words)
    WordDecoder(width, mechanism)   # stored -> data, detected, corrected

Register group (:func:`protected_register`)
-------------------------------------------
Adds the storage of one value of ``shape`` to module ``m`` and returns a
:class:`ProtectedRegister`. Its use, in place of a plain ``Signal`` in ``m.d.sync``::

    acc = protected_register(m, "acc", signed(24), mechanism)
    m.d.comb += [acc.d.eq(acc.q + product), acc.en.eq(valid)]   # write when en
    ... read acc.q ...                                            # the checked / corrected value

Timing: like a plain register with an enable. When ``en`` is high the value on
``d`` is stored at the clock edge of ``domain`` and appears on ``q`` one cycle
later. When ``en`` is low:

* ``none``, ``parity``, ``dmr`` hold their stored bits unchanged, so a detected
  error stays visible (``detected`` stays high) until the next write;
* ``secded``, ``tmr`` write the corrected value back (scrubbing), so a corrected
  single upset is repaired at the next edge and cannot pile up with a second one;
  a SECDED word with an uncorrectable error is held, like a detected one above.

Driving ``en`` high every cycle with ``d = q`` also works (the value is rewritten
each cycle); a parity or DMR error is then reported for one cycle before the
rewrite makes the stored bits consistent again.

``q``, ``detected`` and ``corrected`` are combinational from the stored bits
(same cycle). ``detected`` means an error was seen that is not corrected (parity
error, DMR mismatch, SECDED double error); ``corrected`` means an error was seen
and ``q`` already holds the right value (SECDED single error, TMR disagreement).
In a manifest they are alarms ``{"corrects": false}`` and ``{"corrects": true}``.

Register names (the fault sites; stable, so campaigns and the protection config
can name them):

| mechanism | flip-flops in ``m`` | alarms |
|---|---|---|
| ``none`` | ``<name>`` | none (both constant 0) |
| ``parity`` | ``<name>`` (data), ``<name>_par`` (1 bit) | detected |
| ``secded`` | ``<name>_code`` (``code_width(width)`` bits) | corrected (single), detected (double) |
| ``dmr`` | ``<name>_r0``, ``<name>_r1`` | detected |
| ``tmr`` | ``<name>_r0``, ``<name>_r1``, ``<name>_r2`` | corrected |

The write side's encoder is a submodule ``<name>_enc`` (parity, secded); the
checks that read the registers are added to ``m`` itself (signals prefixed
``<name>_``), because the emitted Verilog renames a register that drives a
submodule's input port after that port, and the names above must hold. The
alarm wires are ``<name>_detected`` and ``<name>_corrected``. With ``none``
(and ``q`` of ``parity``/``dmr``, which is the first register itself), do not
drive a submodule's input port straight from ``q`` if the name matters: put
the logic in ``m`` or drive the port from an expression. DMR and TMR replicas
carry the ``keep`` attribute (see ``_KEEP`` for what synthesis needs).

Memory words (:class:`WordEncoder`, :class:`WordDecoder`)
--------------------------------------------------------
A memory stores ``stored_width(width, mechanism)``-bit words: encode on the write
port, decode after the read port. Same alarm meaning as above; ``dmr``/``tmr``
are not offered for memories (use ``secded``).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeCastable, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import secded as _secded
from .parity import ParityChecker, ParityEncoder
from .replicate import add_voter_logic

REGISTER_MECHANISMS = ("none", "parity", "secded", "dmr", "tmr")
WORD_MECHANISMS = ("none", "parity", "secded")
#: Replicas are identical flip-flops with identical inputs: synthesis merges them into
#: one (and folds the comparator or voter away) unless the flip-flops carry ``keep``.
#: Amaranth puts the attribute on the wire; a Yosys script moves it to the flip-flop
#: driving it with ``setattr -set keep 1 w:* a:keep %i %ci1:+[Q]`` (docs/protection.md).
_KEEP = {"keep": 1}
#: alarm -> whether the mechanism has corrected what it reports (the manifest's ``corrects``).
ALARMS = {"detected": False, "corrected": True}


def _check_mechanism(mechanism: str, allowed: tuple[str, ...]) -> str:
    if mechanism not in allowed:
        raise ValueError(f"mechanism: {mechanism!r} is not one of {', '.join(allowed)}")
    return mechanism


def _check_fits(width: int, mechanism: str) -> None:
    if mechanism == "secded" and width < _secded.MIN_DATA_WIDTH:
        raise ValueError(f"mechanism: secded needs at least {_secded.MIN_DATA_WIDTH} data bits, "
                         f"got {width}; use parity, dmr or tmr")


def stored_width(width: int, mechanism: str) -> int:
    """Bits stored for one ``width``-bit value under ``mechanism`` (all replicas / check bits included)."""
    _check_mechanism(mechanism, REGISTER_MECHANISMS)
    _check_fits(width, mechanism)
    if mechanism == "secded":
        return _secded.code_width(width)
    return width * {"none": 1, "dmr": 2, "tmr": 3}.get(mechanism, 1) + (mechanism == "parity")


def register_names(name: str, mechanism: str) -> tuple[str, ...]:
    """Names of the flip-flops :func:`protected_register` creates for ``name``."""
    _check_mechanism(mechanism, REGISTER_MECHANISMS)
    return {
        "none": (name,),
        "parity": (name, f"{name}_par"),
        "secded": (f"{name}_code",),
        "dmr": (f"{name}_r0", f"{name}_r1"),
        "tmr": (f"{name}_r0", f"{name}_r1", f"{name}_r2"),
    }[mechanism]


def _init_bits(shape, init) -> int:
    """The bits of a reset value as ``Signal(shape, init=init)`` would hold them (None: the shape's default)."""
    if isinstance(shape, ShapeCastable):
        return Const.cast(shape.const(init)).value & ((1 << Shape.cast(shape).width) - 1)
    return Const(0 if init is None else init, Shape.cast(shape)).value & ((1 << Shape.cast(shape).width) - 1)


def _encode_init(bits: int, width: int, mechanism: str) -> int:
    """The stored word of reset value bits ``bits``, computed in Python."""
    if mechanism == "parity":
        return bits | (bin(bits).count("1") & 1) << width
    if mechanism == "secded":
        return _secded.encode(bits, width)
    return bits


class WordEncoder(wiring.Component):
    """Stored form of a word: the data (``none``), data plus parity bit, or the SECDED code word.

    Combinational. Ports: ``data`` In(width), ``stored`` Out(stored_width(width, mechanism)).
    The data bits are always ``stored[:width]`` (all codes are systematic).
    """

    def __init__(self, width: int, mechanism: str):
        self._width = width
        self._mechanism = _check_mechanism(mechanism, WORD_MECHANISMS)
        super().__init__({"data": In(width), "stored": Out(stored_width(width, mechanism))})

    def elaborate(self, platform):
        m = Module()
        if self._mechanism == "none":
            m.d.comb += self.stored.eq(self.data)
        elif self._mechanism == "parity":
            m.submodules.encoder = parity = ParityEncoder(self._width)
            m.d.comb += [parity.data.eq(self.data), self.stored.eq(Cat(self.data, parity.parity))]
        else:
            m.submodules.encoder = encoder = _secded.SecdedEncoder(self._width)
            m.d.comb += [encoder.data.eq(self.data), self.stored.eq(encoder.code)]
        return m


class WordDecoder(wiring.Component):
    """Checks (and for SECDED corrects) a stored word.

    Combinational. Ports: ``stored`` In(stored_width(width, mechanism)),
    ``data`` Out(width) (corrected for a SECDED single error, else the stored
    data bits), ``detected`` Out(1) (parity error, SECDED double error),
    ``corrected`` Out(1) (SECDED single error, already fixed in ``data``).
    For ``none`` both alarms are 0.
    """

    def __init__(self, width: int, mechanism: str):
        self._width = width
        self._mechanism = _check_mechanism(mechanism, WORD_MECHANISMS)
        super().__init__({
            "stored": In(stored_width(width, mechanism)),
            "data": Out(width),
            "detected": Out(1),
            "corrected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        if self._mechanism == "none":
            m.d.comb += self.data.eq(self.stored)
        elif self._mechanism == "parity":
            m.submodules.decoder = checker = ParityChecker(self._width)
            m.d.comb += [
                checker.data.eq(self.stored[:self._width]),
                checker.parity.eq(self.stored[self._width]),
                self.data.eq(self.stored[:self._width]),
                self.detected.eq(checker.error),
            ]
        else:
            checked = _secded.add_decoder_logic(m, self.stored, self._width)
            m.d.comb += [
                self.data.eq(checked.data),
                self.detected.eq(checked.double_error),
                self.corrected.eq(checked.single_error),
            ]
        return m


@dataclass(frozen=True)
class ProtectedRegister:
    """What :func:`protected_register` returns (see the module docstring for timing).

    ``q``: the value to read (checked, corrected or voted), of the requested shape.
    ``d``, ``en``: drive combinationally; ``d`` is stored when ``en`` is high.
    ``detected``, ``corrected``: the alarms (1 bit each; constant 0 where the
    mechanism has none). ``registers``: the flip-flops as plain signals (raw bits
    even for a layout shape), named by :func:`register_names`.
    """

    q: Value
    d: Signal
    en: Signal
    detected: Signal
    corrected: Signal
    registers: tuple[Signal, ...]
    mechanism: str


def _replicas(shape, names, init) -> tuple:
    """One register per name; replicas (more than one) are marked ``keep``."""
    attrs = _KEEP if len(names) > 1 else {}
    return tuple(Signal(shape, name=reg_name, init=init, attrs=attrs) for reg_name in names)


def _plain(regs) -> tuple[Signal, ...]:
    """The registers as plain signals (a ``data.View`` of a layout shape wraps one)."""
    return tuple(Value.cast(reg) for reg in regs)


def protected_register(m: Module, name: str, shape, mechanism: str = "none", *,
                       init=None, domain: str = "sync") -> ProtectedRegister:
    """Add one register of ``shape`` protected by ``mechanism`` to ``m`` (module docstring: contract)."""
    _check_mechanism(mechanism, REGISTER_MECHANISMS)
    width = Shape.cast(shape).width  # a data.Layout keeps its view on q, d and the registers
    _check_fits(width, mechanism)
    try:
        bits = _init_bits(shape, init)
    except (TypeError, ValueError) as error:
        raise ValueError(f"init: {init!r} is not a value of {shape!r}: {error}") from None
    d = Signal(shape, name=f"{name}_d")
    en = Signal(name=f"{name}_en")
    detected = Signal(name=f"{name}_detected")
    corrected = Signal(name=f"{name}_corrected")
    sync = m.d[domain]

    names = register_names(name, mechanism)
    # The checks read the registers through logic added here, not through a submodule's
    # input port: the emitted Verilog would rename a register after such a port. For
    # none, parity and dmr, q is the (first) register itself: a second signal naming
    # the same net could win over the register's name in the Verilog.
    if mechanism in ("none", "dmr"):
        regs = _replicas(shape, names, init)
        with m.If(en):
            sync += [reg.eq(d) for reg in regs]
        if mechanism == "dmr":
            m.d.comb += detected.eq(regs[0] != regs[1])
        return ProtectedRegister(regs[0], d, en, detected, corrected, _plain(regs), mechanism)

    if mechanism == "parity":
        m.submodules[f"{name}_enc"] = encoder = WordEncoder(width, mechanism)
        parity_init = _encode_init(bits, width, mechanism) >> width
        regs = (Signal(shape, name=names[0], init=init), Signal(1, name=names[1], init=parity_init))
        m.d.comb += [detected.eq(Cat(*regs).xor()), encoder.data.eq(d)]
        with m.If(en):
            sync += Cat(*regs).eq(encoder.stored)
        return ProtectedRegister(regs[0], d, en, detected, corrected, _plain(regs), mechanism)

    q = Signal(shape, name=f"{name}_q")
    if mechanism == "secded":
        m.submodules[f"{name}_enc"] = encoder = WordEncoder(width, mechanism)
        regs = (Signal(stored_width(width, mechanism), name=names[0],
                       init=_encode_init(bits, width, mechanism)),)
        checked = _secded.add_decoder_logic(m, regs[0], width, prefix=f"{name}_")
        m.d.comb += [q.eq(checked.data), detected.eq(checked.double_error),
                     corrected.eq(checked.single_error)]
        # Scrub: when not writing, store the corrected value again -- but keep an
        # uncorrectable word as it is, so its alarm stays up until the next write.
        m.d.comb += encoder.data.eq(Mux(en, d, q))
        with m.If(en | ~checked.double_error):
            sync += regs[0].eq(encoder.stored)
        return ProtectedRegister(q, d, en, detected, corrected, _plain(regs), mechanism)

    regs = _replicas(shape, names, init)
    voted = add_voter_logic(m, regs, prefix=f"{name}_")
    m.d.comb += [q.eq(voted.out), corrected.eq(voted.disagree)]
    # Resynchronise: every replica takes the voted value when not written.
    sync += [reg.eq(Mux(en, d, q)) for reg in regs]
    return ProtectedRegister(q, d, en, detected, corrected, _plain(regs), mechanism)
