"""``kind: gelu`` -- GELU on an element stream, by table, polynomial or piecewise-linear segments."""

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from hw.nonlinear.gelu import ALL_KNOBS, METHOD_KNOBS, GeluSpec, SpecError

from .nonlinear import NonlinearConfig, elementwise_parameters

#: Config keys every method takes (the knobs of each method are ``METHOD_KNOBS``).
COMMON_KEYS = ("kind", "name", "input", "output", "lanes", "method", "rounding", "overflow")


def _accepted_keys(method: str) -> str:
    return ", ".join(COMMON_KEYS[:6] + METHOD_KNOBS[method] + COMMON_KEYS[6:])


def _knob(default: str, description: str, allowed: str | None = None, **constraints):
    """A method knob: optional, defaulted by the validator; ``per_arch`` keeps "leave it out" out of errors."""
    extra = {"per_arch": True} | ({"allowed": allowed} if allowed else {})
    return Field(default=None, validate_default=True, description=f"{description} Default: {default}.",
                 json_schema_extra=extra, **constraints)


class GeluConfig(NonlinearConfig):
    """GELU(x) = x * Phi(x) on ``lanes`` elements per cycle, approximated by ``method``.

    ``table``: ``ReLU(x) - delta(|x|)`` with ``delta(t) = t * Phi(-t)`` in a ROM over
    ``[0, range]`` every ``2**-step_bits``, interpolated linearly, 0 beyond (Edge-MoE's
    method). ``poly``: I-BERT's second-order polynomial of the erf term. ``pwl``:
    ``segments`` straight segments over ``[-range, range)``, 0 below and ``x`` above.
    Each method takes only its own knobs; a knob of another method is an error.
    """

    summary = "GELU element stream: ROM of ReLU - GELU with interpolation, I-BERT polynomial, or PWL"

    kind: Literal["gelu"] = Field(description="Selects this config model.")
    method: Literal["table", "poly", "pwl"] = Field(
        default="table",
        description="Approximation. table: ROM of delta = ReLU - GELU with linear interpolation; "
                    "poly: I-BERT integer second-order polynomial of erf; pwl: piecewise-linear segments.")
    step_bits: int | None = _knob(
        "min(5, input.frac)", "table only: table step 2**-step_bits (at most input.frac).", ge=0, le=32)
    range: float | None = _knob(
        "table 5.5, pwl 4 (at most the input's largest value)",
        "table and pwl: the approximated interval, [0, range] of |x| (table, a multiple of the step) or "
        "[-range, range) of x (pwl); beyond it GELU is ReLU.",
        allowed="a number > 0, at most the input's largest value")
    entry_frac: int | None = _knob(
        "output.frac + 4", "table only: fraction bits of the ROM entries (unsigned; delta < 1/4).", ge=2, le=40)
    segments: int | None = _knob("16", "pwl only: number of equal segments.", ge=1, le=256)
    coeff_frac: int | None = _knob(
        "16", "poly and pwl: fraction bits of the quantised coefficients.", ge=2, le=32)
    erf_frac: int | None = _knob(
        "output.frac + 2", "poly only: fraction bits of the erf term and of d**2.", ge=1, le=40)

    @field_validator("input")
    @classmethod
    def _input_with_fraction(cls, value):
        if value.frac < 0:
            raise ValueError("a format with frac >= 0 (GELU needs the values around 0 to 5)")
        return value

    @field_validator("method")
    @classmethod
    def _method_fits_formats(cls, value, info: ValidationInfo):
        if "input" in info.data and "output" in info.data:
            try:
                GeluSpec(info.data["input"].format, info.data["output"].format, value)
            except SpecError as error:
                raise ValueError(f"a method that fits input {info.data['input'].format.describe()} "
                                 f"({value}: {error.allowed})") from None
        return value

    @field_validator(*ALL_KNOBS)
    @classmethod
    def _knob_of_method(cls, value, info: ValidationInfo):
        method, given = info.data.get("method"), {k: info.data.get(k) for k in ("input", "output")}
        if method is None or None in given.values():  # rejected earlier; that error is reported
            return value
        knob = info.field_name
        if knob not in METHOD_KNOBS[method]:
            if value is not None:
                raise ValueError(f"no '{knob}' with method '{method}', which takes the keys {_accepted_keys(method)}")
            return None
        # Check this knob with the knobs validated before it (the later ones at their defaults).
        earlier = {k: info.data.get(k) for k in METHOD_KNOBS[method] if k in info.data}
        try:
            spec = GeluSpec(given["input"].format, given["output"].format, method, **earlier, **{knob: value})
        except SpecError as error:
            if error.knob == knob:
                raise ValueError(error.allowed) from None
            if error.knob == "input":  # the defaults fit (checked with method): this value is too large
                raise ValueError(f"a smaller value ({error.allowed})") from None
            raise ValueError(f"{error.knob}: {error.allowed}") from None
        return getattr(spec, knob)

    def normalized(self) -> dict:
        """The config with defaults filled in; knobs the method does not take are left out."""
        data = super().normalized()
        for knob in ALL_KNOBS:
            if knob not in METHOD_KNOBS[self.method]:
                data.pop(knob)
        return data

    def describe(self) -> str:
        knobs = ", ".join(f"{k} {getattr(self, k)}" for k in METHOD_KNOBS[self.method])
        return f"gelu {self.method} ({knobs}), {self.formats()}, {self.lanes} lane(s)"


def spec(cfg: GeluConfig) -> GeluSpec:
    """The block spec of ``cfg`` (shared by the generator and the golden model)."""
    return GeluSpec(cfg.input.format, cfg.output.format, cfg.method, cfg.rounding, cfg.overflow,
                    **{knob: getattr(cfg, knob) for knob in METHOD_KNOBS[cfg.method]})


def build(cfg: GeluConfig):
    """The ``hw`` component: ``lanes`` GELU blocks in the element-stream wrapper."""
    from hw.nonlinear.elementwise import Elementwise
    from hw.nonlinear.gelu import Gelu

    block_spec = spec(cfg)
    return Elementwise(lambda: Gelu(block_spec), block_spec.input, block_spec.output, cfg.lanes)


def parameters(cfg: GeluConfig, component) -> dict:
    """Manifest parameters: those of every element-wise unit, plus the method's derived constants.

    ``rom_words`` (table and pwl): words of each lane's ROM (table: interpolation
    segments up to the last one whose correction is not 0; pwl: segments);
    ``breakpoints`` (pwl): the segment ends as input codes.
    """
    params = elementwise_parameters(cfg, component)
    block_spec = spec(cfg)
    if cfg.method == "table":
        params["rom_words"] = block_spec.table_segments
    elif cfg.method == "pwl":
        params["rom_words"] = block_spec.segments
        params["breakpoints"] = list(block_spec.breakpoints)
    return params
