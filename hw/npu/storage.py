"""The one hook through which the NPU tile builds its register groups and memories.

Every register group and every memory of the tile is made here, with a
``mechanism`` argument (default ``"none"``), so that protection is switched on
per block by configuration without touching the blocks. The mechanisms are
those of :mod:`hw.protect.registers`: registers take ``none``, ``parity``,
``secded``, ``dmr``, ``tmr``; memory words ``none``, ``parity``, ``secded``.

A register group is one register of any shape (usually a
:class:`amaranth.lib.data.StructLayout` of a block's fields). Its owner reads
``q`` and writes the next value to ``d`` with comb statements; ``d`` defaults
to ``q`` (hold) and the group loads ``d`` at every rising edge, so a correcting
mechanism writes the corrected value back in the next cycle (scrubbing).

Fault-site names (``<block>`` is the owning submodule): a register group
``name`` is ``<block>.<name>`` unprotected, otherwise the flip-flops
:func:`hw.protect.register_names` lists (``<name>_par``, ``<name>_code``,
``<name>_r0`` ..). A memory ``name`` unprotected is a :class:`hw.mem.Buffer`
submodule ``name`` (words ``<name>.mem``, read register ``<name>.r_data``);
protected, a :class:`CodedBuffer` ``name`` whose coded words are
``<name>.words.mem`` and ``<name>.words.r_data``.

Each group and memory exposes ``corrected`` and ``detected`` (1 bit, this
cycle's alarms; constant 0 unprotected).
"""

from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mem import Buffer, address_shape
from hw.protect.registers import WordDecoder, WordEncoder, protected_register, stored_width

UNPROTECTED = "none"


class RegisterGroup:
    """A register of ``shape`` built with ``mechanism`` (see the module docstring)."""

    def __init__(self, m: Module, name: str, shape, *, mechanism: str = UNPROTECTED, init=None):
        reg = protected_register(m, name, shape, mechanism, init=init)
        self.name, self.mechanism = name, mechanism
        self.q, self.d = reg.q, reg.d
        self.registers = reg.registers
        self.corrected, self.detected = reg.corrected, reg.detected
        # Written every cycle, holding by default: the owner's later comb statements override d.
        m.d.comb += [reg.en.eq(1), reg.d.eq(reg.q)]


class CodedBuffer(wiring.Component):
    """A :class:`hw.mem.Buffer` that stores each word under ``mechanism`` (``parity`` or ``secded``).

    Same ports and timing as the buffer, plus ``detected``/``corrected``: the
    check of the word in the read register (``r_data`` is the corrected data).
    Words encode on the write port (submodule ``enc``), the read register
    decodes (submodule ``dec``); the coded words live in submodule ``words``.
    """

    def __init__(self, width: int, depth: int, mechanism: str):
        self._width, self._depth, self._mechanism = width, depth, mechanism
        self._stored = stored_width(width, mechanism)
        super().__init__({
            "w_en": In(1), "w_addr": In(address_shape(depth)), "w_data": In(width),
            "r_en": In(1), "r_addr": In(address_shape(depth)), "r_data": Out(width),
            "detected": Out(1), "corrected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.words = words = Buffer(self._stored, self._depth)
        m.submodules.enc = enc = WordEncoder(self._width, self._mechanism)
        m.submodules.dec = dec = WordDecoder(self._width, self._mechanism)
        m.d.comb += [
            enc.data.eq(self.w_data),
            words.w_en.eq(self.w_en), words.w_addr.eq(self.w_addr), words.w_data.eq(enc.stored),
            words.r_en.eq(self.r_en), words.r_addr.eq(self.r_addr),
            dec.stored.eq(words.r_data),
            self.r_data.eq(dec.data), self.detected.eq(dec.detected), self.corrected.eq(dec.corrected),
        ]
        return m


def memory_block(m: Module, name: str, width: int, depth: int, *, mechanism: str = UNPROTECTED):
    """A memory of ``depth`` x ``width`` as submodule ``name``, built with ``mechanism``.

    The result has the :class:`hw.mem.Buffer` ports plus ``corrected`` and ``detected``.
    """
    if mechanism == UNPROTECTED:
        m.submodules[name] = buffer = Buffer(width, depth)
        buffer.corrected = buffer.detected = Const(0, 1)
        return buffer
    m.submodules[name] = buffer = CodedBuffer(width, depth, mechanism)
    return buffer
