"""The ``GATE`` engine: rows of gate logits -> top-k experts per token -> the route table's queues.

For each of ``rows`` tokens, row ``t`` of the logits tensor (``n`` activation containers at
``src + t * src_stride``, written by a ``LINEAR`` with the gate's format) is read whole, each
logit converted to the gate unit's input format with the model's rounding and overflow (the
golden's ``convert``), and fed to the softmax gate (:class:`hw.nonlinear.gate.SoftmaxGate`:
softmax over the experts, then the ``top_k`` best, ties to the lower index), ``lanes`` logits
per beat. The token's ``top_k`` (expert, score) pairs are then appended to the experts'
queues (:class:`hw.vit.router.RouteTable`) in the order the gate gives them, one per cycle,
each marked ``first`` if its expert is the token's lowest; ``routed`` holds the operator's ``rows``
(the tokens the queues index, for the linear engine's checks). The queues are emptied when the
operator starts, so they hold exactly this operator's routing: queue ``e`` lists the tokens
that chose ``e`` in token order (the golden's ``np.nonzero(chosen == e)``).

Errors: ``BAD_FORMAT`` a flag or ``fmt`` set; ``BAD_SIZE`` ``rows`` zero or above the
table's ``tokens``, ``n`` below ``top_k`` or above ``experts``; ``BAD_ADDRESS`` the logits
tensor misaligned or past the address space.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import bits_for

from hw.arith.fixed import FixedFormat, Overflow, Rounding, requantize_hw
from hw.nonlinear.gate import GateSpec, SoftmaxGate
from hw.nonlinear.interface import INPUT_STREAM, OUTPUT_STREAM

from .descriptors import ERROR
from .engine import EngineControl, TensorCheck, check_widths, desc_field, engine_members
from .router import push_layout
from .select import equals, pick


class GateEngine(wiring.Component):
    """``GATE`` (see the module docstring): one read client, ``push`` and ``clear`` into a route table.

    Parameters: the memory geometry, the activation format ``act`` in ``act_bytes`` containers,
    the model's ``rounding`` and ``overflow`` (the conversion into the gate), the gate unit's
    ``spec`` (its ``softmax.n_max`` is the experts) and the table's ``tokens``.
    """

    def __init__(self, *, addr_width: int, data_width: int, act: FixedFormat, act_bytes: int, rounding: Rounding,
                 overflow: Overflow, spec: GateSpec, tokens: int):
        self.beat_log2, self.act_log2 = check_widths(addr_width=addr_width, data_width=data_width, act_bytes=act_bytes)
        self.addr_width, self.data_width, self.act, self.act_bytes = addr_width, data_width, act, act_bytes
        self.rounding, self.overflow, self.spec, self.tokens = rounding, overflow, spec, tokens
        self.experts, self.top_k, self.lanes = spec.experts, spec.top_k, spec.softmax.lanes
        self.gate = SoftmaxGate(spec)
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width, read_clients=1,
                                        write_clients=0)
                         | {"push": Out(stream.Signature(push_layout(self.experts, tokens, spec.softmax.output))),
                            "clear": Out(1), "routed": Out(bits_for(tokens))})

    def elaborate(self, platform):
        m = Module()
        desc, beat_bytes = self.desc, self.data_width // 8
        field = lambda name: desc_field(desc, "GATE", name)  # noqa: E731
        rows, n = field("rows"), field("n")
        experts, lanes, k = self.experts, self.lanes, self.top_k

        # ------------------------------------------------------------ check the descriptor
        check = m.submodules.check = TensorCheck(addr_width=self.addr_width, align=beat_bytes)
        m.d.comb += [check.base.eq(field("src")), check.rows.eq(rows), check.stride.eq(field("src_stride")),
                     check.row_bytes.eq(n << self.act_log2)]
        format_ok = ~desc[8:24].any()
        size_ok = rows.any() & (rows <= self.tokens) & (n >= k) & (n <= experts)
        control = m.submodules.control = EngineControl(check_cycles=TensorCheck.latency)
        m.d.comb += check.sample.eq(control.check)
        with m.If(~format_ok):
            m.d.comb += control.fault.eq(ERROR["BAD_FORMAT"])
        with m.Elif(~size_ok):
            m.d.comb += control.fault.eq(ERROR["BAD_SIZE"])
        with m.Elif(~check.ok):
            m.d.comb += control.fault.eq(ERROR["BAD_ADDRESS"])
        finished = Signal(name="finished")
        go, running = control.go, control.running
        m.d.comb += [control.start.eq(self.start), control.finished.eq(finished), self.busy.eq(control.busy),
                     self.done.eq(control.done), self.error.eq(control.error), self.clear.eq(go)]

        # ------------------------------------------------------------ requests: one per row
        rows_q, n_q = Signal(bits_for(self.tokens), name="rows_q"), Signal(bits_for(experts), name="n_q")
        row_beats = Signal(16, name="row_beats")
        requested = Signal(bits_for(self.tokens), name="requested")
        addr, stride = Signal(self.addr_width, name="row_addr"), Signal(32, name="stride_q")
        with m.If(go):
            m.d.sync += [rows_q.eq(rows), n_q.eq(n), requested.eq(0), addr.eq(field("src")),
                         stride.eq(field("src_stride")),
                         row_beats.eq(((n << self.act_log2) + beat_bytes - 1) >> self.beat_log2)]
        req = self.reads[0].req
        m.d.comb += [req.valid.eq(running & (requested < rows_q)), req.payload.addr.eq(addr),
                     req.payload.beats.eq(row_beats)]
        with m.If(req.valid & req.ready):
            m.d.sync += [requested.eq(requested + 1), addr.eq(addr + stride)]

        # ------------------------------------------------------------ a row of logits into registers
        beat_elems = beat_bytes // self.act_bytes
        bits = 8 * self.act_bytes
        logits = [Signal(self.act.shape(), name=f"logit_{e}") for e in range(experts)]
        loaded = Signal(name="loaded")
        beat = Signal(range(max(2, -(-experts // beat_elems) + 1)), name="beat")
        data_in = self.reads[0].data
        m.d.comb += data_in.ready.eq(running & ~loaded)
        with m.If(go):
            m.d.sync += [loaded.eq(0), beat.eq(0)]
        with m.Elif(data_in.valid & data_in.ready):
            for e in range(experts):
                with m.If(equals(beat, e // beat_elems)):
                    lane = e % beat_elems
                    m.d.sync += logits[e].eq(data_in.payload.data[lane * bits:lane * bits + self.act.width])
            with m.If(data_in.payload.last):
                m.d.sync += [loaded.eq(1), beat.eq(0)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        # ------------------------------------------------------------ into the gate, `lanes` logits a beat
        m.submodules.gate = gate = self.gate
        inp, out = getattr(gate, INPUT_STREAM), getattr(gate, OUTPUT_STREAM)
        gate_beats = -(-experts // lanes)
        chunk = Signal(range(max(2, gate_beats)), name="chunk")
        first_elem = chunk * lanes
        is_last = first_elem + lanes >= n_q
        m.d.comb += [inp.valid.eq(running & loaded), inp.payload.last.eq(is_last)]
        if lanes > 1:
            left = n_q - first_elem
            m.d.comb += inp.payload.count.eq(Mux(left >= lanes, lanes, left))
        unit_in = self.spec.softmax.input
        for lane in range(lanes):
            options = [logits[min(c * lanes + lane, experts - 1)] for c in range(gate_beats)]
            code = pick(chunk, options) if gate_beats > 1 else options[0]
            m.d.comb += inp.payload.data[lane].eq(requantize_hw(code, self.act.frac, unit_in, self.rounding,
                                                                self.overflow))
        with m.If(go):
            m.d.sync += chunk.eq(0)
        with m.Elif(inp.valid & inp.ready):
            with m.If(is_last):
                m.d.sync += [chunk.eq(0), loaded.eq(0)]
            with m.Else():
                m.d.sync += chunk.eq(chunk + 1)

        # ------------------------------------------------------------ the token's pairs into the queues
        index_shape = out.payload.index.shape()
        chosen = [Signal(index_shape, name=f"chosen_{j}") for j in range(k)]
        scores = [Signal(out.payload.score.shape(), name=f"score_{j}") for j in range(k)]
        got = Signal(range(k + 1), name="got")
        writing = Signal(name="writing")
        slot = Signal(range(max(2, k)), name="write_slot")
        token = Signal(bits_for(self.tokens), name="token")
        m.d.comb += out.ready.eq(running & ~writing)
        with m.If(go):
            m.d.sync += [got.eq(0), writing.eq(0), slot.eq(0), token.eq(0)]
        with m.Elif(out.valid & out.ready):
            for j in range(k):
                with m.If(equals(got, j)):
                    m.d.sync += [chosen[j].eq(out.payload.index), scores[j].eq(out.payload.score)]
            m.d.sync += got.eq(got + 1)
            with m.If(out.payload.last):
                m.d.sync += [writing.eq(1), slot.eq(0)]
        lowest = chosen[0]
        for j in range(1, k):
            lowest = Mux(chosen[j] < lowest, chosen[j], lowest)
        this = pick(slot, chosen) if k > 1 else chosen[0]
        push = self.push
        m.d.comb += [push.valid.eq(running & writing), push.payload.expert.eq(this),
                     push.payload.entry.token.eq(token),
                     push.payload.entry.score.eq(pick(slot, scores) if k > 1 else scores[0]),
                     push.payload.entry.first.eq(this == lowest)]
        with m.If(push.valid & push.ready):
            with m.If(slot == got - 1):
                m.d.sync += [writing.eq(0), got.eq(0), token.eq(token + 1)]
            with m.Else():
                m.d.sync += slot.eq(slot + 1)

        m.d.comb += [finished.eq(token == rows_q), self.routed.eq(rows_q)]
        # Waiting for memory: the row registers are free and the next row's data is not there.
        filled = Signal(bits_for(self.tokens), name="filled")
        with m.If(go):
            m.d.sync += filled.eq(0)
        with m.Elif(data_in.valid & data_in.ready & data_in.payload.last):
            m.d.sync += filled.eq(filled + 1)
        m.d.comb += self.mem_stall.eq(running & ~loaded & ~data_in.valid & (filled < rows_q))
        return m
