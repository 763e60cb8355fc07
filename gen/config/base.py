"""Base class every kind's config model derives from."""

import hashlib
import json
import keyword
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Keywords of Verilog-2005 and SystemVerilog-2017 (IEEE 1364 / 1800): a top-module
# name must not be one, or tools need escaped identifiers to use the design.
_HDL_KEYWORDS = frozenset("""
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
    before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
    checker class clocking cmos config const constraint context continue cover covergroup
    coverpoint cross deassign default defparam design disable dist do edge else end endcase
    endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
    endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
    endtask enum event eventually expect export extends extern final first_match for force
    foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
    ignore_bins illegal_bins implements implies import incdir include initial inout input
    inside instance int integer interconnect interface intersect join join_any join_none
    large let liblist library local localparam logic longint macromodule matches medium
    modport module nand negedge nettype new nexttime nmos nor noshowcancelled not notif0
    notif1 null or output package packed parameter pmos posedge primitive priority program
    property protected pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent
    pure rand randc randcase randsequence rcmos real realtime ref reg reject_on release
    repeat restrict return rnmos rpmos rtran rtranif0 rtranif1 s_always s_eventually
    s_nexttime s_until s_until_with scalared sequence shortint shortreal showcancelled
    signed small soft solve specify specparam static string strong strong0 strong1 struct
    super supply0 supply1 sync_accept_on sync_reject_on table tagged task this throughout
    time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand trior trireg
    type typedef union unique unique0 unsigned until until_with untyped use uwire var
    vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire with
    within wor xnor xor
""".split())


def _check_top_name(name: str) -> str:
    if name in _HDL_KEYWORDS or keyword.iskeyword(name):
        raise ValueError("a Verilog identifier that is not a reserved word")
    return name


TopName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
          json_schema_extra={"allowed": "a Verilog identifier: a letter or _, then letters, digits or _ (at most 63)"}),
    AfterValidator(_check_top_name),
]


class StrictModel(BaseModel):
    """Rejects unknown keys and silent coercions (``"8"`` is not ``8``, ``1`` is not ``true``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class KindConfig(StrictModel):
    """Common fields of every hardware kind.

    Subclasses set ``kind`` to a ``Literal`` and add their own fields. After
    validation every optional field that can be derived is filled in, so the
    normalised config states everything that shapes the hardware.
    """

    kind: str
    name: TopName = Field(description="Top-level Verilog module name; also names build directories.")

    #: One-line summary shown by ``npuforge kinds``.
    summary: ClassVar[str] = ""

    def describe(self) -> str:
        """One line saying what hardware this config describes."""
        return f"{self.kind} {self.name}"

    def normalized(self) -> dict[str, Any]:
        """The config with every default and derived value filled in, as JSON-able data."""
        return self.model_dump(mode="json")

    def build_name(self) -> str:
        """``<name>-<first 12 hex digits of the config hash>``: names this config's build directory."""
        return f"{self.name}-{self.config_hash()[:12]}"

    def config_hash(self) -> str:
        """sha256 of the normalised config in canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.normalized(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
