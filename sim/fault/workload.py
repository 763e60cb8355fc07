"""The stimulus of a fault campaign and the outputs it must produce, as stream beats.

A :class:`Workload` is what the injection harness replays: per input stream
(a ``sink`` interface of the manifest, which the design consumes) the payload
words it offers at full rate, and per output stream (a ``source`` interface)
the payload words the fault-free design must produce, from the kind's golden
model. Payload words are plain ints packed with the manifest's field layout
(``sim.tb.payload.PayloadCodec``), ``last`` included. Each kind provides
workload functions (``gemm`` for ``tpe``, in ``sim/tb/tpe_workload.py``) that
``npuforge.registry.workload_for`` names.

:func:`spec_text` writes a workload as the *workload file* the harness reads
(``npuforge inject --export-workload`` exports the same text; its format is
specified in ``docs/campaigns.md``), :func:`write_file` writes it whole or not at all.
"""

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
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


#: The first line of a workload file: its format name and version.
SPEC_HEADER = "npuforge-fault-spec 1"


def _field_line(f: dict) -> str:
    line = f"field {f['name']} offset {f['offset']} width {f['width']} signed {int(f['signed'])}"
    return line + (f" count {f['count']} stride {f['stride']}" if "count" in f else "")


def spec_text(manifest: dict, workload: Workload) -> str:
    """The workload file of ``workload`` on ``manifest``'s design (``docs/campaigns.md``, "The workload file").

    Comment lines (``#``) name the design, the workload and, per stream, its manifest
    interface, ports and payload fields; then per sink interface (in manifest order) its
    input beats, per source interface its element fields and expected beats, in hex.
    """
    lines = [SPEC_HEADER,
             f"# workload {workload.name} on {manifest['top']} (config hash {manifest.get('config_hash', '?')})",
             f"# params {json.dumps(workload.params, sort_keys=True)}"]
    for role in ("sink", "source"):
        for index, interface in enumerate(i for i in manifest["interfaces"] if i["role"] == role):
            payload = interface["payload"]
            lines.append(f"# {role} {index} = {interface['name']}: valid {interface['valid']}, ready "
                         f"{interface['ready']}, payload {payload['port']} ({payload['width']} bits)")
            lines.extend(f"#   {_field_line(f)}" for f in payload["fields"])
    sinks = [i["name"] for i in manifest["interfaces"] if i["role"] == "sink"]
    sources = [i["name"] for i in manifest["interfaces"] if i["role"] == "source"]
    for index, name in enumerate(sinks):
        beats = workload.inputs[name]
        lines.append(f"sink {index} {len(beats)}")
        lines.extend(f"{word:x}" for word in beats)
    for index, name in enumerate(sources):
        beats, fields = workload.outputs[name], workload.fields(name)
        lines.append(f"source {index} {len(beats)} {len(fields)}")
        lines.extend(f"{f['offset']} {f['width']} {int(f['signed'])} {f.get('count', 1)} {f.get('stride', 0)}"
                     for f in fields)
        lines.extend(f"{word:x}" for word in beats)
    return "\n".join(lines) + "\n"


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file in the same directory, renamed
    over ``path`` (parallel writers of the same text are safe); ``OSError`` if it cannot be written."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; this is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
