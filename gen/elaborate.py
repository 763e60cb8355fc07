"""Elaborate a config into Verilog plus the facts a manifest records."""

import re
from dataclasses import dataclass, field

from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Fragment, Module, ResetSignal, Shape, Signal
from amaranth.hdl._ir import PortDirection
from amaranth.lib import stream, wiring

from . import toolchain  # noqa: F401 -- pins AMARANTH_USE_YOSYS before any conversion
from .config.base import KindConfig
from .layout import layout_fields
from .registry import kind_of
from .verilog_scan import scan_modules

_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Port:
    name: str
    direction: str  # "input" | "output"
    width: int


@dataclass(frozen=True)
class FaultSite:
    """A storage element a soft error can hit, addressed as cocotb reaches it (``dut.<path>``)."""

    path: str
    kind: str  # "register" | "memory"
    width: int
    block: str  # instance path of the owning module; "" for the top module
    depth: int | None = None  # words, for memories
    aliases: tuple[str, ...] = ()  # other names of the same net in the owning module


@dataclass
class Elaboration:
    """The Verilog of one config and everything derived while producing it."""

    config: KindConfig
    top: str
    verilog: str
    ports: list[Port]
    interfaces: list[dict]
    parameters: dict
    fault_sites: list[FaultSite] = field(default_factory=list)
    sections: dict = field(default_factory=dict)  # the kind's extra top-level manifest entries
    files: dict = field(default_factory=dict)  # the kind's extra files: name -> text


def _component_ports(component: wiring.Component) -> dict:
    """``{port name: (signal, direction)}`` named as :func:`amaranth.back.verilog.convert` names them."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if hasattr(value, "as_value") else value
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


def _stream_interfaces(component: wiring.Component) -> list[dict]:
    """Describe every :mod:`amaranth.lib.stream` member of the component's signature."""
    interfaces = []
    for name, member in component.signature.members.items():
        if not (member.is_signature and isinstance(member.signature, stream.Signature)):
            continue
        payload = member.signature.members["payload"]
        # An In stream is one the component consumes.
        role = "sink" if member.flow == wiring.In else "source"
        layout = payload.shape
        interfaces.append({
            "name": name,
            "protocol": "amaranth.lib.stream",
            "role": role,
            "valid": f"{name}__valid",
            "ready": f"{name}__ready",
            "payload": {
                "port": f"{name}__payload",
                "width": Shape.cast(layout).width,
                "fields": layout_fields(layout),
            },
        })
    return interfaces


def _fault_sites(verilog: str, top: str) -> list[FaultSite]:
    sites = []
    for module in scan_modules(verilog):
        if module.name == top:
            block = ""
        elif module.name.startswith(top + "."):
            block = module.name[len(top) + 1:]
        else:
            raise AssertionError(f"module {module.name!r} is outside top {top!r}")
        prefix = block + "." if block else ""
        if not block and module.flops:
            raise AssertionError(f"registers {module.flops} in the top module cannot take deposits")
        for name in module.flops:
            if not _SIMPLE_NAME.match(name):
                raise AssertionError(f"register {name!r} in {module.name} has no plain name; "
                                     "name the signal in the generator")
            sites.append(FaultSite(path=prefix + name, kind="register", width=module.widths[name],
                                   block=block, aliases=tuple(module.aliases.get(name, ()))))
        for name, (width, depth) in module.memories.items():
            sites.append(FaultSite(path=prefix + name, kind="memory", width=width, depth=depth,
                                   block=block, aliases=tuple(module.aliases.get(name, ()))))
    return sites


CORE_INSTANCE = "core"


class _PassThroughTop(wiring.Component):
    """Top module whose ports connect to the design, instantiated as ``core``.

    Verilator keeps a top-level output port apart from the flip-flop behind it,
    so a value deposited on a register that drives a top port is lost. With this
    wrapper every register lives in a submodule, where deposits work; fault
    sites are therefore named ``core.<path>``.

    Streams during reset (the AXI4-Stream rule): every ``valid`` and ``ready`` of
    an :mod:`amaranth.lib.stream` port is low while ``rst`` is high, on both sides
    of the wrapper, so no beat moves in a reset cycle -- a beat offered then stays
    offered and moves after reset. Inside a design every component shares the
    one reset, so a beat between two of them in a reset cycle is forgotten by both.
    Every other port connects straight through.
    """

    def __init__(self, core: wiring.Component):
        self._core = core
        super().__init__(core.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules[CORE_INSTANCE] = core = self._core
        running = Signal(name="running")  # not in reset
        m.d.comb += running.eq(~ResetSignal())
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(core, name)
            if member.is_port:
                m.d.comb += inner.eq(outer) if member.flow == wiring.In else outer.eq(inner)
                continue
            if not isinstance(member.signature, stream.Signature):
                wiring.connect(m, wiring.flipped(outer), inner)
                continue
            consumed = member.flow == wiring.In  # a stream the design consumes
            source, sink = (outer, inner) if consumed else (inner, outer)
            m.d.comb += [sink.valid.eq(source.valid & running), source.ready.eq(sink.ready & running),
                         sink.payload.eq(source.payload)]
        return m


def _registers_first(fragment) -> None:
    """Put every fragment's clocked statements before its combinational ones.

    Amaranth names a net after the first signal it meets on it, statement by statement and
    domain by domain in the order the domains first appear. A register that drives a
    submodule's port (``port.addr.eq(word)``) in a module whose first statement was
    combinational would take the port's name (``$signature__addr``): a fault site nobody can
    find. With the clocked domains first, every register is met under its own name first.
    """
    statements = getattr(fragment, "statements", None)
    if statements is not None and "comb" in statements:
        comb = statements.pop("comb")
        statements["comb"] = comb
    for subfragment, _name, _src_loc in getattr(fragment, "subfragments", ()):
        _registers_first(subfragment)


def elaborate(cfg: KindConfig) -> Elaboration:
    """Build the component for ``cfg`` and convert it to Verilog named after ``cfg.name``."""
    kind = kind_of(cfg)
    component = kind.build(cfg)
    top = cfg.name
    wrapper = _PassThroughTop(component)
    fragment = Fragment.get(wrapper, None)
    _registers_first(fragment)
    design = fragment.prepare(ports=_component_ports(wrapper), hierarchy=(top,))
    # emit_src=False: source locations are absolute paths of this machine.
    text, _names = amaranth_verilog.convert_fragment(design, name=top, emit_src=False)

    top_module = next(m for m in scan_modules(text) if m.name == top)
    ports = [Port(name, direction, width) for name, direction, width in top_module.ports]
    sites = _fault_sites(text, top)
    return Elaboration(
        config=cfg,
        top=top,
        verilog=text,
        ports=ports,
        interfaces=_stream_interfaces(wrapper),
        parameters=kind.parameters(cfg, component),
        fault_sites=sites,
        sections=kind.manifest_sections(cfg, component, sites) if kind.manifest_sections else {},
        files=kind.files(cfg, component) if kind.files else {},
    )
