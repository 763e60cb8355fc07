"""The NPU tile's controller: stores a command list, then runs it (block ``ctrl``)."""

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.compare import above, at_most
from hw.mem import address_shape

from .commands import ACT_MODES, OPCODES
from .storage import UNPROTECTED, RegisterGroup

#: Controller states (the ``state`` field of the register group).
STATES = ("PROG", "FETCH", "DECODE", "LOAD", "GEMM", "GEMM_WAIT", "WRITE", "ERROR")
S = {name: code for code, name in enumerate(STATES)}


def _is(value, constant: int):
    """``value == constant``, written so that Yosys emits no ``!x`` (Verilator WIDTHTRUNC)."""
    return ~value.any() if constant == 0 else value == constant


class Controller(wiring.Component):
    """Receives a program into the command memory, then executes it command by command.

    All state is one register group ``regs`` (built by :mod:`hw.npu.storage`):
    ``state``, ``pc``, ``length`` (commands stored), ``addr``/``b_addr``
    (buffer addresses of the running command), ``count`` (words, beats or
    rows left or done), ``target_b``, ``acc_add``, ``ops_valid``/``ops_last``
    (the operand beat in the buffers' read registers), ``done``, ``error``.

    Contract (see ``docs/npu_tile.md`` for timing):

    * ``PROG``: ``host_ready`` is high; each command word (``host_cmd``) is
      written to ``cmd[length]``; ``END`` starts the program (``FETCH`` at
      ``pc = 0``). Accepting a word clears ``done``.
    * ``FETCH`` reads ``cmd[pc]``, ``DECODE`` acts on it one cycle later.
    * ``LOAD``: ``host_ready`` high; each data word is written to the target
      buffer at ``addr``, ``addr`` and ``count`` step.
    * ``GEMM``: reads both buffers (one cycle of read latency) and offers
      each beat on ``ops_*`` until the engine takes it; the read enable is
      low while a beat waits, so the read registers hold it. Then
      ``GEMM_WAIT`` until the engine's last result row.
    * ``WRITE``: offers accumulator row ``row_sel`` (0 first) until the
      output stage takes it.
    * Errors (sticky ``error``, state ``ERROR``, which takes and drops every
      host word until reset): an invalid opcode or activation mode, a clip
      with ``lo > hi``, a shift above ``shift_max``, a buffer range past the
      buffer's end, a count or ``k`` of 0, ``k`` above the engine's beats per
      job, a data word where a command is expected or the reverse, a program
      that does not fit the command memory, ``pc`` running past the program.
    """

    def __init__(self, *, layouts: dict, cmd_width: int, cmd_depth: int, a_depth: int, b_depth: int,
                 k_beats_max: int, c_rows: int, shift_max: int, mechanism: str = UNPROTECTED):
        self._layouts = layouts
        self._cmd_depth = cmd_depth
        self._a_depth, self._b_depth = a_depth, b_depth
        self._k_beats_max = k_beats_max
        self._c_rows = c_rows
        self._shift_max = shift_max
        self._mechanism = mechanism
        depth = max(a_depth, b_depth)
        self._regs_layout = data.StructLayout({
            "state": unsigned(3),
            "pc": range(cmd_depth + 1),
            "length": range(cmd_depth + 1),
            "addr": range(depth + 1),
            "b_addr": range(depth + 1),
            "count": range(max(depth, k_beats_max, c_rows) + 1),
            "target_b": unsigned(1),
            "acc_add": unsigned(1),
            "ops_valid": unsigned(1),
            "ops_last": unsigned(1),
            "done": unsigned(1),
            "error": unsigned(1),
        })
        super().__init__({
            "host_valid": In(1), "host_ready": Out(1), "host_cmd": In(1), "host_word": In(cmd_width),
            "cmd_w_en": Out(1), "cmd_w_addr": Out(range(cmd_depth)),
            "cmd_r_en": Out(1), "cmd_r_addr": Out(range(cmd_depth)), "cmd_r_data": In(cmd_width),
            "a_w_en": Out(1), "b_w_en": Out(1), "w_addr": Out(address_shape(depth)),
            "r_en": Out(1), "a_r_addr": Out(address_shape(depth)), "b_r_addr": Out(address_shape(depth)),
            "ops_valid": Out(1), "ops_last": Out(1), "ops_ready": In(1),
            "res_valid": In(1), "res_last": In(1), "acc_add": Out(1),
            "row_valid": Out(1), "row_sel": Out(range(max(c_rows, 2))), "row_last": Out(1), "row_ready": In(1),
            "quant_we": Out(1), "act_we": Out(1),
            "done": Out(1), "error": Out(1),
            "corrected": Out(1), "detected": Out(1),
        })

    def _view(self, name: str):
        layout = self._layouts[name]
        return data.View(layout, self.cmd_r_data[:layout.size])

    def elaborate(self, platform):
        m = Module()
        group = RegisterGroup(m, "regs", self._regs_layout, mechanism=self._mechanism)
        q, d = group.q, group.d
        m.d.comb += [
            self.corrected.eq(group.corrected),
            self.detected.eq(group.detected),
            self.done.eq(q.done),
            self.error.eq(q.error),
            self.ops_valid.eq(q.ops_valid),
            self.ops_last.eq(q.ops_last),
            self.acc_add.eq(q.acc_add),
            self.cmd_w_addr.eq(q.length),
            self.cmd_r_addr.eq(q.pc),
            self.w_addr.eq(q.addr),
            self.a_r_addr.eq(q.addr),
            self.b_r_addr.eq(q.b_addr),
            self.row_sel.eq(q.count),
            self.row_last.eq(_is(q.count, self._c_rows - 1)),
        ]
        accept = self.host_valid & self.host_ready
        op = self.cmd_r_data[:3]

        def fail():
            m.d.comb += [d.state.eq(S["ERROR"]), d.error.eq(1)]

        def next_command():
            m.d.comb += [d.pc.eq(q.pc + 1), d.state.eq(S["FETCH"])]

        def range_ok(start, count, depth):
            return count.any() & (start + count <= depth)

        # If/Elif rather than Switch: Yosys writes a Switch as case statements per signal,
        # which Verilator flags as incomplete.
        with m.If(_is(q.state, S["PROG"])):
            m.d.comb += self.host_ready.eq(1)
            with m.If(accept):
                m.d.comb += d.done.eq(0)
                with m.If(~self.host_cmd | (q.length == self._cmd_depth)):
                    fail()
                with m.Else():
                    m.d.comb += [self.cmd_w_en.eq(1), d.length.eq(q.length + 1)]
                    with m.If(_is(self.host_word[:3], OPCODES["END"])):
                        m.d.comb += [d.pc.eq(0), d.state.eq(S["FETCH"])]
        with m.Elif(_is(q.state, S["FETCH"])):
            with m.If(q.pc >= q.length):
                fail()
            with m.Else():
                m.d.comb += [self.cmd_r_en.eq(1), d.state.eq(S["DECODE"])]
        with m.Elif(_is(q.state, S["DECODE"])):
            self._decode(m, q, d, op, fail, next_command, range_ok)
        with m.Elif(_is(q.state, S["LOAD"])):
            m.d.comb += self.host_ready.eq(1)
            with m.If(accept):
                with m.If(self.host_cmd):
                    fail()
                with m.Else():
                    m.d.comb += [self.a_w_en.eq(~q.target_b), self.b_w_en.eq(q.target_b),
                                 d.addr.eq(q.addr + 1), d.count.eq(q.count - 1)]
                    with m.If(q.count == 1):
                        next_command()
        with m.Elif(_is(q.state, S["GEMM"])):
            # A beat moves into the read registers when they are empty or their beat leaves.
            advance = ~q.ops_valid | self.ops_ready
            # Read only addresses of the command (none past a buffer's end once the beats are out).
            m.d.comb += self.r_en.eq(advance & q.count.any())
            with m.If(advance):
                with m.If(q.count.any()):
                    m.d.comb += [d.ops_valid.eq(1), d.ops_last.eq(q.count == 1), d.count.eq(q.count - 1),
                                 d.addr.eq(q.addr + 1), d.b_addr.eq(q.b_addr + 1)]
                with m.Else():
                    m.d.comb += [d.ops_valid.eq(0), d.ops_last.eq(0), d.state.eq(S["GEMM_WAIT"])]
        with m.Elif(_is(q.state, S["GEMM_WAIT"])):
            with m.If(self.res_valid & self.res_last):
                next_command()
        with m.Elif(_is(q.state, S["WRITE"])):
            m.d.comb += self.row_valid.eq(1)
            with m.If(self.row_ready):
                m.d.comb += d.count.eq(q.count + 1)
                with m.If(self.row_last):
                    next_command()
        with m.Else():  # ERROR, and any state code a fault could leave
            m.d.comb += [self.host_ready.eq(1), d.state.eq(S["ERROR"]), d.error.eq(1)]
        return m

    def _decode(self, m, q, d, op, fail, next_command, range_ok):
        load, gemm = self._view("LOAD_A"), self._view("GEMM")
        quant, act = self._view("QUANT"), self._view("ACT")
        with m.If(_is(op, OPCODES["END"])):
            m.d.comb += [d.done.eq(1), d.length.eq(0), d.state.eq(S["PROG"])]
        with m.Elif(_is(op, OPCODES["LOAD_A"]) | _is(op, OPCODES["LOAD_B"])):
            m.d.comb += [d.addr.eq(load.addr), d.count.eq(load.count),
                         d.target_b.eq(op == OPCODES["LOAD_B"]), d.state.eq(S["LOAD"])]
            with m.If(~self._load_ok(op, load, range_ok)):
                fail()
        with m.Elif(_is(op, OPCODES["GEMM"])):
            m.d.comb += [d.addr.eq(gemm.a_addr), d.b_addr.eq(gemm.b_addr), d.count.eq(gemm.k),
                         d.acc_add.eq(gemm.acc), d.state.eq(S["GEMM"])]
            ok = (range_ok(gemm.a_addr, gemm.k, self._a_depth) & range_ok(gemm.b_addr, gemm.k, self._b_depth)
                  & at_most(gemm.k, self._k_beats_max))
            with m.If(~ok):
                fail()
        with m.Elif(_is(op, OPCODES["QUANT"])):
            with m.If(above(quant.shift, self._shift_max)):
                fail()
            with m.Else():
                m.d.comb += self.quant_we.eq(1)
                next_command()
        with m.Elif(_is(op, OPCODES["ACT"])):
            with m.If((act.mode > ACT_MODES["clip"]) | ((act.mode == ACT_MODES["clip"]) & (act.lo > act.hi))):
                fail()
            with m.Else():
                m.d.comb += self.act_we.eq(1)
                next_command()
        with m.Elif(_is(op, OPCODES["WRITE"])):
            m.d.comb += [d.count.eq(0), d.state.eq(S["WRITE"])]
        with m.Else():
            fail()

    def _load_ok(self, op, load, range_ok):
        return Mux(op == OPCODES["LOAD_B"], range_ok(load.addr, load.count, self._b_depth),
                   range_ok(load.addr, load.count, self._a_depth))
