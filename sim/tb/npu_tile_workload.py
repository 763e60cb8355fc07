"""The ``npu_gemm`` fault-campaign workload of ``kind: npu_tile``: GEMM programs with a K loop.

Each of ``programs`` programs multiplies a random ``A`` (the engine's ``c_rows``
rows) by a random ``B`` (``cols`` columns) over a K loop of ``tiles`` tiles of
``k`` beats each (operands uniform over their range), then requantises with a
random large scale and the shift that maps the largest product just past the
output range (so some outputs saturate), applies ReLU and writes the rows.
Host words (commands, then data) are the input stream; the golden
interpreter's result rows are the expected output stream.
"""

import numpy as np

from gen.errors import ConfigError
from sim.fault.workload import Workload
from sim.golden import npu_tile as golden
from sim.golden.intmath import operand_range

from .payload import PayloadCodec


def _whole(name: str, value, low: int, high: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"workload.{name}: {value!r} is not allowed; need an integer from {low} to {high}{why}")
    return value


def _max_tiles(cfg) -> int:
    """Tiles one program holds: reloading each tile costs 3 commands, plus QUANT, ACT, WRITE, END."""
    return max(1, (cfg.cmd_depth - 4) // 3)


def npu_gemm_words(cfg, *, programs: int, tiles: int, k: int, seed: int, mode: str = "relu") -> list[tuple]:
    """Host words of the workload (see the module docstring), reproducible from ``seed``."""
    _whole("programs", programs, 1, 1000, "")
    _whole("tiles", tiles, 1, _max_tiles(cfg), f" ({cfg.name} holds {cfg.cmd_depth} commands a program)")
    _whole("k", k, 1, cfg.k_beats_max, f" (beats per GEMM of {cfg.name})")
    if mode not in ("none", "relu"):
        raise ConfigError(f"workload.mode: {mode!r} is not allowed; allowed: 'none', 'relu'")
    rng = np.random.default_rng(seed)
    c = cfg.compute
    lo, hi = operand_range(c.operand.width, c.operand.signed)
    steps = k * cfg.steps
    words = []
    for _ in range(programs):
        pairs = [(rng.integers(lo, hi + 1, (c.c_rows, steps)), rng.integers(lo, hi + 1, (steps, c.cols)))
                 for _ in range(tiles)]
        scale = int(rng.integers(1 << (cfg.scale_width - 1), 1 << cfg.scale_width))
        peak = int(np.abs(sum(a @ b for a, b in pairs)).max()) * scale
        shift = int(np.clip(peak.bit_length() - cfg.out_width, 0, cfg.shift_max))
        words += golden.gemm_program(cfg, pairs, scale=scale, shift=shift, mode=mode)
    return words


def npu_gemm(cfg, manifest: dict, *, tiles: int, k: int, seed: int, programs: int = 1,
             mode: str = "relu") -> Workload:
    """The workload of :func:`npu_gemm_words`: host words in, requantised rows out."""
    words = npu_gemm_words(cfg, programs=programs, tiles=tiles, k=k, seed=seed, mode=mode)
    tile = golden.results_of(cfg, words)
    if tile.error or not tile.done:  # the generator builds valid programs only
        raise AssertionError(f"npu_gemm built a program the tile rejects: {tile.reason}")
    interfaces = {interface["name"]: interface for interface in manifest["interfaces"]}
    host, results = interfaces["host"], interfaces["results"]
    pack_in, pack_out = PayloadCodec(host["payload"]), PayloadCodec(results["payload"])
    return Workload(
        name=f"npu_gemm(programs={programs}, tiles={tiles}, k={k}, seed={seed}, mode={mode})",
        inputs={"host": tuple(pack_in.pack({"word": value, "cmd": cmd}) for cmd, value in words)},
        outputs={"results": tuple(pack_out.pack({"c": row, "last": last}) for row, last in tile.results)},
        layouts={"host": host["payload"], "results": results["payload"]},
        element_fields={"results": ("c",)},
        params={"type": "npu_gemm", "programs": programs, "tiles": tiles, "k": k, "seed": seed, "mode": mode},
    )
