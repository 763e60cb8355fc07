"""Payload layouts as the manifest describes them: leaf fields with bit offsets.

Its own module because both ``gen/elaborate.py`` (stream payloads) and kinds that describe
extra layouts in their manifest sections (``gen/kinds/npu_tile.py``: the command formats)
need it, and the kinds are imported by ``gen/registry.py``, which ``gen/elaborate.py`` imports.
"""

from amaranth.hdl import Shape
from amaranth.lib import data


def layout_fields(shape, prefix: str = "", offset: int = 0) -> list[dict]:
    """Leaf fields of a payload layout with bit offsets; arrays of scalars stay one entry with ``count``."""
    if isinstance(shape, data.StructLayout):
        fields = []
        for name, member in shape:
            fields += layout_fields(member.shape, f"{prefix}{name}", offset + member.offset)
        return fields
    if isinstance(shape, data.ArrayLayout) and not isinstance(shape.elem_shape, data.Layout):
        elem = Shape.cast(shape.elem_shape)
        return [{"name": prefix, "offset": offset, "width": elem.width, "signed": elem.signed,
                 "count": shape.length, "stride": elem.width}]
    if isinstance(shape, data.ArrayLayout):
        fields = []
        elem_size = data.Layout.cast(shape.elem_shape).size
        for index in range(shape.length):
            fields += layout_fields(shape.elem_shape, f"{prefix}[{index}].", offset + index * elem_size)
        return fields
    plain = Shape.cast(shape)
    return [{"name": prefix, "offset": offset, "width": plain.width, "signed": plain.signed}]
