"""The streaming interface shared by every tensor processing engine.

An engine computes ``C = A @ B`` for ``A`` of shape ``(R, K)`` and ``B`` of
shape ``(K, cols)``. How a job is cut into operand beats depends on the
architecture; two beat formats exist, and the manifest records which one an
engine uses (``parameters.job.format``) so one testbench drives them all.

``k_steps`` (``systolic_os``, ``matrix2d``, ``cube``, ``adder_tree``): ``R`` is
fixed (the engine's ``rows``); one beat carries ``steps`` consecutive reduction
steps ``k0 .. k0+steps-1``:

    ``a``    -- ``rows * steps`` operands; element ``s*rows + i`` is ``A[i, k0+s]``
    ``b``    -- ``cols * steps`` operands; element ``s*cols + j`` is ``B[k0+s, j]``
    ``last`` -- set on the job's final beat

A job of ``K`` steps takes ``ceil(K / steps)`` beats; the steps past ``K`` in
the final beat must carry zeros (the source pads them: an engine adds every step
it receives, and a zero step adds nothing).

``rows_with_weights`` (``systolic_ws``): one beat per row of ``A`` (``R`` rows,
chosen per job by ``last``); a beat may also carry one weight row of the next
job (``K <= rows`` rows, sent in order):

    ``row``  -- 1: ``a`` is row ``m`` of ``A``: ``a[k] = A[m, k]`` (``k < rows``)
    ``load`` -- 1: ``b[j] = B[k, j]``, the next weight row of the pending weights
    ``last`` -- set on the job's final row (with ``row``)

The first row of a job swaps in the pending weights (if any were sent since
the previous swap); weight rows sent with or after it belong to the next job.
The first job's weights, and any the previous job's rows could not carry,
travel in beats with ``load`` only.

``results`` (every engine: one beat per row of ``C``, row 0 first)
    ``c``    -- row ``i`` of ``C``: ``cols`` accumulators, element ``j`` is ``C[i, j]``
    ``last`` -- set on the beat carrying the job's final row

Both streams follow :mod:`amaranth.lib.stream` rules: a beat moves on a rising
clock edge where ``valid`` and ``ready`` are both high; a producer that raised
``valid`` keeps it and the payload stable until the beat moves. Jobs follow each
other with no reset and no gap required. A generated design holds every ``valid``
and ``ready`` low while in reset (``gen/elaborate.py``); an engine itself may raise
them then, which is harmless inside a design where both sides share the reset.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..arith.widths import accumulator_signed

#: Control that travels with an operand through a pipeline: ``valid`` marks a
#: real operand (not a bubble), ``first``/``last`` the first/last step of a job.
StepTag = data.StructLayout({"valid": unsigned(1), "first": unsigned(1), "last": unsigned(1)})


def operand_beat_layout(rows: int, cols: int, operand_shape, steps: int = 1, *, b_shape=None) -> data.StructLayout:
    """Payload of one ``k_steps`` operand beat (see module docstring); ``b`` of ``b_shape`` if given."""
    return data.StructLayout({
        "a": data.ArrayLayout(operand_shape, rows * steps),
        "b": data.ArrayLayout(operand_shape if b_shape is None else b_shape, cols * steps),
        "last": unsigned(1),
    })


def weight_row_beat_layout(rows: int, cols: int, operand_shape, *, b_shape=None) -> data.StructLayout:
    """Payload of one ``rows_with_weights`` operand beat (see module docstring); ``b`` of ``b_shape`` if given."""
    return data.StructLayout({
        "a": data.ArrayLayout(operand_shape, rows),
        "b": data.ArrayLayout(operand_shape if b_shape is None else b_shape, cols),
        "row": unsigned(1),
        "load": unsigned(1),
        "last": unsigned(1),
    })


def result_beat_layout(cols: int, acc_shape) -> data.StructLayout:
    """Payload of one ``results`` beat (see module docstring)."""
    return data.StructLayout({
        "c": data.ArrayLayout(acc_shape, cols),
        "last": unsigned(1),
    })


def accumulator_shape(acc_width: int, operands_signed: bool) -> Shape:
    """Accumulators are signed exactly when the products are (either operand signed)."""
    return signed(acc_width) if operands_signed else unsigned(acc_width)


def engine_signature(operand_layout: data.Layout, cols: int, operand_shape, acc_width: int, *,
                     b_shape=None) -> wiring.Signature:
    """Signature of a tensor processing engine: ``operands`` in, ``results`` out (``B`` of ``b_shape`` if given)."""
    b_shape = operand_shape if b_shape is None else b_shape
    acc_shape = accumulator_shape(acc_width, accumulator_signed(Shape.cast(operand_shape).signed,
                                                                Shape.cast(b_shape).signed))
    return wiring.Signature({
        "operands": In(stream.Signature(operand_layout)),
        "results": Out(stream.Signature(result_beat_layout(cols, acc_shape))),
    })
