"""The stimulus of a fault campaign and the outputs it must produce, as stream beats.

A :class:`Workload` is what the injection harness replays: per input stream
(a ``sink`` interface of the manifest, which the design consumes) the payload
words it offers at full rate, and per output stream (a ``source`` interface)
the payload words the fault-free design must produce, from the kind's golden
model. Payload words are plain ints packed with the manifest's field layout
(``sim.tb.payload.PayloadCodec``), ``last`` included. Each kind provides
workload functions (``gemm`` for ``tpe``, in ``sim/tb/tpe_workload.py``) that
``npuforge.registry.workload_for`` names.
"""

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from sim.tb.payload import PayloadCodec


@dataclass(frozen=True)
class Workload:
    """Input beats and expected output beats of one run, per stream interface name.

    ``layouts`` holds each named interface's manifest ``payload`` (``width``,
    ``fields``); ``element_fields`` names, per output interface, the payload
    fields whose values are data elements (for TPE the ``c`` row; ``last``
    is framing): SDC detail counts differing elements of these fields.
    ``params`` records how the workload was made (for campaign metadata).
    """

    name: str
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    layouts: dict[str, dict]
    element_fields: dict[str, tuple[str, ...]]
    params: dict = field(default_factory=dict)

    def codec(self, interface: str) -> PayloadCodec:
        return PayloadCodec(self.layouts[interface])

    def fields(self, interface: str) -> list[dict]:
        """The manifest fields of ``interface`` that hold data elements, in layout order."""
        wanted = self.element_fields[interface]
        return [f for f in self.layouts[interface]["fields"] if f["name"] in wanted]

    def elements(self, interface: str, beats: Sequence[int]) -> np.ndarray:
        """The data elements of ``beats``: one row per beat, the element fields' values in layout order."""
        rows = []
        for word in beats:
            values = self.codec(interface).unpack(int(word))
            row = []
            for f in self.fields(interface):
                item = values[f["name"]]
                row.extend(item if isinstance(item, list) else [item])
            rows.append(row)
        width = sum(f.get("count", 1) for f in self.fields(interface))
        return np.array(rows, dtype=np.int64).reshape(len(rows), width)

    def output_elements(self) -> int:
        """Data elements the workload's outputs hold in total."""
        return sum(len(beats) * sum(f.get("count", 1) for f in self.fields(name))
                   for name, beats in self.outputs.items())

    def check(self, manifest: dict) -> None:
        """Raise ``ValueError`` unless every stream of ``manifest`` is covered with beats that fit it."""
        roles = {i["name"]: i["role"] for i in manifest["interfaces"]}
        for name, role in roles.items():
            table = self.inputs if role == "sink" else self.outputs
            if name not in table:
                raise ValueError(f"workload {self.name}: no beats for the {role} interface {name!r}")
        for kind, table in (("input", self.inputs), ("output", self.outputs)):
            for name, beats in table.items():
                want = "sink" if kind == "input" else "source"
                if roles.get(name) != want:
                    raise ValueError(f"workload {self.name}: {kind} {name!r} is not a {want} interface of "
                                     f"{manifest['top']} (it has {sorted(roles)})")
                width = self.layouts[name]["width"]
                for index, word in enumerate(beats):
                    if not 0 <= word < 1 << width:
                        raise ValueError(f"workload {self.name}: {name} beat {index} does not fit {width} bits")
