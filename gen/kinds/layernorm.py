"""``kind: layernorm`` -- LayerNorm over rows: one pass of sum(x) and sum(x^2), rsqrt, gamma and beta."""

import math
from typing import Literal

from pydantic import Field, model_validator

from hw.arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat
from hw.nonlinear.layernorm import LayerNormSpec, count_format, var_eps_format
from hw.nonlinear.reciprocal import ReciprocalSpec
from hw.nonlinear.rsqrt import RsqrtSpec

from ..config.fixed import FixedFormatConfig
from .nonlinear import NonlinearConfig
from .softmax import check_hardware_spec, row_parameters

MAX_N = 4096
#: Widest rsqrt output the rsqrt block supports (its internal fraction bits are at most 28).
MAX_RSTD_WIDTH = 26


class LayerNormConfig(NonlinearConfig):
    """LayerNorm of each row of 1..``n_max`` elements with per-channel ``gamma`` and ``beta``.

    One statistics pass accumulates sum(x) and sum(x^2) exactly while the row is
    stored on chip; then mean = sum/n, variance = E[x^2] - mean^2 + eps, and
    rstd = 1/sqrt(variance) (reciprocal and rsqrt blocks, once per row); an
    output pass computes (x - mean) * rstd * gamma + beta. ``gamma`` and
    ``beta`` sit in a parameter memory loaded through the ``params`` stream.
    """

    summary = "LayerNorm over rows (run-time length): one-pass statistics, rsqrt, gamma/beta memory"

    kind: Literal["layernorm"] = Field(description="Selects this config model.")
    n_max: int = Field(ge=1, le=MAX_N, description="Longest row (channels); sizes the buffers and accumulators.")
    gamma: FixedFormatConfig = Field(
        default_factory=lambda: FixedFormatConfig(width=16, frac=11, signed=True),
        description="Format of gamma (default s5.11, Edge-MoE's ap_fixed<16,5>).")
    beta: FixedFormatConfig = Field(
        default_factory=lambda: FixedFormatConfig(width=16, frac=11, signed=True),
        description="Format of beta (default s5.11).")
    eps: float = Field(
        default=1e-6, ge=0.0, le=1.0,
        description="Added to the variance; rounded to the variance format, at least one of its codes. "
                    "Write 1.0e-6 in YAML (a decimal point is needed for a float).")
    stat_frac: int | None = Field(
        default=None, ge=0, le=40,
        description="Fraction bits of the mean and the variance (at least input.frac). "
                    "Default: the larger of 2 * input.frac and log2(1/eps) + 4.")
    rstd: FixedFormatConfig | None = Field(
        default=None,
        description="Format of 1/sqrt(variance + eps), unsigned, at most 26 bits. Default: 24 bits with the "
                    "integer bits 1/sqrt(eps) needs.")
    norm_frac: int | None = Field(
        default=None, ge=0, le=30,
        description="Fraction bits of the normalised value (x - mean) * rstd. Default: output.frac + 2.")
    inv_n_frac: int = Field(default=20, ge=4, le=25, description="Fraction bits of 1/n (unsigned, u1.inv_n_frac).")
    table_bits: int = Field(default=6, ge=1, le=11, description="Seed table bits of the reciprocal and the rsqrt.")
    newton_steps: int = Field(default=2, ge=0, le=3, description="Newton steps of the reciprocal and the rsqrt.")
    row_buffers: int = Field(
        default=2, ge=2, le=8,
        description="Rows held on chip. 2: a row's output pass overlaps the next row's statistics pass.")

    @model_validator(mode="after")
    def _defaults(self):
        if self.stat_frac is None:
            # Exact squares need 2 * input.frac; eps needs a few bits below its leading one.
            eps_bits = math.ceil(math.log2(1 / self.eps)) + 4 if self.eps > 0 else 0
            self.stat_frac = min(40, max(2 * max(0, self.input.frac), eps_bits))
        if self.stat_frac < self.input.frac:
            raise ValueError(f"stat_frac ({self.stat_frac}) must be at least input.frac ({self.input.frac})")
        if self.norm_frac is None:
            self.norm_frac = min(30, max(0, self.output.frac + 2))
        if self.rstd is None:
            eps_value = eps_code(self.eps, self.stat_frac) * 2.0 ** -self.stat_frac
            integer = max(1, math.ceil(math.log2(1 / math.sqrt(eps_value))) + 1)
            self.rstd = FixedFormatConfig(width=24, frac=24 - integer, signed=False)
        if self.rstd.signed or self.rstd.width > MAX_RSTD_WIDTH:
            raise ValueError(f"rstd must be unsigned with at most {MAX_RSTD_WIDTH} bits")
        check_hardware_spec(spec, self)
        return self

    def describe(self) -> str:
        return (f"layernorm {self.formats()}, rows of 1..{self.n_max}, {self.lanes} lane(s), "
                f"gamma {self.gamma.format.describe()}, beta {self.beta.format.describe()}, "
                f"rstd {self.rstd.format.describe()}")


def eps_code(eps: float, frac: int) -> int:
    """``eps`` as a code with ``frac`` fraction bits (round half even), at least 1."""
    return max(1, int(FixedFormat(62, frac, False).from_float(eps)))


def _rsqrt_frac_bits(cfg: LayerNormConfig, variance: FixedFormat) -> int:
    """The rsqrt block's default (output width + 2, at most 28), narrowed where a wide variance needs it."""
    wanted = min(28, cfg.rstd.width + 2)
    room = MAX_INTERMEDIATE_BITS - 3 - RsqrtSpec(input=variance, output=cfg.rstd.format,
                                                 table_bits=cfg.table_bits, frac_bits=cfg.table_bits).denormalise_shift
    return max(cfg.table_bits, min(wanted, room))


def spec(cfg: LayerNormConfig) -> LayerNormSpec:
    """The hardware spec of ``cfg`` (shared by the generator and the golden model)."""
    fin, n_max = cfg.input.format, cfg.n_max
    # A normalised value is at most sqrt(n - 1) in magnitude.
    variance = var_eps_format(fin, cfg.stat_frac)
    norm_integer = (math.isqrt(max(0, n_max - 1)) + 1).bit_length()
    return LayerNormSpec(
        input=fin,
        output=cfg.output.format,
        lanes=cfg.lanes,
        n_max=n_max,
        gamma=cfg.gamma.format,
        beta=cfg.beta.format,
        stat_frac=cfg.stat_frac,
        eps=eps_code(cfg.eps, cfg.stat_frac),
        norm=FixedFormat(norm_integer + cfg.norm_frac + 1, cfg.norm_frac, True),
        reciprocal=ReciprocalSpec(input=count_format(n_max),
                                  output=FixedFormat(cfg.inv_n_frac + 1, cfg.inv_n_frac, False),
                                  table_bits=cfg.table_bits, newton_steps=cfg.newton_steps),
        rsqrt=RsqrtSpec(input=variance, output=cfg.rstd.format, table_bits=cfg.table_bits,
                        newton_steps=cfg.newton_steps, frac_bits=_rsqrt_frac_bits(cfg, variance)),
        rounding=cfg.rounding,
        overflow=cfg.overflow,
        banks=cfg.row_buffers,
    )


def build(cfg: LayerNormConfig):
    from hw.nonlinear.layernorm import LayerNorm

    return LayerNorm(spec(cfg))


def parameters(cfg: LayerNormConfig, component) -> dict:
    """Manifest facts: :func:`~gen.kinds.softmax.row_parameters`, ``eps_code``, the internal formats."""
    s = component.spec
    return {
        **row_parameters(cfg, component),
        "eps_code": s.eps,
        "formats": {"inv_n": s.inv_n_format.describe(), "mean": s.mean_format.describe(),
                    "variance": s.var_eps_format.describe(), "rstd": s.rsqrt.output.describe(),
                    "normalised": s.norm.describe()},
        "params_stream": "params",
    }
