"""``kind: npu_tile`` -- a GEMM tile with memories, a TPE, requantisation and a command controller."""

import fnmatch
from typing import Literal

from pydantic import Field, model_validator

from hw.arith import accumulator_width
from hw.arith.fixed import FixedFormat, Rounding

from ..config.base import KindConfig, StrictModel
from ..config.fixed import RoundingName
from ..layout import layout_fields
from . import tpe

#: Engines the tile drives (the ``k_steps`` beat format of ``hw/tpe/interface.py``).
COMPUTE_ARCHS = ("systolic_os", "cube", "adder_tree", "matrix2d")
MAX_TILE_ACC_WIDTH = 40  # acc x scale must stay exact in the golden model's int64 rules
MAX_SCALE_WIDTH = 20


class ComputeConfig(tpe.TpeConfig):
    """The tile's engine: a ``kind: tpe`` config without ``kind`` and ``name``."""

    kind: Literal["tpe"] = Field(default="tpe", description="Always tpe; leave it out.")
    name: Literal["compute"] = Field(default="compute",
                                     description="Always compute (the engine is the tile's submodule compute); "
                                                 "leave it out.")

    def normalized(self) -> dict:
        data = super().normalized()
        del data["kind"], data["name"]
        return data


#: Mechanisms the tile inserts, per block kind (hw.protect.MECHANISMS says where each one fits;
#: this is the part of it the tile implements so far).
IMPLEMENTED = {"registers": ("parity", "secded", "dmr", "tmr"), "memory": ("parity", "secded"),
               "activation": ("dmr", "tmr", "clip"), "compute": ("dmr", "tmr", "residue", "abft")}
MECHANISM_NAMES = ("parity", "secded", "dmr", "tmr", "residue", "abft", "clip")


class ProtectEntry(StrictModel):
    """One line of ``protect:``: the blocks ``match`` names get ``mechanism``."""

    match: str = Field(min_length=1, description="fnmatch pattern over the block names (buf_a, buf_b, cmd, ctrl, "
                                                 "compute, acc, post).")
    mechanism: Literal[MECHANISM_NAMES] = Field(description="Protection mechanism (docs/protection.md).")
    low: int | None = Field(default=None, description="clip only: lowest output code let through.")
    high: int | None = Field(default=None, description="clip only: highest output code let through.")


class NpuTileConfig(KindConfig):
    """An NPU tile: operand memories for A and B tiles, a command memory, a TPE as compute,
    accumulators that sum GEMM results over a K loop, requantisation to ``out_width``-bit codes
    with ReLU or clipping, and a controller that runs a command list from the host stream.

    ``compute`` takes the keys of ``kind: tpe`` (every arch with the k_steps beat format:
    systolic_os, cube, adder_tree, matrix2d) with one ``operand`` format for A and B
    (``operand_a`` and ``operand_b`` only if they are equal). See docs/npu_tile.md for the command format.
    """

    summary = "NPU tile: operand/command memories, a TPE, K-loop accumulators, requantisation, controller"

    kind: Literal["npu_tile"] = Field(description="Selects this config model.")
    compute: ComputeConfig = Field(description="The engine (keys of kind: tpe except kind and name).")
    a_depth: int | None = Field(default=None, ge=1, le=4096,
                                description="Words of buf_a (one word: the a field of one engine beat). "
                                            "Default: 2 x the beats of the longest GEMM.")
    b_depth: int | None = Field(default=None, ge=1, le=4096,
                                description="Words of buf_b (one word: the b field of one engine beat). "
                                            "Default: 2 x the beats of the longest GEMM.")
    cmd_depth: int = Field(default=16, ge=7, le=1024,
                           description="Commands a program may hold, END included; at least the 7 of a program "
                                       "with one GEMM (LOAD_A, LOAD_B, GEMM, QUANT, ACT, WRITE, END).")
    k_total_max: int | None = Field(
        default=None, ge=1, le=1 << 20,
        description="Longest reduction over a K loop of GEMM commands that the accumulators hold exactly; "
                    "sizes acc_width. Default: 4 x compute.k_max.")
    acc_width: int | None = Field(
        default=None, ge=2, le=MAX_TILE_ACC_WIDTH,
        description="Tile accumulator bits (they wrap past them). Default: the minimum for k_total_max; "
                    "at least compute.acc_width.")
    scale_width: int = Field(default=16, ge=1, le=MAX_SCALE_WIDTH,
                             description="Bits of the unsigned per-tensor scale of the QUANT command.")
    shift_max: int | None = Field(default=None, ge=0, le=62,
                                  description="Largest right shift of the QUANT command. "
                                              "Default: acc_width + scale_width - 1.")
    out_width: int = Field(default=8, ge=2, le=16,
                           description="Bits of an output code (signed exactly when the operands are).")
    rounding: RoundingName = Field(default="round_half_even",
                                   description="Rounding of the requantising shift (hw/arith/fixed.py); "
                                               "overflow always saturates.")
    protect: list[ProtectEntry] = Field(
        default_factory=list,
        description="Protection per block: a list of {match, mechanism} (clip also low, high); at most one "
                    "mechanism per block. Default: none.")

    @model_validator(mode="after")
    def _derive(self):
        c = self.compute
        if c.operand is None:  # operand_a and operand_b differ (equal ones normalise to operand)
            raise ValueError(f"compute.operand_a: {c.a_format.describe()} A with {c.b_format.describe()} B is not "
                             "supported by npu_tile; allowed: compute.operand, one format for A and B (the tile's "
                             "buffers, result checks and output codes assume one)")
        if c.arch not in COMPUTE_ARCHS:
            raise ValueError(f"compute.arch '{c.arch}' is not supported by npu_tile; allowed: "
                             f"{', '.join(COMPUTE_ARCHS)}")
        if c.arch == "cube" and c.result_rows != 1:
            raise ValueError(f"compute.result_rows: {c.result_rows} is not supported by npu_tile; allowed: 1 (the "
                             "tile's controller takes one row of C per result beat)")
        if c.k_max < self.steps:
            raise ValueError(f"compute.k_max {c.k_max} is below the {self.steps} reduction steps of one beat; "
                             f"allowed: k_max >= {self.steps}")
        if self.a_depth is None:
            self.a_depth = 2 * self.k_beats_max
        if self.b_depth is None:
            self.b_depth = 2 * self.k_beats_max
        if self.k_total_max is None:
            self.k_total_max = 4 * c.k_max
        minimum = max(accumulator_width(c.operand.width, c.operand.signed, self.k_total_max), c.acc_width)
        if self.acc_width is None:
            self.acc_width = minimum
        elif self.acc_width < c.acc_width:
            raise ValueError(f"acc_width {self.acc_width} is narrower than compute.acc_width {c.acc_width}; "
                             f"allowed: {c.acc_width} to {MAX_TILE_ACC_WIDTH}")
        if self.acc_width > MAX_TILE_ACC_WIDTH:
            raise ValueError(f"k_total_max {self.k_total_max} needs {self.acc_width}-bit accumulators, above "
                             f"{MAX_TILE_ACC_WIDTH}; allowed: a smaller k_total_max (or compute.k_max, its "
                             "default's base), or narrower operands")
        if self.shift_max is None:
            self.shift_max = self.acc_width + self.scale_width - 1
        self._check_protect()
        return self

    def _narrowest(self, block: str) -> int:
        """Bits of the narrowest register group or memory word of ``block`` (what a mechanism must fit)."""
        c = self.compute
        if block == "buf_a":
            return c.c_rows * self.steps * c.operand.width
        if block == "buf_b":
            return c.cols * self.steps * c.operand.width
        if block == "cmd":
            from hw.npu.commands import command_width, tile_command_layouts
            return command_width(tile_command_layouts(
                a_depth=self.a_depth, b_depth=self.b_depth, k_beats_max=self.k_beats_max,
                scale_width=self.scale_width, shift_max=self.shift_max, out_shape=self.out_format.shape()))
        if block == "acc" and c.c_rows > 1:
            return min(self.acc_width, (c.c_rows - 1).bit_length())  # the row pointer
        if block == "acc":
            return self.acc_width
        return 2 * self.out_width  # ctrl, post: every group holds several fields

    @property
    def mechanisms(self) -> dict[str, str]:
        """Block -> mechanism, from ``protect`` (blocks not named are ``none``)."""
        from hw.npu import BLOCKS

        chosen = {}
        for entry in self.protect:
            for name in fnmatch.filter(BLOCKS, entry.match):
                chosen[name] = entry.mechanism
        return chosen

    def _check_protect(self) -> None:
        from hw.npu import BLOCKS
        from hw.protect import MECHANISMS

        owner = {}
        for index, entry in enumerate(self.protect):
            where = f"protect[{index}]"
            names = fnmatch.filter(BLOCKS, entry.match)
            if not names:
                raise ValueError(f"{where}.match: {entry.match!r} matches no block; allowed: a pattern over the "
                                 f"blocks {', '.join(BLOCKS)}")
            given = (entry.low is not None) + (entry.high is not None)
            if given != (2 if entry.mechanism == "clip" else 0):
                bounds = ", ".join(f"{key} {getattr(entry, key)}" for key in ("low", "high")
                                   if getattr(entry, key) is not None) or "no low or high"
                raise ValueError(f"{where}: low and high go with mechanism clip, and clip needs both; got {bounds} "
                                 f"with mechanism {entry.mechanism!r}; allowed: both with clip, neither otherwise")
            if entry.mechanism == "clip":
                self._check_clip_bounds(where, entry)
            for name in names:
                if name in owner:
                    raise ValueError(f"{where}: block {name} already has a mechanism from protect[{owner[name]}]; "
                                     "allowed: one mechanism per block")
                owner[name] = index
                kind, width = BLOCKS[name], self._narrowest(name)
                fits = [m.name for m in MECHANISMS.values() if m.fits(kind, width)]
                if not MECHANISMS[entry.mechanism].fits(kind, width):
                    raise ValueError(f"{where}.mechanism: {entry.mechanism!r} does not fit block {name} ({kind}, "
                                     f"narrowest group {width} bits); allowed: {', '.join(fits) or 'nothing'} (what fits)")
                if entry.mechanism not in IMPLEMENTED[kind]:
                    made = ", ".join(IMPLEMENTED[kind]) or "none yet"
                    raise ValueError(f"{where}.mechanism: {entry.mechanism!r} on the {kind} block {name} is not "
                                     f"implemented in npu_tile; allowed on {kind}: {made}")

    def _check_clip_bounds(self, where: str, entry: ProtectEntry) -> None:
        fmt = self.out_format
        for field in ("low", "high"):
            value = getattr(entry, field)
            if not fmt.min_code <= value <= fmt.max_code:
                raise ValueError(f"{where}.{field}: {value} is outside the output codes; allowed: "
                                 f"{fmt.min_code} to {fmt.max_code} ({self.out_width}-bit "
                                 f"{'signed' if fmt.signed else 'unsigned'})")
        if entry.low > entry.high:
            raise ValueError(f"{where}: low {entry.low} is above high {entry.high}; allowed: low <= high")

    @property
    def clip_bounds(self) -> tuple[int, int] | None:
        """``(low, high)`` of the ``clip`` mechanism on ``post``, or None."""
        for entry in self.protect:
            if entry.mechanism == "clip":
                return entry.low, entry.high
        return None

    @property
    def steps(self) -> int:
        """Reduction steps per engine beat."""
        return {"cube": self.compute.depth, "adder_tree": self.compute.k_tile}.get(self.compute.arch, 1)

    @property
    def k_beats_max(self) -> int:
        """Most beats a GEMM command may have: the engine's k_max in whole beats."""
        return self.compute.k_max // self.steps

    @property
    def out_format(self) -> FixedFormat:
        return FixedFormat(self.out_width, 0, self.compute.operand.signed)

    def normalized(self) -> dict:
        data = super().normalized()
        data["compute"] = self.compute.normalized()
        if not self.protect:  # an unprotected tile's hash does not depend on the key
            del data["protect"]
        return data

    def describe(self) -> str:
        return (f"NPU tile on {self.compute.describe()}; buffers {self.a_depth}+{self.b_depth} words, "
                f"{self.cmd_depth} commands, {self.acc_width}-bit accumulators, "
                f"{self.out_width}-bit outputs ({self.rounding}, saturate)"
                + ("; protected: " + ", ".join(f"{block} {mech}" for block, mech in self.mechanisms.items())
                   if self.protect else ""))


def build(cfg: NpuTileConfig):
    """The ``hw`` component for ``cfg``."""
    from hw.npu import NpuTile

    c = cfg.compute
    return NpuTile(tpe.build(c), cols=c.cols, operand_shape=_operand_shape(c), acc_width_compute=c.acc_width, a_depth=cfg.a_depth, b_depth=cfg.b_depth,
                   cmd_depth=cfg.cmd_depth, acc_width=cfg.acc_width, k_beats_max=cfg.k_beats_max,
                   scale_width=cfg.scale_width, shift_max=cfg.shift_max, out_format=cfg.out_format,
                   rounding=Rounding(cfg.rounding), mechanisms=cfg.mechanisms,
                   compute_replicas=[tpe.build(c) for _ in range({"dmr": 1, "tmr": 2}.get(
                       cfg.mechanisms.get("compute"), 0))], clip=cfg.clip_bounds)


def _operand_shape(c):
    from amaranth.hdl import signed, unsigned
    return signed(c.operand.width) if c.operand.signed else unsigned(c.operand.width)


def parameters(cfg: NpuTileConfig, component) -> dict:
    """Derived facts: the engine's parameters, word widths, the command format, the blocks.

    ``command.layouts`` gives each command's fields (offsets within the command
    word, ``op`` first); a command travels in the low bits of a host ``word``
    with ``cmd = 1``. ``a_word``/``b_word`` say how a data word holds one
    engine beat's ``a``/``b`` field.
    """
    from hw.npu import ACT_MODES, BLOCKS, OPCODES

    return {
        "compute": tpe.parameters(cfg.compute, component._compute),
        "c_rows": component.c_rows,
        "cols": component.cols,
        "steps_per_beat": component.steps,
        "k_beats_max": cfg.k_beats_max,
        "word_width": component.word_width,
        "a_word": {"width": component.a_word_width, "operands": component.c_rows * component.steps},
        "b_word": {"width": component.b_word_width, "operands": component.cols * component.steps},
        "command": {
            "width": component.cmd_width,
            "opcodes": dict(OPCODES),
            "act_modes": dict(ACT_MODES),
            "layouts": {name: layout_fields(layout) for name, layout in component.layouts.items()},
        },
        "blocks": dict(BLOCKS),
    }


def manifest_sections(cfg: NpuTileConfig, component, fault_sites) -> dict:
    """Top-level manifest entries beyond the common ones.

    ``protectable``: per block its kind, fault-site paths and bits. With a
    ``protect`` section also ``alarms`` (the tile's two alarm ports) and
    ``mechanisms`` (per protected block: the sites it covers; TMR and SECDED
    report what they correct, so nothing they fix stays latent).
    """
    from hw.npu import BLOCKS

    out = []
    for name, kind in BLOCKS.items():
        prefix = f"core.{name}"
        # A block's own submodule, its replicas and checkers (compute_r1, compute_r2, compute_residue) and what
        # they contain.
        sites = [s for s in fault_sites if s.block == prefix or s.block.startswith((prefix + ".", prefix + "_"))]
        out.append({"name": name, "kind": kind, "sites": [s.path for s in sites],
                    "bits": sum(s.width * (s.depth or 1) for s in sites)})
    sections = {"protectable": out}
    if component.protected:
        sections["alarms"] = [{"port": "alarm_corrected", "corrects": True},
                              {"port": "alarm_detected", "corrects": False}]
        sections["mechanisms"] = [_mechanism_entry(block, component.protected[block["name"]])
                                  for block in out if block["name"] in component.protected]
    return sections


def _mechanism_entry(block: dict, mechanism: str) -> dict:
    """The manifest ``mechanisms`` entry of a protected block: the sites it covers and its alarm port.

    ``clip`` raises no alarm (it bounds values, it does not report them; see docs/npu_tile.md): its
    entry has no ``alarm``, so a fault it leaves wrong counts as residual and one it clamps to the
    right value as safe.
    """
    from hw.protect import MECHANISMS

    entry = {"name": f"{block['name']}_{mechanism}", "covers": block["sites"]}
    if mechanism != "clip":
        entry["alarm"] = "alarm_corrected" if MECHANISMS[mechanism].corrects else "alarm_detected"
    return entry
