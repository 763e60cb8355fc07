"""The accelerator's AXI4-Lite register block, built from an elaborated ``RegisterMap``.

The register map (``hw/vit/regmap.py``) says which fields exist and how each behaves
(:attr:`Field.kind`); this module turns that into an AXI4-Lite slave with one hardware port
(or two) per field. Nothing here knows the accelerator's registers by name.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import DATA_WIDTH, Field, Register, RegisterMap

#: AXI response codes.
OKAY, SLVERR = 0b00, 0b10


class AxiLiteSlaveSignature(wiring.Signature):
    """AXI4-Lite as seen by a slave: AXI's own signal names, directions from the slave's side.

    (A local stand-in for the AXI4-Lite signature of ``hw/vit/axi.py``, flipped.)
    """

    def __init__(self, addr_width: int, data_width: int = DATA_WIDTH):
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data_width: {data_width}; allowed: 32, 64")
        if addr_width < 1:
            raise ValueError(f"AXI4-Lite addr_width: {addr_width}; must be at least 1")
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "awaddr": In(addr_width), "awprot": In(3), "awvalid": In(1), "awready": Out(1),
            "wdata": In(data_width), "wstrb": In(data_width // 8), "wvalid": In(1), "wready": Out(1),
            "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
            "araddr": In(addr_width), "arprot": In(3), "arvalid": In(1), "arready": Out(1),
            "rdata": Out(data_width), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
        })


def _equals(value, constant: int):
    """``value == constant``, written so that Yosys does not emit ``!value`` for 0 (WIDTHTRUNC)."""
    return ~value.any() if constant == 0 else value == constant


def port_name(register: Register, field: Field) -> str:
    """The hardware port of a field: ``<register>_<field>``, lower case."""
    return f"{register.name}_{field.name}".lower()


def field_ports(register: Register, field: Field) -> dict[str, wiring.Member]:
    """The hardware ports of one field, by name (from the register block's side)."""
    name = port_name(register, field)
    kind = field.kind
    if kind == "constant":
        return {}
    if kind == "input":
        return {name: In(field.width)}
    if kind == "pulse":
        return {name: Out(field.width)}
    if kind == "storage":
        return {name: Out(field.width, init=field.reset)}
    assert kind == "clear_on_write_one", kind
    return {name: Out(field.width, init=field.reset), f"{name}_set": In(field.width)}


class CsrBlock(wiring.Component):
    """An AXI4-Lite slave (32-bit data) holding the registers of ``regmap``.

    Ports: ``bus`` (:class:`AxiLiteSlaveSignature`, ``regmap.addr_width`` address bits) and,
    per field, ``<register>_<field>`` (lower case) by :attr:`Field.kind`:

    * ``storage`` (sw=rw): ``Out(width)``, the current value (from reset: the RDL reset value).
    * ``pulse`` (singlepulse): ``Out(1)``, high for exactly one cycle after a write of 1.
    * ``input`` (sw=r, hw=w): ``In(width)``, read live.
    * ``clear_on_write_one`` (rw1c with hwset): ``In(width)`` ``<register>_<field>_set`` (each
      high bit sets the field), ``Out(width)`` ``<register>_<field>`` the value; a write of 1
      clears a bit unless its set input is high in that cycle (set wins).
    * ``constant``: no port; reads its reset value.

    Bus behaviour:

    * Addresses decode by 32-bit word (``addr[1:0]`` are ignored). Registers wider than
      32 bits are read and written as words, low first. Reading word 0 of a multi-word
      register the hardware changes (:attr:`Register.latched`) latches its upper words into
      a shadow register, which reads of the upper words return: a low-then-high pair is one
      snapshot.
    * Writes: AW and W are accepted in either order or together (one of each held); the
      write happens once both are held and no response is pending, and takes effect at the
      clock edge where ``bvalid`` rises (a ``storage`` port shows the new value, a ``pulse``
      port is high, in the first cycle of ``bvalid``). ``wstrb`` selects the bytes written.
      Writes to read-only fields are ignored (``OKAY``).
    * Reads: the value is sampled in the cycle of the AR handshake; ``rvalid`` rises at the
      next edge. Write-only (pulse) fields read 0.
    * An address outside the map answers ``SLVERR`` (reads return 0); nothing is dropped.
    * ``bvalid``/``rvalid`` do not wait for ``bready``/``rready`` and hold their payload until
      the handshake. During reset every valid and ready output is low.
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        members = {"bus": Out(AxiLiteSlaveSignature(regmap.addr_width))}
        for register in regmap.registers:
            if register.offset % 4 or register.width % DATA_WIDTH:
                raise ValueError(f"register {register.name}: offset 0x{register.offset:X} and width "
                                 f"{register.width} must be whole {DATA_WIDTH}-bit words")
            for field in register.fields:
                for name, member in field_ports(register, field).items():
                    if name in members:
                        raise ValueError(f"register map {regmap.name}: port name {name!r} "
                                         f"(register {register.name}, field {field.name}) is taken twice")
                    members[name] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        word_bits = self.regmap.addr_width - 2
        in_reset = ResetSignal()

        # ---- write channel: hold one AW and one W, then write, then answer on B ----
        aw_full = Signal()
        aw_word = Signal(word_bits)
        w_full = Signal()
        w_data = Signal(DATA_WIDTH)
        w_strb = Signal(DATA_WIDTH // 8)
        b_valid = Signal()
        b_resp = Signal(2)
        m.d.comb += [
            bus.awready.eq(~aw_full & ~in_reset),
            bus.wready.eq(~w_full & ~in_reset),
            bus.bvalid.eq(b_valid),
            bus.bresp.eq(b_resp),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_word.eq(bus.awaddr[2:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)
        writing = Signal()
        m.d.comb += writing.eq(aw_full & w_full & ~b_valid)
        w_mask = Cat(bit.replicate(8) for bit in w_strb)
        with m.If(writing):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1)]

        # ---- read channel: sample on the AR handshake, answer on R ----
        r_valid = Signal()
        r_resp = Signal(2)
        r_data = Signal(DATA_WIDTH)
        m.d.comb += [
            bus.arready.eq(~r_valid & ~in_reset),
            bus.rvalid.eq(r_valid),
            bus.rresp.eq(r_resp),
            bus.rdata.eq(r_data),
        ]
        reading = Signal()
        m.d.comb += reading.eq(bus.arvalid & bus.arready)
        with m.If(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)
        with m.If(reading):
            m.d.sync += r_valid.eq(1)

        state = {}  # port name -> its register (and "<name>_clear" -> the rw1c clear bits)
        words = []  # (word address, register, k, read value)
        for register in self.regmap.registers:
            live = self._register_logic(m, register, state)
            shadow = None
            if register.latched:
                shadow = Signal(register.width - DATA_WIDTH, name=f"{register.name.lower()}_shadow")
                # Word 0 reads live and latches the upper words; the upper words read the shadow.
                with m.If(reading & _equals(bus.araddr[2:], register.offset // 4)):
                    m.d.sync += shadow.eq(live[DATA_WIDTH:])
            for k in range(register.words):
                data = live.word_select(k, DATA_WIDTH)
                if shadow is not None and k:
                    data = shadow.word_select(k - 1, DATA_WIDTH)
                words.append((register.offset // 4 + k, register, k, data))

        with m.If(reading):
            with m.Switch(bus.araddr[2:]):
                for word, _, _, data in words:
                    with m.Case(word):
                        m.d.sync += [r_resp.eq(OKAY), r_data.eq(data)]
                with m.Default():  # outside the map (and a complete case: Verilator's CASEINCOMPLETE)
                    m.d.sync += [r_resp.eq(SLVERR), r_data.eq(0)]
        # Writes decode with one comparator per word, not a case statement: each field's
        # logic would otherwise become a case without default (Verilator's CASEINCOMPLETE).
        write_hits = []
        for word, register, k, _ in words:
            hit = Signal(name=f"write_{register.name.lower()}_{k}")
            m.d.comb += hit.eq(writing & _equals(aw_word, word))
            write_hits.append(hit)
            with m.If(hit):
                self._write_word(m, register, k, w_data, w_mask, state)
        with m.If(writing):
            m.d.sync += b_resp.eq(Mux(Cat(write_hits).any(), OKAY, SLVERR))
        return m

    def _register_logic(self, m: Module, register: Register, state: dict):
        """Create the field state of ``register``; return its read value (``register.width`` bits)."""
        live = Signal(register.width, name=f"{register.name.lower()}_read")
        for field in register.fields:
            name = port_name(register, field)
            kind = field.kind
            if kind == "constant":
                value = Const(field.reset, field.width)
            elif kind == "input":
                value = getattr(self, name)
            elif kind == "pulse":
                pulse = Signal(field.width, name=f"{name}_reg")
                m.d.sync += pulse.eq(0)
                m.d.comb += getattr(self, name).eq(pulse)
                state[name] = pulse
                value = Const(0, field.width)
            elif kind == "storage":
                stored = Signal(field.width, init=field.reset, name=f"{name}_reg")
                m.d.comb += getattr(self, name).eq(stored)
                state[name] = stored
                value = stored
            else:
                stored = Signal(field.width, init=field.reset, name=f"{name}_reg")
                clear = Signal(field.width, name=f"{name}_clear")
                m.d.sync += stored.eq((stored & ~clear) | getattr(self, f"{name}_set"))
                m.d.comb += getattr(self, name).eq(stored)
                state[name] = stored
                state[f"{name}_clear"] = clear
                value = stored
            m.d.comb += live[field.lsb:field.lsb + field.width].eq(value)
        return live

    def _write_word(self, m: Module, register: Register, k: int, data, mask, state: dict) -> None:
        """The effect of writing ``data`` (byte-lane ``mask``) to word ``k`` of ``register``."""
        for field in register.fields:
            lo, hi = max(field.lsb, DATA_WIDTH * k), min(field.msb, DATA_WIDTH * k + DATA_WIDTH - 1)
            if lo > hi:
                continue
            bits = slice(lo - field.lsb, hi - field.lsb + 1)
            lanes = slice(lo - DATA_WIDTH * k, hi - DATA_WIDTH * k + 1)
            new, enable = data[lanes], mask[lanes]
            name = port_name(register, field)
            kind = field.kind
            if kind == "storage":
                stored = state[name]
                m.d.sync += stored[bits].eq((stored[bits] & ~enable) | (new & enable))
            elif kind == "pulse":
                m.d.sync += state[name][bits].eq(new & enable)
            elif kind == "clear_on_write_one":
                m.d.comb += state[f"{name}_clear"][bits].eq(new & enable)
