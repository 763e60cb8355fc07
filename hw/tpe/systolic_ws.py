"""Weight-stationary systolic array."""

from amaranth.hdl import EnableInserter, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .interface import (
    StepTag,
    accumulator_shape,
    engine_signature,
    result_beat_layout,
    weight_row_beat_layout,
)
from ..arith.widths import accumulator_signed
from .mac import CompressedMac, SYSTOLIC_MAC, check_mac, part_shape, parts, resolve
from .rowbuffer import RowBuffer
from .skew import DelayLine, SkewBuffer


def _equals(value, constant: int):
    """``value == constant``, written so that Yosys does not emit ``!value`` (a lint warning) for 0."""
    return ~value.any() if constant == 0 else value == constant


class WeightStationaryPE(wiring.Component):
    """Cell of a weight-stationary array: holds one weight, adds its product to a partial sum.

    Contract, per clock cycle:

    * When ``w_load``: ``w_next <= w_data`` (the next job's weight, loaded while
      the current job still uses ``w``).
    * When ``tag_in.valid``: the weight is ``w_next`` if ``tag_in.first`` (the
      first row of ``A`` after new weights; then also ``w <= w_next``), else
      ``w``; ``psum_out <= psum_in + a_in * weight``, wrapped to ``acc_width``.
    * ``a_out``/``tag_out`` register ``a_in``/``tag_in`` for the PE to the right
      (or, for ``tag_out`` of the bottom-left PE, for the output); a PE leaves
      out the forwarding registers nobody reads (``forward``).

    Parameters
    ----------
    a_shape : Shape
        Shape of ``a``, and of the weight unless ``b_shape`` is given.
    acc_width : int
        Width of the partial sums; signed when either operand is.
    forward : set of str
        Which of ``"a"``, ``"tag"`` this PE passes on.
    mac : str
        ``"baseline"``: ``psum_in``/``psum_out`` are single values. ``"opt1"``
        (:mod:`hw.tpe.mac`): they are carry-save pairs ``psum_sum_*`` and
        ``psum_carry_*`` (unsigned ``acc_width`` bits, total modulo
        ``2**acc_width``); the Booth partial products of ``a_in * weight``
        and the incoming pair go through one carry-save tree, and the array
        resolves the pair at the bottom edge.
    b_shape : Shape or None
        Shape of the weight (``w_data``, ``w``, ``w_next``: an element of ``B``); ``None``: ``a_shape``.
    """

    def __init__(self, a_shape, acc_width: int, *, b_shape=None, forward=frozenset({"a", "tag"}),
                 mac: str = "baseline"):
        self._a_shape = Shape.cast(a_shape)
        self._b_shape = self._a_shape if b_shape is None else Shape.cast(b_shape)
        self._acc_shape = accumulator_shape(acc_width, accumulator_signed(self._a_shape.signed,
                                                                          self._b_shape.signed))
        self._forward = frozenset(forward)
        self._mac = check_mac(mac, SYSTOLIC_MAC)
        value = part_shape(mac, self._acc_shape)
        members = {
            "a_in": In(self._a_shape),
            "tag_in": In(StepTag),
            "w_load": In(1),
            "w_data": In(self._b_shape),
        }
        for part in parts(mac):
            members |= {f"psum{part}_in": In(value), f"psum{part}_out": Out(value)}
        outputs = {"a": self._a_shape, "tag": StepTag}
        for name in sorted(self._forward):
            members[f"{name}_out"] = Out(outputs[name])
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        w = Signal(self._b_shape, name="w")
        w_next = Signal(self._b_shape, name="w_next")
        with m.If(self.w_load):
            m.d.sync += w_next.eq(self.w_data)
        for name in sorted(self._forward):
            m.d.sync += getattr(self, f"{name}_out").eq(getattr(self, f"{name}_in"))
        weight = Mux(self.tag_in.first, w_next, w)
        if self._mac == "baseline":
            updates = [self.psum_out.eq(self.psum_in + self.a_in * weight)]
        else:
            m.submodules.mac = mac = CompressedMac(1, self._a_shape, self._acc_shape.width, 2, b_shape=self._b_shape)
            m.d.comb += [mac.a[0].eq(self.a_in), mac.b[0].eq(weight),
                         mac.addends[0].eq(self.psum_sum_in), mac.addends[1].eq(self.psum_carry_in)]
            updates = [self.psum_sum_out.eq(mac.sum), self.psum_carry_out.eq(mac.carry)]
        with m.If(self.tag_in.valid):
            # Assigning to acc_width bits wraps, as the golden model does.
            m.d.sync += updates
            with m.If(self.tag_in.first):
                m.d.sync += w.eq(w_next)
        return m


class SystolicWS(wiring.Component):
    """``rows x cols`` weight-stationary systolic array behind the engine interface.

    Beats use the ``rows_with_weights`` format (:mod:`hw.tpe.interface`): one
    beat per row of ``A``, each of which may also carry a weight row of the next
    job (``K <= rows`` of them); weights the rows cannot carry come in
    weight-only beats. PE ``(k, j)`` holds
    ``B[k, j]``. Row ``m`` of ``A`` enters skewed (element ``k`` one cycle after
    element ``k - 1``) and moves right one PE per cycle; partial sums of
    ``C[m, j]`` move down column ``j`` and leave at the bottom, column ``j`` one
    cycle after column ``j - 1``; a de-skew delays column ``j`` by
    ``cols - 1 - j`` cycles so whole rows of ``C`` go into a two-row
    :class:`RowBuffer`.

    Weights are double-buffered: weight row ``k`` travels to column ``j``
    through a skew of ``j + 1`` cycles and is written into ``w_next`` of PE
    ``(k, j)``; a job's first row of ``A`` carries ``first`` if new weights
    are pending, and each PE swaps ``w <= w_next`` as that row passes it. The
    next job's weight ``k`` can only be sent with or after the current job's
    first row, so its write lands no earlier than the edge that ends the cycle
    in which the swap passes PE ``(k, j)``, and the swap reads the old value:
    weights never wait. Elements ``a[k]`` with ``k >= K`` are zeroed on entry;
    weight rows past ``rows`` are dropped. A job with no pending weights
    reuses the ones in use.

    Flow control: the whole array advances only while the row buffer has room
    (a clock enable), so backpressure holds everything in place;
    ``operands.ready`` is that enable and depends on registers only. With the
    sink always ready nothing ever waits: back to back, a job's last beat
    follows the previous job's by its own beat count (its ``M`` rows plus the
    weight-only beats, if any, before them).

    Timing (sink ready): row ``m`` of ``C`` is valid :attr:`latency` =
    ``rows + cols + 1`` cycles after the cycle in which row ``m`` of ``A`` moved.

    Parameters
    ----------
    rows, cols : int
        PE rows (the largest ``K``) and columns (columns of ``B`` and ``C``).
    a_shape : ShapeLike
        Shape of every ``A`` element, and of every ``B`` element unless ``b_shape`` is given.
    acc_width : int
        Partial-sum width (see :func:`hw.arith.accumulator_width` with ``k_max = rows``);
        signed when either operand is.
    mac : str
        ``"baseline"`` or ``"opt1"`` (:class:`WeightStationaryPE`): with ``opt1``
        partial sums move down as carry-save pairs and one adder per column
        resolves the pair leaving the bottom PE, before the de-skew. Timing is
        the same.
    b_shape : ShapeLike or None
        Shape of every ``B`` element (the weights); ``None``: ``a_shape``.
    """

    def __init__(self, rows: int, cols: int, a_shape, acc_width: int, *, b_shape=None, mac: str = "baseline"):
        if rows < 1 or cols < 1:
            raise ValueError(f"array size must be at least 1x1, not {rows}x{cols}")
        self.rows, self.cols = rows, cols
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = self.a_shape if b_shape is None else Shape.cast(b_shape)
        self.acc_width = acc_width
        self.mac = check_mac(mac, SYSTOLIC_MAC)
        super().__init__(engine_signature(weight_row_beat_layout(rows, cols, self.a_shape, b_shape=self.b_shape),
                                          cols, self.a_shape, acc_width, b_shape=self.b_shape))

    @property
    def latency(self) -> int:
        """Cycles from a job's last row beat's transfer to its last result beat's ``valid`` (sink ready)."""
        return self.rows + self.cols + 1

    @property
    def job_interval(self) -> int:
        """Fewest cycles between consecutive jobs' last beats beyond the job's own beat count."""
        return 1

    @property
    def mac_units(self) -> int:
        return self.rows * self.cols

    @property
    def job(self) -> dict:
        return {"format": "rows_with_weights", "k_max": self.rows}

    @property
    def flow_control(self) -> str:
        return "stall"

    def _forwarded(self, k: int, j: int) -> set[str]:
        forward = {"a", "tag"} if j + 1 < self.cols else set()
        if (k, j) == (self.rows - 1, 0):
            forward.add("tag")  # column 0's tag marks the cycles that carry a row of C
        return forward

    def elaborate(self, platform):
        m = Module()
        ops, res = self.operands, self.results
        rows, cols = self.rows, self.cols
        acc_shape = accumulator_shape(self.acc_width, accumulator_signed(self.a_shape.signed, self.b_shape.signed))

        m.submodules.out = out = RowBuffer(result_beat_layout(cols, acc_shape))
        advance = out.space  # registers only: no path from results.ready into the array

        def add(name, component):
            m.submodules[name] = EnableInserter(advance)(component)
            return component

        a_lane = data.StructLayout({"a": self.a_shape, "tag": StepTag})
        w_lane = data.StructLayout({"w": self.b_shape, "row": unsigned(max(1, (rows - 1).bit_length())),
                                    "load": unsigned(1)})
        # keep: the tag enters every lane alike; merged, one chain would feed every row's first PE.
        skew_a = add("skew_a", SkewBuffer(rows, a_lane, keep=True))
        skew_w = add("skew_w", SkewBuffer(cols, w_lane))
        pe = [[WeightStationaryPE(self.a_shape, self.acc_width, b_shape=self.b_shape, forward=self._forwarded(k, j),
                                  mac=self.mac)
               for j in range(cols)] for k in range(rows)]
        for k in range(rows):
            for j in range(cols):
                add(f"pe_{k}_{j}", pe[k][j])

        # Input side. Weight rows go to the pending set (``k_pend`` rows so far); the
        # first row of a job swaps the pending set in if there is one (``first``),
        # and the same beat may already carry row 0 of the next set.
        accept = Signal()
        in_job = Signal()  # the previous row beat was not a job's last
        k_pend = Signal(range(rows + 1), name="k_pend")  # weight rows of the pending set
        k_active = Signal(range(rows + 1), name="k_active")  # K of the weights in use
        swap = Signal()
        k_row = Signal(range(rows + 1))  # K of the row on offer
        index = Signal(range(rows + 1))  # which row of the pending set the offered weight is
        weight_ok = Signal()
        m.d.comb += [
            ops.ready.eq(advance),
            accept.eq(ops.valid & ops.ready),
            swap.eq(ops.p.row & ~in_job & k_pend.any()),
            k_row.eq(Mux(swap, k_pend, k_active)),
            index.eq(Mux(swap, 0, k_pend)),
            weight_ok.eq(ops.p.load & (index < rows)),  # weight rows past ``rows`` are dropped
        ]
        with m.If(accept):
            with m.If(ops.p.row):
                m.d.sync += in_job.eq(~ops.p.last)
            with m.If(swap):
                m.d.sync += [k_active.eq(k_pend), k_pend.eq(0)]
            with m.If(weight_ok):
                m.d.sync += k_pend.eq(index + 1)
        for j in range(cols):
            m.d.comb += [
                skew_w.i[j].w.eq(ops.p.b[j]),
                skew_w.i[j].row.eq(index),
                skew_w.i[j].load.eq(accept & weight_ok),
            ]
        for k in range(rows):
            m.d.comb += [
                skew_a.i[k].a.eq(Mux(k < k_row, ops.p.a[k], 0)),
                skew_a.i[k].tag.valid.eq(accept & ops.p.row),
                skew_a.i[k].tag.first.eq(swap),
                skew_a.i[k].tag.last.eq(ops.p.last),
            ]

        for k in range(rows):
            for j in range(cols):
                p = pe[k][j]
                if j == 0:
                    a_from, tag_from = skew_a.o[k].a, skew_a.o[k].tag
                else:
                    a_from, tag_from = pe[k][j - 1].a_out, pe[k][j - 1].tag_out
                m.d.comb += [
                    p.a_in.eq(a_from),
                    p.tag_in.eq(tag_from),
                    p.w_load.eq(skew_w.o[j].load & _equals(skew_w.o[j].row, k)),
                    p.w_data.eq(skew_w.o[j].w),
                ]
                if k > 0:
                    for part in parts(self.mac):
                        m.d.comb += getattr(p, f"psum{part}_in").eq(getattr(pe[k - 1][j], f"psum{part}_out"))

        # Output side: column j leaves j cycles after column 0; line them up.
        bottom = pe[rows - 1]
        row_tag = data.StructLayout({"valid": unsigned(1), "last": unsigned(1)})
        aligned_tag = Signal(row_tag)
        if cols > 1:
            tag_line = add("deskew_tag", DelayLine(row_tag, cols - 1))
            m.d.comb += [tag_line.i.valid.eq(bottom[0].tag_out.valid), tag_line.i.last.eq(bottom[0].tag_out.last)]
            m.d.comb += aligned_tag.eq(tag_line.o)
        else:
            m.d.comb += [aligned_tag.valid.eq(bottom[0].tag_out.valid), aligned_tag.last.eq(bottom[0].tag_out.last)]
        for j in range(cols):
            psum = resolve([getattr(bottom[j], f"psum{part}_out") for part in parts(self.mac)])
            if j < cols - 1:
                line = add(f"deskew_{j}", DelayLine(acc_shape, cols - 1 - j))
                m.d.comb += [line.i.eq(psum), out.row.c[j].eq(line.o)]
            else:
                m.d.comb += out.row.c[j].eq(psum)
        m.d.comb += [
            out.push.eq(advance & aligned_tag.valid),
            out.row.last.eq(aligned_tag.last),
        ]
        wiring.connect(m, wiring.flipped(res), out.out)
        return m
