"""Memories of one word, and address shapes that never have zero bits.

:mod:`amaranth.lib.memory` gives a one-word memory's ports zero-width addresses, and
Yosys writes every zero-width signal as a ``[-1:0]`` vector, which Verilator's lint
rejects (``ASCRANGE``). A generator whose memory depth follows the config (a
``buf_b`` of one word, a LayerNorm row of at most ``lanes`` elements) takes its
one-word memory from :func:`one_word_memory` and sizes address ports with
:func:`address_shape`; memories of two or more words stay ``lib.memory`` ones.
"""

from dataclasses import dataclass

from amaranth.hdl import Const, MemoryData, MemoryInstance, Module, Signal, Value


def address_shape(depth: int) -> range:
    """Shape of an address of a ``depth``-word memory: ``range(depth)``, with one bit (always 0) for one word."""
    return range(max(depth, 2))


@dataclass(frozen=True)
class Port:
    """A port of :func:`one_word_memory`, with the members of a ``lib.memory`` port.

    ``addr`` is a one-bit signal nothing reads (drive it as for a larger memory);
    ``data`` carries the word, ``en`` enables the write (write port) or the read
    register (synchronous read port; constant 1 for a combinational one).
    """

    addr: Signal
    data: object
    en: object


def one_word_memory(m: Module, name: str, shape, *, read_domain: str = "sync") -> tuple[Port, Port]:
    """Submodule ``name``: a one-word memory (no initial contents) with one write and one read port.

    The same storage and port semantics as ``lib.memory.Memory(shape=shape, depth=1)``
    with ``write_port()`` and ``read_port(domain=read_domain)`` (not transparent): a
    fault site of kind ``memory`` named ``name``, depth 1.
    """
    instance = MemoryInstance(data=MemoryData(shape=shape, depth=1, init=[]))
    no_address = Const(0, 0)
    write = Port(addr=Signal(1, name=f"{name}_w_addr"), data=Signal(shape, name=f"{name}_w_data"),
                 en=Signal(1, name=f"{name}_w_en"))
    comb = read_domain == "comb"
    read = Port(addr=Signal(1, name=f"{name}_r_addr"), data=Signal(shape, name=f"{name}_r_data"),
                en=Const(1) if comb else Signal(1, name=f"{name}_r_en", init=1))
    instance.write_port(domain="sync", addr=no_address, data=Value.cast(write.data), en=write.en)
    instance.read_port(domain=read_domain, addr=no_address, data=Value.cast(read.data), en=read.en,
                       transparent_for=())
    m.submodules[name] = instance
    return write, read
