"""The accelerator's register map: SystemRDL generated from the config, elaborated into a ``RegisterMap``.

One description feeds everything: :func:`accel_rdl` writes the SystemRDL 2.0 source from a
few facts of the config (engines, ports, version, capabilities); :func:`elaborate_rdl`
compiles it with ``systemrdl-compiler`` and walks the elaborated tree into a
:class:`RegisterMap`, which the register block (``hw/vit/csr.py``) and the manifest read.
The same elaborated node gives the C header (:func:`c_header`, ``peakrdl-cheader``) and the
HTML reference (:func:`html_reference`, ``peakrdl-html``). The ``name``/``desc`` text of the
RDL is the register reference. The map is the table of docs/accelerator.md ("Registers").

Only the field behaviours the register block implements are accepted (see
:attr:`Field.kind`); anything else in the RDL is refused with a ``ValueError``.
"""

import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from systemrdl import RDLCompileError, RDLCompiler
from systemrdl.messages import MessagePrinter, Severity
from systemrdl.node import AddrmapNode, FieldNode, RegNode

#: ``ID.value``: "NPUV" in ASCII, so a driver can tell it found this accelerator.
ID_VALUE = 0x4E505556
#: AXI4-Lite data width of the register block and access width of every register.
DATA_WIDTH = 32
#: The AXI4-Lite address covers at least one 4 KB page.
MIN_ADDR_WIDTH = 12
#: The first 64-bit counter; counter ``i`` sits at ``COUNTER_BASE + 8 * i``.
COUNTER_BASE = 0x040
#: ``CAPS`` fields: name -> (lsb, width, description). ``ports`` comes from ``accel_rdl(ports=)``.
CAPS_FIELDS = {
    "ports": (0, 4, "Number of AXI4 master ports to DRAM (m_axi0 ..)."),
    "data_bytes_log2": (4, 4, "log2 of the AXI4 master data width in bytes."),
    "rows": (8, 8, "Rows of the TPE array of the linear engine."),
    "cols": (16, 8, "Columns of the TPE array of the linear engine."),
}

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# The field behaviours the register block implements, as RDL property assignments.
_CONSTANT = "sw = r; hw = na;"
_HW_WRITTEN = "sw = r; hw = w;"
_SW_RW = "sw = rw; hw = r;"
_PULSE = "sw = w; hw = r; singlepulse;"
_W1C_HWSET = "sw = rw; hw = r; onwrite = woclr; hwset;"


# --------------------------------------------------------------------------------------------
# SystemRDL source
# --------------------------------------------------------------------------------------------

def _rdl_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(name: str, lsb: int, width: int, access: str, title: str, desc: str,
           reset: int | None = None) -> str:
    assign = "" if reset is None else f" = 0x{reset:X}"
    return (f"        field {{ name = {_rdl_string(title)}; desc = {_rdl_string(desc)};\n"
            f"                {access} }} {name}[{lsb + width - 1}:{lsb}]{assign};\n")


def _register(name: str, offset: int, title: str, desc: str, fields: list[str], width: int = 32) -> str:
    lines = [f"    reg {{\n",
             f"        name = {_rdl_string(title)};\n",
             f"        desc = {_rdl_string(desc)};\n"]
    if width != DATA_WIDTH:
        lines.append(f"        regwidth = {width}; accesswidth = {DATA_WIDTH};\n")
    return "".join(lines + fields + [f"    }} {name} @ 0x{offset:03X};\n"])


def _counter(name: str, offset: int, title: str, desc: str) -> str:
    return _register(name, offset, title, desc + " 64 bits, read low word first; clears on CTRL.start "
                     "and CTRL.soft_reset.",
                     [_field("value", 0, 64, _HW_WRITTEN, "Count", "The count (low word first).")], width=64)


def _check_identifier(what: str, value) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what}: {value!r} is not an identifier (a letter, then letters, digits or _)")


def _check_range(what: str, value, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ValueError(f"{what}: {value!r} is not an integer in 0 .. {(1 << bits) - 1}")


def counter_names(engines: list[str], ports: int) -> list[str]:
    """The 64-bit counters in address order (counter ``i`` at ``COUNTER_BASE + 8 i``)."""
    return (["CYCLES"] + [f"BUSY_{engine.upper()}" for engine in engines] + ["MAC_ACTIVE", "MEM_STALL"]
            + [f"{kind}_BYTES_P{p}" for p in range(ports) for kind in ("RD", "WR")])


def accel_rdl(*, name: str, engines: list[str], ports: int, version: tuple[int, int], config_id: int,
              caps: dict[str, int]) -> str:
    """The SystemRDL 2.0 source of the accelerator's register map (deterministic text).

    ``engines`` name the engines with a ``BUSY_<ENGINE>`` counter (upper-cased, in this
    order); ``ports`` (1 .. 15) the AXI4 master ports with ``RD_BYTES_P<p>``/``WR_BYTES_P<p>``
    counters; ``version`` is ``(major, minor)``; ``config_id`` the low 16 bits of the config
    hash (``VERSION.config``); ``caps`` the ``CAPS`` fields other than ``ports``
    (``data_bytes_log2``, ``rows``, ``cols``; a ``ports`` entry, if given, must equal ``ports``).
    """
    _check_identifier("name", name)
    if not isinstance(engines, (list, tuple)):
        raise ValueError(f"engines: {engines!r} is not a list of engine names")
    for engine in engines:
        _check_identifier("engines", engine)
    upper = [engine.upper() for engine in engines]
    if len(set(upper)) != len(upper):
        raise ValueError(f"engines: {list(engines)!r} repeats a name (case-insensitive)")
    if not isinstance(ports, int) or isinstance(ports, bool) or not 1 <= ports <= 15:
        raise ValueError(f"ports: {ports!r} is not an integer in 1 .. 15 (CAPS.ports has 4 bits)")
    if not (isinstance(version, (tuple, list)) and len(version) == 2):
        raise ValueError(f"version: {version!r} is not a (major, minor) pair")
    _check_range("version major", version[0], 8)
    _check_range("version minor", version[1], 8)
    _check_range("config_id", config_id, 16)
    if not isinstance(caps, dict):
        raise ValueError(f"caps: {caps!r} is not a dict of CAPS fields")
    if "ports" in caps and caps["ports"] != ports:
        raise ValueError(f"caps: ports = {caps['ports']!r} differs from ports = {ports}")
    wanted = set(CAPS_FIELDS) - {"ports"}
    if set(caps) - {"ports"} != wanted:
        raise ValueError(f"caps: keys {sorted(caps)!r}; allowed and required: {sorted(wanted)} "
                         f"(and optionally ports)")
    caps = {**caps, "ports": ports}
    for key, (_, width, _) in CAPS_FIELDS.items():
        _check_range(f"caps {key}", caps[key], width)

    major, minor = version
    regs = [
        _register("ID", 0x000, "Identification", 'Constant 0x4E505556 ("NPUV" in ASCII).',
                  [_field("value", 0, 32, _CONSTANT, "Identifier", "Always 0x4E505556.", ID_VALUE)]),
        _register("VERSION", 0x004, "Version", "Version of the generator and the configuration it was "
                  "generated from.",
                  [_field("minor", 0, 8, _CONSTANT, "Minor version", "Minor version of the register "
                          "and descriptor interface.", minor),
                   _field("major", 8, 8, _CONSTANT, "Major version", "Major version of the register "
                          "and descriptor interface.", major),
                   _field("config", 16, 16, _CONSTANT, "Configuration", "Low 16 bits of the "
                          "configuration hash.", config_id)]),
        _register("CTRL", 0x008, "Control", "Write 1 to a bit for a one-cycle pulse; reads 0.",
                  [_field("start", 0, 1, _PULSE, "Start", "Start a run at DESC_BASE: counters clear, "
                          "STATUS.busy rises. Ignored while STATUS.busy.", 0),
                   _field("soft_reset", 1, 1, _PULSE, "Soft reset", "Abort the run: the AXI ports drain "
                          "what is in flight, the engines return to idle, STATUS and the counters "
                          "clear.", 0)]),
        _register("STATUS", 0x00C, "Status", "State of the current or last run.",
                  [_field("busy", 0, 1, _HW_WRITTEN, "Busy", "A run is in progress."),
                   _field("done", 1, 1, _HW_WRITTEN, "Done", "The last run reached END."),
                   _field("error", 2, 1, _HW_WRITTEN, "Error", "The last run stopped on an error "
                          "(see code and ERROR_DESC)."),
                   _field("code", 8, 8, _HW_WRITTEN, "Error code", "Why the last run stopped: "
                          "1 BAD_OPCODE, 2 BAD_ADDRESS, 3 BAD_SIZE, 4 BAD_FORMAT, 5 AXI_READ, "
                          "6 AXI_WRITE; 0 without error.")]),
        _register("DESC_BASE", 0x010, "Descriptor base", "Byte address of the descriptor list, 64 bits "
                  "(two words, low first).",
                  [_field("value", 0, 64, _SW_RW, "Address", "Byte address of descriptor 0, aligned to "
                          "the AXI4 data width; descriptor i is at DESC_BASE + 64 i.", 0)], width=64),
        _register("IRQ_ENABLE", 0x018, "Interrupt enable", "irq is high while IRQ_STATUS & IRQ_ENABLE "
                  "is not zero.",
                  [_field("done", 0, 1, _SW_RW, "Done enable", "Raise irq on IRQ_STATUS.done.", 0),
                   _field("error", 1, 1, _SW_RW, "Error enable", "Raise irq on IRQ_STATUS.error.", 0)]),
        _register("IRQ_STATUS", 0x01C, "Interrupt status", "Set by the hardware, cleared by writing 1 "
                  "(a set in the same cycle wins).",
                  [_field("done", 0, 1, _W1C_HWSET, "Done", "Set when a run reaches END.", 0),
                   _field("error", 1, 1, _W1C_HWSET, "Error", "Set when a run stops on an error.", 0)]),
        _register("ERROR_DESC", 0x020, "Error descriptor", "Index of the descriptor that stopped the run.",
                  [_field("value", 0, 32, _HW_WRITTEN, "Index", "Descriptor index (valid while "
                          "STATUS.error).")]),
        _register("DESC_DONE", 0x024, "Descriptors done", "Descriptors completed in this run.",
                  [_field("value", 0, 32, _HW_WRITTEN, "Count", "Descriptors completed since start.")]),
        _register("CAPS", 0x028, "Capabilities", "Facts of the generated configuration a driver needs.",
                  [_field(key, lsb, width, _CONSTANT, key, desc, caps[key])
                   for key, (lsb, width, desc) in CAPS_FIELDS.items()]),
    ]
    counter_desc = {
        "CYCLES": ("Cycles", "Clock cycles since CTRL.start, until done or error."),
        "MAC_ACTIVE": ("MAC active", "Cycles the TPE took an operand beat."),
        "MEM_STALL": ("Memory stall", "Cycles an engine waited for memory."),
    }
    for engine in engines:
        counter_desc[f"BUSY_{engine.upper()}"] = (f"{engine} busy", f"Cycles the {engine} engine was busy.")
    for p in range(ports):
        counter_desc[f"RD_BYTES_P{p}"] = (f"Port {p} read bytes", f"Bytes read through m_axi{p}.")
        counter_desc[f"WR_BYTES_P{p}"] = (f"Port {p} written bytes",
                                          f"Bytes written (strobed) through m_axi{p}.")
    for i, counter in enumerate(counter_names(engines, ports)):
        regs.append(_counter(counter, COUNTER_BASE + 8 * i, *counter_desc[counter]))

    title = _rdl_string(f"{name} registers")
    desc = _rdl_string("Control, status, interrupts and counters of the MoE-ViT accelerator; "
                       "AXI4-Lite, 32-bit data. Unmapped addresses answer SLVERR.")
    return (f"// {name}: register map of the MoE-ViT accelerator (docs/accelerator.md).\n"
            f"// Generated by hw/vit/regmap.py; do not edit.\n"
            f"addrmap {name} {{\n"
            f"    name = {title};\n"
            f"    desc = {desc};\n"
            + "".join(regs) + "};\n")


# --------------------------------------------------------------------------------------------
# The elaborated map
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One field: bits ``[lsb + width - 1 : lsb]`` of its register, with its access rules.

    ``sw``/``hw`` are SystemRDL access names (``r``, ``w``, ``rw``, ``na``); ``reset`` is the
    reset value (``None`` for fields the hardware drives); ``pulse`` is ``singlepulse``;
    ``clear_on_write_one`` is ``onwrite = woclr`` (always with ``hwset``).
    """

    name: str
    lsb: int
    width: int
    sw: str
    hw: str
    reset: int | None
    pulse: bool
    clear_on_write_one: bool
    desc: str

    @property
    def kind(self) -> str:
        """The behaviour the register block implements for this field.

        * ``constant`` (sw=r, hw=na): reads its reset value; no port.
        * ``input`` (sw=r, hw=w): the hardware drives it; reads the live value.
        * ``storage`` (sw=rw, hw=r): software writes it; the hardware reads it.
        * ``pulse`` (sw=w, hw=r, singlepulse): a write of 1 gives a one-cycle pulse; reads 0.
        * ``clear_on_write_one`` (sw=rw, hw=r, woclr, hwset): set by the hardware, cleared by writing 1.
        """
        if self.pulse:
            return "pulse"
        if self.clear_on_write_one:
            return "clear_on_write_one"
        return {("r", "na"): "constant", ("r", "w"): "input", ("rw", "r"): "storage"}[self.sw, self.hw]

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1


@dataclass(frozen=True)
class Register:
    """A register at byte ``offset``, ``width`` (32 or 64) bits, read and written in 32-bit words."""

    name: str
    offset: int
    width: int
    fields: tuple[Field, ...]
    desc: str

    @property
    def words(self) -> int:
        return self.width // DATA_WIDTH

    @property
    def latched(self) -> bool:
        """Multi-word and changed by the hardware: reading word 0 latches the upper words."""
        return self.words > 1 and any(f.kind in ("input", "clear_on_write_one") for f in self.fields)

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register {self.name} has no field {name!r}; it has "
                       f"{', '.join(f.name for f in self.fields)}")


@dataclass(frozen=True)
class RegisterMap:
    """The registers in address order and the AXI4-Lite address bits that cover them."""

    name: str
    registers: tuple[Register, ...]
    addr_width: int

    def __getitem__(self, name: str) -> Register:
        for register in self.registers:
            if register.name == name:
                return register
        raise KeyError(f"register map {self.name} has no register {name!r}")

    def __contains__(self, name: str) -> bool:
        return any(register.name == name for register in self.registers)

    def to_json(self) -> dict:
        """A plain dict for the manifest (registers in address order, fields from bit 0 up)."""
        return {
            "name": self.name,
            "addr_width": self.addr_width,
            "data_width": DATA_WIDTH,
            "registers": [{"name": r.name, "offset": r.offset, "width": r.width, "desc": r.desc,
                           "fields": [asdict(f) for f in r.fields]} for r in self.registers],
        }


# Properties the register block honours; any other explicitly assigned property is refused.
_ALLOWED_FIELD_PROPERTIES = {"name", "desc", "sw", "hw", "reset", "singlepulse", "onwrite", "woclr",
                             "hwset", "fieldwidth"}
_ALLOWED_REG_PROPERTIES = {"name", "desc", "regwidth", "accesswidth"}
_ALLOWED_MAP_PROPERTIES = {"name", "desc"}


class _CollectMessages(MessagePrinter):
    """Keeps the compiler's messages (file name and line, no machine paths) for one error line."""

    def __init__(self):
        self.lines: list[str] = []

    def print_message(self, severity, text, src_ref):
        if severity < Severity.WARNING:
            return
        where = ""
        if src_ref is not None and getattr(src_ref, "line", None) is not None:
            where = f"line {src_ref.line}: "
        self.lines.append(f"{severity.name.lower()}: {where}{text}")


def _refuse(path: str, what: str) -> None:
    raise ValueError(f"register map: {path}: {what}; the CSR block implements only constant (sw=r hw=na), "
                     f"hardware-written (sw=r hw=w), read-write (sw=rw hw=r), singlepulse (sw=w hw=r) "
                     f"and write-1-to-clear with hwset (sw=rw hw=r onwrite=woclr hwset) fields in plain "
                     f"32- or 64-bit registers with accesswidth {DATA_WIDTH}")


def _field_from(node: FieldNode, path: str) -> Field:
    extra = sorted(set(node.list_properties()) - _ALLOWED_FIELD_PROPERTIES)
    if extra:
        _refuse(path, f"property {', '.join(extra)}")
    sw, hw = node.get_property("sw").name, node.get_property("hw").name
    onwrite = node.get_property("onwrite")
    woclr = onwrite is not None and onwrite.name == "woclr"
    if onwrite is not None and not woclr:
        _refuse(path, f"onwrite = {onwrite.name}")
    hwset = node.get_property("hwset")
    if hwset not in (False, True):
        _refuse(path, "hwset from a signal or reference")
    if woclr != hwset:
        _refuse(path, "woclr without hwset" if woclr else "hwset without woclr")
    pulse = bool(node.get_property("singlepulse"))
    reset = node.get_property("reset")
    if reset is not None and not isinstance(reset, int):
        _refuse(path, "a reset value from a signal or reference")
    field = Field(name=node.inst_name, lsb=node.low, width=node.width, sw=sw, hw=hw, reset=reset,
                  pulse=pulse, clear_on_write_one=woclr, desc=node.get_property("desc") or "")
    allowed = {"pulse": ("w", "r"), "clear_on_write_one": ("rw", "r")}
    try:
        kind = field.kind
    except KeyError:
        _refuse(path, f"sw = {sw}, hw = {hw}")
    if kind in allowed and allowed[kind] != (sw, hw):
        _refuse(path, f"{kind} with sw = {sw}, hw = {hw}")
    if kind == "input" and reset is not None:
        _refuse(path, "a reset value on a hardware-written field (it reads the live input)")
    if kind != "input" and reset is None:
        _refuse(path, "no reset value")
    return field


def _register_from(node, path: str) -> Register:
    if not isinstance(node, RegNode):
        _refuse(path, f"a {type(node).__name__.removesuffix('Node').lower()} (only registers)")
    if node.is_array:
        _refuse(path, "a register array")
    if node.external:
        _refuse(path, "an external register")
    extra = sorted(set(node.list_properties()) - _ALLOWED_REG_PROPERTIES)
    if extra:
        _refuse(path, f"property {', '.join(extra)}")
    width, access = node.get_property("regwidth"), node.get_property("accesswidth")
    if width not in (32, 64) or access != DATA_WIDTH:
        _refuse(path, f"regwidth {width}, accesswidth {access}")
    fields = tuple(_field_from(f, f"{path}.{f.inst_name}") for f in node.fields())
    return Register(name=node.inst_name, offset=node.address_offset, width=width, fields=fields,
                    desc=node.get_property("desc") or "")


def elaborate_rdl(text: str) -> tuple[RegisterMap, AddrmapNode]:
    """Compile and elaborate SystemRDL ``text``; return its :class:`RegisterMap` and top node.

    The last addrmap of the text is the top. Compile errors and property combinations the
    register block does not implement raise ``ValueError`` (one message naming the place).
    """
    messages = _CollectMessages()
    compiler = RDLCompiler(message_printer=messages)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "regs.rdl"
        source.write_text(text)
        try:
            compiler.compile_file(str(source))
            root = compiler.elaborate()
        except RDLCompileError:
            errors = [line for line in messages.lines if line.startswith(("error", "fatal"))] or messages.lines
            raise ValueError(f"register map: SystemRDL does not compile: {'; '.join(errors)}") from None
    top = root.top
    extra = sorted(set(top.list_properties()) - _ALLOWED_MAP_PROPERTIES)
    if extra:
        _refuse(top.inst_name, f"property {', '.join(extra)}")
    registers = tuple(_register_from(child, f"{top.inst_name}.{child.inst_name}")
                      for child in top.children())
    if not registers:
        raise ValueError(f"register map: {top.inst_name} has no registers")
    registers = tuple(sorted(registers, key=lambda r: r.offset))
    end = max(r.offset + r.width // 8 for r in registers)
    addr_width = max(MIN_ADDR_WIDTH, (end - 1).bit_length())
    return RegisterMap(name=top.inst_name, registers=registers, addr_width=addr_width), top


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------

def c_header(node: AddrmapNode) -> str:
    """The C header of the map (``peakrdl-cheader``): offsets, field masks, a register struct.

    Deterministic: no dates, no paths; the include guard is ``<NAME>_REGS_H``.
    """
    from peakrdl_cheader.exporter import CHeaderExporter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{node.inst_name}_regs.h"
        CHeaderExporter().export(node, str(path))
        return path.read_text()


def html_reference(node: AddrmapNode, out_dir: Path) -> Path:
    """Write the HTML register reference (``peakrdl-html``) into ``out_dir``; return its index.html.

    No build timestamp and no links to the (temporary) RDL source, so the files are reproducible.
    """
    from peakrdl_html import HTMLExporter

    out_dir = Path(out_dir)
    HTMLExporter(user_context={"build_ts": 0}, generate_source_links=False).export(node, str(out_dir))
    return out_dir / "index.html"
