"""Placeholder of the client interface of hw/vit/axi.py (the AXI port lands from branch h-axi).

Only the client layouts and signatures, exactly as docs/accelerator.md specifies them, so
that engines can be written and tested at the client level meanwhile.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


def read_request_layout(addr_width: int) -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(addr_width), "beats": unsigned(16)})


def read_data_layout(data_width: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(data_width), "last": unsigned(1)})


def write_request_layout(addr_width: int) -> data.StructLayout:
    return data.StructLayout({"addr": unsigned(addr_width), "beats": unsigned(16)})


def write_data_layout(data_width: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(data_width), "strb": unsigned(data_width // 8)})


class ReadClientSignature(wiring.Signature):
    """Engine view: ``req`` out, ``data`` in."""

    def __init__(self, addr_width: int, data_width: int):
        super().__init__({"req": Out(stream.Signature(read_request_layout(addr_width))),
                          "data": In(stream.Signature(read_data_layout(data_width)))})


class WriteClientSignature(wiring.Signature):
    """Engine view: ``req`` and ``data`` out, ``acked`` in (one pulse per fully acknowledged request)."""

    def __init__(self, addr_width: int, data_width: int):
        super().__init__({"req": Out(stream.Signature(write_request_layout(addr_width))),
                          "data": Out(stream.Signature(write_data_layout(data_width))),
                          "acked": In(1)})
