"""The accelerator's memory image: regions, their layouts, and packing codes into bytes and back.

Everything the descriptor compiler (:mod:`sim.moevit.compiler`), the harness runner and the
testbenches put into or read out of the accelerator's DRAM goes through here, so the layout
rules of docs/accelerator.md ("Memory image") are written once:

* a tensor is row-major, one row per token, each row padded to whole memory beats
  (``stride`` a multiple of the beat); elements are little-endian containers of
  ``container`` bytes holding the code sign-extended (zero-extended when unsigned);
* a linear layer's weights are ``ceil(N / cols)`` tiles; tile ``t`` holds rows ``k = 0..K-1``,
  row ``k`` = ``W[k, t*cols : t*cols + cols]`` (zeros past ``N``), each padded to whole beats,
  then with a bias one row of the bias codes shaped the same;
* a LayerNorm's parameters are one row of ``n`` pairs, pair ``j`` = ``gamma[j]`` then ``beta[j]``,
  each in a ``container``-byte container (the engine's ``params_bytes``), padded to whole beats.
"""

from dataclasses import dataclass, field

import numpy as np

from hw.arith.fixed import FixedFormat

#: Regions start on 4 KB boundaries (a page: easy to read in dumps, no burst ever crosses one
#: region's start into another's).
REGION_ALIGN = 4096


def container_bytes(fmt: FixedFormat) -> int:
    """1, 2, 4 or 8: the smallest power-of-two byte count holding a code of ``fmt``."""
    for size in (1, 2, 4, 8):
        if fmt.width <= 8 * size:
            return size
    raise ValueError(f"{fmt.describe()} codes are wider than 64 bits")


def padded(nbytes: int, beat_bytes: int) -> int:
    return -(-nbytes // beat_bytes) * beat_bytes


def pack_codes(codes: np.ndarray, container: int) -> np.ndarray:
    """Little-endian two's complement containers of integer ``codes`` (last axis ``n``): uint8, last axis
    ``n * container``."""
    codes = np.ascontiguousarray(np.asarray(codes, dtype="<i8"))
    raw = codes.view(np.uint8).reshape(codes.shape + (8,))[..., :container]
    return raw.reshape(codes.shape[:-1] + (codes.shape[-1] * container,))


def unpack_codes(raw: np.ndarray, count: int, container: int, fmt: FixedFormat) -> np.ndarray:
    """``count`` codes of ``fmt`` from the first ``count * container`` bytes of each row of ``raw``."""
    raw = np.asarray(raw, dtype=np.uint8)
    lead = raw.shape[:-1]
    body = raw[..., :count * container].reshape(lead + (count, container))
    wide = np.zeros(lead + (count, 8), dtype=np.uint8)
    wide[..., :container] = body
    value = wide.view("<u8").reshape(lead + (count,)).astype(np.int64) & ((1 << fmt.width) - 1)
    if fmt.signed:
        value = np.where(value >= 1 << (fmt.width - 1), value - (1 << fmt.width), value)
    return value


@dataclass
class Region:
    """A named piece of the image: a tensor (``rows`` x ``n`` codes of ``fmt``) or raw bytes."""

    name: str
    addr: int
    size: int
    kind: str  # "tensor" | "weights" | "raw"
    rows: int = 0
    n: int = 0
    stride: int = 0
    container: int = 0
    fmt: FixedFormat | None = None
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"name": self.name, "addr": self.addr, "size": self.size, "kind": self.kind}
        if self.kind == "tensor":
            out |= {"rows": self.rows, "n": self.n, "stride": self.stride, "container": self.container,
                    "format": {"width": self.fmt.width, "frac": self.fmt.frac, "signed": self.fmt.signed}}
        return out | ({"meta": self.meta} if self.meta else {})


class MemoryImage:
    """A DRAM image under construction: regions allocated one after another from ``base``."""

    def __init__(self, *, beat_bytes: int, base: int = REGION_ALIGN, limit: int | None = None):
        self.beat_bytes = beat_bytes
        self.base = base
        self.limit = limit
        self.regions: dict[str, Region] = {}
        self._next = base
        self._data = bytearray()

    # ------------------------------------------------------------------ allocation
    def _alloc(self, name: str, size: int) -> int:
        if name in self.regions:
            raise ValueError(f"region {name!r} exists already")
        addr = self._next
        self._next = -(-(addr + max(size, 1)) // REGION_ALIGN) * REGION_ALIGN
        if self.limit is not None and addr + size > self.limit:
            raise ValueError(f"region {name!r} ({size} bytes) does not fit below {self.limit:#x}")
        end = addr + size - self.base
        if end > len(self._data):
            self._data.extend(bytes(end - len(self._data)))
        return addr

    def tensor(self, name: str, rows: int, n: int, fmt: FixedFormat, container: int | None = None,
               stride: int | None = None) -> Region:
        """A zeroed tensor region of ``rows`` x ``n`` codes (rows padded to whole beats)."""
        container = container or container_bytes(fmt)
        stride = stride or padded(n * container, self.beat_bytes)
        region = Region(name, self._alloc(name, rows * stride), rows * stride, "tensor", rows, n, stride, container,
                        fmt)
        self.regions[name] = region
        return region

    def raw(self, name: str, payload: bytes, kind: str = "raw", **meta) -> Region:
        region = Region(name, self._alloc(name, len(payload)), len(payload), kind, meta=meta)
        self.write(region.addr, payload)
        self.regions[name] = region
        return region

    # ------------------------------------------------------------------ contents
    def write(self, addr: int, payload: bytes) -> None:
        start = addr - self.base
        if start < 0 or start + len(payload) > len(self._data):
            raise ValueError(f"write of {len(payload)} bytes at {addr:#x} outside the image")
        self._data[start:start + len(payload)] = payload

    def read(self, addr: int, size: int) -> bytes:
        start = addr - self.base
        return bytes(self._data[start:start + size])

    def put(self, region: Region | str, codes) -> Region:
        """Write ``codes`` (rows x n) into a tensor region."""
        region = self.regions[region] if isinstance(region, str) else region
        codes = np.asarray(codes, dtype=np.int64).reshape(region.rows, region.n)
        rows = np.zeros((region.rows, region.stride), dtype=np.uint8)
        rows[:, :region.n * region.container] = pack_codes(codes, region.container)
        self.write(region.addr, rows.tobytes())
        return region

    @property
    def end(self) -> int:
        return self.base + len(self._data)

    def image(self) -> bytes:
        """The bytes from ``base`` to the end of the last region."""
        return bytes(self._data)


def tensor_codes(region: Region, memory: bytes, base: int) -> np.ndarray:
    """The codes of tensor ``region`` in a memory dump ``memory`` that starts at address ``base``."""
    start = region.addr - base
    raw = np.frombuffer(memory[start:start + region.size], dtype=np.uint8).reshape(region.rows, region.stride)
    return unpack_codes(raw, region.n, region.container, region.fmt)


def weight_tiles(w: np.ndarray, bias: np.ndarray | None, *, cols: int, container: int, beat_bytes: int) -> bytes:
    """The tiles of a ``K x N`` weight matrix (and its bias) in the linear engine's order."""
    w = np.asarray(w, dtype=np.int64)
    k, n = w.shape
    tiles = -(-n // cols)
    row_bytes = padded(cols * container, beat_bytes)
    rows = k + (bias is not None)
    out = np.zeros((tiles, rows, row_bytes), dtype=np.uint8)
    wide = np.zeros((k, tiles * cols), dtype=np.int64)
    wide[:, :n] = w
    for t in range(tiles):
        out[t, :k, :cols * container] = pack_codes(wide[:, t * cols:(t + 1) * cols], container)
        if bias is not None:
            b = np.zeros(tiles * cols, dtype=np.int64)
            b[:n] = np.asarray(bias, dtype=np.int64)
            out[t, k, :cols * container] = pack_codes(b[None, t * cols:(t + 1) * cols], container)[0]
    return out.tobytes()


def norm_params(gamma, beta, *, container: int, beat_bytes: int) -> bytes:
    """A LayerNorm's parameter row: pairs ``(gamma[j], beta[j])`` of ``container``-byte codes, padded to beats."""
    gamma, beta = np.asarray(gamma, dtype=np.int64), np.asarray(beta, dtype=np.int64)
    if gamma.shape != beta.shape or gamma.ndim != 1:
        raise ValueError(f"gamma {gamma.shape} and beta {beta.shape} must be rows of the same length")
    pairs = np.stack([gamma, beta], axis=1).reshape(1, -1)
    raw = pack_codes(pairs, container)[0]
    return raw.tobytes() + bytes(padded(raw.size, beat_bytes) - raw.size)
