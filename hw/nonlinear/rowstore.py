"""Banked row buffer shared by the two-pass row units (softmax, LayerNorm).

A two-pass unit reads a row once to compute its statistics (running max and
sum, or sum and sum of squares) and a second time to normalise each element.
:class:`RowStore` keeps the raw rows between the two passes, in ``banks`` banks
of ``ceil(n_max / lanes)`` words (one word = one beat of ``lanes`` codes) of an
``amaranth.lib.memory`` block, so the next row's first pass overlaps the
previous row's second pass.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from ..arith.fixed import FixedFormat, Overflow, Rounding
from .interface import INPUT_STREAM, element_layout


def read_layout(fmt: FixedFormat, lanes: int, banks: int) -> data.StructLayout:
    """One beat read back from the store: the beat as written plus ``valid`` and its ``bank``."""
    return data.StructLayout({
        "valid": unsigned(1),
        "beat": element_layout(fmt, lanes),
        "bank": unsigned(max(1, ceil_log2(banks))),
    })


def check_row_spec(spec) -> None:
    """Common checks and normalisation of a row unit's spec (``rounding``, ``overflow``, sizes)."""
    object.__setattr__(spec, "rounding", Rounding(spec.rounding))
    object.__setattr__(spec, "overflow", Overflow(spec.overflow))
    if spec.lanes < 1 or spec.n_max < 1 or spec.banks < 1:
        raise ValueError(f"lanes, n_max and banks must be at least 1, not {spec.lanes}, {spec.n_max}, {spec.banks}")


def equals(value, constant: int):
    """``value == constant``, written ``~value.any()`` for 0 (Yosys's ``!x`` trips Verilator's WIDTHTRUNC)."""
    return ~value.any() if constant == 0 else value == constant


def pick(m: Module, index, values, name: str, shape=1) -> Signal:
    """``values[index]`` combinationally: one case per value, the last as the default (no incomplete case)."""
    out = Signal(shape, name=name)
    if len(values) == 1:
        m.d.comb += out.eq(values[0])
        return out
    with m.Switch(index):
        for k, value in enumerate(values):
            with (m.Case(k) if k < len(values) - 1 else m.Default()):
                m.d.comb += out.eq(value)
    return out


class RowStore(wiring.Component):
    """Rows in, statistics computed by the caller, rows read back once.

    A bank is *free*, then *filled* (its row's last beat was written) until
    the caller releases it; while filled it is *readable* from the caller's
    ``stats_done`` until its last beat has been read. Banks are used in turn,
    so rows leave in the order they came.

    Ports and timing, per clock cycle:

    * ``inp`` (element stream, see :mod:`hw.nonlinear.interface`): a beat
      moves when ``inp.valid & inp.ready``; it is written to word ``beat index``
      of bank ``write_bank``. ``inp.ready`` is high while that bank is free
      (it depends on registers only). ``first`` is high while the beat on offer
      would be its row's first. A row longer than ``n_max`` elements keeps
      overwriting its bank's final word (outside the contract: its results
      are undefined, but its framing is kept).
    * ``stats_done`` with ``stats_bank``: the caller's statistics of the filled
      row in ``stats_bank`` are complete; from the next cycle its beats are read.
    * ``en``: the read pipeline advances. While ``en`` is high and a readable
      row has beats left, the next beat is read; ``read`` shows it from the
      next cycle on and holds it while ``en`` is low (``read.valid`` is low
      after a cycle with ``en`` high and nothing to read). ``read_index`` is
      the beat index (within its row) being read in this cycle, so a caller's
      memory of per-position values read with the same ``en`` lines up with
      ``read``.
    * ``release`` with ``release_bank``: the row of that bank has left the
      caller's pipeline; the bank is free from the next cycle (and may be
      written in that cycle).

    Parameters
    ----------
    fmt : FixedFormat
        Format of the stored codes.
    lanes : int
        Codes per beat.
    n_max : int
        Longest row, in elements.
    banks : int
        Number of rows held at once (at least 2 for the passes to overlap).
    """

    def __init__(self, fmt: FixedFormat, lanes: int, n_max: int, banks: int = 2):
        if n_max < 1 or banks < 1:
            raise ValueError(f"need n_max >= 1 and banks >= 1, not {n_max} and {banks}")
        self.fmt, self.lanes, self.n_max, self.banks = fmt, lanes, n_max, banks
        self.words = -(-n_max // lanes)
        bank_shape = unsigned(max(1, ceil_log2(banks)))
        super().__init__({
            "inp": In(stream.Signature(element_layout(fmt, lanes))),
            "write_bank": Out(bank_shape),
            "first": Out(1),
            "stats_done": In(1),
            "stats_bank": In(bank_shape),
            "en": In(1),
            "read": Out(read_layout(fmt, lanes, banks)),
            "read_index": Out(unsigned(bits_for(self.words - 1))),
            "release": In(1),
            "release_bank": In(bank_shape),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, words, banks = self.lanes, self.words, self.banks
        word_shape = data.ArrayLayout(self.fmt.shape(), lanes)
        m.submodules.rows = memory = Memory(shape=word_shape, depth=banks * words, init=[])
        write = memory.write_port()
        read = memory.read_port()

        index_shape = unsigned(bits_for(words - 1))
        bank_shape = unsigned(max(1, ceil_log2(banks)))
        filled = Signal(banks, name="filled")  # bank holds a complete row
        readable = Signal(banks, name="readable")  # ... whose statistics are done
        last_index = [Signal(index_shape, name=f"last_index_{b}") for b in range(banks)]
        last_count = [Signal(range(lanes + 1), name=f"last_count_{b}", init=lanes)
                      for b in range(banks)] if lanes > 1 else []

        # ---- write side
        write_bank = Signal(bank_shape, name="write_bank")
        write_index = Signal(index_shape, name="write_index")
        accept = Signal()
        m.d.comb += [
            self.inp.ready.eq(~pick(m, write_bank, list(filled), "write_bank_filled")),
            accept.eq(self.inp.valid & self.inp.ready),
            self.write_bank.eq(write_bank),
            self.first.eq(~write_index.any()),
            write.addr.eq(write_bank * words + write_index),
            write.data.eq(self.inp.payload.data),
            write.en.eq(accept),
        ]
        next_bank = Mux(write_bank == banks - 1, 0, write_bank + 1)
        with m.If(accept):
            with m.If(self.inp.payload.last):
                m.d.sync += [write_index.eq(0), write_bank.eq(next_bank)]
                for b in range(banks):
                    with m.If(equals(write_bank, b)):
                        m.d.sync += last_index[b].eq(write_index)
                        if lanes > 1:
                            m.d.sync += last_count[b].eq(self.inp.payload.count)
            with m.Elif(write_index != words - 1):
                m.d.sync += write_index.eq(write_index + 1)

        # ---- read side
        read_bank = Signal(bank_shape, name="read_bank")
        read_index = Signal(index_shape, name="read_index")
        tag_fields = {"valid": 1, "last": 1, "bank": bank_shape}
        if lanes > 1:
            tag_fields["count"] = range(lanes + 1)
        tag = Signal(data.StructLayout(tag_fields), name="read_tag")
        issue = Signal()
        at_last = Signal()
        row_last_index = pick(m, read_bank, last_index, "row_last_index", index_shape)
        if lanes > 1:
            row_last_count = pick(m, read_bank, last_count, "row_last_count", range(lanes + 1))
        m.d.comb += [
            issue.eq(pick(m, read_bank, list(readable), "read_bank_readable")),
            at_last.eq(read_index == row_last_index),
            read.addr.eq(read_bank * words + read_index),
            self.read_index.eq(read_index),
            read.en.eq(self.en),
        ]
        with m.If(self.en):
            m.d.sync += [tag.valid.eq(issue), tag.last.eq(at_last), tag.bank.eq(read_bank)]
            if lanes > 1:
                m.d.sync += tag.count.eq(Mux(at_last, row_last_count, lanes))
            with m.If(issue):
                with m.If(at_last):
                    m.d.sync += [read_index.eq(0), read_bank.eq(Mux(read_bank == banks - 1, 0, read_bank + 1))]
                with m.Else():
                    m.d.sync += read_index.eq(read_index + 1)
        m.d.comb += [
            self.read.valid.eq(tag.valid),
            self.read.beat.data.eq(read.data),
            self.read.beat.last.eq(tag.last),
            self.read.bank.eq(tag.bank),
        ]
        if lanes > 1:
            m.d.comb += self.read.beat.count.eq(tag.count)

        # ---- bank states (a bank is never filled and released, nor made readable and read out, in one cycle)
        for b in range(banks):
            with m.If(accept & self.inp.payload.last & equals(write_bank, b)):
                m.d.sync += filled[b].eq(1)
            with m.If(self.stats_done & equals(self.stats_bank, b)):
                m.d.sync += readable[b].eq(1)
            with m.If(self.en & issue & at_last & equals(read_bank, b)):
                m.d.sync += readable[b].eq(0)  # every beat read: not to be read again
            with m.If(self.release & equals(self.release_bank, b)):
                m.d.sync += filled[b].eq(0)
        return m


def read_tag(m: Module, read, lanes: int, **extra) -> Signal:
    """The control that travels with a beat read from a :class:`RowStore`: ``valid``, ``last``, ``bank``,
    ``count`` (``lanes > 1``) and the caller's ``extra`` fields (``name=(shape, value)``)."""
    fields = {"valid": 1, "last": 1, "bank": read.bank.shape()}
    if lanes > 1:
        fields["count"] = read.beat.count.shape()
    fields.update({name: shape for name, (shape, _) in extra.items()})
    tag = Signal(data.StructLayout(fields))
    m.d.comb += [tag.valid.eq(read.valid), tag.last.eq(read.beat.last), tag.bank.eq(read.bank)]
    if lanes > 1:
        m.d.comb += tag.count.eq(read.beat.count)
    for name, (_, value) in extra.items():
        m.d.comb += tag[name].eq(value)
    return tag


class OutputRegister:
    """The output register of a row unit's output pass and the pipeline enable it implies.

    ``en = ~out_valid | out.ready``: the output pass advances when its final
    register is empty or being taken (it also drives ``store.en``).
    :meth:`load` writes a beat (its ``tag`` from :func:`read_tag`, delayed
    alongside the computation) and releases the row's bank when its last beat
    enters the register.
    """

    def __init__(self, m: Module, out, store: RowStore, fmt: FixedFormat, lanes: int):
        self.m, self.store, self.lanes = m, store, lanes
        self.valid = Signal(name="out_valid")
        self.beat = Signal(element_layout(fmt, lanes), name="out_beat")
        self.en = Signal()
        m.d.comb += [
            self.en.eq(~self.valid | out.ready),
            store.en.eq(self.en),
            out.valid.eq(self.valid),
            out.payload.eq(self.beat),
        ]

    def load(self, tag, values) -> None:
        m = self.m
        with m.If(self.en):
            m.d.sync += [self.valid.eq(tag.valid), self.beat.last.eq(tag.last)]
            if self.lanes > 1:
                m.d.sync += self.beat.count.eq(tag.count)
            for lane, value in enumerate(values):
                m.d.sync += self.beat.data[lane].eq(value)
        m.d.comb += [self.store.release.eq(self.en & tag.valid & tag.last), self.store.release_bank.eq(tag.bank)]


class RowUnit(wiring.Component):
    """Base of the two-pass row units: a :class:`RowStore` on ``inp``, per-bank statistics, two passes.

    A subclass has ``spec`` (``input``, ``lanes``, ``n_max``, ``banks``), says
    which statistics a row keeps (:meth:`statistics`: name -> shape; registers
    ``row_<name>_<bank>``) and writes ``_statistics_pass(m, store, stats)`` and
    ``_output_pass(m, store, stats)``.
    """

    def statistics(self) -> dict:
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        m.submodules.store = store = RowStore(spec.input, spec.lanes, spec.n_max, spec.banks)
        wiring.connect(m, wiring.flipped(getattr(self, INPUT_STREAM)), store.inp)
        stats = {name: [Signal(shape, name=f"row_{name}_{b}") for b in range(spec.banks)]
                 for name, shape in self.statistics().items()}
        self._statistics_pass(m, store, stats)
        self._output_pass(m, store, stats)
        return m
