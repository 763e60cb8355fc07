"""Base class every kind's config model derives from."""

import hashlib
import json
import keyword
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Verilog-2005 and SystemVerilog keywords a top-module name must not collide with
# (a short list: the ones a hardware engineer might plausibly pick as a name).
_HDL_KEYWORDS = frozenset("""
    always and assign begin buf case default else end endcase endmodule for function if initial
    inout input integer logic module not or output parameter reg signed task unsigned wire xor
    bit byte int interface package class program
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

    def config_hash(self) -> str:
        """sha256 of the normalised config in canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.normalized(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
