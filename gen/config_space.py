"""The config space of every hardware kind, for drawing random configs (fuzzing).

Each ``draw_<kind>(draw, small)`` returns the data of one config of that kind
(a dict as a YAML file would hold it), with every field a config may set drawn
from ``draw``, and optional fields sometimes left out so that their defaults are
exercised too. A draw need not be valid: callers validate it
(:func:`gen.config.parse_config_data`) and skip the ones validation rejects, so
the space may be wider than the valid configs but should be mostly valid.

``small`` keeps arrays, rows and memories small (what a test can afford to
elaborate, lint and simulate in seconds); without it sizes reach further.

``draw`` is anything with ``integer(low, high)`` (both ends included) and
``choice(options)``: :class:`RandomDraw` over :class:`random.Random` (the bench,
reproducible from a seed) or an adapter over Hypothesis' ``data.draw`` (the tests).
"""

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hw.npu import BLOCKS

from .kinds.npu_tile import COMPUTE_ARCHS, IMPLEMENTED
from .kinds.tpe import MAC_BY_ARCH

ROUNDINGS = ("truncate", "round_half_even", "round_half_away")
OVERFLOWS = ("wrap", "saturate")


class Draw(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence) -> Any: ...


class RandomDraw:
    """:class:`Draw` over a :class:`random.Random`."""

    def __init__(self, rng: random.Random):
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def choice(self, options: Sequence) -> Any:
        return self._rng.choice(list(options))


def _maybe(draw: Draw, value: Callable[[], Any], chance_in_4: int = 2) -> Any:
    """``value()`` or None (the key is left out) -- ``chance_in_4`` in 4 times a value."""
    return value() if draw.integer(1, 4) <= chance_in_4 else None


def _drop_none(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


def _bool(draw: Draw) -> bool:
    return draw.choice((True, False))


# -- kind: tpe -------------------------------------------------------------------------------------------------

def tpe_fields(draw: Draw, small: bool, archs: Sequence[str], *, wide_results: bool = True) -> dict:
    """The fields of a ``kind: tpe`` config except ``kind`` and ``name`` (also the npu_tile's ``compute``).

    ``wide_results``: a ``cube`` may send several rows of ``C`` per result beat (not in an npu_tile).
    """
    arch = draw.choice(archs)
    side = 3 if small else 8
    data = {
        "arch": arch,
        "mac": draw.choice(MAC_BY_ARCH[arch]),
        "operand": {"width": draw.integer(4, 8 if small else 16), "signed": _bool(draw)},
    }
    if arch != "adder_tree":
        data["rows"] = draw.integer(1, side)
    data["cols"] = draw.integer(1, side)
    if arch == "cube":
        data["depth"] = draw.integer(1, 2 if small else 4)
        if wide_results:
            divisors = [d for d in range(1, data["rows"] + 1) if data["rows"] % d == 0]
            data["result_rows"] = _maybe(draw, lambda: draw.choice(divisors))
    if arch == "adder_tree":
        data["k_tile"] = draw.integer(1, 3 if small else 8)
    if arch == "systolic_os":
        data["result_buffers"] = _maybe(draw, lambda: draw.choice((1, 2)))
    if arch != "systolic_ws":
        data["k_max"] = draw.integer(1, 12 if small else 256)
    data["acc_width"] = _maybe(draw, lambda: draw.integer(8, 40), chance_in_4=1)
    return _drop_none(data)


def draw_tpe(draw: Draw, small: bool = True) -> dict:
    return {"kind": "tpe", "name": "fuzz_tpe", **tpe_fields(draw, small, tuple(MAC_BY_ARCH))}


# -- kind: npu_tile --------------------------------------------------------------------------------------------

def draw_npu_tile(draw: Draw, small: bool = True) -> dict:
    compute = tpe_fields(draw, small, COMPUTE_ARCHS, wide_results=False)
    out_width = draw.integer(2, 16)
    depth = 24 if small else 256
    data = {
        "kind": "npu_tile", "name": "fuzz_npu_tile", "compute": compute,
        "a_depth": _maybe(draw, lambda: draw.integer(1, depth)),
        "b_depth": _maybe(draw, lambda: draw.integer(1, depth)),
        "cmd_depth": _maybe(draw, lambda: draw.integer(7, 32 if small else 1024)),
        "k_total_max": _maybe(draw, lambda: draw.integer(1, 256 if small else 1 << 16)),
        "acc_width": _maybe(draw, lambda: draw.integer(2, 40), chance_in_4=1),
        "scale_width": _maybe(draw, lambda: draw.integer(1, 20)),
        "shift_max": _maybe(draw, lambda: draw.integer(0, 40), chance_in_4=1),
        "out_width": out_width,
        "rounding": _maybe(draw, lambda: draw.choice(ROUNDINGS)),
        "protect": _maybe(draw, lambda: _protect(draw, out_width, compute["operand"]["signed"])),
    }
    return _drop_none(data)


def _protect(draw: Draw, out_width: int, signed: bool) -> list[dict]:
    """A ``protect:`` section: some blocks, each with a mechanism the tile implements for its kind."""
    entries = []
    for block, kind in BLOCKS.items():
        if draw.integer(1, 3) != 1:
            continue
        mechanism = draw.choice(IMPLEMENTED[kind])
        entry = {"match": block, "mechanism": mechanism}
        if mechanism == "clip":
            low_code = -(1 << (out_width - 1)) if signed else 0
            high_code = (1 << (out_width - 1)) - 1 if signed else (1 << out_width) - 1
            low = draw.integer(low_code, high_code)
            entry |= {"low": low, "high": draw.integer(low, high_code)}
        entries.append(entry)
    return entries or None


# -- nonlinear kinds -------------------------------------------------------------------------------------------

def _format(draw: Draw, low: int, high: int, signed: bool | None = None, frac: tuple[int, int] | None = None) -> dict:
    width = draw.integer(low, high)
    signed = _bool(draw) if signed is None else signed
    frac_low, frac_high = frac if frac is not None else (-2, width + 2)
    return {"width": width, "frac": draw.integer(frac_low, frac_high), "signed": signed}


def _nonlinear(draw: Draw, kind: str, small: bool, input_format: dict, output_format: dict) -> dict:
    return {
        "kind": kind, "name": f"fuzz_{kind}", "input": input_format, "output": output_format,
        "lanes": _maybe(draw, lambda: draw.integer(1, 3 if small else 8), chance_in_4=3),
        "rounding": _maybe(draw, lambda: draw.choice(ROUNDINGS)),
        "overflow": _maybe(draw, lambda: draw.choice(OVERFLOWS)),
    }


def draw_exp(draw: Draw, small: bool = True) -> dict:
    data = _nonlinear(draw, "exp", small, _format(draw, 3, 12 if small else 20, signed=True),
                      _format(draw, 3, 16 if small else 24, frac=(0, 18)))
    data |= {
        "method": _maybe(draw, lambda: draw.choice(("table", "linear")), chance_in_4=3),
        "table_bits": _maybe(draw, lambda: draw.integer(1, 8 if small else 12), chance_in_4=3),
        "entry_frac": _maybe(draw, lambda: draw.integer(1, 20)),
        "frac_bits": _maybe(draw, lambda: draw.integer(1, 24)),
    }
    return _drop_none(data)


def _newton(draw: Draw, kind: str, small: bool) -> dict:
    data = _nonlinear(draw, kind, small, _format(draw, 2, 12 if small else 20, signed=False),
                      _format(draw, 2, 16 if small else 24, frac=(-2, 18)))
    data |= {
        "table_bits": _maybe(draw, lambda: draw.integer(1, 8 if small else 12), chance_in_4=3),
        "newton_steps": _maybe(draw, lambda: draw.integer(0, 3), chance_in_4=3),
        "frac_bits": _maybe(draw, lambda: draw.integer(1, 28), chance_in_4=1),
    }
    return _drop_none(data)


def draw_reciprocal(draw: Draw, small: bool = True) -> dict:
    return _newton(draw, "reciprocal", small)


def draw_rsqrt(draw: Draw, small: bool = True) -> dict:
    return _newton(draw, "rsqrt", small)


def draw_gelu(draw: Draw, small: bool = True) -> dict:
    method = draw.choice(("table", "poly", "pwl"))
    input_format = _format(draw, 4, 12 if small else 20, frac=(0, 8))
    data = _nonlinear(draw, "gelu", small, input_format, _format(draw, 4, 14 if small else 24, signed=True,
                                                                 frac=(0, 12)))
    data["method"] = method
    if method == "table":
        data |= {"step_bits": _maybe(draw, lambda: draw.integer(0, input_format["frac"])),
                 "entry_frac": _maybe(draw, lambda: draw.integer(2, 20))}
    if method in ("table", "pwl"):
        # a multiple of the table step (at most 2**-5) that the input reaches
        data["range"] = _maybe(draw, lambda: draw.integer(4, 32) / 8)
    if method == "pwl":
        data["segments"] = _maybe(draw, lambda: draw.integer(1, 32 if small else 256))
    if method in ("poly", "pwl"):
        data["coeff_frac"] = _maybe(draw, lambda: draw.integer(2, 20))
    if method == "poly":
        data["erf_frac"] = _maybe(draw, lambda: draw.integer(1, 20))
    return _drop_none(data)


def draw_softmax(draw: Draw, small: bool = True) -> dict:
    data = _nonlinear(draw, "softmax", small, _format(draw, 3, 10 if small else 16, signed=True, frac=(0, 10)),
                      _format(draw, 3, 12 if small else 16, signed=False, frac=(1, 15)))
    row_max = 16 if small else 256
    if draw.integer(1, 3) == 1:  # the top-k gate
        experts = draw.integer(2, row_max)
        data |= {"experts": experts, "top_k": draw.integer(1, min(experts, 4))}
    else:
        data["n_max"] = draw.integer(1, row_max)
    data |= {
        "exp_frac": _maybe(draw, lambda: draw.integer(4, 20), chance_in_4=1),
        "exp_table_bits": _maybe(draw, lambda: draw.integer(1, 8)),
        "exp_interpolate": _maybe(draw, lambda: _bool(draw)),
        "recip_frac": _maybe(draw, lambda: draw.integer(4, 20), chance_in_4=1),
        "recip_table_bits": _maybe(draw, lambda: draw.integer(1, 8)),
        "newton_steps": _maybe(draw, lambda: draw.integer(0, 3)),
        "row_buffers": _maybe(draw, lambda: draw.integer(2, 4 if small else 8)),
    }
    return _drop_none(data)


def draw_layernorm(draw: Draw, small: bool = True) -> dict:
    data = _nonlinear(draw, "layernorm", small, _format(draw, 3, 12 if small else 16, frac=(0, 10)),
                      _format(draw, 3, 14 if small else 16, signed=True, frac=(0, 12)))
    data |= {
        "n_max": draw.integer(1, 16 if small else 256),
        "gamma": _maybe(draw, lambda: _format(draw, 4, 16, signed=True, frac=(0, 12))),
        "beta": _maybe(draw, lambda: _format(draw, 4, 16, signed=True, frac=(0, 12))),
        "eps": _maybe(draw, lambda: draw.choice((1.0e-6, 1.0e-5, 1.0e-3, 1.0e-2, 0.0))),
        "stat_frac": _maybe(draw, lambda: draw.integer(0, 24), chance_in_4=1),
        "norm_frac": _maybe(draw, lambda: draw.integer(0, 14), chance_in_4=1),
        "inv_n_frac": _maybe(draw, lambda: draw.integer(4, 25)),
        "table_bits": _maybe(draw, lambda: draw.integer(1, 8)),
        "newton_steps": _maybe(draw, lambda: draw.integer(0, 3)),
        "row_buffers": _maybe(draw, lambda: draw.integer(2, 4 if small else 8)),
    }
    return _drop_none(data)


#: kind -> its config space.
SPACES: dict[str, Callable[[Draw, bool], dict]] = {
    "tpe": draw_tpe, "exp": draw_exp, "reciprocal": draw_reciprocal, "rsqrt": draw_rsqrt, "gelu": draw_gelu,
    "softmax": draw_softmax, "layernorm": draw_layernorm, "npu_tile": draw_npu_tile,
}
