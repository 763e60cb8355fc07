"""Payload packing used by the stream drivers, against the manifest's layout description."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from hypothesis import given
from hypothesis import strategies as st

from gen.layout import layout_fields
from hw.tpe import operand_beat_layout
from sim.tb.payload import PayloadCodec


def _codec(rows, cols, shape):
    layout = operand_beat_layout(rows, cols, shape)
    return layout, PayloadCodec({"width": layout.size, "fields": layout_fields(layout)})


@given(st.data())
def test_round_trip_and_agreement_with_amaranth(draw):
    rows, cols = draw.draw(st.integers(1, 6)), draw.draw(st.integers(1, 6))
    width, is_signed = draw.draw(st.integers(1, 16)), draw.draw(st.booleans())
    shape = signed(width) if is_signed else unsigned(width)
    layout, codec = _codec(rows, cols, shape)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    values = {
        "a": draw.draw(st.lists(st.integers(lo, hi), min_size=rows, max_size=rows)),
        "b": draw.draw(st.lists(st.integers(lo, hi), min_size=cols, max_size=cols)),
        "last": draw.draw(st.integers(0, 1)),
    }
    word = codec.pack(values)
    assert 0 <= word < 1 << layout.size
    assert codec.unpack(word) == values
    # Amaranth's own view of the same bits agrees field by field.
    const = data.Const(layout, word)
    assert [const.a[i] for i in range(rows)] == values["a"]
    assert [const.b[j] for j in range(cols)] == values["b"]
    assert const.last == values["last"]
