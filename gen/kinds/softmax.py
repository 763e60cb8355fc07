"""``kind: softmax`` -- single-pass (online) softmax over rows, and with ``experts``/``top_k`` the MoE gate."""

from typing import Literal

from pydantic import Field, model_validator

from hw.arith.fixed import FixedFormat
from hw.nonlinear.exp import ExpSpec
from hw.nonlinear.reciprocal import ReciprocalSpec
from hw.nonlinear.softmax import SoftmaxSpec, difference_format, sum_format

from .nonlinear import NonlinearConfig

MAX_N = 4096
MAX_EXPERTS = 256


class SoftmaxConfig(NonlinearConfig):
    """Softmax of each row of 1..``n_max`` signed logits: Edge-MoE's single-pass recurrence.

    One statistics pass keeps the running max and the running sum (one exp per
    element, every exp argument <= 0) while the row is stored on chip; after
    one reciprocal per row, an output pass computes ``exp(x - max) * (1/sum)``.
    With ``experts`` and ``top_k`` the unit is a MoE gate: softmax over the
    ``experts`` logits, then the ``top_k`` largest probabilities (no
    renormalisation, ties to the lower index) as (index, score) pairs.
    """

    summary = "single-pass softmax over rows (run-time length), optional top-k MoE gate"

    kind: Literal["softmax"] = Field(description="Selects this config model.")
    n_max: int | None = Field(
        default=None, ge=1, le=MAX_N, validate_default=True,
        description="Longest row (elements); sizes the row buffer and the running sum. "
                    "Required without experts; with experts it defaults to (and must equal) experts.")
    experts: int | None = Field(
        default=None, ge=2, le=MAX_EXPERTS,
        description="Gate variant: number of experts (logits per row). Give it together with top_k.")
    top_k: int | None = Field(
        default=None, ge=1, le=MAX_EXPERTS,
        description="Gate variant: experts chosen per row (1..experts). Give it together with experts.")
    exp_frac: int | None = Field(
        default=None, ge=4, le=28,
        description="Fraction bits of every exp result and of the running sum. Default: output.frac + 4.")
    exp_table_bits: int = Field(default=6, ge=1, le=12, description="The exp table has 2**exp_table_bits + 1 entries.")
    exp_interpolate: bool = Field(default=True, description="Linear interpolation between exp table entries.")
    recip_frac: int | None = Field(
        default=None, ge=4, le=25,
        description="Fraction bits of 1/sum (a value in (0, 1]). Default: output.frac + 4, at most 25.")
    recip_table_bits: int = Field(default=6, ge=1, le=12, description="Seed table of the reciprocal: 2**bits entries.")
    newton_steps: int = Field(default=2, ge=0, le=3, description="Newton steps of the reciprocal (once per row).")
    row_buffers: int = Field(
        default=2, ge=2, le=8,
        description="Rows held on chip (n_max elements each). 2: a row's output pass overlaps the next row's "
                    "statistics pass; more hide the per-row latency when rows are short.")

    @model_validator(mode="after")
    def _sizes(self):
        if not self.input.signed:
            raise ValueError("input must be signed (softmax logits); set input.signed: true")
        if (self.experts is None) != (self.top_k is None):
            raise ValueError("give experts and top_k together (the gate variant) or neither")
        if self.experts is not None:
            if self.top_k > self.experts:
                raise ValueError(f"top_k must be 1..experts ({self.experts}), not {self.top_k}")
            if self.n_max is None:
                self.n_max = self.experts
            elif self.n_max != self.experts:
                raise ValueError(f"with experts, n_max must equal experts ({self.experts}) or be left out, "
                                 f"not {self.n_max}")
        elif self.n_max is None:
            raise ValueError("n_max is required (the longest row) unless experts is given")
        if self.exp_frac is None:
            self.exp_frac = min(28, max(4, self.output.frac + 4))
        if self.recip_frac is None:
            self.recip_frac = min(25, max(4, self.output.frac + 4))
        check_hardware_spec(spec, self)
        return self

    def describe(self) -> str:
        gate = f", gate top-{self.top_k} of {self.experts} experts" if self.experts else ""
        return f"softmax {self.formats()}, rows of 1..{self.n_max}, {self.lanes} lane(s){gate}"


def check_hardware_spec(make_spec, cfg) -> None:
    """Build ``cfg``'s hardware spec once, so a format the blocks cannot take is a config error, not a traceback."""
    try:
        make_spec(cfg)
    except ValueError as error:
        raise ValueError(f"formats whose intermediates fit the hardware ({error}); use fewer input or "
                         "fraction bits or a smaller n_max") from None


def spec(cfg: SoftmaxConfig) -> SoftmaxSpec:
    """The hardware spec of ``cfg`` (shared by the generator and the golden model)."""
    fin = cfg.input.format
    exp_out = FixedFormat(cfg.exp_frac + 1, cfg.exp_frac, False)
    return SoftmaxSpec(
        input=fin,
        output=cfg.output.format,
        lanes=cfg.lanes,
        n_max=cfg.n_max,
        exp=ExpSpec(input=difference_format(fin), output=exp_out, table_bits=cfg.exp_table_bits,
                    interpolate=cfg.exp_interpolate),
        reciprocal=ReciprocalSpec(input=sum_format(cfg.n_max, cfg.exp_frac),
                                  output=FixedFormat(cfg.recip_frac + 1, cfg.recip_frac, False),
                                  table_bits=cfg.recip_table_bits, newton_steps=cfg.newton_steps),
        rounding=cfg.rounding,
        overflow=cfg.overflow,
        banks=cfg.row_buffers,
    )


def build(cfg: SoftmaxConfig):
    """The ``hw`` component: :class:`~hw.nonlinear.softmax.Softmax` or, with ``top_k``, the gate."""
    from hw.nonlinear.gate import GateSpec, SoftmaxGate
    from hw.nonlinear.softmax import Softmax

    if cfg.top_k is not None:
        return SoftmaxGate(GateSpec(spec(cfg), cfg.top_k))
    return Softmax(spec(cfg))


def row_parameters(cfg, component) -> dict:
    """Manifest facts every row unit has: ``latency`` with ``latency_rule: row`` (the least number of
    cycles from a row's last input beat to its first output beat), ``lanes``, peak
    ``elements_per_cycle``, ``n_max``, ``row_buffers``."""
    return {
        "latency": component.latency,
        "latency_rule": "row",
        "lanes": cfg.lanes,
        "elements_per_cycle": cfg.lanes,
        "n_max": cfg.n_max,
        "row_buffers": cfg.row_buffers,
    }


def parameters(cfg: SoftmaxConfig, component) -> dict:
    """Manifest facts: :func:`row_parameters`, ``exp_units``, the internal formats, ``output``
    (``elements``, or ``pairs`` for the gate)."""
    s = spec(cfg)
    return {
        **row_parameters(cfg, component),
        "exp_units": component.exp_units,
        "formats": {"difference": s.exp.input.describe(), "exp": s.exp.output.describe(),
                    "sum": s.sum_format.describe(), "reciprocal": s.reciprocal.output.describe()},
        "output": "pairs" if cfg.top_k is not None else "elements",
    }
