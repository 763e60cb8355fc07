"""Top-k MoE gate: softmax over the expert logits, then the ``top_k`` largest probabilities.

Edge-MoE's gate: no renormalisation of the chosen scores, ties to the lower
expert index. The probabilities come from :class:`~.softmax.Softmax` (its
output pass produces them in expert order); :class:`TopK` keeps the
``top_k`` best so far in a sorted register list and emits them, best first,
as (expert index, score) pairs.
"""

import operator
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith.fixed import FixedFormat
from ..arith.tree import balanced
from .interface import INPUT_STREAM, OUTPUT_STREAM, element_layout
from .rowstore import equals
from .softmax import Softmax, SoftmaxSpec


def pair_layout(score: FixedFormat, experts: int) -> data.StructLayout:
    """One output beat of the gate: ``index`` (expert), ``score`` (its probability), ``last``."""
    return data.StructLayout({"index": unsigned(bits_for(experts - 1)), "score": score.shape(), "last": 1})


class TopK(wiring.Component):
    """The ``k`` largest scores of each row of ``inp`` (element stream), emitted on ``out`` as pairs.

    A row of ``n`` scores gives ``min(k, n)`` beats on ``out`` (:func:`pair_layout`),
    largest score first; among equal scores the lower index first (the list
    only lets a later element ahead of a strictly smaller score). Lanes of a
    beat are merged in one cycle, as if inserted in lane order: every element
    (list entry or lane) is ranked by comparing all pairs in parallel.

    Timing: ``inp.ready`` is low only when the beat on offer is a row's last
    while the previous row's pairs are still being emitted. The pairs of a
    row are offered from the cycle after its last beat moved, one per cycle
    while ``out.ready`` is high.
    """

    def __init__(self, score: FixedFormat, lanes: int, experts: int, k: int):
        if not 1 <= k <= experts:
            raise ValueError(f"top_k must be 1..{experts}, not {k}")
        self.score, self.lanes, self.experts, self.k = score, lanes, experts, k
        super().__init__({
            INPUT_STREAM: In(stream.Signature(element_layout(score, lanes))),
            OUTPUT_STREAM: Out(stream.Signature(pair_layout(score, experts))),
        })

    def elaborate(self, platform):
        m = Module()
        k, lanes = self.k, self.lanes
        inp, out = getattr(self, INPUT_STREAM), getattr(self, OUTPUT_STREAM)
        entry = data.StructLayout({"valid": 1, "index": unsigned(bits_for(self.experts - 1)),
                                   "score": self.score.shape()})
        best = [Signal(entry, name=f"best_{j}") for j in range(k)]
        emit = [Signal(entry, name=f"emit_{j}") for j in range(k)]
        emit_left = Signal(range(k + 1), name="emit_left")
        base = Signal(range(self.experts + lanes), name="base_index")

        accept = Signal()
        pop = Signal()
        m.d.comb += [
            inp.ready.eq(~emit_left.any() | ~inp.payload.last),
            accept.eq(inp.valid & inp.ready),
            out.valid.eq(emit_left.any()),
            out.payload.index.eq(emit[0].index),
            out.payload.score.eq(emit[0].score),
            out.payload.last.eq(emit_left == 1),
            pop.eq(out.valid & out.ready),
        ]

        # The beat merged into the list, as if its lanes were inserted one after the other (a later element goes
        # ahead only of a strictly smaller score), without that chain: the elements (the list's entries, then the
        # lanes: index order) are ranked by (valid first, larger score, earlier element), every pair compared once
        # in parallel; slot j takes the element of rank j.
        elements = list(best)
        for lane in range(lanes):
            candidate = Signal(entry, name=f"candidate_{lane}")
            present = inp.payload.count > lane if lanes > 1 else 1
            m.d.comb += [candidate.valid.eq(present), candidate.index.eq(base + lane),
                         candidate.score.eq(inp.payload.data[lane])]
            elements.append(candidate)
        size = len(elements)
        before = {}  # (i, j): element i goes before element j
        for i in range(size):
            for j in range(i + 1, size):
                a, b = elements[i], elements[j]
                first = Signal(name=f"before_{i}_{j}")
                m.d.comb += first.eq((a.valid & (~b.valid | (a.score >= b.score))) | ~(a.valid | b.valid))
                before[i, j], before[j, i] = first, ~first
        ranks = []
        for i in range(size):
            rank = Signal(range(size), name=f"rank_{i}")
            m.d.comb += rank.eq(balanced(operator.add, [before[j, i] for j in range(size) if j != i]))
            ranks.append(rank)
        merged = [Signal(entry, name=f"merged_{j}") for j in range(k)]
        for j in range(k):
            m.d.comb += merged[j].eq(balanced(operator.or_, [Mux(equals(ranks[i], j), Value.cast(elements[i]), 0)
                                                              for i in range(size)]))

        with m.If(pop):
            for j in range(k - 1):
                m.d.sync += emit[j].eq(emit[j + 1])
            m.d.sync += emit_left.eq(emit_left - 1)
        with m.If(accept):
            with m.If(inp.payload.last):
                m.d.sync += base.eq(0)
                for j in range(k):
                    m.d.sync += [emit[j].eq(merged[j]), best[j].valid.eq(0)]
                m.d.sync += emit_left.eq(sum(merged[j].valid for j in range(k)))
            with m.Else():
                m.d.sync += base.eq(base + lanes)
                for j in range(k):
                    m.d.sync += best[j].eq(merged[j])
        return m


@dataclass(frozen=True)
class GateSpec:
    """A softmax over ``softmax.n_max`` experts followed by the top ``top_k``."""

    softmax: SoftmaxSpec
    top_k: int

    @property
    def experts(self) -> int:
        return self.softmax.n_max


class SoftmaxGate(wiring.Component):
    """MoE gate: rows of ``1..experts`` logits on ``inp``, ``min(top_k, n)`` (index, score) pairs on ``out``.

    Timing: the softmax's (:class:`~.softmax.Softmax`), then the row's
    probabilities pass through :class:`TopK`; the first pair is valid
    ``softmax latency + ceil(n / lanes)`` cycles after the row's last logit
    beat moved (idle unit, ready sink), :attr:`latency` for a one-beat row.
    """

    def __init__(self, spec: GateSpec):
        self.spec = spec
        self._softmax = Softmax(spec.softmax)
        super().__init__({
            INPUT_STREAM: In(stream.Signature(element_layout(spec.softmax.input, spec.softmax.lanes))),
            OUTPUT_STREAM: Out(stream.Signature(pair_layout(spec.softmax.output, spec.experts))),
        })

    @property
    def latency(self) -> int:
        return self._softmax.latency + 1

    @property
    def exp_units(self) -> int:
        return self._softmax.exp_units

    def elaborate(self, platform):
        m = Module()
        spec = self.spec.softmax
        m.submodules.softmax = softmax = self._softmax
        m.submodules.top_k = top_k = TopK(spec.output, spec.lanes, self.spec.experts, self.spec.top_k)
        wiring.connect(m, wiring.flipped(getattr(self, INPUT_STREAM)), getattr(softmax, INPUT_STREAM))
        wiring.connect(m, getattr(softmax, OUTPUT_STREAM), getattr(top_k, INPUT_STREAM))
        wiring.connect(m, getattr(top_k, OUTPUT_STREAM), wiring.flipped(getattr(self, OUTPUT_STREAM)))
        return m
