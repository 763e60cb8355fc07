"""The streaming interface shared by every tensor processing engine.

An engine computes ``C = A @ B`` for ``A`` of shape ``(rows, K)`` and ``B`` of
shape ``(K, cols)``, with ``1 <= K <= k_max`` chosen per job by the stream itself.

``operands`` (input stream, one beat per reduction step ``k``)
    ``a``    -- column ``k`` of ``A``: ``rows`` operands, element ``i`` is ``A[i, k]``
    ``b``    -- row ``k`` of ``B``: ``cols`` operands, element ``j`` is ``B[k, j]``
    ``last`` -- set on the beat with ``k = K - 1``; it ends the job

``results`` (output stream, one beat per row of ``C``, ``rows`` beats per job)
    ``c``    -- row ``i`` of ``C``: ``cols`` accumulators, element ``j`` is ``C[i, j]``
    ``last`` -- set on the beat carrying row ``rows - 1``

Both streams follow :mod:`amaranth.lib.stream` rules: a beat moves on a rising
clock edge where ``valid`` and ``ready`` are both high; a producer that raised
``valid`` keeps it and the payload stable until the beat moves. Jobs follow each
other with no reset and no gap required. Every architecture (output- and
weight-stationary systolic, 3D cube, adder tree, 2D matrix) uses this interface
unchanged, so testbenches and wrappers are shared.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


def operand_beat_layout(rows: int, cols: int, operand_shape: Shape) -> data.StructLayout:
    """Payload of one ``operands`` beat (see module docstring)."""
    return data.StructLayout({
        "a": data.ArrayLayout(operand_shape, rows),
        "b": data.ArrayLayout(operand_shape, cols),
        "last": unsigned(1),
    })


def result_beat_layout(cols: int, acc_shape: Shape) -> data.StructLayout:
    """Payload of one ``results`` beat (see module docstring)."""
    return data.StructLayout({
        "c": data.ArrayLayout(acc_shape, cols),
        "last": unsigned(1),
    })


def accumulator_shape(acc_width: int, operands_signed: bool) -> Shape:
    """Accumulators are signed exactly when the operands are."""
    return signed(acc_width) if operands_signed else unsigned(acc_width)


def engine_signature(rows: int, cols: int, operand_shape: Shape, acc_width: int) -> wiring.Signature:
    """Signature of a tensor processing engine (see module docstring)."""
    operand_shape = Shape.cast(operand_shape)
    acc_shape = accumulator_shape(acc_width, operand_shape.signed)
    return wiring.Signature({
        "operands": In(stream.Signature(operand_beat_layout(rows, cols, operand_shape))),
        "results": Out(stream.Signature(result_beat_layout(cols, acc_shape))),
    })
