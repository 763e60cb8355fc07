"""The NPU tile: operand and command memories, a TPE, accumulators, requantisation, a controller."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.fixed import FixedFormat, Rounding
from hw.protect.replicate import add_voter_logic
from hw.tpe.interface import accumulator_shape

from .accumulator import Accumulator
from .checks import AbftCheck, ResidueCheck
from .commands import command_width, host_word_layout, tile_command_layouts
from .controller import Controller
from .post import PostProcess, result_row_layout
from .status import AlarmStatus
from .storage import UNPROTECTED, memory_block

#: The tile's blocks, in the order of the ``alarm_status`` bits. Their names are fixed:
#: protection configs and the optimiser address blocks by them.
BLOCKS = {"buf_a": "memory", "buf_b": "memory", "cmd": "memory", "ctrl": "registers", "compute": "compute",
          "acc": "registers", "post": "activation"}
COUNTER_WIDTH = 16


class Compute:
    """The signals between the tile and its engine(s) (see :meth:`NpuTile._replicated_compute`)."""

    def __init__(self, ops_layout, res_layout):
        self.ops_valid = Signal(name="ops_valid")
        self.ops = Signal(ops_layout, name="ops")
        self.ops_ready = Signal(name="ops_ready")
        self.res_valid = Signal(name="res_valid")
        self.res = Signal(res_layout, name="res")
        self.corrected = Signal(name="compute_corrected")
        self.detected = Signal(name="compute_detected")


class NpuTile(wiring.Component):
    """A GEMM tile that runs a command list: ``host`` words in, requantised rows out.

    Blocks (named submodules): ``buf_a``, ``buf_b`` (operand memories, one
    word = the ``a`` or ``b`` field of one engine beat), ``cmd`` (command
    memory), ``ctrl`` (:class:`~hw.npu.controller.Controller`), ``compute``
    (the TPE, any engine with the ``k_steps`` beat format), ``acc``
    (:class:`~hw.npu.accumulator.Accumulator`), ``post``
    (:class:`~hw.npu.post.PostProcess`). Every register group and memory is
    made by :mod:`hw.npu.storage` with the block's mechanism from
    ``mechanisms`` (default ``"none"``).

    Ports:

    * ``host`` (stream in): ``{word, cmd}``, see :mod:`hw.npu.commands`;
    * ``results`` (stream out): ``{c, last}``, one row of ``cols`` output
      codes per beat, ``last`` on a WRITE's final row;
    * ``done``: the last program ended (cleared by the next host word);
      ``error``: a bad command or word was seen (sticky until reset);
    * ``alarm_status``: one sticky bit per block in :data:`BLOCKS` order, set
      when its mechanism raised an alarm; ``corr_count``/``uncorr_count``:
      cycles with a corrected / uncorrectable alarm (saturating);
      ``alarm_corrected``/``alarm_detected``: this cycle's alarms (OR over the
      blocks). All 0 when no block is protected.

    Compute protection replicates the engine: ``compute_r1`` (and
    ``compute_r2``) get the same operand beats. ``dmr``: the engine ``compute``
    drives the tile and a comparator of the replicas' ``operands.ready``,
    ``results.valid`` and (while valid) result payloads raises ``detected``.
    ``tmr``: a bitwise majority of the three drives the tile; a disagreement
    raises ``corrected``. ``residue``: one engine and a
    :class:`~hw.npu.checks.ResidueCheck` (submodule ``compute_residue``), a
    mod-3 shadow of every result element computed from the operand beats,
    checked as the rows leave the engine; a mismatch raises ``detected``.
    ``abft``: one engine and an :class:`~hw.npu.checks.AbftCheck` (submodule
    ``compute_abft``): checksum row and column computed beside the engine, the
    result rows checked as they leave it; a single wrong element is located
    and subtracted out of its accumulator (``corrected``), more are
    ``detected``.

    Post protection ``clip`` (``clip = (low, high)``): the output stage clamps
    every result element to the bounds (see :class:`~hw.npu.post.PostProcess`);
    ``clip_count`` counts result beats with a clamped element (not an alarm).

    Parameters
    ----------
    compute : wiring.Component
        The engine; its ``job`` gives ``c_rows`` and ``steps_per_beat``.
    compute_replicas : sequence of wiring.Component
        Further instances of the same engine: one for ``dmr``, two for ``tmr``.
    operand_shape, acc_width_compute :
        The engine's operand shape and accumulator width.
    a_depth, b_depth, cmd_depth : int
        Words of the memories.
    acc_width : int
        Tile accumulator bits (wraps past them).
    k_beats_max : int
        Most beats one GEMM command may have (the engine's ``k_max`` / steps).
    scale_width, shift_max, out_format, rounding :
        Requantisation: scale bits, largest shift, output format, rounding rule.
    """

    def __init__(self, compute, *, cols: int, operand_shape, acc_width_compute: int, a_depth: int, b_depth: int,
                 cmd_depth: int, acc_width: int, k_beats_max: int, scale_width: int, shift_max: int,
                 out_format: FixedFormat, rounding: Rounding, mechanisms: dict | None = None,
                 compute_replicas=(), clip: tuple[int, int] | None = None):
        self._compute = compute
        job = compute.job
        if job["format"] != "k_steps":
            raise ValueError(f"the tile drives engines with the k_steps beat format, not {job['format']!r}")
        self.c_rows, self.steps, self.cols = job["c_rows"], job["steps_per_beat"], cols
        self._operand_shape = Shape.cast(operand_shape)
        signed = self._operand_shape.signed
        self._in_shape = accumulator_shape(acc_width_compute, signed)
        self._acc_shape = accumulator_shape(acc_width, signed)
        self._depths = {"buf_a": a_depth, "buf_b": b_depth, "cmd": cmd_depth}
        self._k_beats_max = k_beats_max
        self._scale_width, self._shift_max = scale_width, shift_max
        self._format, self._rounding = out_format, Rounding(rounding)
        self.mechanisms = {name: UNPROTECTED for name in BLOCKS} | dict(mechanisms or {})
        unknown = set(self.mechanisms) - set(BLOCKS)
        if unknown:
            raise ValueError(f"mechanisms for unknown blocks {sorted(unknown)}; the blocks are {list(BLOCKS)}")
        self._replicas = tuple(compute_replicas)
        wanted = {UNPROTECTED: 0, "dmr": 1, "tmr": 2, "residue": 0, "abft": 0}.get(self.mechanisms["compute"])
        if wanted is None:
            raise ValueError(f"compute: mechanism {self.mechanisms['compute']!r} is not implemented in the tile; "
                             "implemented: dmr, tmr, residue, abft")
        if (self.mechanisms["post"] == "clip") != (clip is not None):
            raise ValueError("post: mechanism clip and the clip bounds go together")
        self._clip = clip
        if len(self._replicas) != wanted:
            raise ValueError(f"compute: {self.mechanisms['compute']} needs {wanted} engine replicas, "
                             f"got {len(self._replicas)}")
        self.layouts = tile_command_layouts(a_depth=a_depth, b_depth=b_depth, k_beats_max=k_beats_max,
                                            scale_width=scale_width, shift_max=shift_max,
                                            out_shape=out_format.shape())
        self.cmd_width = command_width(self.layouts)
        width = self._operand_shape.width
        self.a_word_width = self.c_rows * self.steps * width
        self.b_word_width = cols * self.steps * width
        self.word_width = max(self.a_word_width, self.b_word_width, self.cmd_width)
        super().__init__({
            "host": In(stream.Signature(host_word_layout(self.word_width))),
            "results": Out(stream.Signature(result_row_layout(cols, out_format.shape()))),
            "done": Out(1),
            "error": Out(1),
            "alarm_status": Out(len(BLOCKS)),
            "corr_count": Out(COUNTER_WIDTH),
            "uncorr_count": Out(COUNTER_WIDTH),
            "alarm_corrected": Out(1),
            "alarm_detected": Out(1),
            "clip_count": Out(COUNTER_WIDTH),
        })

    def _replicated_compute(self, m: Module, mechanism: str):
        """The engine(s) as submodules ``compute`` (``compute_r1``, ``compute_r2``) behind one view:
        ``ops_valid``, ``ops`` (payload) in; ``ops_ready``, ``res_valid``, ``res`` (payload),
        ``corrected``, ``detected`` out."""
        engines = [self._compute, *self._replicas]
        for index, engine in enumerate(engines):
            m.submodules["compute" if index == 0 else f"compute_r{index}"] = engine
        first = engines[0]
        ops_layout, res_layout = first.operands.payload.shape(), first.results.payload.shape()
        view = Compute(ops_layout, res_layout)
        for engine in engines:
            m.d.comb += [engine.operands.valid.eq(view.ops_valid), engine.operands.payload.eq(view.ops),
                         engine.results.ready.eq(1)]
        # What must agree: the handshakes and, while valid, the result row.
        words = [Cat(e.operands.ready, e.results.valid, Mux(e.results.valid, e.results.payload.as_value(), 0))
                 for e in engines]
        agreed = Signal(len(words[0]), name="compute_agreed")
        if mechanism == "tmr":
            voted = add_voter_logic(m, words, prefix="compute_")
            m.d.comb += [agreed.eq(voted.out), view.corrected.eq(voted.disagree)]
        else:
            m.d.comb += agreed.eq(words[0])
            if mechanism == "dmr":
                m.d.comb += view.detected.eq(words[0] != words[1])
        m.d.comb += [view.ops_ready.eq(agreed[0]), view.res_valid.eq(agreed[1]),
                     view.res.as_value().eq(agreed[2:])]
        return view

    def _result_check(self, m: Module, mechanism: str, compute: Compute, buf_a, buf_b, ctrl, acc) -> None:
        """``residue`` or ``abft``: a checker fed with the beats the engine takes, checking its result rows
        (submodule ``compute_residue`` / ``compute_abft``, part of the compute block)."""
        if mechanism == "residue":
            check = ResidueCheck(self.c_rows, self.cols, self.steps, self._operand_shape, self._in_shape)
            m.d.comb += compute.detected.eq(check.error)
        else:
            check = AbftCheck(self.c_rows, self.cols, self.steps, self._operand_shape, self._in_shape,
                              self._acc_shape.width)
            m.d.comb += [compute.corrected.eq(check.corrected), compute.detected.eq(check.detected),
                         acc.fix.eq(check.fix), acc.fix_row.eq(check.fix_row), acc.fix_col.eq(check.fix_col),
                         acc.fix_delta.eq(check.fix_delta)]
        m.submodules[f"compute_{mechanism}"] = check
        m.d.comb += [
            check.beat.eq(compute.ops_valid & compute.ops_ready), check.beat_last.eq(ctrl.ops_last),
            check.a.as_value().eq(buf_a.r_data), check.b.as_value().eq(buf_b.r_data),
            check.res_valid.eq(compute.res_valid), check.res_last.eq(compute.res.last),
            check.res_c.eq(compute.res.c),
        ]

    @property
    def protected(self) -> dict:
        """The blocks with a mechanism other than ``none``: name -> mechanism."""
        return {name: mech for name, mech in self.mechanisms.items() if mech != UNPROTECTED}

    def elaborate(self, platform):
        m = Module()
        mech = self.mechanisms
        host = self.host
        buf_a = memory_block(m, "buf_a", self.a_word_width, self._depths["buf_a"], mechanism=mech["buf_a"])
        buf_b = memory_block(m, "buf_b", self.b_word_width, self._depths["buf_b"], mechanism=mech["buf_b"])
        cmd = memory_block(m, "cmd", self.cmd_width, self._depths["cmd"], mechanism=mech["cmd"])
        m.submodules.ctrl = ctrl = Controller(
            layouts=self.layouts, cmd_width=self.cmd_width, cmd_depth=self._depths["cmd"],
            a_depth=self._depths["buf_a"], b_depth=self._depths["buf_b"], k_beats_max=self._k_beats_max,
            c_rows=self.c_rows, shift_max=self._shift_max, mechanism=mech["ctrl"])
        compute = self._replicated_compute(m, mech["compute"])
        m.submodules.acc = acc = Accumulator(self.c_rows, self.cols, self._in_shape, self._acc_shape,
                                             mechanism=mech["acc"], fixable=mech["compute"] == "abft")
        if mech["compute"] in ("residue", "abft"):
            self._result_check(m, mech["compute"], compute, buf_a, buf_b, ctrl, acc)
        m.submodules.post = post = PostProcess(
            self.cols, self._acc_shape, scale_width=self._scale_width, shift_max=self._shift_max,
            out_format=self._format, rounding=self._rounding, quant_layout=self.layouts["QUANT"],
            act_layout=self.layouts["ACT"], mechanism=UNPROTECTED if mech["post"] == "clip" else mech["post"],
            clip=self._clip, counter_width=COUNTER_WIDTH)

        word = host.payload.word
        m.d.comb += [
            # host words: the controller decides; data go straight to the buffers
            ctrl.host_valid.eq(host.valid), host.ready.eq(ctrl.host_ready),
            ctrl.host_cmd.eq(host.payload.cmd), ctrl.host_word.eq(word[:self.cmd_width]),
            cmd.w_en.eq(ctrl.cmd_w_en), cmd.w_addr.eq(ctrl.cmd_w_addr), cmd.w_data.eq(word[:self.cmd_width]),
            cmd.r_en.eq(ctrl.cmd_r_en), cmd.r_addr.eq(ctrl.cmd_r_addr), ctrl.cmd_r_data.eq(cmd.r_data),
            buf_a.w_en.eq(ctrl.a_w_en), buf_a.w_addr.eq(ctrl.w_addr), buf_a.w_data.eq(word[:self.a_word_width]),
            buf_b.w_en.eq(ctrl.b_w_en), buf_b.w_addr.eq(ctrl.w_addr), buf_b.w_data.eq(word[:self.b_word_width]),
            buf_a.r_en.eq(ctrl.r_en), buf_a.r_addr.eq(ctrl.a_r_addr),
            buf_b.r_en.eq(ctrl.r_en), buf_b.r_addr.eq(ctrl.b_r_addr),
            # operand beats: the buffers' read registers are the beat's payload
            compute.ops_valid.eq(ctrl.ops_valid), ctrl.ops_ready.eq(compute.ops_ready),
            compute.ops.a.as_value().eq(buf_a.r_data),
            compute.ops.b.as_value().eq(buf_b.r_data),
            compute.ops.last.eq(ctrl.ops_last),
            # result rows into the accumulators, which are always ready
            acc.res_valid.eq(compute.res_valid), acc.res_last.eq(compute.res.last),
            acc.res_c.eq(compute.res.c), acc.acc_add.eq(ctrl.acc_add),
            ctrl.res_valid.eq(compute.res_valid), ctrl.res_last.eq(compute.res.last),
            # WRITE: accumulator rows through the output stage
            acc.row_sel.eq(ctrl.row_sel),
            post.in_valid.eq(ctrl.row_valid), post.in_last.eq(ctrl.row_last), post.in_row.eq(acc.row),
            ctrl.row_ready.eq(post.in_ready),
            post.quant_we.eq(ctrl.quant_we), post.act_we.eq(ctrl.act_we),
            post.quant.as_value().eq(cmd.r_data[:self.layouts["QUANT"].size]),
            post.act.as_value().eq(cmd.r_data[:self.layouts["ACT"].size]),
            self.done.eq(ctrl.done), self.error.eq(ctrl.error), self.clip_count.eq(post.clip_count),
        ]
        wiring.connect(m, wiring.flipped(self.results), post.results)
        sources = {"buf_a": buf_a, "buf_b": buf_b, "cmd": cmd, "ctrl": ctrl, "compute": compute, "acc": acc,
                   "post": post}
        if not self.protected:
            # No block raises an alarm: status, counters and alarms are constant 0 (no registers).
            m.d.comb += [self.alarm_status.eq(0), self.corr_count.eq(0), self.uncorr_count.eq(0),
                         self.alarm_corrected.eq(0), self.alarm_detected.eq(0)]
            return m
        m.submodules.alarm_log = status = AlarmStatus(len(BLOCKS), COUNTER_WIDTH)
        for bit, name in enumerate(BLOCKS):
            if name in sources:
                m.d.comb += [status.corrected[bit].eq(sources[name].corrected),
                             status.detected[bit].eq(sources[name].detected)]
        m.d.comb += [self.alarm_status.eq(status.status), self.corr_count.eq(status.corr_count),
                     self.uncorr_count.eq(status.uncorr_count), self.alarm_corrected.eq(status.alarm_corrected),
                     self.alarm_detected.eq(status.alarm_detected)]
        return m
