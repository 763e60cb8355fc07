"""The accelerator's descriptor format: opcodes, fields, flags and error codes, written once.

The RTL decodes descriptors through :func:`field_slice`, the compiler
(``sim/moevit/compiler.py``) writes them with :func:`encode`, and the docs and the
manifest show :func:`table`. A descriptor is :data:`DESCRIPTOR_BYTES` bytes: sixteen
little-endian 32-bit words. Word 0 holds ``opcode[7:0]``, ``flags[15:8]`` and
``fmt[23:16]``; what the other words mean depends on the opcode (:data:`FIELDS`).
Addresses are 64-bit byte addresses (two words, low first), strides bytes between rows.
"""

from dataclasses import dataclass

DESCRIPTOR_BYTES = 64
DESCRIPTOR_WORDS = DESCRIPTOR_BYTES // 4

#: opcode name -> code. New operators take new codes; 0 ends a list.
OPCODES: dict[str, int] = {"END": 0, "LINEAR": 1, "ADD": 2, "IM2COL": 3, "LAYERNORM": 4, "SOFTMAX": 5,
                           "ATTENTION": 6, "GATE": 7}

#: opcode name -> {field name: (first word, bits)} or (word, bits, first bit in the word); 64-bit fields span
#: two words.
FIELDS: dict[str, dict[str, tuple[int, int]]] = {
    "END": {},
    "LINEAR": {"m": (1, 32), "k": (2, 32), "n": (3, 32), "src": (4, 64), "weights": (6, 64), "dst": (8, 64),
               "residual": (10, 64), "src_stride": (12, 32), "dst_stride": (13, 32), "res_stride": (14, 32),
               "b_stride": (15, 32), "expert": (0, 8, 24), "queue_from": (15, 32)},
    "ADD": {"rows": (1, 32), "n": (2, 32), "src": (4, 64), "src2": (6, 64), "dst": (8, 64),
            "src_stride": (12, 32), "dst_stride": (13, 32), "src2_stride": (14, 32)},
    "IM2COL": {"channels": (1, 32), "height": (2, 32), "width": (3, 32), "src": (4, 64), "dst": (8, 64),
               "src_stride": (12, 32), "dst_stride": (13, 32), "patch": (14, 32)},
    "LAYERNORM": {"rows": (1, 32), "n": (2, 32), "src": (4, 64), "params": (6, 64), "dst": (8, 64),
                  "src_stride": (12, 32), "dst_stride": (13, 32)},
    "SOFTMAX": {"rows": (1, 32), "n": (2, 32), "src": (4, 64), "dst": (8, 64), "src_stride": (12, 32),
                "dst_stride": (13, 32)},
    # One head: q, k, v rows (head_dim codes each) inside the qkv tensor, the output at its columns of the heads
    # tensor; scale is the code of 1/sqrt(head_dim) in the scale (weight) format, two's complement.
    "ATTENTION": {"tokens": (1, 32), "head_dim": (2, 32), "scale": (3, 32), "q": (4, 64), "k": (6, 64),
                  "dst": (8, 64), "v": (10, 64), "src_stride": (12, 32), "dst_stride": (13, 32)},
    # The mixture of experts' gate (hw/vit/gate.py): rows of logits -> the route table's expert queues.
    "GATE": {"rows": (1, 32), "n": (2, 32), "src": (4, 64), "src_stride": (12, 32)},
}

#: opcode name -> {flag name: bit of the flags byte}.
FLAGS: dict[str, dict[str, int]] = {
    "END": {},
    "LINEAR": {"bias": 0, "gelu": 1, "residual": 2, "no_prefetch": 3, "b_rows": 4, "b_transposed": 5,
               "gather": 6, "scatter": 7},
    "ADD": {},
    "IM2COL": {},
    "LAYERNORM": {},
    "SOFTMAX": {},
    "ATTENTION": {},
    "GATE": {},
}


@dataclass(frozen=True)
class ErrorCode:
    code: int
    name: str
    cause: str


#: ``STATUS.code`` values; 0 is no error.
ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode(1, "BAD_OPCODE", "an opcode the hardware does not know"),
    ErrorCode(2, "BAD_ADDRESS", "an address or stride not aligned to the data width, or a tensor reaching past "
                                "2**addr_width"),
    ErrorCode(3, "BAD_SIZE", "a zero size, K above k_max, M x K beyond the A buffer, a row longer than its "
                             "row unit's n_max, or a geometry the engine cannot take"),
    ErrorCode(4, "BAD_FORMAT", "fmt beyond the format table, or a flag the opcode does not take"),
    ErrorCode(5, "AXI_READ", "a read answered with SLVERR or DECERR"),
    ErrorCode(6, "AXI_WRITE", "a write answered with SLVERR or DECERR"),
)
ERROR = {e.name: e.code for e in ERRORS}
ERROR_BITS = 8


class DescriptorError(ValueError):
    """A descriptor the encoder refuses (an unknown opcode, field or flag, a value that does not fit)."""


def field_slice(opcode: str, name: str) -> tuple[int, int]:
    """``(lsb, width)`` of field ``name`` of ``opcode`` in the 512-bit descriptor."""
    word, bits, *shift = FIELDS[opcode][name]
    return 32 * word + (shift[0] if shift else 0), bits


HEADER = {"opcode": (0, 8), "flags": (8, 8), "fmt": (16, 8)}


def encode(opcode: str, fields: dict[str, int] | None = None, *, flags: tuple[str, ...] = (), fmt: int = 0) -> bytes:
    """The 64 bytes of one descriptor; fields not given are 0."""
    if opcode not in OPCODES:
        raise DescriptorError(f"opcode {opcode!r}; allowed: {', '.join(OPCODES)}")
    value = OPCODES[opcode]
    for flag in flags:
        if flag not in FLAGS[opcode]:
            raise DescriptorError(f"{opcode} flag {flag!r}; allowed: {', '.join(FLAGS[opcode]) or 'none'}")
        value |= 1 << (8 + FLAGS[opcode][flag])
    if not 0 <= fmt < 256:
        raise DescriptorError(f"fmt {fmt}; allowed: 0 to 255")
    value |= fmt << 16
    for name, field_value in (fields or {}).items():
        if name == "queue_from" and fields.get("b_stride"):
            raise DescriptorError("LINEAR.queue_from (gather, scatter) and b_stride share word 15; give one")
        if name not in FIELDS[opcode]:
            raise DescriptorError(f"{opcode} field {name!r}; allowed: {', '.join(FIELDS[opcode])}")
        lsb, width = field_slice(opcode, name)
        if not 0 <= int(field_value) < 1 << width:
            raise DescriptorError(f"{opcode}.{name} = {field_value}; allowed: 0 to {(1 << width) - 1}")
        value |= int(field_value) << lsb
    return value.to_bytes(DESCRIPTOR_BYTES, "little")


def decode(raw: bytes) -> dict:
    """``{"opcode": name or code, "flags": [...], "fmt": n, <fields>}`` of one descriptor."""
    if len(raw) != DESCRIPTOR_BYTES:
        raise DescriptorError(f"a descriptor is {DESCRIPTOR_BYTES} bytes, not {len(raw)}")
    value = int.from_bytes(raw, "little")
    code = value & 0xFF
    names = {v: k for k, v in OPCODES.items()}
    opcode = names.get(code)
    out = {"opcode": opcode if opcode is not None else code, "fmt": (value >> 16) & 0xFF}
    flags_byte = (value >> 8) & 0xFF
    if opcode is None:
        out["flags"] = flags_byte
        return out
    out["flags"] = [f for f, bit in FLAGS[opcode].items() if flags_byte >> bit & 1]
    for name in FIELDS[opcode]:
        lsb, width = field_slice(opcode, name)
        out[name] = (value >> lsb) & ((1 << width) - 1)
    return out


def table() -> dict:
    """The format as JSON-able data (the manifest's ``descriptors`` section)."""
    return {
        "bytes": DESCRIPTOR_BYTES,
        "header": {name: {"lsb": lsb, "width": width} for name, (lsb, width) in HEADER.items()},
        "opcodes": {name: {"code": code,
                           "fields": {f: {"word": w[0], "bits": w[1], **({"lsb": w[2]} if len(w) > 2 else {})}
                                      for f, w in FIELDS[name].items()},
                           "flags": dict(FLAGS[name])}
                    for name, code in OPCODES.items()},
        "errors": [{"code": e.code, "name": e.name, "cause": e.cause} for e in ERRORS],
    }
