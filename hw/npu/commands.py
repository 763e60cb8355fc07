"""The NPU tile's host words and command format.

The host sends one stream of words, ``{word, cmd}``. ``cmd = 1``: ``word``
holds a command (low bits) that is appended to the command memory; the
command ``END`` closes the program and starts it. ``cmd = 0``: ``word`` holds
a data word that a running ``LOAD`` command writes into an operand buffer
(low bits: an ``a`` or ``b`` field of one operand beat of the compute engine,
see :mod:`hw.tpe.interface`).

A command word starts with ``op`` (3 bits); the fields after it depend on
the opcode (:func:`command_layouts`):

====  ========  ==========================================================
op    name      fields, meaning
====  ========  ==========================================================
0     END       end of program: ``done`` rises, the tile takes the next program
1     LOAD_A    ``addr, count``: the next ``count`` data words to buf_a[addr ..]
2     LOAD_B    ``addr, count``: the same into buf_b
3     GEMM      ``a_addr, b_addr, k, acc``: one engine job of ``k`` beats,
                beat ``t`` = (buf_a[a_addr+t], buf_b[b_addr+t]); its result
                rows overwrite (``acc = 0``) or add to (``acc = 1``) the
                accumulators
4     QUANT     ``scale, shift``: requantisation parameters
5     ACT       ``mode, lo, hi``: activation, mode 0 none, 1 ReLU, 2 clip to
                [lo, hi]
6     WRITE     requantise the accumulators and send them, one result beat per row
7     --        invalid
====  ========  ==========================================================
"""

from amaranth.hdl import Shape, unsigned
from amaranth.lib import data

from hw.mem import address_shape

OP_WIDTH = 3
OPCODES = {"END": 0, "LOAD_A": 1, "LOAD_B": 2, "GEMM": 3, "QUANT": 4, "ACT": 5, "WRITE": 6}
ACT_MODES = {"none": 0, "relu": 1, "clip": 2}


def command_layouts(*, addr_bits: int, count_bits: int, scale_width: int, shift_bits: int,
                    out_shape) -> dict[str, data.StructLayout]:
    """The layout of each command (``op`` first); widths follow the tile's sizes."""
    op = {"op": unsigned(OP_WIDTH)}
    load = data.StructLayout(op | {"addr": unsigned(addr_bits), "count": unsigned(count_bits)})
    return {
        "END": data.StructLayout(op),
        "LOAD_A": load,
        "LOAD_B": load,
        "GEMM": data.StructLayout(op | {"a_addr": unsigned(addr_bits), "b_addr": unsigned(addr_bits),
                                        "k": unsigned(count_bits), "acc": unsigned(1)}),
        "QUANT": data.StructLayout(op | {"scale": unsigned(scale_width), "shift": unsigned(shift_bits)}),
        "ACT": data.StructLayout(op | {"mode": unsigned(2), "lo": out_shape, "hi": out_shape}),
        "WRITE": data.StructLayout(op),
    }


def tile_command_layouts(*, a_depth: int, b_depth: int, k_beats_max: int, scale_width: int, shift_max: int,
                         out_shape) -> dict[str, data.StructLayout]:
    """:func:`command_layouts` for a tile's sizes: addresses cover the deeper buffer, counts reach
    its depth (and the longest GEMM), the shift field holds ``shift_max``. No field has zero bits
    (one-word buffers get a 1-bit address, ``shift_max = 0`` a 1-bit shift)."""
    depth = max(a_depth, b_depth)
    return command_layouts(addr_bits=Shape.cast(address_shape(depth)).width,
                           count_bits=Shape.cast(range(max(depth, k_beats_max) + 1)).width,
                           scale_width=scale_width, shift_bits=Shape.cast(shift_shape(shift_max)).width,
                           out_shape=out_shape)


def shift_shape(shift_max: int) -> range:
    """Shape of a shift of ``0 .. shift_max`` (at least one bit: a zero-width field would be a
    ``[-1:0]`` wire in the Verilog)."""
    return range(max(shift_max, 1) + 1)


def command_width(layouts: dict[str, data.StructLayout]) -> int:
    return max(layout.size for layout in layouts.values())


def host_word_layout(word_width: int) -> data.StructLayout:
    """Payload of the host stream."""
    return data.StructLayout({"word": unsigned(word_width), "cmd": unsigned(1)})
