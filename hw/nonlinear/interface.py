"""The element stream every nonlinear unit reads and writes.

A *row* is a vector of ``n >= 1`` fixed-point codes (a softmax row, a
LayerNorm token, or just a run of independent elements for element-wise
units). It travels as ``ceil(n / lanes)`` beats of an ``amaranth.lib.stream``
whose payload is :func:`element_layout`:

* ``data``: ``lanes`` codes, element ``b * lanes + l`` of the row in lane ``l``
  of beat ``b``;
* ``count`` (only when ``lanes > 1``): how many lanes hold elements, ``1..lanes``;
  equal to ``lanes`` on every beat but a row's last; lanes ``>= count`` hold
  don't-care values, which units must not let change any result;
* ``last``: the beat carries the row's final element.

A unit's output row has the same beat structure as its input row (same
``count`` and ``last`` on every beat) unless its documentation says otherwise
(the softmax gate emits ``top_k`` (index, score) pairs per row).

A unit's ports are named by :func:`element_signature`: the stream ``inp`` it
consumes and the stream ``out`` it produces (``INPUT_STREAM``, ``OUTPUT_STREAM``;
the generic testbench ``sim/tb/nonlinear.py`` finds them by these names).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith.fixed import FixedFormat


def element_layout(fmt: FixedFormat, lanes: int) -> data.StructLayout:
    """Payload of one beat: ``data`` (``lanes`` codes of ``fmt``), ``count`` when ``lanes > 1``, ``last``."""
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, not {lanes}")
    fields = {"data": data.ArrayLayout(fmt.shape(), lanes)}
    if lanes > 1:
        fields["count"] = unsigned(bits_for(lanes))
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


#: Names of the element streams a unit consumes and produces.
INPUT_STREAM = "inp"
OUTPUT_STREAM = "out"


def element_signature(input_fmt: FixedFormat, output_fmt: FixedFormat, lanes: int) -> wiring.Signature:
    """``inp``: the element stream of ``input_fmt`` consumed; ``out``: that of ``output_fmt`` produced."""
    return wiring.Signature({
        INPUT_STREAM: In(stream.Signature(element_layout(input_fmt, lanes))),
        OUTPUT_STREAM: Out(stream.Signature(element_layout(output_fmt, lanes))),
    })
