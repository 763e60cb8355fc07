"""Golden model of ``kind: npu_tile``: an interpreter of the host word stream, bit-exact.

The tile's arithmetic is the TPE's (:func:`sim.golden.tpe.matmul`, one call per
GEMM command), the accumulators wrap to ``acc_width`` bits, and requantisation
is :func:`hw.arith.fixed.requantize` (round by the config's rule, saturate to
the output format) followed by the activation and, with the ``clip`` mechanism on
``post``, the clamp to its bounds (``Tile.clipped`` counts the rows it changed, the
tile's ``clip_count``). The other mechanisms do not change fault-free results. The command format comes from
:func:`hw.npu.tile_command_layouts`, the same function the generator uses.

:class:`Tile` keeps the state a run builds up: ``feed(words)`` consumes host
words (``(cmd, value)`` pairs) as the hardware does and records result rows;
``reset()`` clears registers but keeps the memories, like the hardware's reset.
The assembler functions (:func:`command`, :func:`a_words`, :func:`b_words`,
:func:`gemm_program`) build host words for testbenches and workloads.
"""

from dataclasses import dataclass, field

import numpy as np

from gen.layout import layout_fields
from hw.arith.fixed import Overflow, requantize
from hw.npu import ACT_MODES, OPCODES, tile_command_layouts

from . import tpe
from .intmath import wrap

#: Where the tile's ``clip_count`` saturates (its counters are 16 bits).
CLIP_COUNT_MAX = (1 << 16) - 1

#: Controller states the model can stop in.
PROG, LOAD_WAIT, ERROR = "prog", "load", "error"


def layouts(cfg) -> dict:
    return tile_command_layouts(a_depth=cfg.a_depth, b_depth=cfg.b_depth, k_beats_max=cfg.k_beats_max,
                                scale_width=cfg.scale_width, shift_max=cfg.shift_max,
                                out_shape=cfg.out_format.shape())


def _fields(layout) -> list[dict]:
    return layout_fields(layout)


def _get(value: int, f: dict) -> int:
    x = (value >> f["offset"]) & ((1 << f["width"]) - 1)
    return x - (1 << f["width"]) if f["signed"] and x >> (f["width"] - 1) else x


def decode(cfg, value: int) -> tuple[int, dict]:
    """``(op, fields)`` of a command word (fields of the opcode's layout; none for an invalid opcode)."""
    op = value & 0b111
    names = {code: name for name, code in OPCODES.items()}
    if op not in names:
        return op, {}
    return op, {f["name"]: _get(value, f) for f in _fields(layouts(cfg)[names[op]]) if f["name"] != "op"}


def command(cfg, name: str, **values) -> int:
    """The command word of ``name`` with ``values`` (every field of its layout, ``op`` excepted)."""
    word = OPCODES[name]
    fields = [f for f in _fields(layouts(cfg)[name]) if f["name"] != "op"]
    if set(values) != {f["name"] for f in fields}:
        raise ValueError(f"{name} takes the fields {[f['name'] for f in fields]}, got {sorted(values)}")
    for f in fields:
        word |= (int(values[f["name"]]) & ((1 << f["width"]) - 1)) << f["offset"]
    return word


def _pack(values, width: int) -> int:
    word = 0
    for index, value in enumerate(values):
        word |= (int(value) & ((1 << width) - 1)) << (index * width)
    return word


def _unpack(word: int, count: int, width: int, signed: bool) -> list[int]:
    out = []
    for index in range(count):
        x = (word >> (index * width)) & ((1 << width) - 1)
        out.append(x - (1 << width) if signed and x >> (width - 1) else x)
    return out


def a_words(cfg, a) -> list[int]:
    """Data words of ``A`` (c_rows x K): word ``t`` holds steps ``t*steps ..``, element ``s*rows + i``
    = ``A[i, t*steps + s]`` (zeros past K), as one engine beat's ``a`` field."""
    a = np.asarray(a, dtype=np.int64)
    rows, steps = a.shape[0], cfg.steps
    beats = -(-a.shape[1] // steps)
    padded = np.zeros((rows, beats * steps), dtype=np.int64)
    padded[:, :a.shape[1]] = a
    return [_pack([padded[i, t * steps + s] for s in range(steps) for i in range(rows)], cfg.compute.operand.width)
            for t in range(beats)]


def b_words(cfg, b) -> list[int]:
    """Data words of ``B`` (K x cols): element ``s*cols + j`` of word ``t`` is ``B[t*steps + s, j]``."""
    b = np.asarray(b, dtype=np.int64)
    cols, steps = b.shape[1], cfg.steps
    beats = -(-b.shape[0] // steps)
    padded = np.zeros((beats * steps, cols), dtype=np.int64)
    padded[:b.shape[0]] = b
    return [_pack([padded[t * steps + s, j] for s in range(steps) for j in range(cols)], cfg.compute.operand.width)
            for t in range(beats)]


def requant(cfg, acc, scale: int, shift: int, mode: int, lo: int, hi: int) -> np.ndarray:
    """Output codes of accumulators ``acc``: requantise (fixed.py's integer rules), then the activation."""
    product = np.asarray(acc, dtype=np.int64) * int(scale)
    code = np.asarray(requantize(product, shift, cfg.out_format, cfg.rounding, Overflow.SATURATE), dtype=np.int64)
    if mode == ACT_MODES["relu"]:
        code = np.maximum(code, 0)
    elif mode == ACT_MODES["clip"]:
        code = np.minimum(np.maximum(code, lo), hi)
    return code


@dataclass
class Tile:
    """The tile's state between host words (see the module docstring)."""

    cfg: object
    buf_a: list = field(default_factory=list)
    buf_b: list = field(default_factory=list)
    results: list = field(default_factory=list)  # (row of codes, last)

    def __post_init__(self):
        self.buf_a = self.buf_a or [0] * self.cfg.a_depth
        self.buf_b = self.buf_b or [0] * self.cfg.b_depth
        self.reset()

    def reset(self) -> None:
        fmt = self.cfg.out_format
        self.acc = np.zeros((self.cfg.compute.c_rows, self.cfg.compute.cols), dtype=np.int64)
        self.params = {"scale": 1, "shift": 0, "mode": ACT_MODES["none"], "lo": fmt.min_code, "hi": fmt.max_code}
        self.state, self.done, self.error, self.reason = PROG, False, False, None
        self.clipped = 0  # result rows with a clamped element (the clip mechanism's clip_count)
        self.program: list[int] = []
        self._pending = None  # (pc, target, addr, remaining) of a LOAD waiting for words

    # ------------------------------------------------------------------ stream
    def feed(self, words) -> None:
        """Consume host words ``(cmd, value)`` in order, as the hardware does."""
        for cmd, value in words:
            if self.state == ERROR:
                continue
            if self.state == PROG:
                self.done = False
                if not cmd:
                    self._fail("a data word where a command was expected")
                elif len(self.program) == self.cfg.cmd_depth:
                    self._fail(f"a program of more than {self.cfg.cmd_depth} commands")
                else:
                    self.program.append(value & ((1 << self._cmd_width()) - 1))
                    if (value & 0b111) == OPCODES["END"]:
                        self._run(0)
            else:  # a LOAD waits for data
                pc, target, addr, remaining = self._pending
                if cmd:
                    self._fail("a command word where a LOAD expected data")
                    continue
                width = self._word_width(target)
                getattr(self, target)[addr] = value & ((1 << width) - 1)
                if remaining == 1:
                    self._run(pc + 1)
                else:
                    self._pending = (pc, target, addr + 1, remaining - 1)

    def _word_width(self, target: str) -> int:
        width = self.cfg.compute.operand.width * self.cfg.steps
        return width * (self.cfg.compute.c_rows if target == "buf_a" else self.cfg.compute.cols)

    def _cmd_width(self) -> int:
        return max(layout.size for layout in layouts(self.cfg).values())

    def _fail(self, reason: str) -> None:
        self.state, self.error, self.reason, self.done = ERROR, True, reason, False

    # ----------------------------------------------------------------- program
    def _run(self, pc: int) -> None:
        """Execute from ``pc`` until END, an error, or a LOAD that needs words."""
        cfg = self.cfg
        while True:
            if pc >= len(self.program):
                return self._fail("pc ran past the program")
            op, f = decode(cfg, self.program[pc])
            if op == OPCODES["END"]:
                self.state, self.done, self.program = PROG, True, []
                return
            if op in (OPCODES["LOAD_A"], OPCODES["LOAD_B"]):
                target = "buf_a" if op == OPCODES["LOAD_A"] else "buf_b"
                depth = cfg.a_depth if target == "buf_a" else cfg.b_depth
                if f["count"] == 0 or f["addr"] + f["count"] > depth:
                    return self._fail(f"LOAD range {f['addr']}+{f['count']} outside {depth} words")
                self.state, self._pending = LOAD_WAIT, (pc, target, f["addr"], f["count"])
                return
            if op == OPCODES["GEMM"]:
                k = f["k"]
                if k == 0 or k > cfg.k_beats_max or f["a_addr"] + k > cfg.a_depth or f["b_addr"] + k > cfg.b_depth:
                    return self._fail(f"GEMM a {f['a_addr']}, b {f['b_addr']}, k {k} out of range")
                self._gemm(f["a_addr"], f["b_addr"], k, f["acc"])
            elif op == OPCODES["QUANT"]:
                if f["shift"] > cfg.shift_max:
                    return self._fail(f"shift {f['shift']} above {cfg.shift_max}")
                self.params.update(scale=f["scale"], shift=f["shift"])
            elif op == OPCODES["ACT"]:
                if f["mode"] > ACT_MODES["clip"] or (f["mode"] == ACT_MODES["clip"] and f["lo"] > f["hi"]):
                    return self._fail(f"activation mode {f['mode']} lo {f['lo']} hi {f['hi']}")
                self.params.update(mode=f["mode"], lo=f["lo"], hi=f["hi"])
            elif op == OPCODES["WRITE"]:
                codes = requant(cfg, self.acc, **self.params)
                if cfg.clip_bounds is not None:  # the clip mechanism on post: every result clamped
                    raw, codes = codes, np.clip(codes, *cfg.clip_bounds)
                    self.clipped = min(self.clipped + int((raw != codes).any(axis=1).sum()), CLIP_COUNT_MAX)
                for i, row in enumerate(codes):
                    self.results.append((row.tolist(), int(i == len(codes) - 1)))
            else:
                return self._fail(f"invalid opcode {op}")
            pc += 1

    def _gemm(self, a_addr: int, b_addr: int, k: int, add: int) -> None:
        cfg, c = self.cfg, self.cfg.compute
        width, signed, steps = c.operand.width, c.operand.signed, cfg.steps
        rows, cols = c.c_rows, c.cols
        a = np.zeros((rows, k * steps), dtype=np.int64)
        b = np.zeros((k * steps, cols), dtype=np.int64)
        for t in range(k):
            ea = _unpack(self.buf_a[a_addr + t], rows * steps, width, signed)
            eb = _unpack(self.buf_b[b_addr + t], cols * steps, width, signed)
            for s in range(steps):
                a[:, t * steps + s] = ea[s * rows:(s + 1) * rows]
                b[t * steps + s, :] = eb[s * cols:(s + 1) * cols]
        product = tpe.matmul(a, b, width=width, signed=signed, acc_width=c.acc_width)
        self.acc = wrap(self.acc * int(add) + product, cfg.acc_width, signed)


def gemm_program(cfg, tiles, *, scale: int, shift: int, mode: str = "none", lo=None, hi=None) -> list[tuple]:
    """Host words of one program over the K tiles ``tiles`` (``(A_t, B_t)`` pairs): one GEMM per tile (the
    first overwrites the accumulators, the rest add), then QUANT, ACT, WRITE, END; the data words follow
    the commands. All tiles are loaded by one LOAD_A and one LOAD_B when they fit the buffers; otherwise
    each tile is loaded to address 0 just before its GEMM."""
    fmt = cfg.out_format
    words = [(a_words(cfg, a), b_words(cfg, b)) for a, b in tiles]
    together = (sum(len(wa) for wa, _ in words) <= cfg.a_depth and sum(len(wb) for _, wb in words) <= cfg.b_depth)
    program, data = [], []
    if together:
        a_data = [w for wa, _ in words for w in wa]
        b_data = [w for _, wb in words for w in wb]
        program += [command(cfg, "LOAD_A", addr=0, count=len(a_data)),
                    command(cfg, "LOAD_B", addr=0, count=len(b_data))]
        data += a_data + b_data
    a_addr = b_addr = 0
    for index, (wa, wb) in enumerate(words):
        if not together:
            program += [command(cfg, "LOAD_A", addr=0, count=len(wa)), command(cfg, "LOAD_B", addr=0, count=len(wb))]
            data += wa + wb
        program.append(command(cfg, "GEMM", a_addr=a_addr, b_addr=b_addr, k=len(wa), acc=int(index > 0)))
        if together:
            a_addr, b_addr = a_addr + len(wa), b_addr + len(wb)
    program += [command(cfg, "QUANT", scale=scale, shift=shift),
                command(cfg, "ACT", mode=ACT_MODES[mode], lo=fmt.min_code if lo is None else lo,
                        hi=fmt.max_code if hi is None else hi),
                command(cfg, "WRITE"), command(cfg, "END")]
    if len(program) > cfg.cmd_depth:
        raise ValueError(f"{len(tiles)} K tiles need {len(program)} commands; {cfg.name} holds {cfg.cmd_depth}")
    return [(1, word) for word in program] + [(0, word) for word in data]


def results_of(cfg, words, tile: Tile | None = None) -> Tile:
    """Feed ``words`` to ``tile`` (a fresh one by default) and return it."""
    tile = tile or Tile(cfg)
    tile.feed(words)
    return tile
